// The audit page: one timeline over every service's log (or one entity's, across them), filterable by
// service, event type, actor and entity; each log's hash-chain verification; the signed compliance
// export as a download. URL state: service, type, actor, entity.

import { Fragment } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { AUDIT, EVENTLOG, rpc, stream } from "../api";
import { ErrorBox, Loading, Show, useAsync } from "../components/common";
import { fromBase64, saveFile } from "../download";
import { fmtTimestamp, int } from "../format";
import type { LogHead, VerifyResult } from "../types";
import { ENTITY, entityTimeline, matches, newScan, readOne, scanMore, shown, type Entry, type Filters, type Scan } from "./auditlog";

const PAGE = 200;

/** One line that says what the payload holds, without opening it. */
function gist(payload: Record<string, unknown> | undefined): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(payload ?? {})) {
    if (k === "type" || k === "schema_version") continue;
    if (v === null || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    parts.push(`${k}=${text.length > 40 ? text.slice(0, 40) + "…" : text}`);
    if (parts.length >= 5) break;
  }
  return parts.join("  ");
}

export function Audit() {
  const [params, setParams] = useSearchParams();
  const [heads] = useAsync(
    (signal) => rpc<{ logs?: LogHead[] }>(EVENTLOG, "ListLogs", {}, signal).then((r) => r.logs ?? []),
    [],
  );
  const filters: Filters = {
    service: params.get("service") ?? "",
    type: params.get("type") ?? "",
    actor: params.get("actor") ?? "",
    entity: params.get("entity") ?? "",
  };
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
    <div class="page audit-page">
      <div class="page-head">
        <div>
          <h1>Audit log</h1>
          <p class="lede">Every event of every service, exactly as stored and hash-chained: who did what, when, to what.</p>
        </div>
      </div>
      <Show data={heads} what="the logs">
        {(logs) => (
          <>
            <div class="audit-top">
              <ChainStatus logs={logs} />
              <ExportCard />
            </div>
            <Timeline key={JSON.stringify(filters)} logs={logs} filters={filters} onChange={set} />
          </>
        )}
      </Show>
    </div>
  );
}

type Check = { state: "busy" } | { state: "done"; result: VerifyResult } | { state: "error"; error: Error };

function ChainStatus(props: { logs: LogHead[] }) {
  // Each round's results are kept with the round they answer: in the render right after a click the
  // previous round's results must not pass for the new one's.
  const [round, setRound] = useState(0);
  const [checked, setChecked] = useState<{ round: number; by: Record<string, Check> }>({ round: -1, by: {} });
  useEffect(() => {
    const ctl = new AbortController();
    const logs = props.logs.map((l) => l.service);
    setChecked({ round, by: Object.fromEntries(logs.map((s) => [s, { state: "busy" } as Check])) });
    const answer = (service: string, check: Check) =>
      !ctl.signal.aborted &&
      setChecked((c) => (c.round === round ? { round, by: { ...c.by, [service]: check } } : c));
    for (const service of logs) {
      rpc<VerifyResult>(EVENTLOG, "Verify", { service }, ctl.signal).then(
        (result) => answer(service, { state: "done", result }),
        (error: Error) => answer(service, { state: "error", error }),
      );
    }
    return () => ctl.abort();
  }, [round]);
  const checks = checked.by;
  const all = Object.values(checks);
  // before the first answers (and the first render, before the effect ran) it is still checking
  const busy =
    checked.round !== round || (props.logs.length > 0 && all.length === 0) || all.some((c) => c.state === "busy");
  const ok = all.length > 0 && all.every((c) => c.state === "done" && c.result.ok);
  const total = all.reduce((n, c) => n + (c.state === "done" ? int(c.result.eventsChecked) : 0), 0);
  return (
    <section class="card chain-card" aria-labelledby="chain-title" data-round={busy ? undefined : round}>
      <div class="section-head">
        <h2 id="chain-title">Hash chains</h2>
        <div class="verify">
          {busy ? (
            <span class="muted small">verifying…</span>
          ) : ok ? (
            <span class="badge ok" data-testid="verify-ok">
              ✓ every chain verified · {total.toLocaleString("en-US")} events
            </span>
          ) : (
            <span class="badge bad" data-testid="verify-bad">
              ✗ a chain does not verify
            </span>
          )}
          <button type="button" class="btn" disabled={busy} onClick={() => setRound((r) => r + 1)}>
            Verify hash chain
          </button>
        </div>
      </div>
      <ul class="chains" aria-label="Verification of each log">
        {[...props.logs]
          .sort((a, b) => a.service.localeCompare(b.service))
          .map((l) => {
            const c = checks[l.service];
            return (
              <li key={l.service} data-service={l.service} data-ok={c?.state === "done" && c.result.ok ? "true" : "false"}>
                <strong>{l.service}</strong>{" "}
                {!c || c.state === "busy" ? (
                  <span class="muted">checking…</span>
                ) : c.state === "error" ? (
                  <span class="field-error">{c.error.message}</span>
                ) : c.result.ok ? (
                  <span class="ok-text">✓ {int(c.result.eventsChecked).toLocaleString("en-US")} events</span>
                ) : (
                  <span class="field-error">
                    ✗ broken at #{int(c.result.firstBadPosition)}: {c.result.reason}
                  </span>
                )}
              </li>
            );
          })}
      </ul>
    </section>
  );
}

function ExportCard() {
  const [model, setModel] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [state, setState] = useState<{ busy: boolean; bytes: number; error?: Error; done?: string }>({ busy: false, bytes: 0 });
  const [key] = useAsync(
    (signal) => rpc<{ keyId?: string }>(AUDIT, "PublicKey", {}, signal).then((r) => r.keyId ?? ""),
    [],
  );
  const run = async (e: Event) => {
    e.preventDefault();
    setState({ busy: true, bytes: 0 });
    const body: Record<string, string> = {};
    if (model.trim()) body.model = model.trim();
    if (from) body.fromTime = new Date(from + "T00:00:00Z").toISOString();
    if (to) body.toTime = new Date(to + "T00:00:00Z").toISOString();
    try {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let bytes = 0;
      for await (const chunk of stream<{ data?: string }>(AUDIT, "Export", body)) {
        if (!chunk.data) continue;
        const part = fromBase64(chunk.data);
        parts.push(part);
        bytes += part.length;
        setState({ busy: true, bytes });
      }
      const name = `modelog-audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "")}${model.trim() ? "-" + model.trim() : ""}.jsonl`;
      saveFile(name, parts, "application/x-ndjson");
      setState({ busy: false, bytes, done: name });
    } catch (error) {
      setState({ busy: false, bytes: 0, error: error as Error });
    }
  };
  return (
    <section class="card export-card" aria-labelledby="export-title">
      <h2 id="export-title">Compliance export</h2>
      <p class="muted small">
        A self-contained bundle of the logs' events, hash chains and a signature
        {key.state === "ok" && key.value ? <> (key <code>{key.value}</code>)</> : null}; check it offline with{" "}
        <code>modelog audit verify FILE</code>.
      </p>
      <form class="export-form" onSubmit={run}>
        <label>
          Model <span class="muted tiny">(optional: disclose only its events)</span>
          <input type="text" value={model} onInput={(e) => setModel((e.target as HTMLInputElement).value)} placeholder="all" />
        </label>
        <label>
          From
          <input type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Before
          <input type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" class="btn primary" disabled={state.busy} data-testid="export">
          {state.busy ? `Exporting… ${state.bytes.toLocaleString("en-US")} bytes` : "Download signed bundle"}
        </button>
      </form>
      {state.done && (
        <p class="small ok-text" role="status" data-testid="export-done">
          Saved {state.done} ({state.bytes.toLocaleString("en-US")} bytes).
        </p>
      )}
      {state.error && <ErrorBox error={state.error} title="Could not export" />}
    </section>
  );
}

type Loaded = { state: "loading" } | { state: "error"; error: Error } | { state: "ok"; scan: Scan | null; entity: Entry[] | null };

function Timeline(props: { logs: LogHead[]; filters: Filters; onChange: (c: Record<string, string | null>) => void }) {
  const f = props.filters;
  const byEntity = ENTITY.test(f.entity.trim());
  const [data, setData] = useState<Loaded>({ state: "loading" });
  const [busy, setBusy] = useState(false);
  const ctl = useRef<AbortController | null>(null);
  const [actor, setActor] = useState(f.actor);
  const [entity, setEntity] = useState(f.entity);
  const [open, setOpen] = useState<string | null>(null);
  const [opened, setOpened] = useState<Record<string, Entry>>({});

  useLayoutEffect(() => {
    const c = (ctl.current = new AbortController());
    const heads = Object.fromEntries(props.logs.map((l) => [l.service, int(l.position)]));
    const load = byEntity
      ? entityTimeline(f.entity.trim(), c.signal).then((entries) => ({ state: "ok" as const, scan: null, entity: entries }))
      : scanMore(newScan(heads), f, PAGE, c.signal).then((scan) => ({ state: "ok" as const, scan, entity: null }));
    load.then(
      (v) => !c.signal.aborted && setData(v),
      (error: Error) => !c.signal.aborted && setData({ state: "error", error }),
    );
    return () => c.abort();
  }, []);

  const more = async () => {
    if (data.state !== "ok" || !data.scan || !ctl.current) return;
    setBusy(true);
    try {
      const scan = await scanMore(data.scan, f, PAGE, ctl.current.signal);
      setData({ state: "ok", scan, entity: null });
    } finally {
      setBusy(false);
    }
  };

  const entries = useMemo(() => {
    if (data.state !== "ok") return [];
    return data.entity ? data.entity.filter((e) => matches(e, f)) : shown(data.scan!, f);
  }, [data]);
  const types = useMemo(() => {
    if (data.state !== "ok") return [];
    const seen = data.scan ? data.scan.types : new Set(data.entity!.map((e) => e.type));
    if (f.type) seen.add(f.type);
    return [...seen].sort();
  }, [data]);
  const exhausted = data.state === "ok" && data.scan ? Object.values(data.scan.before).every((b) => b <= 1) : true;

  const toggle = async (e: Entry) => {
    const id = `${e.service}#${e.position}`;
    setOpen(open === id ? null : id);
    if (!e.payload && !opened[id]) {
      const full = await readOne(e.service, e.position);
      if (full) setOpened((o) => ({ ...o, [id]: full }));
    }
  };

  return (
    <section class="card log-card" aria-labelledby="timeline-title">
      <div class="section-head">
        <h2 id="timeline-title">Timeline</h2>
        <form
          class="toolbar audit-filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            props.onChange({ actor: actor.trim() || null, entity: entity.trim() || null });
          }}
        >
          <select aria-label="Service" value={f.service} onChange={(e) => props.onChange({ service: (e.target as HTMLSelectElement).value || null })}>
            <option value="">All services</option>
            {[...props.logs]
              .sort((a, b) => a.service.localeCompare(b.service))
              .map((l) => (
                <option key={l.service} value={l.service}>
                  {l.service} (#{int(l.position).toLocaleString("en-US")})
                </option>
              ))}
          </select>
          <select aria-label="Event type" value={f.type} onChange={(e) => props.onChange({ type: (e.target as HTMLSelectElement).value || null })}>
            <option value="">All types</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
          <input type="search" class="search small" placeholder="Actor…" aria-label="Actor" value={actor} onInput={(e) => setActor((e.target as HTMLInputElement).value)} />
          <input
            type="search"
            class="search"
            placeholder="Entity: model:churn, run:<id>, a stream id or prefix*"
            aria-label="Entity"
            value={entity}
            onInput={(e) => setEntity((e.target as HTMLInputElement).value)}
          />
          <button type="submit" class="btn">
            Apply
          </button>
        </form>
      </div>
      {data.state === "loading" && <Loading what="events" />}
      {data.state === "error" && <ErrorBox error={data.error} title="Could not read the timeline" />}
      {data.state === "ok" && (
        <>
          <p class="muted small" data-testid="timeline-note">
            {byEntity
              ? `${entries.length.toLocaleString("en-US")} events touched ${f.entity.trim()} across the logs (the lineage service's view), newest first`
              : `${entries.length.toLocaleString("en-US")} matching events, newest first, from ${f.service || "every service"}${data.scan && data.scan.scanned ? ` · ${data.scan.scanned.toLocaleString("en-US")} read` : ""}`}
          </p>
          {entries.length === 0 ? (
            <div class="empty">No event matches.</div>
          ) : (
            <table class="grid-table events" aria-label="Events">
              <thead>
                <tr>
                  <th class="num">#</th>
                  <th>Service</th>
                  <th>Recorded</th>
                  <th>Type</th>
                  <th>Actor</th>
                  <th>Stream</th>
                  <th>What</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => {
                  const id = `${e.service}#${e.position}`;
                  const expanded = open === id;
                  const full = e.payload ? e : opened[id];
                  return (
                    <Fragment key={id}>
                      <tr class={expanded ? "expanded" : ""} onClick={() => toggle(e)}>
                        <td class="num mono">{e.position}</td>
                        <td>
                          <span class={`svc svc-${e.service}`}>{e.service}</span>
                        </td>
                        <td class="nowrap">{fmtTimestamp(e.recordedAt)}</td>
                        <td>
                          <span class="type">{e.type}</span>
                        </td>
                        <td>{e.actor}</td>
                        <td class="mono small">
                          <StreamLink stream={e.streamId} />
                          {e.streamVersion > 0 && <span class="muted">@{e.streamVersion}</span>}
                        </td>
                        <td class="mono small gist">
                          <button type="button" class="linkish" aria-expanded={expanded} aria-label={`Details of ${e.service} event ${e.position}`}>
                            {expanded ? "▾" : "▸"}
                          </button>{" "}
                          {e.summary ?? gist(e.payload)}
                        </td>
                      </tr>
                      {expanded && (
                        <tr class="detail">
                          <td colSpan={7}>
                            {full ? (
                              <div class="detail-grid">
                                <div>
                                  <h3>payload</h3>
                                  <pre>{JSON.stringify(full.payload, null, 2)}</pre>
                                </div>
                                <div>
                                  <h3>metadata</h3>
                                  <pre>{JSON.stringify(full.metadata, null, 2)}</pre>
                                  <div class="muted tiny">
                                    event id {full.event?.eventId} · schema v{full.event?.schemaVersion ?? 1}
                                  </div>
                                </div>
                              </div>
                            ) : (
                              <Loading what="the event" />
                            )}
                          </td>
                        </tr>
                      )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
          )}
          {!byEntity && !exhausted && (
            <button type="button" class="btn load-older" disabled={busy} onClick={more}>
              {busy ? "Reading…" : "Older events"}
            </button>
          )}
        </>
      )}
    </section>
  );
}

/** Streams named after what they hold link to its page. */
function StreamLink(props: { stream: string }) {
  const s = props.stream;
  const m = /^(run|model|monitor|artifact|experiment)-(.+)$/.exec(s);
  if (m && m[1] === "run") return <Link href={`/runs/${encodeURIComponent(m[2])}`}>{s}</Link>;
  if (m && m[1] === "experiment") return <Link href={`/experiments/${encodeURIComponent(m[2])}`}>{s}</Link>;
  return <>{s}</>;
}
