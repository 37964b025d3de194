// The compare page's table: params, metrics (last values, with the difference to the baseline) and
// tags of every run, the baseline's column first; only the rows where a run differs from the
// baseline unless all are asked for.

import { Link } from "wouter-preact";
import { fmtNum, num } from "../format";
import type { CompareRunsResponse, MetricSummary } from "../types";

export interface RunCol {
  id: string;
  name: string;
  color: string;
  index: number;
}

function metricLast(s: MetricSummary | undefined): number | undefined {
  return s ? num(s.last) : undefined;
}

function sameNumber(a: number, b: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  return a === b || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
}

function short(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : Number(v.toPrecision(3)).toString();
}

/** The difference from the baseline, to 3 significant digits, with its percentage. */
function delta(v: number, b: number): string {
  const d = v - b;
  const sign = d > 0 ? "+" : d < 0 ? "−" : "±";
  const pct = b !== 0 && Number.isFinite(d / b) ? ` (${sign}${short(Math.abs((d / b) * 100))}%)` : "";
  return `${sign}${short(Math.abs(d))}${pct}`;
}

interface Row {
  group: "Params" | "Metrics" | "Tags";
  key: string;
  cells: Array<string | undefined>;
  nums?: Array<number | undefined>;
  summaries?: Array<MetricSummary | undefined>;
  differs: boolean;
}

export function DiffTable(props: {
  data: CompareRunsResponse;
  runs: RunCol[];
  base: RunCol;
  showAll: boolean;
  onShowAll: (all: boolean) => void;
  onBase: (id: string) => void;
}) {
  const b = props.base.index;
  const rows: Row[] = [];
  const values = (vs: Array<{ present?: boolean; value?: string }> | undefined) =>
    props.runs.map((r) => (vs?.[r.index]?.present ? vs[r.index].value ?? "" : undefined));
  for (const p of props.data.params ?? []) {
    const cells = values(p.values);
    rows.push({ group: "Params", key: p.key, cells, differs: cells.some((c) => c !== cells[b]) });
  }
  for (const m of props.data.metrics ?? []) {
    const summaries = props.runs.map((r) => (m.values?.[r.index]?.present ? m.values[r.index].summary : undefined));
    const nums = summaries.map(metricLast);
    const differs = nums.some((v) => (v === undefined) !== (nums[b] === undefined) || (v !== undefined && !sameNumber(v, nums[b]!)));
    rows.push({ group: "Metrics", key: m.key, cells: nums.map((v) => (v === undefined ? undefined : fmtNum(v))), nums, summaries, differs });
  }
  for (const t of props.data.tags ?? []) {
    if (t.key.startsWith("mlflow.")) continue; // the client's own bookkeeping
    const cells = values(t.values);
    rows.push({ group: "Tags", key: t.key, cells, differs: cells.some((c) => c !== cells[b]) });
  }
  const differing = rows.filter((r) => r.differs).length;
  const shown = props.showAll ? rows : rows.filter((r) => r.differs);
  // the baseline first, then the others in their order
  const order = [props.base, ...props.runs.filter((r) => r.id !== props.base.id)];

  return (
    <section class="card diff-card" aria-label="Differences">
      <div class="section-head">
        <h2>
          {props.showAll ? "Params, metrics and tags" : "What differs from the baseline"}{" "}
          <span class="muted" data-testid="diff-count">
            ({differing} of {rows.length} differ)
          </span>
        </h2>
        <label class="check inline">
          <input type="checkbox" checked={props.showAll} onChange={() => props.onShowAll(!props.showAll)} data-testid="show-all" /> Show
          rows that are the same
        </label>
      </div>
      {shown.length === 0 ? (
        <p class="muted small">{rows.length === 0 ? "These runs have no params, metrics or tags." : "Every run equals the baseline."}</p>
      ) : (
        <div class="diff-scroll">
          <table class="diff-table" data-testid="diff-table">
            <thead>
              <tr>
                <th scope="col" class="key">
                  key
                </th>
                {order.map((r) => (
                  <th scope="col" key={r.id} class={r.id === props.base.id ? "base" : ""}>
                    <span class="swatch" style={{ background: r.color }} aria-hidden="true" />
                    <Link href={`/runs/${encodeURIComponent(r.id)}`} title={r.id}>
                      {r.name}
                    </Link>
                    {r.id === props.base.id ? (
                      <div class="tiny muted">baseline</div>
                    ) : (
                      <div>
                        <button type="button" class="linkish tiny" onClick={() => props.onBase(r.id)} aria-label={`make baseline: ${r.name}`}>
                          make baseline
                        </button>
                      </div>
                    )}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {(["Params", "Metrics", "Tags"] as const).map((group) => {
                const inGroup = shown.filter((r) => r.group === group);
                if (inGroup.length === 0) return null;
                return [
                  <tr key={group} class="group">
                    <th scope="rowgroup" colSpan={order.length + 1}>
                      {group}
                    </th>
                  </tr>,
                  ...inGroup.map((row) => (
                    <tr key={`${group}:${row.key}`} data-key={row.key} class={row.differs ? "differs" : "same"}>
                      <th scope="row" class="key" title={row.key}>
                        {row.key}
                      </th>
                      {order.map((r) => {
                        const v = row.cells[r.index];
                        const isBase = r.id === props.base.id;
                        const bv = row.cells[b];
                        const n = row.nums?.[r.index];
                        const bn = row.nums?.[b];
                        const diff = !isBase && (row.nums ? (n === undefined) !== (bn === undefined) || (n !== undefined && !sameNumber(n, bn!)) : v !== bv);
                        const s = row.summaries?.[r.index];
                        return (
                          <td
                            key={r.id}
                            class={`${isBase ? "base" : ""} ${diff ? "diff" : ""} ${row.nums ? "num" : ""}`}
                            title={s ? `last ${fmtNum(num(s.last))} · min ${fmtNum(num(s.min))} · max ${fmtNum(num(s.max))}` : v}
                          >
                            {v === undefined ? <span class="muted">—</span> : v}
                            {diff && n !== undefined && bn !== undefined && <div class="delta">{delta(n, bn)}</div>}
                          </td>
                        );
                      })}
                    </tr>
                  )),
                ];
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

