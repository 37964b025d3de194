import { useEffect, useRef, useState } from "preact/hooks";
import type uPlotType from "uplot";
import { rpc, TRACKING } from "../api";
import { fmtCount, fmtNum, int, num } from "../format";
import type { MetricHistory } from "../types";

export type XMode = "step" | "time" | "relative";

const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4", "#cf222e", "#6e7781"];

export function colorFor(i: number): string {
  return PALETTE[i % PALETTE.length];
}

// uPlot is loaded with the first chart, not with the app: the runs table never pays for it.
let uPlotModule: Promise<typeof uPlotType> | null = null;
function loadUPlot(): Promise<typeof uPlotType> {
  uPlotModule ??= import("uplot").then((m) => m.default);
  return uPlotModule;
}

interface Series {
  xs: number[];
  ys: Array<number | null>;
  total: number;
  shown: number;
  downsampled: boolean;
}

/** Points in x order, as uPlot wants them; a log axis cannot show values <= 0, NaN none at all. */
function toSeries(h: MetricHistory, x: XMode, log: boolean): Series {
  const steps = h.steps ?? [];
  const values = h.values ?? [];
  const times = h.timestampsMs ?? [];
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i);
  const t0 = n ? Math.min(...times.map((t) => int(t))) : 0;
  const xOf = (i: number) =>
    x === "step" ? int(steps[i]) : x === "time" ? int(times[i]) / 1000 : (int(times[i]) - t0) / 1000;
  const xs = order.map(xOf);
  if (x !== "step") {
    order.sort((a, b) => xs[a] - xs[b]);
  }
  const sortedXs = order.map((i) => xs[i]);
  const ys = order.map((i) => {
    const v = num(values[i]);
    return !Number.isFinite(v) || (log && v <= 0) ? null : v;
  });
  return { xs: sortedXs, ys, total: int(h.totalPoints), shown: n, downsampled: !!h.downsampled };
}

/** On a log axis, a line per decade (and at 2 and 5 when the range is short), not uPlot's nine. */
function logSplits(_u: uPlotType, splits: number[]): Array<number | null> {
  const finite = splits.filter((v) => v > 0);
  const decades = finite.length ? Math.log10(Math.max(...finite) / Math.min(...finite)) : 0;
  const keep = decades > 2 ? [1] : [1, 2, 5];
  return splits.map((v) => {
    if (!(v > 0)) return null;
    const mantissa = Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9));
    return keep.includes(mantissa) && Math.abs(v / 10 ** Math.floor(Math.log10(v) + 1e-9) - mantissa) < 1e-6 ? v : null;
  });
}

/** One metric of one run: its history from the server, at most `maxPoints` of it (the server
 * keeps each bucket's first, last, min and max point, so a spike is never averaged away). */
export function MetricChart(props: { runId: string; metric: string; x: XMode; log: boolean; color: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlotType | null>(null);
  const [history, setHistory] = useState<MetricHistory | null>(null);
  const [error, setError] = useState<string>("");

  useEffect(() => {
    const ctl = new AbortController();
    // a bucket keeps up to 4 points: about one bucket per pixel column, more would not show
    const maxPoints = Math.max(400, Math.min(4000, Math.round((box.current?.clientWidth ?? 600) * 4)));
    rpc<MetricHistory>(TRACKING, "GetMetricHistory", { runId: props.runId, key: props.metric, maxPoints }, ctl.signal).then(
      (h) => setHistory(h),
      (err: Error) => !ctl.signal.aborted && setError(err.message),
    );
    return () => ctl.abort();
  }, [props.runId, props.metric]);

  const series = history ? toSeries(history, props.x, props.log) : null;

  useEffect(() => {
    if (!series || !box.current) return;
    let disposed = false;
    let observer: ResizeObserver | null = null;
    loadUPlot().then((uPlot) => {
      if (disposed || !box.current) return;
      const el = box.current;
      const width = el.clientWidth || 400;
      const logOnly = props.log ? { filter: logSplits } : {};
      const opts: uPlotType.Options = {
        width,
        height: 200,
        legend: { live: true },
        cursor: { drag: { x: true, y: false }, points: { size: 6 } },
        scales: {
          x: { time: props.x === "time" },
          y: { distr: props.log ? 3 : 1 },
        },
        axes: [
          {
            label: props.x === "step" ? "step" : props.x === "time" ? "" : "seconds since first point",
            labelSize: props.x === "time" ? 0 : 14,
            size: props.x === "time" ? 46 : 34, // time labels take two lines
            labelGap: 0,
            stroke: "#57606a",
            grid: { stroke: "#eaeef2", width: 1 },
            ticks: { stroke: "#d0d7de", width: 1 },
            font: "11px system-ui, sans-serif",
            labelFont: "11px system-ui, sans-serif",
          },
          {
            stroke: "#57606a",
            // uPlot merges options over its defaults: an undefined filter would replace the default one
            grid: { stroke: "#eaeef2", width: 1, ...logOnly },
            ticks: { stroke: "#d0d7de", width: 1, ...logOnly },
            font: "11px system-ui, sans-serif",
            size: 56,
            ...logOnly,
            values: (_u, splits) => splits.map((v) => (v === null ? "" : fmtNum(v))),
          },
        ],
        series: [
          { label: props.x === "step" ? "step" : props.x === "time" ? "time" : "s", value: (_u, v) => (v === null ? "–" : props.x === "time" ? new Date(v * 1000).toLocaleString() : fmtNum(v)) },
          {
            label: props.metric,
            stroke: props.color,
            width: 1.5,
            spanGaps: true,
            points: { show: series.shown <= 60 },
            value: (_u, v) => (v === null ? "–" : fmtNum(v)),
          },
        ],
      };
      plot.current?.destroy();
      plot.current = new uPlot(opts, [series.xs, series.ys], el);
      observer = new ResizeObserver(() => {
        const w = el.clientWidth;
        if (plot.current && w > 0 && Math.abs(w - plot.current.width) > 2) plot.current.setSize({ width: w, height: 200 });
      });
      observer.observe(el);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [history, props.x, props.log, props.color]);

  return (
    <figure class="chart card" data-testid={`chart-${props.metric}`}>
      <figcaption>
        <span class="chart-title">{props.metric}</span>
        {series && (
          <span class="muted tiny" title={series.downsampled ? "downsampled on the server: each bucket keeps its first, last, smallest and largest point" : undefined}>
            {series.downsampled
              ? `${fmtCount(series.shown)} of ${fmtCount(series.total)} points (min/max kept)`
              : `${fmtCount(series.total)} point${series.total === 1 ? "" : "s"}`}
          </span>
        )}
      </figcaption>
      <div class="chart-plot">
        <div class="chart-canvas" ref={box} />
        {!history && !error && <div class="chart-wait muted small">Loading…</div>}
        {error && <div class="field-error small">{error}</div>}
        {series && series.shown === 0 && <div class="chart-wait muted small">No points</div>}
      </div>
    </figure>
  );
}
