// The runs table, live: runs that start in this experiment take their place in it, and loaded runs
// that change (metrics, status, params, tags, name) are read again, all without a reload.
//
// Two subscriptions: the runs' lifecycle events of the whole tracking log (small, and the only way to
// hear of a new run), and the metric batches of the loaded runs that are still running (by stream
// id), so a bulk import elsewhere never floods the page.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { rpc, TRACKING } from "../api";
import { runOf, useLive, type LiveEvent, type LiveFilter, type LiveState } from "../live";
import type { Run } from "../types";
import { compareRuns, type Sort } from "./columns";

const LIFECYCLE: LiveFilter = {
  services: ["tracking"],
  types: ["RunStarted", "RunFinished", "RunRenamed", "ParamsLogged", "TagsSet", "TagDeleted", "RunDeleted", "RunRestored", "DatasetInputLogged"],
};
const MAX_FOLLOWED = 200; // running runs whose metric batches the table follows
const SETTLE_MS = 300; // events that come together are read back in one call
const FRESH_MS = 4000;
const CHUNK = 100;

function searchOf(o: { filter: string; view: string; sort: Sort | null }): string {
  return `${o.filter}\u0000${o.view}\u0000${o.sort ? `${o.sort.key} ${o.sort.desc}` : ""}`;
}

export function useLiveRuns(opts: {
  experimentId: string;
  filter: string;
  sort: Sort | null;
  view: string;
  runs: Run[];
  hasMore: boolean;
  ready: boolean;
  apply: (update: (runs: Run[]) => Run[]) => void;
}): { state: LiveState; fresh: Set<string> } {
  const latest = useRef(opts);
  latest.current = opts;
  const added = useRef(new Set<string>());
  const changed = useRef(new Set<string>());
  const timer = useRef<number | null>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());

  const flush = async () => {
    timer.current = null;
    const o = latest.current;
    if (!o.ready) {
      timer.current = window.setTimeout(flush, SETTLE_MS); // the first page first
      return;
    }
    const want = [...new Set([...added.current, ...changed.current])];
    const isNew = new Set(added.current);
    const isChanged = new Set(changed.current);
    added.current.clear();
    changed.current.clear();
    const got: Run[] = [];
    for (let i = 0; i < want.length; i += CHUNK) {
      const ids = want.slice(i, i + CHUNK).map((id) => `'${id.replace(/'/g, "''")}'`).join(", ");
      const idFilter = `attributes.run_id IN (${ids})`;
      const filter = o.filter ? `(${o.filter}) AND ${idFilter}` : idFilter;
      try {
        const page = await rpc<{ runs?: Run[] }>(TRACKING, "SearchRuns", {
          experimentIds: [o.experimentId],
          filter,
          pageSize: 1000,
          view: o.view,
        });
        got.push(...(page.runs ?? []));
      } catch {
        return; // the table shows the search's own error; the next event tries again
      }
    }
    if (searchOf(o) !== searchOf(latest.current)) return; // another search since: it read them itself
    const byId = new Map(got.map((r) => [r.info.runId, r]));
    const arrived: string[] = [];
    latest.current.apply((runs) => {
      // a changed run is replaced where it is (rows do not jump under the reader), or leaves when
      // it no longer matches the filter
      const out = runs.flatMap((r) => {
        const id = r.info.runId;
        if (!isChanged.has(id) && !isNew.has(id)) return [r];
        const now = byId.get(id);
        return now ? [now] : isChanged.has(id) ? [] : [r];
      });
      const present = new Set(out.map((r) => r.info.runId));
      for (const id of isNew) {
        const run = byId.get(id);
        if (!run || present.has(id)) continue;
        const at = out.findIndex((r) => compareRuns(run, r, latest.current.sort) < 0);
        // after the last loaded row while more pages wait: that page will bring it
        if (at < 0 && latest.current.hasMore) continue;
        out.splice(at < 0 ? out.length : at, 0, run);
        arrived.push(id);
      }
      return out;
    });
    if (arrived.length) {
      setFresh((f) => new Set([...f, ...arrived]));
      setTimeout(() => setFresh((f) => new Set([...f].filter((id) => !arrived.includes(id)))), FRESH_MS);
    }
  };

  const onEvents = (events: LiveEvent[]) => {
    const o = latest.current;
    const loaded = new Set(o.runs.map((r) => r.info.runId));
    for (const e of events) {
      const id = runOf(e.streamId);
      if (!id) continue;
      if (e.type === "RunStarted") {
        if (e.payload.experiment_id === o.experimentId) added.current.add(id);
      } else if (loaded.has(id)) {
        changed.current.add(id);
      }
    }
    if ((added.current.size || changed.current.size) && timer.current === null) {
      timer.current = window.setTimeout(flush, SETTLE_MS);
    }
  };
  useEffect(() => () => {
    if (timer.current !== null) clearTimeout(timer.current);
  }, []);

  const lifecycle = useLive(LIFECYCLE, onEvents);
  const running = useMemo(
    () =>
      opts.runs
        .filter((r) => r.info.status === "RUN_STATUS_RUNNING")
        .slice(0, MAX_FOLLOWED)
        .map((r) => `run-${r.info.runId}`)
        .sort(),
    [opts.runs],
  );
  const runningKey = running.join(",");
  const metricsFilter = useMemo(
    () => (running.length ? { services: ["tracking"], types: ["MetricsLogged"], streams: running } : null),
    [runningKey],
  );
  // a run that just arrived is followed from where the lifecycle stream heard of it: no batch it
  // logged since is missed while this stream opens
  useLive(metricsFilter, onEvents, lifecycle.cursor);
  return { state: lifecycle.state, fresh };
}
