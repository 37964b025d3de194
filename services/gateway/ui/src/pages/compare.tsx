import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { rpc, TRACKING } from "../api";
import { Show, useAsync } from "../components/common";
import { colorFor, loadUPlot, Plot, toXY, type Hover, type PlotSeries, type XMode } from "../components/plot";
import { fmtNum } from "../format";
import type { CompareRunsResponse, Experiment, GetMetricHistoriesResponse, MetricHistory, RunInfo } from "../types";
import { Relations } from "./comparerelations";
import { DiffTable, type RunCol } from "./comparetable";
import { ChartControls, readChartParams } from "./chartparams";
import { MAX_COMPARE } from "./selection";

const FIRST_CHARTS = 10;
/** Points per run and metric: with tens of lines on one chart, a few hundred each show every shape
 * (the server keeps each bucket's min and max) and keep 50 x 10 histories small. */
const COMPARE_POINTS = 400;

interface Compared {
  runs: RunInfo[];
  data: CompareRunsResponse;
  /** Histories asked for as soon as the comparison came, before anything rendered. */
  histories: Histories;
}

type Histories = Map<string, Promise<MetricHistory | null>>;

function historyKey(runId: string, metric: string): string {
  return `${runId}\u0000${metric}`;
}

function chartOrder(metrics: CompareRunsResponse["metrics"]): NonNullable<CompareRunsResponse["metrics"]> {
  // training curves first, the sampler's system/... metrics after them
  return [...(metrics ?? [])].sort(
    (a, b) => Number(a.key.startsWith("system/")) - Number(b.key.startsWith("system/")) || a.key.localeCompare(b.key),
  );
}

/** The server answers at most this many (run, key) histories in one GetMetricHistories call. */
const MAX_HISTORIES = 1000;

/** The histories of `metrics` for `runIds`, asked for in as few GetMetricHistories calls as the
 * server's cap allows (one for 50 runs x 10 metrics); pairs already asked for are not asked again. */
function fetchHistories(histories: Histories, runIds: string[], metrics: string[], signal: AbortSignal): void {
  const keys = metrics.filter((m) => runIds.some((r) => !histories.has(historyKey(r, m))));
  if (!runIds.length || !keys.length) return;
  const perCall = Math.max(1, Math.floor(MAX_HISTORIES / keys.length));
  for (let i = 0; i < runIds.length; i += perCall) {
    const ids = runIds.slice(i, i + perCall);
    const reply = rpc<GetMetricHistoriesResponse>(TRACKING, "GetMetricHistories", { runIds: ids, keys, maxPoints: COMPARE_POINTS }, signal).then(
      (r) => new Map((r.histories ?? []).map((h) => [historyKey(h.runId ?? "", h.key ?? ""), h as MetricHistory])),
      () => new Map<string, MetricHistory>(),
    );
    for (const r of ids) {
      for (const m of keys) {
        const key = historyKey(r, m);
        if (!histories.has(key)) histories.set(key, reply.then((got) => got.get(key) ?? null));
      }
    }
  }
}

function historiesOf(histories: Histories, runIds: string[], metric: string, signal: AbortSignal): Promise<Array<MetricHistory | null>> {
  fetchHistories(histories, runIds, [metric], signal);
  return Promise.all(runIds.map((r) => histories.get(historyKey(r, metric))!));
}

export function Compare() {
  const [params] = useSearchParams();
  const ids = useMemo(
    () => [...new Set((params.get("runs") ?? "").split(",").map((s) => s.trim()).filter(Boolean))].slice(0, MAX_COMPARE),
    [params.get("runs")],
  );
  const [data] = useAsync(async (signal): Promise<Compared> => {
    void loadUPlot(); // the chart library downloads while the comparison and histories are asked for
    const res = await rpc<CompareRunsResponse>(TRACKING, "CompareRuns", { runIds: ids }, signal);
    const runs = res.runs ?? [];
    // Every history the first charts show, in one batched call sent now rather than after the
    // page has rendered (a run that lacks a metric gets an empty history back).
    const histories: Histories = new Map();
    const first = chartOrder(res.metrics).slice(0, FIRST_CHARTS).map((m) => m.key);
    fetchHistories(histories, runs.map((r) => r.runId), first, signal);
    return { runs, data: res, histories };
  }, [ids.join(",")]);

  useEffect(() => {
    performance.mark("compare-start");
  }, []);
  if (ids.length === 0) {
    return (
      <div class="page">
        <h1>Compare runs</h1>
        <p class="muted">Pick runs in an experiment's runs table (their boxes, or Space on a row), then Compare.</p>
      </div>
    );
  }
  return (
    <div class="page compare-page">
      <Show data={data} what={`${ids.length} runs`}>
        {(d) => <CompareView {...d} />}
      </Show>
    </div>
  );
}


function CompareView(props: Compared) {
  const [params, setParams] = useSearchParams();
  const set = (changes: Record<string, string | null>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v === null || v === "") next.delete(k);
          else next.set(k, v);
        }
        return next;
      },
      { replace: true },
    );
  const runs: RunCol[] = props.runs.map((r, i) => ({ id: r.runId, name: r.name || r.runId.slice(0, 8), color: colorFor(i), index: i }));
  const baseId = runs.some((r) => r.id === params.get("base")) ? params.get("base")! : runs[0]?.id;
  const base = runs.find((r) => r.id === baseId)!;
  const showAll = params.get("all") === "1";
  const chart = readChartParams(params);
  const metrics = useMemo(() => chartOrder(props.data.metrics), [props.data]);
  const expId = props.runs[0]?.experimentId ?? "";
  const [experiment] = useAsync(
    (signal) =>
      expId
        ? rpc<{ experiment: Experiment }>(TRACKING, "GetExperiment", { experimentId: expId }, signal).then((r) => r.experiment)
        : Promise.resolve(null),
    [expId],
  );
  const expName = experiment.state === "ok" ? experiment.value?.name : undefined;
  const [allCharts, setAllCharts] = useState(false);
  const charts = allCharts ? metrics : metrics.slice(0, FIRST_CHARTS);

  // every chart drawn: the moment the comparison is on screen (the browser test reads this mark)
  const drawn = useRef(new Set<string>());
  const [done, setDone] = useState(false);
  const finish = () => {
    if (drawn.current.has("")) return;
    drawn.current.add("");
    performance.mark("compare-drawn");
    setDone(true);
  };
  const onDrawn = (key: string) => {
    drawn.current.add(key);
    if (charts.every((m) => drawn.current.has(m.key))) finish();
  };
  useEffect(() => {
    if (charts.length === 0) finish();
  }, []);

  const remove = (id: string) => {
    const left = runs.filter((r) => r.id !== id).map((r) => r.id);
    set({ runs: left.join(","), base: id === baseId ? null : params.get("base") });
  };

  return (
    <div data-drawn={done ? "1" : undefined} data-testid="compare-root">
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/experiments">Experiments</Link> /{" "}
            {expId && <Link href={`/experiments/${encodeURIComponent(expId)}`}>{expName ?? expId}</Link>} /
          </div>
          <h1>Comparing {runs.length} runs</h1>
        </div>
        <div class="toolbar">
          <label class="inline-label" for="baseline">
            Baseline
          </label>
          <select id="baseline" value={baseId} onChange={(e) => set({ base: (e.target as HTMLSelectElement).value })} data-testid="baseline">
            {runs.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </div>
      </div>

      <ul class="run-legend" aria-label="Compared runs">
        {runs.map((r) => (
          <li key={r.id} class={r.id === baseId ? "base" : ""}>
            <span class="swatch" style={{ background: r.color }} aria-hidden="true" />
            <Link href={`/runs/${encodeURIComponent(r.id)}`} title={r.id}>
              {r.name}
            </Link>
            {r.id === baseId && <span class="tiny muted"> baseline</span>}
            {runs.length > 2 && (
              <button type="button" class="linkish remove" aria-label={`Remove ${r.name} from the comparison`} onClick={() => remove(r.id)}>
                ×
              </button>
            )}
          </li>
        ))}
      </ul>

      <DiffTable data={props.data} runs={runs} base={base} showAll={showAll} onShowAll={(v) => set({ all: v ? "1" : null })} onBase={(id) => set({ base: id })} />

      <section class="compare-charts" aria-label="Metric charts">
        <div class="section-head">
          <h2>
            Metrics <span class="muted">({metrics.length})</span>
          </h2>
          <ChartControls params={chart} set={set} modes={["step", "relative"]} />
        </div>
        {metrics.length === 0 ? (
          <div class="empty">These runs have logged no metrics.</div>
        ) : (
          <div class="chart-grid">
            {charts.map((m) => (
              <OverlayChart
                key={m.key}
                metric={m.key}
                histories={props.histories}
                runs={runs.filter((r) => m.values?.[r.index]?.present)}
                baseId={baseId}
                x={chart.x === "time" ? "relative" : chart.x}
                log={chart.log}
                smoothing={chart.smoothing}
                onDrawn={() => onDrawn(m.key)}
              />
            ))}
          </div>
        )}
        {metrics.length > charts.length && (
          <button type="button" class="btn" onClick={() => setAllCharts(true)}>
            Show all {metrics.length} charts
          </button>
        )}
      </section>

      <Relations data={props.data} runs={runs} baseId={baseId} metrics={metrics.map((m) => m.key)} params={params} set={set} />
    </div>
  );
}

// ---------------------------------------------------------------- overlaid charts

function OverlayChart(props: {
  metric: string;
  histories: Histories;
  runs: RunCol[];
  baseId: string;
  x: XMode;
  log: boolean;
  smoothing: number;
  onDrawn: () => void;
}) {
  const [histories, setHistories] = useState<Array<MetricHistory | null> | null>(null);
  const [hover, setHover] = useState<Hover | null>(null);
  const ids = props.runs.map((r) => r.id).join(",");
  useEffect(() => {
    const ctl = new AbortController();
    historiesOf(props.histories, props.runs.map((r) => r.id), props.metric, ctl.signal).then(
      (hs) => !ctl.signal.aborted && setHistories(hs),
    );
    return () => ctl.abort();
  }, [ids, props.metric]);

  const series = useMemo((): PlotSeries[] | null => {
    if (!histories) return null;
    return props.runs.flatMap((r, i) => {
      const h = histories[i];
      if (!h) return [];
      return [{ label: r.name, color: r.color, width: r.id === props.baseId ? 2.6 : 1.3, ...toXY(h, props.x, props.log) }];
    });
  }, [histories, props.x, props.log, props.baseId]);

  return (
    <figure class="chart card" data-testid={`overlay-${props.metric}`} data-series={series?.length ?? 0}>
      <figcaption>
        <span class="chart-title">{props.metric}</span>
        <span class="muted tiny readout">
          {hover
            ? `${hover.label}: ${fmtNum(hover.y)} at ${props.x === "step" ? "step " : ""}${fmtNum(hover.x)}${props.x === "step" ? "" : " s"}`
            : `${props.runs.length} run${props.runs.length === 1 ? "" : "s"}`}
        </span>
      </figcaption>
      <div class="chart-plot">
        {series && (
          <Plot series={series} x={props.x} log={props.log} smoothing={props.smoothing} legend={false} onHover={setHover} onDrawn={props.onDrawn} />
        )}
        {!series && <div class="chart-wait muted small">Loading {props.runs.length} histories…</div>}
      </div>
    </figure>
  );
}

