import { useState } from "preact/hooks";
import { Chip } from "../components/common";
import { fmtTimestamp, int } from "../format";
import type { HistoryEntry } from "../types";

/** When it happened: for imported history the source's time, not the import's. */
export function whenOf(h: HistoryEntry): string {
  return h.occurredAt || h.recordedAt || "";
}

export function whoOf(h: HistoryEntry): string {
  return h.actedBy || h.actor || "";
}

/** History entries oldest first by when they happened (imported entries keep their own time). */
export function byWhen(entries: HistoryEntry[]): HistoryEntry[] {
  return [...entries].sort((a, b) => Date.parse(whenOf(a)) - Date.parse(whenOf(b)) || int(a.position) - int(b.position));
}

/** The model's timeline, newest first: who did what and when, and why when they said; entries after
 * `asOf` are shown faint (they had not happened yet). */
export function HistoryTimeline(props: { entries: HistoryEntry[]; asOf: string | null }) {
  const [version, setVersion] = useState(0);
  const versions = [...new Set(props.entries.map((h) => int(h.version)).filter((v) => v > 0))].sort((a, b) => a - b);
  const asOf = props.asOf ? Date.parse(props.asOf) : Infinity;
  const shown = byWhen(props.entries)
    .reverse()
    .filter((h) => !version || int(h.version) === version)
    .slice(0, 300);
  return (
    <section class="card" aria-label="History">
      <div class="section-head">
        <h2>History</h2>
        {versions.length > 1 && (
          <select aria-label="History of" value={version} onChange={(e) => setVersion(Number((e.target as HTMLSelectElement).value))}>
            <option value={0}>All versions</option>
            {versions.map((v) => (
              <option key={v} value={v}>
                v{v}
              </option>
            ))}
          </select>
        )}
      </div>
      {shown.length === 0 ? (
        <p class="muted small">No history to show.</p>
      ) : (
        <ol class="timeline history" data-testid="history" tabIndex={0} aria-label="The model's events, newest first">
          {shown.map((h) => {
            const later = Date.parse(whenOf(h)) > asOf;
            return (
              <li key={h.position} class={`${h.importedFrom ? "imported" : ""} ${later ? "later" : ""}`} data-type={h.type}>
                <div>{h.summary || h.type}</div>
                <div class="muted tiny">
                  <strong>{whoOf(h)}</strong> · <time dateTime={whenOf(h)}>{fmtTimestamp(whenOf(h))}</time>
                  {h.importedFrom ? (
                    <>
                      {" "}
                      <Chip kind="imported" title={`imported by ${h.actor} at ${fmtTimestamp(h.recordedAt)} (log position ${h.position})`}>
                        imported from {h.importedFrom}
                      </Chip>
                    </>
                  ) : (
                    <> · #{h.position}</>
                  )}
                </div>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
