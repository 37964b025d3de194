// Datasets: the artifacts of kind `dataset`, each version's files, and a diff between two versions:
// files added, removed and modified (size, digest), and for a modified CSV its columns and row count
// on both sides (read through the Download stream, capped).

import { Link, useSearchParams } from "wouter-preact";
import { ARTIFACTS, rpc } from "../api";
import { fmtBytes, parseCsv, readBlob } from "../components/artifacts";
import { Chip, SearchBox, Show, useAsync } from "../components/common";
import { fmtAgo, fmtTimestamp, int, shortDigest } from "../format";
import type { ArtifactVersion } from "../types";
import type { FileChange } from "../opstypes";

interface Artifact {
  name: string;
  kind?: string;
  latestVersion?: string;
  updatedAt?: string;
  project?: string;
}

const CSV_CAP = 4 << 20; // whole files up to 4 MiB are read to count rows; larger ones: the head only

export function Datasets() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [data] = useAsync(
    (signal) =>
      rpc<{ artifacts?: Artifact[] }>(ARTIFACTS, "ListArtifacts", { kind: "dataset" }, signal).then((r) => r.artifacts ?? []),
    [],
  );
  const needle = q.trim().toLowerCase();
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Datasets</h1>
          <p class="lede">Versioned, content-addressed datasets; open one for its versions and a diff between two.</p>
        </div>
        <div class="toolbar">
          <SearchBox
            value={q}
            label="Search datasets"
            placeholder="Name contains…"
            onInput={(v) => setParams(v ? { q: v } : {}, { replace: true })}
          />
        </div>
      </div>
      <Show data={data} what="datasets">
        {(all) => {
          const shown = all.filter((a) => !needle || a.name.toLowerCase().includes(needle));
          if (!shown.length) return <div class="empty">No dataset{needle ? ` whose name contains “${q}”` : " yet"}.</div>;
          return (
            <table class="grid-table" aria-label="Datasets">
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="num">Versions</th>
                  <th>Project</th>
                  <th>Updated</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((a) => (
                  <tr key={a.name}>
                    <td>
                      <Link href={`/datasets/${encodeURIComponent(a.name)}`} className="strong">
                        {a.name}
                      </Link>
                    </td>
                    <td class="num">{int(a.latestVersion)}</td>
                    <td>{a.project ?? "default"}</td>
                    <td title={fmtTimestamp(a.updatedAt)}>{fmtAgo(Date.parse(a.updatedAt ?? ""))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          );
        }}
      </Show>
    </div>
  );
}

/** `/datasets/:name?v=N&vs=M`: version N (default the latest) against M (default its parent). */
export function DatasetPage(props: { name: string }) {
  const [params, setParams] = useSearchParams();
  const [versions] = useAsync(
    (signal) =>
      rpc<{ versions?: ArtifactVersion[] }>(ARTIFACTS, "ListVersions", { name: props.name, pageSize: 1000 }, signal).then(
        (r) => r.versions ?? [],
      ),
    [props.name],
  );
  const set = (changes: Record<string, string | null>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v) next.set(k, v);
          else next.delete(k);
        }
        return next;
      },
      { replace: true },
    );
  return (
    <div class="page dataset-page">
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/datasets">Datasets</Link> /
          </div>
          <h1>{props.name}</h1>
        </div>
        <div class="toolbar">
          <Link href={`/artifacts/${encodeURIComponent(props.name)}${params.get("v") ? `?v=${int(params.get("v") ?? "")}` : ""}`} className="btn">
            Browse files
          </Link>
        </div>
      </div>
      <Show data={versions} what="versions">
        {(all) => {
          if (!all.length) return <div class="empty">No such dataset, or none you may read.</div>;
          const latest = int(all[0].version);
          const v = int(params.get("v") ?? "") || latest;
          const current = all.find((x) => int(x.version) === v) ?? all[0];
          const base = int(params.get("vs") ?? "") || int(current.parentVersion) || (v > 1 ? v - 1 : 0);
          const options = all.map((x) => int(x.version));
          return (
            <>
              <section class="card" aria-labelledby="versions-title">
                <h2 id="versions-title">
                  Versions <span class="muted">({all.length})</span>
                </h2>
                <table class="grid-table" aria-label="Dataset versions">
                  <thead>
                    <tr>
                      <th class="num">Version</th>
                      <th>Aliases</th>
                      <th class="num">Files</th>
                      <th class="num">Size</th>
                      <th>Content digest</th>
                      <th>Message</th>
                      <th>Made by</th>
                      <th>Run</th>
                      <th>Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {all.map((x) => {
                      const n = int(x.version);
                      return (
                        <tr key={n} class={n === v ? "chosen" : n === base ? "based" : ""}>
                          <td class="num">
                            <button type="button" class="linkish" aria-pressed={n === v} onClick={() => set({ v: String(n), vs: null })}>
                              v{n}
                            </button>
                          </td>
                          <td>{(x.aliases ?? []).map((a) => <Chip key={a}>{a}</Chip>)}</td>
                          <td class="num">{int(x.fileCount)}</td>
                          <td class="num">{fmtBytes(int(x.totalSize))}</td>
                          <td>
                            <code title={x.manifestDigest}>{shortDigest(x.manifestDigest)}</code>
                          </td>
                          <td class="small">{x.message}</td>
                          <td>{x.createdBy}</td>
                          <td>{x.runId ? <Link href={`/runs/${x.runId}`}>{x.runId.slice(0, 8)}</Link> : ""}</td>
                          <td class="nowrap" title={fmtTimestamp(x.createdAt)}>
                            {fmtAgo(Date.parse(x.createdAt ?? ""))}
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </section>
              <section class="card" aria-labelledby="diff-title">
                <div class="section-head">
                  <h2 id="diff-title">What changed</h2>
                  <div class="toolbar">
                    <label class="inline-label">
                      from{" "}
                      <select aria-label="Compare from version" value={String(base)} onChange={(e) => set({ vs: (e.target as HTMLSelectElement).value })}>
                        <option value="0">nothing</option>
                        {options.map((n) => (
                          <option key={n} value={String(n)}>
                            v{n}
                          </option>
                        ))}
                      </select>
                    </label>
                    <label class="inline-label">
                      to{" "}
                      <select aria-label="Compare to version" value={String(v)} onChange={(e) => set({ v: (e.target as HTMLSelectElement).value })}>
                        {options.map((n) => (
                          <option key={n} value={String(n)}>
                            v{n}
                          </option>
                        ))}
                      </select>
                    </label>
                  </div>
                </div>
                {base && base !== v ? (
                  <VersionDiff key={`${base}-${v}`} name={props.name} a={base} b={v} />
                ) : (
                  <p class="muted small">{base === v ? "The same version on both sides." : `v${v} is the first version: every file is new.`}</p>
                )}
              </section>
            </>
          );
        }}
      </Show>
    </div>
  );
}

interface Diff {
  a: ArtifactVersion;
  b: ArtifactVersion;
  added?: FileChange[];
  removed?: FileChange[];
  modified?: FileChange[];
  unchanged?: string;
}

interface CsvShape {
  columns: string[];
  rows: number;
  /** False when only the head was read (a file over CSV_CAP). */
  counted: boolean;
}

async function csvShape(digest: string, size: number, signal: AbortSignal): Promise<CsvShape> {
  const bytes = await readBlob(digest, Math.min(size, CSV_CAP), signal);
  const text = new TextDecoder().decode(bytes);
  const header = parseCsv(text.slice(0, 64 << 10), ",", 1)[0] ?? [];
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0).length;
  return { columns: header, rows: Math.max(0, lines - 1), counted: size <= CSV_CAP };
}

interface CsvDiff {
  path: string;
  a: CsvShape;
  b: CsvShape;
}

async function loadDiff(name: string, a: number, b: number, signal: AbortSignal): Promise<{ diff: Diff; csv: CsvDiff[] }> {
  const diff = await rpc<Diff>(ARTIFACTS, "DiffVersions", { a: { name, version: a }, b: { name, version: b } }, signal);
  const csvs = (diff.modified ?? []).filter((c) => /\.(csv|tsv)$/i.test(c.path)).slice(0, 5);
  const csv = await Promise.all(
    csvs.map(async (c) => ({
      path: c.path,
      a: await csvShape(c.oldDigest ?? "", int(c.oldSize), signal),
      b: await csvShape(c.newDigest ?? "", int(c.newSize), signal),
    })),
  );
  return { diff, csv };
}

function VersionDiff(props: { name: string; a: number; b: number }) {
  const [data] = useAsync((signal) => loadDiff(props.name, props.a, props.b, signal), [props.name, props.a, props.b]);
  return (
    <Show data={data} what="the diff">
      {({ diff, csv }) => {
        const rows: Array<[string, FileChange]> = [
          ...(diff.added ?? []).map((c): [string, FileChange] => ["added", c]),
          ...(diff.removed ?? []).map((c): [string, FileChange] => ["removed", c]),
          ...(diff.modified ?? []).map((c): [string, FileChange] => ["modified", c]),
        ];
        return (
          <div data-testid="dataset-diff">
            <p class="small">
              <strong>v{props.a}</strong> <code>{shortDigest(diff.a.manifestDigest)}</code> → <strong>v{props.b}</strong>{" "}
              <code>{shortDigest(diff.b.manifestDigest)}</code>:{" "}
              <span class="diff-added">{diff.added?.length ?? 0} added</span> ·{" "}
              <span class="diff-removed">{diff.removed?.length ?? 0} removed</span> ·{" "}
              <span class="diff-modified">{diff.modified?.length ?? 0} modified</span> · {int(diff.unchanged)} unchanged ·{" "}
              {fmtBytes(int(diff.a.totalSize))} → {fmtBytes(int(diff.b.totalSize))}
            </p>
            {rows.length > 0 && (
              <table class="grid-table" aria-label="Changed files">
                <thead>
                  <tr>
                    <th>Change</th>
                    <th>Path</th>
                    <th class="num">Size before</th>
                    <th class="num">Size after</th>
                    <th>Digest before</th>
                    <th>Digest after</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map(([what, c]) => (
                    <tr key={`${what}:${c.path}`} class={`change-${what}`}>
                      <td>
                        <span class={`badge change-${what}`}>{what}</span>
                        {what === "modified" && c.oldDigest === c.newDigest && <span class="muted tiny"> mode</span>}
                      </td>
                      <td class="mono">{c.path}</td>
                      <td class="num">{what === "added" ? "" : fmtBytes(int(c.oldSize))}</td>
                      <td class="num">{what === "removed" ? "" : fmtBytes(int(c.newSize))}</td>
                      <td>
                        <code title={c.oldDigest}>{c.oldDigest ? shortDigest(c.oldDigest) : ""}</code>
                      </td>
                      <td>
                        <code title={c.newDigest}>{c.newDigest ? shortDigest(c.newDigest) : ""}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {csv.map((d) => {
              const added = d.b.columns.filter((c) => !d.a.columns.includes(c));
              const removed = d.a.columns.filter((c) => !d.b.columns.includes(c));
              const delta = d.b.rows - d.a.rows;
              return (
                <div class="csv-diff" key={d.path} data-testid="csv-diff">
                  <h3 class="mono">{d.path}</h3>
                  <ul class="small">
                    <li>
                      rows: {d.a.rows.toLocaleString("en-US")}
                      {d.a.counted ? "" : "+"} → {d.b.rows.toLocaleString("en-US")}
                      {d.b.counted ? "" : "+"} ({delta >= 0 ? "+" : ""}
                      {delta.toLocaleString("en-US")})
                    </li>
                    <li>
                      columns: {d.b.columns.join(", ")}
                      {added.length > 0 && <span class="diff-added"> · added {added.join(", ")}</span>}
                      {removed.length > 0 && <span class="diff-removed"> · removed {removed.join(", ")}</span>}
                      {!added.length && !removed.length && <span class="muted"> · the same columns</span>}
                    </li>
                  </ul>
                </div>
              );
            })}
          </div>
        );
      }}
    </Show>
  );
}
