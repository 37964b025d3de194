// The runs table grouped by a param's (or tag's) value: per group the run count and the min, mean
// and max of a chosen metric (each run's last value), collapsible; which groups are open is in the
// URL (`open`) with the grouping (`group`) and the metric (`agg`).

import { useMemo } from "preact/hooks";
import { Link } from "wouter-preact";
import { fmtNum, num } from "../format";
import type { Run } from "../types";
import { attrText, cellText, colId, metricOf, type Column } from "./columns";

export const NONE = "\u0000none";
const MEMBERS = 500; // runs listed in an open group; the aggregates count them all

export interface Group {
  value: string;
  runs: Run[];
  count: number;
  /** Runs with the metric. */
  measured: number;
  min: number;
  mean: number;
  max: number;
}

export function groupRuns(runs: Run[], by: Column, metric: string): Group[] {
  const groups = new Map<string, Run[]>();
  for (const run of runs) {
    const v = (by.kind === "t" ? run.tags?.[by.key] : run.params?.[by.key]) ?? NONE;
    const g = groups.get(v);
    if (g) g.push(run);
    else groups.set(v, [run]);
  }
  const out: Group[] = [];
  for (const [value, members] of groups) {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let measured = 0;
    for (const r of members) {
      const m = metric ? metricOf(r, metric) : undefined;
      const x = m ? num(m.last) : NaN;
      if (!Number.isFinite(x)) continue;
      measured++;
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    out.push({ value, runs: members, count: members.length, measured, min, max, mean: measured ? sum / measured : NaN });
  }
  const numeric = out.every((g) => g.value === NONE || Number.isFinite(Number(g.value)));
  return out.sort((a, b) => {
    if (a.value === NONE || b.value === NONE) return a.value === NONE ? 1 : -1;
    return numeric ? Number(a.value) - Number(b.value) : a.value.localeCompare(b.value);
  });
}

export function GroupsTable(props: {
  runs: Run[];
  by: Column;
  metric: string;
  cols: Column[];
  open: string[];
  complete: boolean;
  onToggle: (value: string) => void;
}) {
  const groups = useMemo(() => groupRuns(props.runs, props.by, props.metric), [props.runs, props.by.kind, props.by.key, props.metric]);
  const open = new Set(props.open);
  const shownCols = props.cols.filter((c) => colId(c) !== colId(props.by) && !(c.kind === "m" && c.key === props.metric));
  const span = 6 + shownCols.length;
  const now = Date.now();
  const stat = (g: Group, x: number) => (g.measured ? fmtNum(x) : "—");
  return (
    <div class="groups-wrap">
      <p class="muted small" data-testid="group-note" data-complete={props.complete ? "true" : "false"} aria-live="polite">
        {groups.length} group{groups.length === 1 ? "" : "s"} by {props.by.kind === "t" ? "tag" : "param"} <strong>{props.by.key}</strong>{" "}
        over {props.runs.length.toLocaleString("en-US")} runs{props.complete ? "" : " loaded so far (loading the rest…)"}
        {props.metric ? (
          <>
            {" "}
            · <strong>{props.metric}</strong>: each run's last value
          </>
        ) : (
          " · pick a metric to aggregate"
        )}
      </p>
      <table class="grid-table groups" aria-label={`Runs grouped by ${props.by.key}`} data-testid="groups">
        <thead>
          <tr>
            <th scope="col">{props.by.key}</th>
            <th scope="col" class="num">
              Runs
            </th>
            <th scope="col" class="num">
              min {props.metric}
            </th>
            <th scope="col" class="num">
              mean {props.metric}
            </th>
            <th scope="col" class="num">
              max {props.metric}
            </th>
            <th scope="col">Status</th>
            {shownCols.map((c) => (
              <th scope="col" key={colId(c)} class={c.kind === "m" ? "num" : ""}>
                {c.key}
              </th>
            ))}
          </tr>
        </thead>
        {groups.map((g) => {
          const isOpen = open.has(g.value);
          const label = g.value === NONE ? "(not set)" : g.value;
          return (
            <tbody key={g.value} class={isOpen ? "group open" : "group"} data-group={label}>
              <tr class="group-head">
                <th scope="row">
                  <button type="button" class="linkish group-toggle" aria-expanded={isOpen} onClick={() => props.onToggle(g.value)}>
                    <span aria-hidden="true">{isOpen ? "▾" : "▸"}</span> {label}
                  </button>
                </th>
                <td class="num" data-stat="count">
                  {g.count.toLocaleString("en-US")}
                </td>
                <td class="num" data-stat="min">
                  {stat(g, g.min)}
                </td>
                <td class="num strong" data-stat="mean">
                  {stat(g, g.mean)}
                </td>
                <td class="num" data-stat="max">
                  {stat(g, g.max)}
                </td>
                <td colSpan={1 + shownCols.length} class="muted small">
                  {g.measured < g.count && props.metric ? `${g.count - g.measured} without ${props.metric}` : ""}
                </td>
              </tr>
              {isOpen &&
                g.runs.slice(0, MEMBERS).map((r) => (
                  <tr key={r.info.runId} class="group-run">
                    <td class="indent">
                      <Link href={`/runs/${encodeURIComponent(r.info.runId)}`}>{attrText(r, "name", now)}</Link>
                    </td>
                    <td />
                    <td />
                    <td class="num">{props.metric ? cellText(r, { kind: "m", key: props.metric }) : ""}</td>
                    <td />
                    <td>
                      <span class={`dot status-${attrText(r, "status", now).toLowerCase()}`}>{attrText(r, "status", now)}</span>
                    </td>
                    {shownCols.map((c) => (
                      <td key={colId(c)} class={c.kind === "m" ? "num" : ""}>
                        {cellText(r, c)}
                      </td>
                    ))}
                  </tr>
                ))}
              {isOpen && g.runs.length > MEMBERS && (
                <tr>
                  <td colSpan={span} class="muted small">
                    and {(g.runs.length - MEMBERS).toLocaleString("en-US")} more: filter to see them
                  </td>
                </tr>
              )}
            </tbody>
          );
        })}
      </table>
    </div>
  );
}
