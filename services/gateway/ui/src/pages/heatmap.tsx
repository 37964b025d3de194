// The per-column drift heat map: columns down, windows across (oldest left), each cell coloured by how
// far the column's test went past its threshold. Cells are buttons: they name the column, window,
// test, score and verdict to a screen reader and in their title, and pick the window below.

import { fmtNum } from "../format";
import type { ColumnDrift } from "../opstypes";

export interface Score {
  /** The number the threshold is compared with: a p-value for ks/chisquare/z, else a distance. */
  value: number;
  label: string;
  /** 0 far from drift, 1 at the threshold, above 1 past it. */
  severity: number;
}

const P_VALUE_TESTS = new Set(["ks", "chisquare", "z"]);

function asNumber(v: number | string | null | undefined): number {
  if (typeof v === "number") return v;
  if (v === "inf" || v === "Infinity") return Infinity;
  const n = Number(v);
  return Number.isFinite(n) ? n : NaN;
}

export function driftScore(t: ColumnDrift): Score {
  const p = asNumber(t.p_value);
  const threshold = t.threshold > 0 ? t.threshold : 0.05;
  if (t.p_value !== null && t.p_value !== undefined && !Number.isNaN(p)) {
    // a p-value: on a log scale, 1 at the threshold, 2 at its square
    const severity = p <= 0 ? 4 : p >= 1 ? 0 : Math.log(p) / Math.log(threshold);
    return { value: p, label: "p-value", severity };
  }
  const stat = asNumber(t.statistic);
  const tests = P_VALUE_TESTS.has(t.stattest) ? "statistic" : "distance";
  return { value: stat, label: tests, severity: Number.isFinite(stat) ? stat / threshold : 4 };
}

function luminance(r: number, g: number, b: number): number {
  const lin = (c: number) => {
    const x = c / 255;
    return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Black or white, whichever contrasts more with the cell (one of them always reaches 4.5:1). */
function ink(r: number, g: number, b: number): string {
  const l = luminance(r, g, b);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

/** Quiet blue-grey below the threshold, warm past it. */
export function heatColour(severity: number, drifted: boolean): { bg: string; fg: string } {
  if (!Number.isFinite(severity)) return { bg: "#eaeef2", fg: "#000000" };
  let rgb: [number, number, number];
  if (!drifted) {
    const t = Math.max(0, Math.min(1, severity));
    // from #f3f6f9 to #f5d98b as it nears the threshold
    const mix = (a: number, b: number) => Math.round(a + (b - a) * t * t);
    rgb = [mix(243, 245), mix(246, 217), mix(249, 139)];
  } else {
    const t = Math.max(0, Math.min(1, (severity - 1) / 3));
    // from #f08c5a just past it to #8e1519 far past it
    const mix = (a: number, b: number) => Math.round(a + (b - a) * t);
    rgb = [mix(240, 142), mix(140, 21), mix(90, 25)];
  }
  return { bg: `rgb(${rgb.join(", ")})`, fg: ink(...rgb) };
}

/** Two significant digits fit a cell; the title and the table below give the whole number. */
function short(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 0.001) return x.toExponential(0);
  return Number(x.toPrecision(2)).toString();
}

export function DriftHeatMap(props: {
  columns: string[];
  drift: Map<number, ColumnDrift[]>;
  chosen: number;
  onChoose: (window: number) => void;
}) {
  const windows = [...props.drift.keys()].sort((a, b) => a - b);
  const cell = (column: string, w: number) => props.drift.get(w)?.find((t) => t.column === column);
  return (
    <div class="heat-scroll">
      <table class="heat" aria-label="Drift by column and window" data-testid="heatmap">
        <thead>
          <tr>
            <th scope="col">Column</th>
            {windows.map((w) => (
              <th scope="col" key={w} class={w === props.chosen ? "chosen" : ""}>
                #{w}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.columns.map((c) => (
            <tr key={c}>
              <th scope="row">{c}</th>
              {windows.map((w) => {
                const t = cell(c, w);
                if (!t) {
                  return (
                    <td key={w} class="heat-none">
                      <span class="sr-only">not tested in window {w}</span>
                    </td>
                  );
                }
                const s = driftScore(t);
                const colour = heatColour(s.severity, t.drifted);
                const shown = short(s.value);
                const exact = fmtNum(s.value);
                const words = `${c}, window ${w}: ${t.stattest} ${s.label} ${shown}${exact !== shown ? ` (${exact})` : ""}, threshold ${fmtNum(t.threshold)}, ${t.drifted ? "drifted" : "no drift"}`;
                return (
                  <td key={w} class={w === props.chosen ? "chosen" : ""}>
                    <button
                      type="button"
                      class={`heat-cell ${t.drifted ? "drifted" : ""}`}
                      style={{ background: colour.bg, color: colour.fg }}
                      title={words}
                      aria-label={words}
                      data-column={c}
                      data-window={w}
                      data-drifted={t.drifted ? "true" : "false"}
                      onClick={() => props.onChoose(w)}
                    >
                      {shown}
                    </button>
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
      <div class="heat-legend muted tiny" aria-hidden="true">
        <span class="heat-swatch sw-calm" /> far from its threshold <span class="heat-swatch sw-near" /> nearing it{" "}
        <span class="heat-swatch sw-past" /> drifted <span class="heat-swatch sw-far" /> far past it · the number: the
        test's p-value or distance
      </div>
    </div>
  );
}
