// Two small plots drawn as SVG by hand (no chart library needed for a few hundred marks): parallel
// coordinates from params to a metric, and a scatter of one param against a metric.

import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { fmtNum } from "../format";

/** One axis over the runs' values: numeric (linear, or log when positive and spanning two decades or
 * more) when every present value is a number, else categorical in natural order. */
export interface Axis {
  label: string;
  kind: "linear" | "log" | "category";
  /** 0 at one end, 1 at the other; null for a run without a value. */
  pos: (v: string | undefined) => number | null;
  ticks: Array<{ at: number; label: string }>;
}

const collator = new Intl.Collator("en", { numeric: true });

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

export function axisFor(label: string, values: Array<string | undefined>): Axis {
  const present = values.filter((v): v is string => v !== undefined && v !== "");
  const nums = present.map(Number);
  const numeric = present.length > 0 && nums.every((n) => Number.isFinite(n));
  if (!numeric) {
    const cats = [...new Set(present)].sort(collator.compare);
    const at = (i: number) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
    const index = new Map(cats.map((c, i) => [c, at(i)]));
    return {
      label,
      kind: "category",
      pos: (v) => (v === undefined ? null : index.get(v) ?? null),
      ticks: cats.slice(0, 24).map((c, i) => ({ at: at(i), label: c })),
    };
  }
  const lo = Math.min(...nums);
  const hi = Math.max(...nums);
  if (lo === hi) {
    return { label, kind: "linear", pos: (v) => (v === undefined || v === "" ? null : 0.5), ticks: [{ at: 0.5, label: fmtNum(lo) }] };
  }
  if (lo > 0 && hi / lo >= 100) {
    const [a, b] = [Math.log10(lo), Math.log10(hi)];
    const ticks: Axis["ticks"] = [];
    for (let e = Math.ceil(a - 1e-9); e <= Math.floor(b + 1e-9); e++) ticks.push({ at: (e - a) / (b - a), label: fmtNum(10 ** e) });
    const pos = (v: string | undefined) => (v === undefined || v === "" ? null : (Math.log10(Number(v)) - a) / (b - a));
    return { label, kind: "log", pos, ticks };
  }
  const step = niceStep(hi - lo, 4);
  const ticks: Axis["ticks"] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push({ at: (t - lo) / (hi - lo), label: fmtNum(Number(t.toPrecision(12))) });
  }
  return { label, kind: "linear", pos: (v) => (v === undefined || v === "" ? null : (Number(v) - lo) / (hi - lo)), ticks };
}

/** Low to high: blue, purple, red. */
export function heat(t: number): string {
  const stops = [
    [33, 102, 172],
    [130, 80, 223],
    [214, 96, 77],
  ];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${c[0]} ${c[1]} ${c[2]})`;
}

export function useWidth(fallback: number): [preact.RefObject<HTMLDivElement>, number] {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(fallback);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth || fallback);
    const obs = new ResizeObserver(() => el.clientWidth && setWidth(el.clientWidth));
    obs.observe(el);
    return () => obs.disconnect();
  }, []);
  return [ref, width];
}

export interface Mark {
  id: string;
  name: string;
  color: string;
  /** The run's value per axis (params as strings, the metric as a number's string). */
  values: Array<string | undefined>;
  baseline?: boolean;
}

function cut(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** Params left to right, the metric last; one line per run, coloured by the metric. */
export function ParallelCoords(props: { axes: Axis[]; marks: Mark[]; metricIndex: number }) {
  const [ref, width] = useWidth(800);
  const [hover, setHover] = useState<string | null>(null);
  const height = 300;
  const pad = { top: 34, bottom: 22, left: 46, right: 60 };
  const n = props.axes.length;
  const xAt = (i: number) => pad.left + (n === 1 ? 0.5 : i / (n - 1)) * (width - pad.left - pad.right);
  const yAt = (p: number) => pad.top + (1 - p) * (height - pad.top - pad.bottom);
  const metricAxis = props.axes[props.metricIndex];
  const lines = props.marks.map((m) => {
    let d = "";
    let pen = false;
    props.axes.forEach((a, i) => {
      const p = a.pos(m.values[i]);
      if (p === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${xAt(i).toFixed(1)} ${yAt(p).toFixed(1)}`;
      pen = true;
    });
    const t = metricAxis?.pos(m.values[props.metricIndex]);
    return { m, d, color: t === null || t === undefined ? "#8c959f" : heat(t) };
  });
  const hovered = lines.find((l) => l.m.id === hover);
  return (
    <div ref={ref} class="svgplot" data-testid="parallel">
      <svg width={width} height={height} role="img" aria-label={`Parallel coordinates: ${props.axes.map((a) => a.label).join(", ")}`}>
        <g class="pc-lines" onMouseLeave={() => setHover(null)}>
          {lines.map(({ m, d, color }) => (
            <path
              key={m.id}
              d={d}
              stroke={color}
              stroke-width={m.id === hover ? 3 : m.baseline ? 2.2 : 1.4}
              stroke-opacity={hover && m.id !== hover ? 0.15 : 0.85}
              fill="none"
              class="pc-line"
              data-run={m.id}
              onMouseEnter={() => setHover(m.id)}
            >
              <title>{m.name}</title>
            </path>
          ))}
        </g>
        {props.axes.map((a, i) => (
          <g key={a.label + i} class="pc-axis" transform={`translate(${xAt(i).toFixed(1)} 0)`}>
            <line y1={yAt(1)} y2={yAt(0)} stroke="#57606a" />
            <text y={pad.top - 14} text-anchor="middle" class={i === props.metricIndex ? "pc-label metric" : "pc-label"}>
              {cut(a.label, 18)}
            </text>
            {a.ticks.map((t) => (
              <g key={t.label} transform={`translate(0 ${yAt(t.at).toFixed(1)})`}>
                <line x1={-3} x2={3} stroke="#57606a" />
                <text x={-6} dy="0.32em" text-anchor="end" class="pc-tick">
                  {cut(t.label, 10)}
                </text>
              </g>
            ))}
          </g>
        ))}
      </svg>
      <div class="svgplot-foot tiny muted">
        {hovered ? (
          <span>
            <strong>{hovered.m.name}</strong>:{" "}
            {props.axes.map((a, i) => `${a.label} ${hovered.m.values[i] ?? "–"}`).join(" · ")}
          </span>
        ) : (
          <span>One line per run, coloured by {metricAxis?.label ?? "the metric"} (blue low, red high). Hover a line to read it.</span>
        )}
      </div>
    </div>
  );
}

/** One param (x) against one metric (y): a dot per run, in the run's colour. */
export function Scatter(props: { x: Axis; y: Axis; marks: Array<Mark & { x?: string; y?: string }> }) {
  const [ref, width] = useWidth(500);
  const [hover, setHover] = useState<string | null>(null);
  const height = 300;
  const pad = { top: 14, bottom: 40, left: 64, right: 16 };
  const category = props.x.kind === "category";
  // a margin inside the axes, so the extreme runs are not drawn on them
  const xAt = (p: number) => pad.left + (category ? 0.08 + p * 0.84 : 0.04 + p * 0.92) * (width - pad.left - pad.right);
  const yAt = (p: number) => pad.top + (0.04 + (1 - p) * 0.92) * (height - pad.top - pad.bottom);
  const dots = props.marks.flatMap((m, i) => {
    const px = props.x.pos(m.x);
    const py = props.y.pos(m.y);
    if (px === null || py === null) return [];
    // runs sharing a category spread a little sideways, the same way on every render
    const jitter = category ? (((i * 7919) % 17) / 16 - 0.5) * 18 : 0;
    return [{ m, cx: xAt(px) + jitter, cy: yAt(py) }];
  });
  const hovered = dots.find((d) => d.m.id === hover);
  return (
    <div ref={ref} class="svgplot" data-testid="scatter">
      <svg width={width} height={height} role="img" aria-label={`Scatter of ${props.y.label} against ${props.x.label}`}>
        <line x1={pad.left} x2={width - pad.right} y1={height - pad.bottom} y2={height - pad.bottom} stroke="#d0d7de" />
        <line x1={pad.left} x2={pad.left} y1={pad.top} y2={height - pad.bottom} stroke="#d0d7de" />
        {props.x.ticks.map((t) => (
          <text key={t.label} x={xAt(t.at)} y={height - pad.bottom + 14} text-anchor="middle" class="pc-tick">
            {cut(t.label, 12)}
          </text>
        ))}
        {props.y.ticks.map((t) => (
          <g key={t.label}>
            <line x1={pad.left} x2={width - pad.right} y1={yAt(t.at)} y2={yAt(t.at)} stroke="#eaeef2" />
            <text x={pad.left - 6} y={yAt(t.at)} dy="0.32em" text-anchor="end" class="pc-tick">
              {t.label}
            </text>
          </g>
        ))}
        <text x={(pad.left + width - pad.right) / 2} y={height - 6} text-anchor="middle" class="pc-label">
          {props.x.label}
        </text>
        <text transform={`translate(12 ${(pad.top + height - pad.bottom) / 2}) rotate(-90)`} text-anchor="middle" class="pc-label metric">
          {props.y.label}
        </text>
        <g onMouseLeave={() => setHover(null)}>
          {dots.map(({ m, cx, cy }) => (
            <circle
              key={m.id}
              cx={cx.toFixed(1)}
              cy={cy.toFixed(1)}
              r={m.id === hover ? 7 : 5}
              fill={m.color}
              fill-opacity={0.85}
              stroke={m.baseline ? "#1f2328" : "#fff"}
              stroke-width={m.baseline ? 2 : 1}
              class="sc-dot"
              data-run={m.id}
              onMouseEnter={() => setHover(m.id)}
            >
              <title>{`${m.name}: ${props.x.label} ${m.x}, ${props.y.label} ${m.y}`}</title>
            </circle>
          ))}
        </g>
      </svg>
      <div class="svgplot-foot tiny muted">
        {hovered ? (
          <span>
            <strong>{hovered.m.name}</strong>: {props.x.label} {hovered.m.x} · {props.y.label} {fmtNum(Number(hovered.m.y))}
          </span>
        ) : (
          <span>{dots.length} of {props.marks.length} runs have both values.</span>
        )}
      </div>
    </div>
  );
}
