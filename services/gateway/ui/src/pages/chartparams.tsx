// The chart controls of the run and compare pages, kept in the URL: `x` (step, time, relative),
// `log=1`, `smooth` (0 to 0.99, TensorBoard's weight).

import type { XMode } from "../components/plot";

export interface ChartParams {
  x: XMode;
  log: boolean;
  smoothing: number;
}

export function readChartParams(params: URLSearchParams): ChartParams {
  const x = params.get("x");
  const smoothing = Number(params.get("smooth") ?? "0");
  return {
    x: x === "time" || x === "relative" ? x : "step",
    log: params.get("log") === "1",
    smoothing: Number.isFinite(smoothing) ? Math.max(0, Math.min(0.99, smoothing)) : 0,
  };
}

const LABEL: Record<XMode, string> = { step: "Step", time: "Time", relative: "Relative" };

export function ChartControls(props: {
  params: ChartParams;
  set: (changes: Record<string, string | null>) => void;
  modes?: XMode[];
}) {
  const modes = props.modes ?? (["step", "time", "relative"] as XMode[]);
  const x = modes.includes(props.params.x) ? props.params.x : modes[0];
  const smoothing = props.params.smoothing;
  return (
    <div class="toolbar chart-controls">
      <div class="segmented" role="group" aria-label="x axis">
        {modes.map((mode) => (
          <button
            type="button"
            key={mode}
            class={x === mode ? "on" : ""}
            aria-pressed={x === mode}
            onClick={() => props.set({ x: mode === "step" ? null : mode })}
          >
            {LABEL[mode]}
          </button>
        ))}
      </div>
      <label class="check inline">
        <input type="checkbox" checked={props.params.log} onChange={() => props.set({ log: props.params.log ? null : "1" })} /> Log
        scale
      </label>
      <label class="smoothing">
        <span>Smoothing</span>
        <input
          type="range"
          min="0"
          max="0.99"
          step="0.01"
          value={smoothing}
          aria-label="Smoothing"
          aria-valuetext={smoothing ? smoothing.toFixed(2) : "off"}
          onInput={(e) => {
            const v = Number((e.target as HTMLInputElement).value);
            props.set({ smooth: v > 0 ? v.toFixed(2) : null });
          }}
          data-testid="smoothing"
        />
        <output class="tiny mono">{smoothing ? smoothing.toFixed(2) : "off"}</output>
      </label>
    </div>
  );
}
