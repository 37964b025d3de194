import { useEffect, useRef } from "preact/hooks";
import type uPlotType from "uplot";
import { fmtNum, int, num } from "../format";
import type { MetricHistory } from "../types";

export type XMode = "step" | "time" | "relative";

const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4", "#cf222e", "#6e7781"];

/** A colour per series: the palette while it lasts, then hues a golden angle apart (50 runs stay
 * distinguishable side by side). */
export function colorFor(i: number): string {
  if (i < PALETTE.length) return PALETTE[i];
  const hue = Math.round((i * 137.508) % 360);
  return `hsl(${hue} 65% ${i % 2 ? 38 : 48}%)`;
}

// uPlot is loaded with the first chart, not with the app: the runs table never pays for it.
let uPlotModule: Promise<typeof uPlotType> | null = null;
export function loadUPlot(): Promise<typeof uPlotType> {
  uPlotModule ??= import("uplot").then((m) => m.default);
  return uPlotModule;
}

export interface XY {
  xs: number[];
  ys: Array<number | null>;
}

/** A history's points in x order, as uPlot wants them; a log axis cannot show values <= 0, nor any
 * axis NaN. Relative time counts from the series' own first point. */
export function toXY(h: MetricHistory, x: XMode, log: boolean): XY {
  const steps = h.steps ?? [];
  const values = h.values ?? [];
  const times = h.timestampsMs ?? [];
  const n = values.length;
  let t0 = Infinity;
  if (x === "relative") for (let i = 0; i < n; i++) t0 = Math.min(t0, int(times[i]));
  const raw = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    raw[i] = x === "step" ? int(steps[i]) : x === "time" ? int(times[i]) / 1000 : (int(times[i]) - t0) / 1000;
  }
  const order = Array.from({ length: n }, (_, i) => i);
  if (x !== "step") order.sort((a, b) => raw[a] - raw[b]); // steps come sorted; times need not
  const xs = order.map((i) => raw[i]);
  const ys = order.map((i) => {
    const v = num(values[i]);
    return !Number.isFinite(v) || (log && v <= 0) ? null : v;
  });
  return { xs, ys };
}

/** TensorBoard's smoothing: an exponential moving average, debiased so the first points are not
 * pulled towards zero. `weight` 0 is the raw series. */
export function smooth(ys: Array<number | null>, weight: number): Array<number | null> {
  if (weight <= 0) return ys;
  let last = 0;
  let count = 0;
  return ys.map((y) => {
    if (y === null) return null;
    last = last * weight + (1 - weight) * y;
    count++;
    return last / (1 - weight ** count);
  });
}

/** On a log axis, a line per decade (and at 2 and 5 when the range is short), not uPlot's nine. */
function logSplits(_u: uPlotType, splits: number[]): Array<number | null> {
  const finite = splits.filter((v) => v > 0);
  const decades = finite.length ? Math.log10(Math.max(...finite) / Math.min(...finite)) : 0;
  const keep = decades > 2 ? [1] : [1, 2, 5];
  return splits.map((v) => {
    if (!(v > 0)) return null;
    const exp = 10 ** Math.floor(Math.log10(v) + 1e-9);
    const mantissa = Math.round(v / exp);
    return keep.includes(mantissa) && Math.abs(v / exp - mantissa) < 1e-6 ? v : null;
  });
}

export interface PlotSeries extends XY {
  label: string;
  color: string;
  width?: number;
}

export interface Hover {
  label: string;
  x: number;
  y: number;
}

const FONT = "11px system-ui, sans-serif";

/** A canvas chart of one or many series over a shared x axis (uPlot; series with different xs are
 * aligned with uPlot.join). With smoothing, each series is drawn faint and its average over it. */
export function Plot(props: {
  series: PlotSeries[];
  x: XMode;
  log: boolean;
  smoothing: number;
  height?: number;
  legend?: boolean;
  onHover?: (hover: Hover | null) => void;
  onDrawn?: () => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const hover = useRef(props.onHover);
  hover.current = props.onHover;
  const drawn = useRef(props.onDrawn);
  drawn.current = props.onDrawn;
  const height = props.height ?? 200;
  const plotRef = useRef<uPlotType | null>(null);
  // the reader zoomed in (dragged a range): new points must not throw the view back out
  const zoomed = useRef(false);
  const dataOf = (uPlot: typeof uPlotType, series: PlotSeries[]): uPlotType.AlignedData => {
    const tables: uPlotType.AlignedData[] = series.map((s) =>
      props.smoothing > 0 ? [s.xs, s.ys, smooth(s.ys, props.smoothing)] : [s.xs, s.ys],
    );
    return tables.length === 1 ? tables[0] : tables.length === 0 ? [[]] : uPlot.join(tables);
  };
  // What the chart looks like; when only the points change (a live run), they are swapped in place.
  const shape = JSON.stringify([props.x, props.log, props.smoothing, height, props.series.map((s) => [s.label, s.color, s.width])]);

  useEffect(() => {
    const plot = plotRef.current;
    if (!plot) return;
    const series = props.series;
    loadUPlot().then((uPlot) => plotRef.current === plot && plot.setData(dataOf(uPlot, series), !zoomed.current));
  }, [props.series]);

  useEffect(() => {
    if (!box.current) return;
    let disposed = false;
    let plot: uPlotType | null = null;
    let observer: ResizeObserver | null = null;
    loadUPlot().then((uPlot) => {
      if (disposed || !box.current) return;
      const el = box.current;
      const smoothed = props.smoothing > 0;
      const faint = (c: string) => (c.startsWith("#") ? c + "40" : c.replace(")", " / 0.25)"));
      const data = dataOf(uPlot, props.series);
      zoomed.current = false;
      const many = props.series.length > 1;
      const total = props.series.reduce((n, s) => n + s.xs.length, 0);
      const fmtX = (v: number) =>
        props.x === "time" ? new Date(v * 1000).toLocaleString() : fmtNum(v);
      const lines: uPlotType.Series[] = [];
      for (const s of props.series) {
        const value = (_u: uPlotType, v: number | null) => (v === null || v === undefined ? "–" : fmtNum(v));
        const base = { spanGaps: true, points: { show: !many && total <= 60 }, value };
        if (smoothed) {
          lines.push({ ...base, label: `${s.label} (raw)`, stroke: faint(s.color), width: 1 });
          lines.push({ ...base, label: s.label, stroke: s.color, width: s.width ?? 1.5, points: { show: false } });
        } else {
          lines.push({ ...base, label: s.label, stroke: s.color, width: s.width ?? 1.5 });
        }
      }
      const logOnly = props.log ? { filter: logSplits } : {};
      const opts: uPlotType.Options = {
        width: el.clientWidth || 400,
        height,
        legend: { show: props.legend ?? !many, live: true },
        focus: { alpha: 0.25 },
        cursor: {
          drag: { x: true, y: false },
          points: { size: 6 },
          focus: { prox: many ? 24 : -1 },
        },
        scales: { x: { time: props.x === "time" }, y: { distr: props.log ? 3 : 1 } },
        axes: [
          {
            label: props.x === "step" ? "step" : props.x === "time" ? "" : "seconds since first point",
            labelSize: props.x === "time" ? 0 : 14,
            size: props.x === "time" ? 46 : 34, // time labels take two lines
            labelGap: 0,
            stroke: "#57606a",
            grid: { stroke: "#eaeef2", width: 1 },
            ticks: { stroke: "#d0d7de", width: 1 },
            font: FONT,
            labelFont: FONT,
          },
          {
            stroke: "#57606a",
            // uPlot merges options over its defaults: an undefined filter would replace the default one
            grid: { stroke: "#eaeef2", width: 1, ...logOnly },
            ticks: { stroke: "#d0d7de", width: 1, ...logOnly },
            font: FONT,
            size: 56,
            ...logOnly,
            values: (_u, splits) => splits.map((v) => (v === null ? "" : fmtNum(v))),
          },
        ],
        series: [
          { label: props.x === "step" ? "step" : props.x === "time" ? "time" : "s", value: (_u, v) => (v === null ? "–" : fmtX(v)) },
          ...lines,
        ],
        hooks: {
          setScale: [
            (u, key) => {
              const xs = u.data[0];
              if (key !== "x" || xs.length < 2) return;
              const [lo, hi] = [xs[0], xs[xs.length - 1]];
              const eps = (hi - lo) * 1e-9;
              zoomed.current = (u.scales.x.min ?? lo) > lo + eps || (u.scales.x.max ?? hi) < hi - eps;
            },
          ],
          setCursor: [(u) => report(u)],
          setSeries: [
            (u, i, o) => {
              // the typings say Series; uPlot passes the setSeries options ({focus} here)
              const focus = (o as { focus?: boolean }).focus;
              if (focus !== undefined) focused = focus && i !== null ? i : -1;
              report(u);
            },
          ],
        },
      };
      // The series under the cursor (the focused one when several), for a caption of its own.
      let focused = -1;
      const report = (u: uPlotType) => {
        const cb = hover.current;
        if (!cb) return;
        const idx = u.cursor.idx;
        const si = many ? focused : 1;
        if (idx === null || idx === undefined || si < 1) return cb(null);
        const y = u.data[si]?.[idx];
        const label = String(u.series[si].label ?? "").replace(/ \(raw\)$/, "");
        cb(y === null || y === undefined ? null : { label, x: u.data[0][idx], y });
      };
      plot = plotRef.current = new uPlot(opts, data, el);
      drawn.current?.();
      observer = new ResizeObserver(() => {
        const w = el.clientWidth;
        if (plot && w > 0 && Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height });
      });
      observer.observe(el);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      plot?.destroy();
      plotRef.current = null;
    };
  }, [shape]);

  return <div class="chart-canvas" ref={box} />;
}
