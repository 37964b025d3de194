import { useMemo, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { rpc, TRACKING } from "../api";
import { colorFor, MetricChart, type XMode } from "../components/chart";
import { Chip, KeyValues, Mono, Show, StatusBadge, useAsync } from "../components/common";
import { fmtDuration, fmtNum, fmtTime, int, num, shortDigest } from "../format";
import type { Experiment, Run } from "../types";

const FIRST_CHARTS = 12;

export function RunPage(props: { runId: string }) {
  const [data] = useAsync(async (signal) => {
    const { run } = await rpc<{ run: Run }>(TRACKING, "GetRun", { runId: props.runId }, signal);
    const exp = await rpc<{ experiment: Experiment }>(
      TRACKING,
      "GetExperiment",
      { experimentId: run.info.experimentId },
      signal,
    ).catch(() => null);
    return { run, experiment: exp?.experiment ?? null };
  }, [props.runId]);
  return (
    <div class="page run-page">
      <Show data={data} what="the run">
        {({ run, experiment }) => <RunView run={run} experiment={experiment} />}
      </Show>
    </div>
  );
}

function RunView(props: { run: Run; experiment: Experiment | null }) {
  const { run } = props;
  const info = run.info;
  const [params, setParams] = useSearchParams();
  const x = (["step", "time", "relative"].includes(params.get("x") ?? "") ? params.get("x") : "step") as XMode;
  const log = params.get("log") === "1";
  const find = params.get("m") ?? "";
  const [showAll, setShowAll] = useState(false);
  const set = (key: string, value: string | null) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        if (value) next.set(key, value);
        else next.delete(key);
        return next;
      },
      { replace: true },
    );

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
          </h1>
        </div>
      </div>
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
              <div class="segmented" role="group" aria-label="x axis">
                {(["step", "time", "relative"] as XMode[]).map((mode) => (
                  <button
                    type="button"
                    key={mode}
                    class={x === mode ? "on" : ""}
                    aria-pressed={x === mode}
                    onClick={() => set("x", mode === "step" ? null : mode)}
                  >
                    {mode === "step" ? "Step" : mode === "time" ? "Time" : "Relative"}
                  </button>
                ))}
              </div>
              <label class="check inline">
                <input type="checkbox" checked={log} onChange={() => set("log", log ? null : "1")} /> Log scale
              </label>
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
                  x={x}
                  log={log}
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
