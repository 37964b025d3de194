// The compare page's params against a metric: parallel coordinates from the params that differ to
// the chosen metric, and a scatter of one param against it.

import { useMemo } from "preact/hooks";
import { axisFor, ParallelCoords, Scatter, type Mark } from "../components/svgplots";
import { num } from "../format";
import type { CompareRunsResponse } from "../types";
import type { RunCol } from "./comparetable";

export function Relations(props: {
  data: CompareRunsResponse;
  runs: RunCol[];
  baseId: string;
  metrics: string[];
  params: URLSearchParams;
  set: (changes: Record<string, string | null>) => void;
}) {
  const paramRows = (props.data.params ?? []).filter((p) => p.differs);
  const metricKey = props.metrics.includes(props.params.get("metric") ?? "") ? props.params.get("metric")! : props.metrics[0];
  const metricRow = (props.data.metrics ?? []).find((m) => m.key === metricKey);
  const metricValues = props.runs.map((r) => {
    const c = metricRow?.values?.[r.index];
    const v = c?.present ? num(c.summary?.last) : NaN;
    return Number.isFinite(v) ? String(v) : undefined;
  });
  const paramValues = (key: string) => {
    const row = paramRows.find((p) => p.key === key);
    return props.runs.map((r) => (row?.values?.[r.index]?.present ? row.values[r.index].value : undefined));
  };
  const axes = useMemo(
    () => [...paramRows.slice(0, 12).map((p) => axisFor(p.key, paramValues(p.key))), axisFor(metricKey ?? "", metricValues)],
    [props.data, metricKey, props.runs.length],
  );
  const marks: Mark[] = props.runs.map((r) => ({
    id: r.id,
    name: r.name,
    color: r.color,
    baseline: r.id === props.baseId,
    values: [...paramRows.slice(0, 12).map((p) => paramValues(p.key)[r.index]), metricValues[r.index]],
  }));
  const numericFirst = paramRows.find((p) => axisFor(p.key, paramValues(p.key)).kind !== "category")?.key ?? paramRows[0]?.key;
  const xKey = paramRows.some((p) => p.key === props.params.get("px")) ? props.params.get("px")! : numericFirst;

  if (!metricKey) return null;
  return (
    <section class="relations" aria-label="Params against a metric">
      <div class="section-head">
        <h2>Params against a metric</h2>
        <div class="toolbar">
          <label class="inline-label" for="rel-metric">
            Metric
          </label>
          <select id="rel-metric" value={metricKey} onChange={(e) => props.set({ metric: (e.target as HTMLSelectElement).value })}>
            {props.metrics.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </div>
      </div>
      {paramRows.length === 0 ? (
        <div class="empty">Every run has the same params: nothing to relate {metricKey} to.</div>
      ) : (
        <div class="relations-grid">
          <div class="card">
            <h3>Parallel coordinates</h3>
            <ParallelCoords axes={axes} marks={marks} metricIndex={axes.length - 1} />
          </div>
          <div class="card">
            <div class="card-head">
              <h3>Scatter</h3>
              <label class="inline-label small" for="rel-param">
                x
              </label>
              <select id="rel-param" value={xKey} onChange={(e) => props.set({ px: (e.target as HTMLSelectElement).value })}>
                {paramRows.map((p) => (
                  <option key={p.key} value={p.key}>
                    {p.key}
                  </option>
                ))}
              </select>
            </div>
            {xKey && (
              <Scatter
                x={axisFor(xKey, paramValues(xKey))}
                y={axisFor(metricKey, metricValues)}
                marks={marks.map((m, i) => ({ ...m, x: paramValues(xKey)[i], y: metricValues[i] }))}
              />
            )}
          </div>
        </div>
      )}
    </section>
  );
}
