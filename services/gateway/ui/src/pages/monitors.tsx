// Production monitors: the list, and one monitor's windows, per-column drift heat map, alerts and
// the HTML drift report (as a download: it carries its own inline styles, which the app's CSP
// would refuse to render inside the page).

import { useMemo, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { MONITORING, rpc } from "../api";
import { Chip, ErrorBox, KeyValues, Show, useAsync } from "../components/common";
import { saveFile } from "../download";
import { fmtAgo, fmtNum, fmtTimestamp, int } from "../format";
import type { ColumnDrift, Monitor, MonitorAlert, MonitorWindow } from "../opstypes";
import { DriftHeatMap, driftScore } from "./heatmap";

const HEAT_WINDOWS = 40;

export function Monitors() {
  const [data] = useAsync(
    (signal) => rpc<{ monitors?: Monitor[] }>(MONITORING, "ListMonitors", {}, signal).then((r) => r.monitors ?? []),
    [],
  );
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <h1>Monitors</h1>
          <p class="lede">Deployed model versions watched for data drift and performance, window by window.</p>
        </div>
      </div>
      <Show data={data} what="monitors">
        {(all) =>
          all.length === 0 ? (
            <div class="empty">No monitor yet: create one with <code>modelog.monitors.create(…)</code>.</div>
          ) : (
            <table class="grid-table" aria-label="Monitors">
              <thead>
                <tr>
                  <th>Monitor</th>
                  <th>Model</th>
                  <th>Deployment</th>
                  <th class="num">Windows</th>
                  <th class="num">Open window</th>
                  <th>Alerts</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {all.map((m) => (
                  <tr key={m.name}>
                    <td>
                      <Link href={`/monitors/${encodeURIComponent(m.name)}`} className="strong">
                        {m.name}
                      </Link>
                    </td>
                    <td>
                      <Link href={`/models/${encodeURIComponent(m.model ?? "")}`}>{m.modelRef || m.model}</Link>
                      <span class="muted tiny"> v{int(m.modelVersion)}</span>
                    </td>
                    <td>{m.deployment || <span class="muted">—</span>}</td>
                    <td class="num">{int(m.windowsClosed)}</td>
                    <td class="num">{int(m.openWindowRows).toLocaleString("en-US")} rows</td>
                    <td>
                      {int(m.openAlerts) > 0 ? (
                        <span class="badge bad">{int(m.openAlerts)} open</span>
                      ) : (
                        <span class="badge ok">none open</span>
                      )}
                    </td>
                    <td title={fmtTimestamp(m.createdAt)}>
                      {fmtAgo(Date.parse(m.createdAt ?? ""))} <span class="muted">by {m.createdBy}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
    </div>
  );
}

interface Detail {
  monitor: Monitor;
  windows: MonitorWindow[];
  /** Window number -> its columns' drift tests, for the profiled windows of the heat map. */
  drift: Map<number, ColumnDrift[]>;
  alerts: MonitorAlert[];
}

function parseDrift(text: string | undefined): ColumnDrift[] {
  try {
    return ((JSON.parse(text || "{}") as { columns?: ColumnDrift[] }).columns ?? []).filter((c) => c && c.column);
  } catch {
    return [];
  }
}

async function loadDetail(name: string, signal: AbortSignal): Promise<Detail> {
  const [monitor, windows, alerts] = await Promise.all([
    rpc<{ monitor: Monitor }>(MONITORING, "GetMonitor", { name }, signal).then((r) => r.monitor),
    rpc<{ windows?: MonitorWindow[] }>(MONITORING, "ListWindows", { monitor: name, limit: 1000 }, signal).then(
      (r) => r.windows ?? [],
    ),
    rpc<{ alerts?: MonitorAlert[] }>(MONITORING, "ListAlerts", { monitor: name }, signal).then((r) => r.alerts ?? []),
  ]);
  // the list leaves each window's drift result out: ask for the newest profiled ones in full
  const profiled = windows.filter((w) => w.status === "profiled").slice(0, HEAT_WINDOWS);
  const full = await Promise.all(
    profiled.map((w) =>
      rpc<{ window: MonitorWindow }>(MONITORING, "GetWindow", { monitor: name, window: w.window }, signal).then(
        (r) => r.window,
      ),
    ),
  );
  const drift = new Map(full.map((w) => [int(w.window), parseDrift(w.driftJson)]));
  return { monitor, windows, drift, alerts };
}

export function MonitorPage(props: { name: string }) {
  const [params, setParams] = useSearchParams();
  const [data] = useAsync((signal) => loadDetail(props.name, signal), [props.name]);
  const chosen = int(params.get("w") ?? "");
  const choose = (w: number) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        next.set("w", String(w));
        return next;
      },
      { replace: true },
    );
  return (
    <div class="page monitor-page">
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/monitors">Monitors</Link> /
          </div>
          <h1>{props.name}</h1>
        </div>
      </div>
      <Show data={data} what="the monitor">
        {(d) => <MonitorView detail={d} chosen={chosen} onChoose={choose} />}
      </Show>
    </div>
  );
}

function MonitorView(props: { detail: Detail; chosen: number; onChoose: (w: number) => void }) {
  const { monitor, windows, drift, alerts } = props.detail;
  const newest = windows.find((w) => w.status === "profiled");
  const chosen = props.chosen || int(newest?.window);
  const columns = useMemo(() => {
    const names = (monitor.spec?.columns ?? []).map((c) => c.name);
    for (const tests of drift.values()) for (const t of tests) if (!names.includes(t.column)) names.push(t.column);
    return names;
  }, [monitor, drift]);
  const open = alerts.filter((a) => a.status === "open");
  return (
    <>
      <div class="summary-strip">
        <div class="card stat">
          <div class="stat-label">Watches</div>
          <div class="stat-value">
            <Link href={`/models/${encodeURIComponent(monitor.model ?? "")}`}>{monitor.modelRef}</Link>{" "}
            <span class="muted small">(version {int(monitor.modelVersion)})</span>
          </div>
        </div>
        <div class="card stat">
          <div class="stat-label">Windows closed</div>
          <div class="stat-value">{int(monitor.windowsClosed)}</div>
        </div>
        <div class="card stat">
          <div class="stat-label">Open window</div>
          <div class="stat-value">
            #{int(monitor.openWindow)} · {int(monitor.openWindowRows).toLocaleString("en-US")} rows
          </div>
        </div>
        <div class="card stat">
          <div class="stat-label">Open alerts</div>
          <div class="stat-value">{open.length}</div>
        </div>
        <div class="card stat">
          <div class="stat-label">Baseline</div>
          <div class="stat-value">
            {monitor.baseline?.reference || "uploaded rows"} · {int(monitor.baseline?.rows).toLocaleString("en-US")} rows
          </div>
        </div>
      </div>
      <section class="card" aria-labelledby="heat-title">
        <div class="section-head">
          <h2 id="heat-title">Drift by column over time</h2>
          <span class="muted small">
            each cell: a column's test in one window against the baseline; red where it drifted (newest {Math.min(HEAT_WINDOWS, drift.size)} profiled windows)
          </span>
        </div>
        {drift.size === 0 ? (
          <p class="muted small">No window has been profiled yet.</p>
        ) : (
          <DriftHeatMap columns={columns} drift={drift} chosen={chosen} onChoose={props.onChoose} />
        )}
      </section>
      <div class="monitor-grid">
        <section class="card" aria-labelledby="window-title">
          <WindowDetail monitor={monitor.name} window={windows.find((w) => int(w.window) === chosen)} tests={drift.get(chosen)} />
        </section>
        <section class="card" aria-labelledby="alerts-title">
          <h2 id="alerts-title">
            Alerts <span class="muted">({alerts.length})</span>
          </h2>
          {alerts.length === 0 ? (
            <p class="muted small">No alert raised.</p>
          ) : (
            <ul class="alerts" aria-label="Alerts">
              {alerts.map((a) => (
                <li key={a.alertId} class={`alert alert-${a.status}`}>
                  <div>
                    <span class={`badge ${a.status === "open" ? "bad" : "ok"}`}>{a.status}</span> <Chip>{a.kind}</Chip>{" "}
                    <button type="button" class="linkish" onClick={() => props.onChoose(int(a.window))}>
                      window {int(a.window)}
                    </button>
                    {a.retrainRequested && <Chip kind="warn">retraining requested</Chip>}
                  </div>
                  <div class="small">{a.message}</div>
                  <div class="muted tiny">
                    raised {fmtTimestamp(a.raisedAt)}
                    {a.resolvedBy && (
                      <>
                        {" "}
                        · resolved by {a.resolvedBy} {a.resolution && <>: “{a.resolution}”</>}
                      </>
                    )}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      <section class="card" aria-labelledby="windows-title">
        <h2 id="windows-title">
          Windows <span class="muted">({windows.length})</span>
        </h2>
        <table class="grid-table" aria-label="Windows">
          <thead>
            <tr>
              <th class="num">Window</th>
              <th>Status</th>
              <th class="num">Rows</th>
              <th class="num">Labelled</th>
              <th>Dataset drift</th>
              <th>Drifted columns</th>
              <th>Performance</th>
              <th>Closed</th>
            </tr>
          </thead>
          <tbody>
            {windows.map((w) => (
              <tr key={int(w.window)} class={int(w.window) === chosen ? "chosen" : ""}>
                <td class="num">
                  <button type="button" class="linkish" onClick={() => props.onChoose(int(w.window))}>
                    #{int(w.window)}
                  </button>
                </td>
                <td>{w.status}</td>
                <td class="num">{int(w.rows).toLocaleString("en-US")}</td>
                <td class="num">{int(w.labelledRows).toLocaleString("en-US")}</td>
                <td>
                  {w.status !== "profiled" ? (
                    <span class="muted">—</span>
                  ) : w.datasetDrift ? (
                    <span class="badge bad">drift · {Math.round((w.driftShare ?? 0) * 100)}%</span>
                  ) : (
                    <span class="badge ok">none · {Math.round((w.driftShare ?? 0) * 100)}%</span>
                  )}
                </td>
                <td class="small">{(w.driftedColumns ?? []).join(", ")}</td>
                <td class="small mono">
                  {Object.entries(w.performance ?? {})
                    .map(([k, v]) => `${k} ${fmtNum(v)}`)
                    .join(" · ")}
                </td>
                <td class="nowrap" title={fmtTimestamp(w.closedAt)}>
                  {w.closedAt ? fmtAgo(Date.parse(w.closedAt)) : ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </>
  );
}

function WindowDetail(props: { monitor: string; window: MonitorWindow | undefined; tests: ColumnDrift[] | undefined }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const w = props.window;
  if (!w) return <h2 id="window-title">No window chosen</h2>;
  const n = int(w.window);
  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await rpc<{ html?: string; window?: string }>(MONITORING, "GetReport", { monitor: props.monitor, window: n });
      saveFile(`${props.monitor}-window-${int(r.window) || n}.html`, [r.html ?? ""], "text/html");
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <div class="section-head">
        <h2 id="window-title">Window {n}</h2>
        <button type="button" class="btn" onClick={download} disabled={busy || w.status !== "profiled"} data-testid="report">
          {busy ? "Preparing…" : "Download the drift report"}
        </button>
      </div>
      {error && <ErrorBox error={error} title="Could not get the report" />}
      <KeyValues
        label="Window"
        empty=""
        entries={[
          ["rows", int(w.rows).toLocaleString("en-US")],
          ["opened", fmtTimestamp(w.openedAt)],
          ["closed", fmtTimestamp(w.closedAt)],
          ["verdict", w.datasetDrift ? "dataset drift" : "no dataset drift"],
        ]}
      />
      {props.tests && props.tests.length > 0 && (
        <table class="grid-table" aria-label={`Column tests of window ${n}`}>
          <thead>
            <tr>
              <th>Column</th>
              <th>Test</th>
              <th class="num">Score</th>
              <th class="num">Threshold</th>
              <th>Drifted</th>
            </tr>
          </thead>
          <tbody>
            {props.tests.map((t) => {
              const s = driftScore(t);
              return (
                <tr key={t.column}>
                  <td class="strong">{t.column}</td>
                  <td>
                    {t.stattest} <span class="muted tiny">{s.label}</span>
                  </td>
                  <td class="num">{fmtNum(s.value)}</td>
                  <td class="num">{fmtNum(t.threshold)}</td>
                  <td>{t.drifted ? <span class="badge bad">yes</span> : <span class="badge ok">no</span>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </>
  );
}
