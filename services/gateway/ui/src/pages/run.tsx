import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { rpc, TRACKING } from "../api";
import { colorFor, MetricChart } from "../components/chart";
import { Chip, KeyValues, Mono, Show, StatusBadge, useAsync } from "../components/common";
import { fmtDuration, fmtNum, fmtTime, int, num, shortDigest } from "../format";
import type { Experiment, Run } from "../types";
import { ChartControls, readChartParams } from "./chartparams";
import { runKey, take } from "../prefetch";
import { ArtifactBrowser } from "../components/artifacts";
import { datasetKey, runLinks, type RunLinks } from "./runlinks";
import { LiveBadge, useLive, type LiveEvent, type LiveState } from "../live";

const FIRST_CHARTS = 12;

/** Tags a training script (or an importer) may record the reason of a failure under. */
const FAILURE_TAGS = ["failure_reason", "modelog.failure_reason", "failure", "error", "error_message", "exception"];

const REFRESH_MS = 1000; // a run logging every few milliseconds is read back at most once a second

export function RunPage(props: { runId: string }) {
  // The run first: its charts ask for their histories as soon as it is here; the experiment's name
  // (for the crumbs) comes on the side.
  const [data, reload] = useAsync(
    (signal) =>
      (take<{ run: Run }>(runKey(props.runId)) ?? rpc<{ run: Run }>(TRACKING, "GetRun", { runId: props.runId }, signal)).then(
        (r) => r.run,
      ),
    [props.runId],
  );
  const experimentId = data.state === "ok" ? data.value.info.experimentId ?? "" : "";
  const [experiment] = useAsync(
    (signal) =>
      experimentId
        ? rpc<{ experiment: Experiment }>(TRACKING, "GetExperiment", { experimentId }, signal).then((r) => r.experiment)
        : Promise.resolve(null),
    [experimentId],
  );

  // The run's own stream: its metric batches redraw the charts they touch (the server downsamples
  // the new history), any event reads the run again (summary, status, tags, a new metric's chart).
  const [versions, setVersions] = useState<Record<string, number>>({});
  const touched = useRef(new Set<string>());
  const timer = useRef<number | null>(null);
  const last = useRef(0);
  const refresh = () => {
    timer.current = null;
    last.current = Date.now();
    const keys = [...touched.current];
    touched.current.clear();
    reload();
    if (keys.length) setVersions((v) => Object.fromEntries([...Object.entries(v), ...keys.map((k) => [k, (v[k] ?? 0) + 1])]));
  };
  const onEvents = (events: LiveEvent[]) => {
    for (const e of events) {
      if (e.type === "MetricsLogged") for (const k of (e.payload.keys as string[] | undefined) ?? []) touched.current.add(k);
    }
    if (timer.current === null) timer.current = window.setTimeout(refresh, Math.max(0, last.current + REFRESH_MS - Date.now()));
  };
  useEffect(() => () => {
    if (timer.current !== null) clearTimeout(timer.current);
  }, []);
  const live = useLive({ services: ["tracking"], streams: [`run-${props.runId}`] }, onEvents).state;
  const [links] = useAsync((signal) => runLinks(props.runId, signal), [props.runId]);

  return (
    <div class="page run-page">
      <Show data={data} what="the run">
        {(run) => (
          <RunView
            run={run}
            experiment={experiment.state === "ok" ? experiment.value : null}
            versions={versions}
            live={live}
            links={links.state === "ok" ? links.value : null}
          />
        )}
      </Show>
    </div>
  );
}

function RunView(props: {
  run: Run;
  experiment: Experiment | null;
  versions: Record<string, number>;
  live: LiveState;
  links: RunLinks | null;
}) {
  const { run } = props;
  const info = run.info;
  const [params, setParams] = useSearchParams();
  const chart = readChartParams(params);
  const find = params.get("m") ?? "";
  const [showAll, setShowAll] = useState(false);
  const setMany = (changes: Record<string, string | null>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v) next.set(k, v);
          else next.delete(k);
        }
        return next;
      },
      { replace: true },
    );
  const set = (key: string, value: string | null) => setMany({ [key]: value });

  const metrics = useMemo(() => {
    const all = [...(run.metrics ?? [])];
    // training curves first, the sampler's system/... metrics after them
    all.sort((a, b) => Number(a.key.startsWith("system/")) - Number(b.key.startsWith("system/")) || a.key.localeCompare(b.key));
    return all;
  }, [run]);
  const needle = find.trim().toLowerCase();
  const chartable = metrics.filter((m) => !needle || m.key.toLowerCase().includes(needle));
  const charts = showAll ? chartable : chartable.slice(0, FIRST_CHARTS);

  const start = int(info.startTimeMs);
  const end = int(info.endTimeMs);
  const tags = Object.entries(run.tags ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const source = info.source ?? {};
  const failure = info.status === "RUN_STATUS_FAILED" ? FAILURE_TAGS.map((k) => run.tags?.[k]).find((v) => v) : undefined;
  const produced = (props.links?.produced ?? []).filter((v) => v.name !== `run-${info.runId}`);

  return (
    <>
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/experiments">Experiments</Link> /{" "}
            <Link href={`/experiments/${encodeURIComponent(info.experimentId ?? "")}`}>
              {props.experiment?.name ?? info.experimentId}
            </Link>{" "}
            /
          </div>
          <h1 class="run-title">
            {info.name || info.runId} <StatusBadge status={info.status} />
            {info.deleted && <Chip kind="warn">deleted</Chip>}
            {info.status === "RUN_STATUS_RUNNING" && <LiveBadge state={props.live} what="its metrics" />}
          </h1>
        </div>
      </div>
      {info.status === "RUN_STATUS_FAILED" && (
        <div class="failure" role="status" data-testid="failure">
          <strong>This run failed</strong>
          {failure ? <pre class="failure-reason">{failure}</pre> : <span class="muted small"> and recorded no reason (a tag such as failure_reason).</span>}
        </div>
      )}
      <dl class="facts card" aria-label="Run">
        <div>
          <dt>Run id</dt>
          <dd>
            <Mono text={info.runId} />
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{fmtTime(start)}</dd>
        </div>
        <div>
          <dt>{end ? "Ended" : "Running for"}</dt>
          <dd>{end ? fmtTime(end) : fmtDuration(Date.now() - start)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{start ? fmtDuration((end || Date.now()) - start) : ""}</dd>
        </div>
        {source.user && (
          <div>
            <dt>User</dt>
            <dd>{source.user}</dd>
          </div>
        )}
        {source.host && (
          <div>
            <dt>Host</dt>
            <dd>{source.host}</dd>
          </div>
        )}
        {source.gitCommit && (
          <div>
            <dt>Git commit</dt>
            <dd>
              <Mono text={source.gitCommit} max={12} />
            </dd>
          </div>
        )}
        {source.entryPoint && (
          <div>
            <dt>Entry point</dt>
            <dd>
              <Mono text={source.entryPoint} max={40} />
            </dd>
          </div>
        )}
        {info.parentRunId && (
          <div>
            <dt>Parent run</dt>
            <dd>
              <Link href={`/runs/${encodeURIComponent(info.parentRunId)}`}>{info.parentRunId.slice(0, 12)}</Link>
            </dd>
          </div>
        )}
      </dl>

      <div class="run-layout">
        <section class="run-charts" aria-label="Metric charts">
          <div class="section-head">
            <h2>
              Metrics <span class="muted">({metrics.length})</span>
            </h2>
            <div class="toolbar">
              <input
                type="search"
                class="search small"
                placeholder="Find a metric…"
                aria-label="Find a metric"
                value={find}
                onInput={(e) => set("m", (e.target as HTMLInputElement).value)}
              />
              <ChartControls params={chart} set={setMany} />
            </div>
          </div>
          {metrics.length === 0 ? (
            <div class="empty">This run has logged no metrics.</div>
          ) : (
            <div class="chart-grid">
              {charts.map((m) => (
                <MetricChart
                  key={m.key}
                  runId={info.runId}
                  metric={m.key}
                  x={chart.x}
                  log={chart.log}
                  smoothing={chart.smoothing}
                  version={props.versions[m.key] ?? 0}
                  color={colorFor(metrics.indexOf(m))}
                />
              ))}
            </div>
          )}
          {chartable.length > charts.length && (
            <button type="button" class="btn" onClick={() => setShowAll(true)}>
              Show all {chartable.length} charts
            </button>
          )}
          <section class="card run-artifacts" aria-label="Artifacts">
            <h2>Artifacts</h2>
            <ArtifactBrowser
              name={`run-${info.runId}`}
              version={int(params.get("art") ?? "")}
              path={params.get("file") ?? ""}
              onChange={(v, path) => setMany({ art: v ? String(v) : null, file: path || null })}
              empty="This run has logged no files of its own."
            />
            {(produced.length > 0 || (props.links?.models.length ?? 0) > 0) && (
              <div class="produced small">
                {produced.length > 0 && (
                  <div>
                    Produced{" "}
                    {produced.map((v) => (
                      <Link key={`${v.name}:${v.version}`} href={`/artifacts/${encodeURIComponent(v.name)}?v=${v.version}`} className="chip">
                        {v.name}:v{v.version}
                      </Link>
                    ))}
                  </div>
                )}
                {(props.links?.models.length ?? 0) > 0 && (
                  <div>
                    Trained{" "}
                    {props.links!.models.map((v) => (
                      <Link key={`${v.name}/${v.version}`} href={`/models/${encodeURIComponent(v.name)}`} className="chip">
                        {v.name} v{v.version}
                      </Link>
                    ))}
                  </div>
                )}
              </div>
            )}
          </section>
        </section>

        <aside class="run-side">
          <section class="card">
            <h2>
              Parameters <span class="muted">({Object.keys(run.params ?? {}).length})</span>
            </h2>
            <KeyValues
              label="Parameters"
              empty="No parameters."
              entries={Object.entries(run.params ?? {})
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([k, v]) => [k, <Mono text={v} max={60} />])}
            />
          </section>
          <section class="card">
            <h2>Metric summary</h2>
            {metrics.length === 0 ? (
              <p class="muted small">None.</p>
            ) : (
              <table class="kv metric-summary" aria-label="Metric summary">
                <thead>
                  <tr>
                    <th>key</th>
                    <th class="num">last</th>
                    <th class="num">min</th>
                    <th class="num">max</th>
                    <th class="num">points</th>
                  </tr>
                </thead>
                <tbody>
                  {metrics.map((m) => (
                    <tr key={m.key}>
                      <th scope="row">{m.key}</th>
                      <td class="num" title={`step ${int(m.lastStep)}`}>
                        {fmtNum(num(m.last))}
                      </td>
                      <td class="num">{fmtNum(num(m.min))}</td>
                      <td class="num">{fmtNum(num(m.max))}</td>
                      <td class="num">{int(m.count).toLocaleString("en-US")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section class="card">
            <h2>
              Dataset inputs <span class="muted">({run.datasets?.length ?? 0})</span>
            </h2>
            {(run.datasets ?? []).length === 0 ? (
              <p class="muted small">No dataset inputs.</p>
            ) : (
              <ul class="datasets">
                {(run.datasets ?? []).map((d) => (
                  <li key={`${d.name}-${d.digest}-${d.context}`}>
                    <div>
                      <strong>{d.name}</strong> {d.context && <Chip>{d.context}</Chip>}
                    </div>
                    <div class="muted tiny">
                      <code title={d.digest}>{shortDigest(d.digest)}</code>
                      {d.sourceType && <> · {d.sourceType}</>}
                      {d.source && <> · <Mono text={d.source} max={48} /></>}
                    </div>
                    {(props.links?.datasets.get(datasetKey(d.digest ?? "")) ?? []).map((v) => (
                      <div key={`${v.name}:${v.version}`} class="tiny dataset-link">
                        content of{" "}
                        <Link href={`/datasets/${encodeURIComponent(v.name)}?v=${v.version}`}>
                          {v.name}:v{v.version}
                        </Link>
                      </div>
                    ))}
                  </li>
                ))}
              </ul>
            )}
          </section>
          <section class="card">
            <h2>
              Tags <span class="muted">({tags.length})</span>
            </h2>
            <KeyValues label="Tags" empty="No tags." entries={tags.map(([k, v]) => [k, <Mono text={v} max={60} />])} />
          </section>
        </aside>
      </div>
    </>
  );
}
