// An artifact's versions and files, with capped previews: text, JSON pretty-printed, the head of a
// CSV as a table, images. Bytes come through the Artifacts service's Download stream (base64 in the
// JSON form), only as many as the preview shows.

import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, ARTIFACTS, rpc, stream } from "../api";
import { fmtAgo, fmtCount, fmtTimestamp, int } from "../format";
import type { ArtifactVersion, ManifestEntry } from "../types";
import { ErrorBox, Loading, useAsync } from "./common";

const TEXT_CAP = 128 * 1024;
const JSON_CAP = 1024 * 1024;
const IMAGE_CAP = 8 * 1024 * 1024;
const DOWNLOAD_CAP = 512 * 1024 * 1024;
const CSV_ROWS = 100;
const LISTED_FILES = 500;

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** The first `length` bytes of a blob (0: all of it). */
export async function readBlob(digest: string, length: number, signal?: AbortSignal): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const msg of stream<{ data?: string }>(ARTIFACTS, "Download", { ranges: [{ digest, offset: 0, length }] }, signal)) {
    if (!msg.data) continue;
    const bin = atob(msg.data);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    parts.push(bytes);
    total += bytes.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Kind = "image" | "json" | "csv" | "text" | "binary";

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  bmp: "image/bmp",
  svg: "image/svg+xml",
};
const TEXT_EXT = new Set(
  "txt log md rst py ipynb yaml yml toml ini cfg conf sh r sql js ts html xml jsonl ndjson requirements lock mlmodel".split(" "),
);

function extOf(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(dot + 1) : base;
}

function kindOf(path: string): Kind {
  const ext = extOf(path);
  if (ext in IMAGE_TYPES) return "image";
  if (ext === "json") return "json";
  if (ext === "csv" || ext === "tsv") return "csv";
  if (TEXT_EXT.has(ext)) return "text";
  return "binary"; // decided again from the bytes: a text file without a known name still shows
}

function looksLikeText(bytes: Uint8Array): boolean {
  const head = bytes.subarray(0, 8192);
  if (head.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head.length < bytes.length ? head.subarray(0, head.length - 4) : head);
    return true;
  } catch {
    return false;
  }
}

/** RFC 4180, enough of it for a preview: quoted fields, doubled quotes, CRLF. */
export function parseCsv(text: string, delimiter: string, maxRows: number): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === delimiter) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if ((field || row.length) && rows.length < maxRows) rows.push([...row, field]);
  return rows;
}

interface Preview {
  kind: Kind;
  text?: string;
  rows?: string[][];
  url?: string;
  shown: number;
  note?: string;
}

async function loadPreview(entry: ManifestEntry, signal: AbortSignal): Promise<Preview> {
  const size = int(entry.size);
  let kind = kindOf(entry.path);
  if (kind === "image") {
    if (size > IMAGE_CAP) return { kind: "binary", shown: 0, note: `an image of ${fmtBytes(size)}: too large to preview` };
    const bytes = await readBlob(entry.digest, 0, signal);
    const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: IMAGE_TYPES[extOf(entry.path)] }));
    return { kind, url, shown: bytes.length };
  }
  const cap = kind === "json" ? JSON_CAP : TEXT_CAP;
  const bytes = size === 0 ? new Uint8Array() : await readBlob(entry.digest, Math.min(size, cap), signal);
  if (kind === "binary") {
    if (!looksLikeText(bytes)) return { kind, shown: 0 };
    kind = "text";
  }
  const whole = bytes.length >= size;
  const text = new TextDecoder("utf-8").decode(bytes);
  const note = whole ? undefined : `the first ${fmtBytes(bytes.length)} of ${fmtBytes(size)}`;
  if (kind === "json" && whole) {
    try {
      return { kind, text: JSON.stringify(JSON.parse(text), null, 2), shown: bytes.length };
    } catch {
      return { kind: "text", text, shown: bytes.length, note: "not valid JSON: shown as text" };
    }
  }
  if (kind === "csv") {
    // a cut file's last line is likely cut too: drop it
    const body = whole ? text : text.slice(0, Math.max(0, text.lastIndexOf("\n")));
    // the header, CSV_ROWS rows, and one more to know there are more
    const rows = parseCsv(body, extOf(entry.path) === "tsv" ? "\t" : ",", CSV_ROWS + 2);
    const more = rows.length > CSV_ROWS + 1 || !whole;
    const head = rows.slice(0, CSV_ROWS + 1);
    return { kind, rows: head, shown: bytes.length, note: more ? `the first ${head.length - 1} rows` : undefined };
  }
  return { kind: kind === "json" ? "text" : kind, text, shown: bytes.length, note };
}

async function saveFile(entry: ManifestEntry): Promise<void> {
  const bytes = await readBlob(entry.digest, 0);
  const url = URL.createObjectURL(new Blob([bytes as BlobPart]));
  const a = document.createElement("a");
  a.href = url;
  a.download = entry.path.slice(entry.path.lastIndexOf("/") + 1);
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function FilePreview(props: { entry: ManifestEntry }) {
  const { entry } = props;
  const [state, setState] = useState<{ preview?: Preview; error?: Error }>({});
  const [saving, setSaving] = useState<string>("");
  useEffect(() => {
    const ctl = new AbortController();
    setState({});
    let url = "";
    loadPreview(entry, ctl.signal).then(
      (preview) => {
        url = preview.url ?? "";
        if (!ctl.signal.aborted) setState({ preview });
      },
      (error: Error) => !ctl.signal.aborted && setState({ error }),
    );
    return () => {
      ctl.abort();
      if (url) URL.revokeObjectURL(url);
    };
  }, [entry.digest, entry.path]);
  const size = int(entry.size);
  const p = state.preview;
  return (
    <div class="preview" data-testid="preview" data-kind={p?.kind}>
      <div class="preview-head">
        <code class="preview-path">{entry.path}</code>
        <span class="muted tiny">
          {fmtBytes(size)} · <code title={entry.digest}>{entry.digest.slice(0, 12)}</code>
        </span>
        {size <= DOWNLOAD_CAP && (
          <button
            type="button"
            class="btn small-btn"
            disabled={saving === "busy"}
            onClick={() => {
              setSaving("busy");
              saveFile(entry).then(
                () => setSaving(""),
                (e: Error) => setSaving(e.message),
              );
            }}
          >
            {saving === "busy" ? "Downloading…" : "Download"}
          </button>
        )}
      </div>
      {saving && saving !== "busy" && <div class="field-error small">{saving}</div>}
      {state.error && <ErrorBox error={state.error} title="Could not read the file" />}
      {!p && !state.error && <Loading what="the preview" />}
      {p?.note && <div class="muted tiny preview-note">Showing {p.note}.</div>}
      {p?.kind === "image" && <img class="preview-image" src={p.url} alt={entry.path} />}
      {(p?.kind === "text" || p?.kind === "json") && (
        // a scrolling region is a tab stop, so the keyboard can scroll it too
        <pre class="preview-text" tabIndex={0} aria-label={`Contents of ${entry.path}`}>
          {p.text}
        </pre>
      )}
      {p?.kind === "csv" && p.rows && (
        <div class="preview-table" tabIndex={0} role="region" aria-label={`Head of ${entry.path}`}>
          <table class="grid-table flush csv" aria-label={`Head of ${entry.path}`}>
            <thead>
              <tr>
                {(p.rows[0] ?? []).map((h, i) => (
                  <th key={i}>{h}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {p.rows.slice(1).map((r, i) => (
                <tr key={i}>
                  {r.map((c, j) => (
                    <td key={j}>{c}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {p?.kind === "binary" && <div class="empty small">{p.note ?? "A binary file: no preview."}</div>}
    </div>
  );
}

/** The versions of artifact `name` and the files of one of them. `version` 0: the latest. */
export function ArtifactBrowser(props: {
  name: string;
  version: number;
  path: string;
  onChange: (version: number, path: string) => void;
  empty: string;
}) {
  const [versions] = useAsync(
    (signal) =>
      rpc<{ versions?: ArtifactVersion[] }>(ARTIFACTS, "ListVersions", { name: props.name, pageSize: 100 }, signal)
        .then((r) => r.versions ?? [])
        .catch((e: Error) => {
          if (e instanceof ApiError && e.status === "NOT_FOUND") return [] as ArtifactVersion[];
          throw e;
        }),
    [props.name],
  );
  const list = versions.state === "ok" ? versions.value : [];
  const chosen = props.version || int(list[0]?.version);
  const [detail] = useAsync(
    (signal) =>
      chosen
        ? rpc<{ version: ArtifactVersion }>(ARTIFACTS, "GetVersion", { ref: { name: props.name, version: chosen }, includeEntries: true }, signal).then(
            (r) => r.version,
          )
        : Promise.resolve(null),
    [props.name, chosen],
  );
  const [find, setFind] = useState("");
  const entries = detail.state === "ok" ? detail.value?.entries ?? [] : [];
  const needle = find.trim().toLowerCase();
  const shown = useMemo(() => entries.filter((e) => !needle || e.path.toLowerCase().includes(needle)), [entries, needle]);
  const open = entries.find((e) => e.path === props.path);

  if (versions.state === "loading") return <Loading what="artifacts" />;
  if (versions.state === "error") return <ErrorBox error={versions.error} title="Could not list the artifact's versions" />;
  if (list.length === 0) return <p class="muted small">{props.empty}</p>;
  const v = detail.state === "ok" ? detail.value : null;
  return (
    <div class="artifacts" data-testid={`artifact-${props.name}`}>
      <div class="toolbar artifact-bar">
        <label class="inline-label" for={`av-${props.name}`}>
          Version
        </label>
        <select id={`av-${props.name}`} value={chosen} onChange={(e) => props.onChange(Number((e.target as HTMLSelectElement).value), "")}>
          {list.map((x) => (
            <option key={x.version} value={int(x.version)}>
              v{int(x.version)}
              {x.aliases?.length ? ` @${x.aliases.join(" @")}` : ""} · {fmtCount(int(x.fileCount))} file{int(x.fileCount) === 1 ? "" : "s"} ·{" "}
              {fmtBytes(int(x.totalSize))}
            </option>
          ))}
        </select>
        {v && (
          <span class="muted tiny">
            by <strong>{v.createdBy}</strong> <span title={fmtTimestamp(v.createdAt)}>{fmtAgo(Date.parse(v.createdAt ?? ""))}</span>
            {v.message && <> · “{v.message}”</>}
          </span>
        )}
        {entries.length > 12 && (
          <input type="search" class="search small" placeholder="Find a file…" aria-label="Find a file" value={find} onInput={(e) => setFind((e.target as HTMLInputElement).value)} />
        )}
      </div>
      {detail.state === "error" && <ErrorBox error={detail.error} title="Could not read the version" />}
      <div class="artifact-split">
        <ul class="file-list" aria-label={`Files of ${props.name} v${chosen}`}>
          {shown.slice(0, LISTED_FILES).map((e) => (
            <li key={e.path}>
              <button
                type="button"
                class={`file ${e.path === props.path ? "on" : ""}`}
                aria-current={e.path === props.path ? "true" : undefined}
                onClick={() => props.onChange(chosen, e.path)}
              >
                <span class="file-path">{e.path}</span>
                <span class="muted tiny">{fmtBytes(int(e.size))}</span>
              </button>
            </li>
          ))}
          {shown.length > LISTED_FILES && (
            <li class="muted tiny">
              {fmtCount(shown.length - LISTED_FILES)} more: find them by name
            </li>
          )}
        </ul>
        {open ? <FilePreview key={open.path + open.digest} entry={open} /> : <div class="preview empty small">Pick a file to preview it.</div>}
      </div>
    </div>
  );
}
