import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { rpc, TRACKING } from "../api";
import { fmtCount, int } from "../format";
import type { MetricHistory } from "../types";
import { Plot, toXY, type XMode } from "./plot";

export { colorFor, type XMode } from "./plot";

/** Points to ask the server for: about one bucket (which keeps up to 4 points) per pixel column. */
export function pointsFor(width: number): number {
  return Math.max(400, Math.min(4000, Math.round(width * 4)));
}

/** One metric of one run: its history from the server, at most `maxPoints` of it (the server keeps
 * each bucket's first, last, min and max point, so a spike is never averaged away). `version`
 * changes when the run logged more points: the history is asked for again. */
export function MetricChart(props: {
  runId: string;
  metric: string;
  x: XMode;
  log: boolean;
  smoothing: number;
  color: string;
  version?: number;
}) {
  const box = useRef<HTMLElement>(null);
  const [history, setHistory] = useState<MetricHistory | null>(null);
  const [error, setError] = useState<string>("");

  useEffect(() => {
    const ctl = new AbortController();
    const maxPoints = pointsFor(box.current?.clientWidth ?? 600);
    rpc<MetricHistory>(TRACKING, "GetMetricHistory", { runId: props.runId, key: props.metric, maxPoints }, ctl.signal).then(
      (h) => setHistory(h),
      (err: Error) => !ctl.signal.aborted && setError(err.message),
    );
    return () => ctl.abort();
  }, [props.runId, props.metric, props.version ?? 0]);

  const series = useMemo(
    () => (history ? [{ label: props.metric, color: props.color, ...toXY(history, props.x, props.log) }] : null),
    [history, props.x, props.log, props.color],
  );
  const shown = history?.values?.length ?? 0;
  const total = int(history?.totalPoints);

  return (
    <figure class="chart card" data-testid={`chart-${props.metric}`} data-points={total} ref={box}>
      <figcaption>
        <span class="chart-title">{props.metric}</span>
        {history && (
          <span class="muted tiny" title={history.downsampled ? "downsampled on the server: each bucket keeps its first, last, smallest and largest point" : undefined}>
            {history.downsampled
              ? `${fmtCount(shown)} of ${fmtCount(total)} points (min/max kept)`
              : `${fmtCount(total)} point${total === 1 ? "" : "s"}`}
          </span>
        )}
      </figcaption>
      <div class="chart-plot">
        {series && <Plot series={series} x={props.x} log={props.log} smoothing={props.smoothing}/>}
        {!history && !error && <div class="chart-wait muted small">Loading…</div>}
        {error && <div class="field-error small">{error}</div>}
        {history && shown === 0 && <div class="chart-wait muted small">No points</div>}
      </div>
    </figure>
  );
}
