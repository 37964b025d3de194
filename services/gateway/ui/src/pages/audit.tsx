import { Fragment } from "preact";
import { useMemo, useState } from "preact/hooks";
import { useSearchParams } from "wouter-preact";
import { EVENTLOG, rpc, stream } from "../api";
import { ErrorBox, Show, useAsync } from "../components/common";
import { fmtTimestamp, int } from "../format";
import type { LogEvent, LogHead, VerifyResult } from "../types";

const PAGE = 200;

interface Parsed extends LogEvent {
  actor: string;
  payload: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

function parse(e: LogEvent): Parsed {
  const safe = (text: string | undefined) => {
    try {
      return (JSON.parse(text || "{}") as Record<string, unknown>) ?? {};
    } catch {
      return {};
    }
  };
  const metadata = safe(e.metadataJson);
  return { ...e, actor: String(metadata.actor ?? "system"), payload: safe(e.payloadJson), metadata };
}

/** One line that says what the payload holds, without opening it. */
function gist(payload: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(payload)) {
    if (k === "type" || k === "schema_version") continue;
    if (v === null || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    parts.push(`${k}=${text.length > 40 ? text.slice(0, 40) + "…" : text}`);
    if (parts.length >= 5) break;
  }
  return parts.join("  ");
}

async function readPage(service: string, before: number, signal: AbortSignal): Promise<Parsed[]> {
  const from = Math.max(1, before - PAGE);
  const limit = before - from;
  if (limit <= 0) return [];
  const out: Parsed[] = [];
  for await (const batch of stream<{ events?: LogEvent[] }>(EVENTLOG, "ReadLog", { service, fromPosition: from, limit }, signal)) {
    for (const e of batch.events ?? []) out.push(parse(e));
  }
  return out.reverse(); // newest first
}

export function Audit() {
  const [params, setParams] = useSearchParams();
  const [heads] = useAsync(
    (signal) => rpc<{ logs?: LogHead[] }>(EVENTLOG, "ListLogs", {}, signal).then((r) => r.logs ?? []),
    [],
  );
  const set = (changes: Record<string, string | null>, replace = true) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v) next.set(k, v);
          else next.delete(k);
        }
        return next;
      },
      { replace },
    );

  return (
    <div class="page audit-page">
      <div class="page-head">
        <h1>Audit log</h1>
        <p class="muted small">Every event of every service, exactly as stored and hash-chained.</p>
      </div>
      <Show data={heads} what="the logs">
        {(logs) => {
          const sorted = [...logs].sort((a, b) => a.service.localeCompare(b.service));
          const fallback =
            [...logs].sort((a, b) => (b.lastRecordedAt ?? "").localeCompare(a.lastRecordedAt ?? ""))[0]?.service ?? "";
          const service = params.get("service") ?? fallback;
          const head = logs.find((l) => l.service === service);
          return (
            <>
              <div class="log-tabs" role="tablist" aria-label="Service logs">
                {sorted.map((l) => (
                  <button
                    type="button"
                    role="tab"
                    key={l.service}
                    aria-selected={l.service === service}
                    class={l.service === service ? "log-tab on" : "log-tab"}
                    onClick={() => set({ service: l.service, before: null, type: null, actor: null }, false)}
                  >
                    {l.service}
                    <span class="muted tiny"> #{int(l.position).toLocaleString("en-US")}</span>
                  </button>
                ))}
              </div>
              {head ? (
                <LogView
                  key={service}
                  service={service}
                  head={int(head.position)}
                  before={int(params.get("before") ?? "") || int(head.position) + 1}
                  type={params.get("type") ?? ""}
                  actor={params.get("actor") ?? ""}
                  onChange={set}
                />
              ) : (
                <div class="empty">No log named “{service}” here.</div>
              )}
            </>
          );
        }}
      </Show>
    </div>
  );
}

function LogView(props: {
  service: string;
  head: number;
  before: number;
  type: string;
  actor: string;
  onChange: (changes: Record<string, string | null>, replace?: boolean) => void;
}) {
  const [events] = useAsync((signal) => readPage(props.service, props.before, signal), [props.service, props.before]);
  const [open, setOpen] = useState<string | null>(null);
  const [verify, setVerify] = useState<{ busy: boolean; result?: VerifyResult; error?: Error }>({ busy: false });

  const runVerify = async () => {
    setVerify({ busy: true });
    try {
      setVerify({ busy: false, result: await rpc<VerifyResult>(EVENTLOG, "Verify", { service: props.service }) });
    } catch (error) {
      setVerify({ busy: false, error: error as Error });
    }
  };

  const types = useMemo(
    () => (events.state === "ok" ? [...new Set(events.value.map((e) => e.type ?? ""))].sort() : []),
    [events],
  );
  const newest = props.before > props.head;
  const first = Math.max(1, props.before - PAGE);

  return (
    <section class="card log-card">
      <div class="section-head">
        <div class="toolbar">
          <select aria-label="Event type" value={props.type} onChange={(e) => props.onChange({ type: (e.target as HTMLSelectElement).value })}>
            <option value="">All types</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
          <input
            type="search"
            class="search small"
            placeholder="Actor…"
            aria-label="Actor"
            value={props.actor}
            onInput={(e) => props.onChange({ actor: (e.target as HTMLInputElement).value })}
          />
          <span class="muted small">
            positions {first.toLocaleString("en-US")}–{(props.before - 1).toLocaleString("en-US")} of{" "}
            {props.head.toLocaleString("en-US")}
          </span>
          <button type="button" class="btn" disabled={newest} onClick={() => props.onChange({ before: null }, false)}>
            Newest
          </button>
          <button
            type="button"
            class="btn"
            disabled={newest}
            onClick={() => {
              const next = props.before + PAGE;
              props.onChange({ before: next > props.head ? null : String(next) }, false);
            }}
          >
            ← Newer
          </button>
          <button type="button" class="btn" disabled={first <= 1} onClick={() => props.onChange({ before: String(first) }, false)}>
            Older →
          </button>
        </div>
        <div class="verify">
          {verify.result &&
            (verify.result.ok ? (
              <span class="badge ok" data-testid="verify-ok">
                ✓ chain verified · {int(verify.result.eventsChecked).toLocaleString("en-US")} events
              </span>
            ) : (
              <span class="badge bad">
                ✗ broken at #{int(verify.result.firstBadPosition)}: {verify.result.reason}
              </span>
            ))}
          <button type="button" class="btn" disabled={verify.busy} onClick={runVerify}>
            {verify.busy ? "Verifying…" : "Verify hash chain"}
          </button>
        </div>
      </div>
      {verify.error && <ErrorBox error={verify.error} title="Could not verify" />}
      <Show data={events} what="events">
        {(all) => {
          const actor = props.actor.trim().toLowerCase();
          const shown = all.filter(
            (e) => (!props.type || e.type === props.type) && (!actor || e.actor.toLowerCase().includes(actor)),
          );
          if (shown.length === 0) return <div class="empty">No event on this page matches.</div>;
          return (
            <table class="grid-table events" aria-label="Events">
              <thead>
                <tr>
                  <th class="num">#</th>
                  <th>Recorded</th>
                  <th>Type</th>
                  <th>Actor</th>
                  <th>Stream</th>
                  <th>Payload</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((e) => {
                  const id = `${e.position}`;
                  const expanded = open === id;
                  return (
                    <Fragment key={id}>
                      <tr class={expanded ? "expanded" : ""} onClick={() => setOpen(expanded ? null : id)}>
                        <td class="num mono">{int(e.position)}</td>
                        <td class="nowrap">{fmtTimestamp(e.recordedAt)}</td>
                        <td>
                          <span class="type">{e.type}</span>
                        </td>
                        <td>{e.actor}</td>
                        <td class="mono small">
                          {e.streamId}
                          <span class="muted">@{int(e.streamVersion)}</span>
                        </td>
                        <td class="mono small gist">
                          <button
                            type="button"
                            class="linkish"
                            aria-expanded={expanded}
                            aria-label={`Details of event ${int(e.position)}`}
                          >
                            {expanded ? "▾" : "▸"}
                          </button>{" "}
                          {gist(e.payload)}
                        </td>
                      </tr>
                      {expanded && (
                        <tr class="detail">
                          <td colSpan={6}>
                            <div class="detail-grid">
                              <div>
                                <h3>payload</h3>
                                <pre>{JSON.stringify(e.payload, null, 2)}</pre>
                              </div>
                              <div>
                                <h3>metadata</h3>
                                <pre>{JSON.stringify(e.metadata, null, 2)}</pre>
                                <div class="muted tiny">event id {e.eventId} · schema v{e.schemaVersion ?? 1}</div>
                              </div>
                            </div>
                          </td>
                        </tr>
                      )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
          );
        }}
      </Show>
    </section>
  );
}
