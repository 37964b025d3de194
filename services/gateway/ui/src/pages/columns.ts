// The runs table's columns and their place in the URL: `cols=m:acc,p:lr,t:team` (each key
// URI-encoded, so a comma in a key survives), `sort=metrics.acc DESC`.

import { fmtDuration, fmtNum, fmtTime, int, num, runStatus } from "../format";
import type { MetricSummary, Run } from "../types";

export type Kind = "m" | "p" | "t";
export interface Column {
  kind: Kind;
  key: string;
}

export const ENTITY: Record<Kind, string> = { m: "metrics", p: "params", t: "tags" };
export const KIND_LABEL: Record<Kind, string> = { m: "Metrics", p: "Params", t: "Tags" };

export function parseCols(text: string | null): Column[] | null {
  if (text === null) return null;
  const out: Column[] = [];
  for (const part of text.split(",")) {
    const kind = part.slice(0, 1) as Kind;
    if (part[1] !== ":" || !(kind in ENTITY)) continue;
    out.push({ kind, key: decodeURIComponent(part.slice(2)) });
  }
  return out;
}

export function formatCols(cols: Column[]): string {
  return cols.map((c) => `${c.kind}:${encodeURIComponent(c.key)}`).join(",");
}

export function colId(c: Column): string {
  return `${c.kind}:${c.key}`;
}

/** A key as the filter and order_by grammar spells it: bare when it can be, else in backticks. */
export function quoteKey(key: string): string {
  return /^[\w.\-/:]+$/.test(key) ? key : "`" + key.replace(/`/g, "``") + "`";
}

/** The fixed columns: the run's attributes, and what `attributes.X` orders them by. */
export interface AttrColumn {
  id: string;
  label: string;
  width: number;
  sortKey?: string;
}

export const ATTRS: AttrColumn[] = [
  { id: "name", label: "Run", width: 240, sortKey: "attributes.run_name" },
  { id: "status", label: "Status", width: 96, sortKey: "attributes.status" },
  { id: "start", label: "Started", width: 150, sortKey: "attributes.start_time" },
  { id: "duration", label: "Duration", width: 100 },
];

export function sortKeyOf(c: Column): string {
  return `${ENTITY[c.kind]}.${quoteKey(c.key)}`;
}

export interface Sort {
  key: string;
  desc: boolean;
}

export function parseSort(text: string | null): Sort | null {
  if (!text) return null;
  const m = /^(.*?)\s+(ASC|DESC)$/i.exec(text.trim());
  return m ? { key: m[1], desc: m[2].toUpperCase() === "DESC" } : { key: text.trim(), desc: false };
}

export function formatSort(s: Sort): string {
  return `${s.key} ${s.desc ? "DESC" : "ASC"}`;
}

// A run's metrics are an array on the wire; the table looks one up per cell, so index them once.
const metricIndex = new WeakMap<Run, Map<string, MetricSummary>>();
export function metricOf(run: Run, key: string): MetricSummary | undefined {
  let index = metricIndex.get(run);
  if (!index) {
    index = new Map((run.metrics ?? []).map((m) => [m.key, m]));
    metricIndex.set(run, index);
  }
  return index.get(key);
}

export function cellText(run: Run, c: Column): string {
  if (c.kind === "p") return run.params?.[c.key] ?? "";
  if (c.kind === "t") return run.tags?.[c.key] ?? "";
  const m = metricOf(run, c.key);
  return m ? fmtNum(num(m.last)) : "";
}

export function metricTitle(run: Run, key: string): string | undefined {
  const m = metricOf(run, key);
  if (!m) return undefined;
  return `last ${fmtNum(num(m.last))} at step ${int(m.lastStep)} · min ${fmtNum(num(m.min))} · max ${fmtNum(num(m.max))} · ${int(m.count).toLocaleString("en-US")} points`;
}

export function attrText(run: Run, id: string, now: number): string {
  const start = int(run.info.startTimeMs);
  const end = int(run.info.endTimeMs);
  switch (id) {
    case "name":
      return run.info.name || run.info.runId;
    case "status":
      return runStatus(run.info.status);
    case "start":
      return fmtTime(start);
    case "duration":
      return start ? fmtDuration((end || now) - start) : "";
    default:
      return "";
  }
}

/** Every key the loaded runs have, per kind, sorted. */
export function discoverKeys(runs: Run[], limit = 2000): Record<Kind, string[]> {
  const seen: Record<Kind, Set<string>> = { m: new Set(), p: new Set(), t: new Set() };
  for (const run of runs.slice(0, limit)) {
    for (const m of run.metrics ?? []) seen.m.add(m.key);
    for (const k of Object.keys(run.params ?? {})) seen.p.add(k);
    for (const k of Object.keys(run.tags ?? {})) seen.t.add(k);
  }
  const sorted = (s: Set<string>) => [...s].sort((a, b) => a.localeCompare(b));
  return { m: sorted(seen.m), p: sorted(seen.p), t: sorted(seen.t) };
}

/** What a table shows before anyone picks: a few metrics and params, no system ones. */
export function defaultCols(keys: Record<Kind, string[]>): Column[] {
  const metrics = keys.m.filter((k) => !k.startsWith("system/")).slice(0, 5);
  const params = keys.p.slice(0, 5);
  return [...metrics.map((key) => ({ kind: "m" as const, key })), ...params.map((key) => ({ kind: "p" as const, key }))];
}

/** What a run is ordered by for one `order_by` clause, as the server orders: numbers for metrics
 * (NaN before missing) and times, text for the rest; undefined when the run lacks it. */
function sortValue(run: Run, key: string): number | string | undefined {
  const m = /^(attributes?|metrics?|params?|tags?)\.(?:`((?:[^`]|``)*)`|(.+))$/.exec(key.trim());
  if (!m) return undefined;
  const entity = m[1].replace(/s$/, "");
  const name = m[2] !== undefined ? m[2].replace(/``/g, "`") : m[3];
  if (entity === "metric") {
    const s = metricOf(run, name);
    return s ? num(s.last) : undefined;
  }
  if (entity === "param") return run.params?.[name];
  if (entity === "tag") return run.tags?.[name];
  switch (name) {
    case "start_time":
      return int(run.info.startTimeMs);
    case "end_time":
      return run.info.endTimeMs ? int(run.info.endTimeMs) : undefined;
    case "run_name":
      return run.info.name ?? "";
    case "status":
      return run.info.status ?? "";
    case "run_id":
      return run.info.runId;
    default:
      return undefined;
  }
}

function rank(v: number | string | undefined): number {
  return v === undefined ? 2 : typeof v === "number" && Number.isNaN(v) ? 1 : 0;
}

/** The order of SearchRuns: by the sort clause (missing values last whichever the direction, NaN
 * just before them), then newest first, then by id. Lets a run that arrives live take its place. */
export function compareRuns(a: Run, b: Run, sort: Sort | null): number {
  if (sort) {
    const va = sortValue(a, sort.key);
    const vb = sortValue(b, sort.key);
    const ra = rank(va);
    const rb = rank(vb);
    if (ra !== rb) return ra - rb;
    if (ra === 0 && va !== vb) {
      const c = (va as number | string) < (vb as number | string) ? -1 : 1;
      return sort.desc ? -c : c;
    }
  }
  const ta = int(a.info.startTimeMs);
  const tb = int(b.info.startTimeMs);
  if (ta !== tb) return tb - ta;
  return a.info.runId < b.info.runId ? -1 : a.info.runId > b.info.runId ? 1 : 0;
}
