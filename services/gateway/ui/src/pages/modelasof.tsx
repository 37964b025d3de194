import { Link } from "wouter-preact";
import { REGISTRY, rpc } from "../api";
import { Chip, Show, StageBadge, useAsync } from "../components/common";
import { enumName, fmtTimestamp, int } from "../format";
import type { HistoryEntry, ModelAsOf } from "../types";
import { whenOf, whoOf } from "./modelhistory";

/** A slider over the model's history: each stop is the registry right after one event, the last
 * one is now. `entries` are oldest first by when they happened. */
export function AsOfBar(props: { entries: HistoryEntry[]; asOf: string | null; onChange: (asOf: string | null) => void }) {
  const n = props.entries.length;
  const at = props.asOf ? Date.parse(props.asOf) : Infinity;
  const index = props.asOf ? Math.max(0, props.entries.filter((h) => Date.parse(whenOf(h)) <= at).length - 1) : n;
  const go = (i: number) => props.onChange(i >= n ? null : whenOf(props.entries[Math.max(0, i)]));
  const entry = props.asOf ? props.entries[index] : undefined;
  const label = entry ? `${fmtTimestamp(whenOf(entry))}, after ${whoOf(entry)}: ${entry.summary || entry.type}` : "now";
  if (n === 0) return null;
  return (
    <section class={`card asof-bar ${props.asOf ? "past" : ""}`} aria-label="Time travel">
      <label for="asof" class="asof-title">
        Registry as of
      </label>
      <button type="button" class="btn small-btn" disabled={index <= 0} onClick={() => go(index - 1)} aria-label="One event earlier">
        ◀
      </button>
      <input
        id="asof"
        type="range"
        min={0}
        max={n}
        step={1}
        value={index}
        aria-valuetext={label}
        onInput={(e) => go(Number((e.target as HTMLInputElement).value))}
        data-testid="asof"
      />
      <button type="button" class="btn small-btn" disabled={index >= n} onClick={() => go(index + 1)} aria-label="One event later">
        ▶
      </button>
      <div class="asof-label" aria-live="polite" data-testid="asof-label">
        {entry ? (
          <>
            <strong>{fmtTimestamp(whenOf(entry))}</strong>
            <span class="muted">
              {" "}
              · after {whoOf(entry)}: {entry.summary || entry.type}
            </span>
          </>
        ) : (
          <strong>Now</strong>
        )}
      </div>
      {props.asOf && (
        <button type="button" class="btn" onClick={() => props.onChange(null)}>
          Back to now
        </button>
      )}
    </section>
  );
}

/** The model's versions, aliases and stages exactly as they stood at `asOf` (the registry folds its
 * log up to that instant; imported history counts at its original time). */
export function AsOfView(props: { name: string; asOf: string }) {
  const [data] = useAsync(
    (signal) => rpc<ModelAsOf>(REGISTRY, "GetModelAsOf", { name: props.name, asOf: props.asOf }, signal),
    [props.name, props.asOf],
  );
  return (
    <Show data={data} what="the registry as it stood">
      {(m) => (
        <section class="card asof-view" aria-label="Versions as of" data-testid="asof-view">
          <h2>
            Versions as of {fmtTimestamp(props.asOf)} <span class="muted">({(m.versions ?? []).length})</span>
          </h2>
          <p class="muted small">
            As it stood then, after log position #{int(m.position)} ({fmtTimestamp(m.lastEventAt)}).
            {m.name && m.name !== props.name && <> The model was called “{m.name}”.</>}
            {m.deleted && <> It was deleted.</>}
          </p>
          <div class="chips asof-aliases" data-testid="asof-aliases">
            {(m.aliases ?? []).length === 0 ? (
              <span class="muted small">No aliases then.</span>
            ) : (
              (m.aliases ?? []).map((a) => (
                <Chip key={a.alias} kind="alias" title={`set by ${a.setBy} at ${fmtTimestamp(a.setAt)}`}>
                  @{a.alias} → v{int(a.version)}
                </Chip>
              ))
            )}
          </div>
          <table class="grid-table flush" aria-label="Versions then">
            <thead>
              <tr>
                <th class="num">Version</th>
                <th>Stage</th>
                <th>How it got there</th>
                <th>Status</th>
                <th>Aliases</th>
                <th>Run</th>
                <th>Artifact</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {(m.versions ?? []).map((v) => (
                <tr key={v.version} data-testid={`asof-v${int(v.version)}`}>
                  <td class="num strong">v{int(v.version)}</td>
                  <td>
                    <StageBadge stage={v.stage} />
                    {v.openRequestId && <span class="muted tiny"> request open</span>}
                  </td>
                  <td class="small">
                    {v.stageChangedBy ? (
                      <>
                        {v.stageRequestedBy && <>asked by {v.stageRequestedBy}</>}
                        {(v.stageApprovedBy ?? []).length > 0 && <>, approved by {(v.stageApprovedBy ?? []).join(", ")}</>}
                        <span class="muted"> · {fmtTimestamp(v.stageChangedAt)}</span>
                      </>
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>{enumName(v.status, "VERSION_STATUS_")}</td>
                  <td>
                    {(v.aliases ?? []).map((a) => (
                      <Chip key={a} kind="alias">
                        @{a}
                      </Chip>
                    ))}
                  </td>
                  <td>
                    {v.runId ? (
                      <Link href={`/runs/${encodeURIComponent(v.runId)}`}>
                        <code>{v.runId.slice(0, 10)}</code>
                      </Link>
                    ) : (
                      "–"
                    )}
                  </td>
                  <td>
                    {v.artifactName}
                    {int(v.artifactVersion) ? `:v${int(v.artifactVersion)}` : ""}
                  </td>
                  <td title={fmtTimestamp(v.createdAt)}>
                    {v.createdBy} · {fmtTimestamp(v.createdAt)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </Show>
  );
}
