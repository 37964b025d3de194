import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useLocation, useSearchParams } from "wouter-preact";
import { ApiError, rpc, TRACKING } from "../api";
import { ErrorBox, Show, useAsync } from "../components/common";
import { ColumnPicker } from "./picker";
import { RunsTable } from "./runstable";
import { FIRST_PAGE, firstPageKey, searchRuns, take, VIEWS, type RunsPage } from "../prefetch";
import { compareHref, MAX_COMPARE, pickedIn, setPickedIn } from "./selection";
import { useLiveRuns } from "./liveruns";
import type { Experiment, Run } from "../types";
import { defaultCols, discoverKeys, formatCols, formatSort, parseCols, parseSort, type Column, type Sort } from "./columns";
import { GroupsTable } from "./groups";
import { SavedViews } from "./savedviews";

const PAGE = 1000; // the server's maximum
const GROUP_CAP = 20_000; // runs read to aggregate groups; the note says when there were more

/** `open=a,b`: the groups shown expanded, each value URI-encoded. */
function parseOpen(text: string | null): string[] {
  return text ? text.split(",").map((v) => decodeURIComponent(v)) : [];
}

interface Pages {
  runs: Run[];
  next: string;
  loading: boolean;
  error: Error | null;
}

/** Keyset pages of one search, fetched as the table scrolls near their end. */
function useRunPages(experimentId: string, filter: string, sort: string, view: string) {
  const [pages, setPages] = useState<Pages>({ runs: [], next: "", loading: true, error: null });
  const ctl = useRef<AbortController | null>(null);
  const busy = useRef(false);

  const query = { experimentId, filter, sort, view };
  const fetchPage = (token: string, size: number, signal: AbortSignal) => searchRuns(query, token, size, signal);

  // a layout effect: the first page is asked for before the first paint, not a frame after it
  useLayoutEffect(() => {
    ctl.current?.abort();
    const c = (ctl.current = new AbortController());
    busy.current = true;
    setPages((p) => ({ ...p, loading: true, error: null }));
    (take<RunsPage>(firstPageKey(query)) ?? fetchPage("", FIRST_PAGE, c.signal)).then(
      (page) => {
        if (c.signal.aborted) return;
        busy.current = false;
        setPages({ runs: page.runs ?? [], next: page.nextPageToken ?? "", loading: false, error: null });
      },
      (error: Error) => {
        if (c.signal.aborted) return;
        busy.current = false;
        setPages({ runs: [], next: "", loading: false, error });
      },
    );
    return () => c.abort();
  }, [experimentId, filter, sort, view]);

  const more = () => {
    if (busy.current || !pages.next || pages.error || !ctl.current) return;
    const c = ctl.current;
    busy.current = true;
    setPages((p) => ({ ...p, loading: true }));
    fetchPage(pages.next, PAGE, c.signal).then(
      (page) => {
        if (c.signal.aborted) return;
        busy.current = false;
        setPages((p) => {
          // a run that arrived live may sit in the loaded range already
          const have = new Set(p.runs.map((r) => r.info.runId));
          return {
          runs: p.runs.concat((page.runs ?? []).filter((r) => !have.has(r.info.runId))),
          next: page.nextPageToken ?? "",
          loading: false,
          error: null,
          };
        });
      },
      (error: Error) => {
        if (c.signal.aborted) return;
        busy.current = false;
        setPages((p) => ({ ...p, loading: false, error }));
      },
    );
  };
  const apply = (update: (runs: Run[]) => Run[]) => setPages((p) => ({ ...p, runs: update(p.runs) }));
  return { pages, more, apply };
}

export function Runs(props: { experimentId: string }) {
  const [params, setParams] = useSearchParams();
  const filter = params.get("filter") ?? "";
  const sortText = params.get("sort") ?? "";
  const viewKey = (params.get("view") ?? "active") as keyof typeof VIEWS;
  const urlCols = parseCols(params.get("cols"));
  const sort = parseSort(sortText);
  const groupBy = parseCols(params.get("group"))?.find((c) => c.kind !== "m") ?? null;
  const aggMetric = parseCols(params.get("agg"))?.find((c) => c.kind === "m")?.key ?? "";
  const openGroups = parseOpen(params.get("open"));

  const [experiment] = useAsync(
    (signal) =>
      rpc<{ experiment: Experiment }>(TRACKING, "GetExperiment", { experimentId: props.experimentId }, signal).then(
        (r) => r.experiment,
      ),
    [props.experimentId],
  );
  const view = VIEWS[viewKey] ?? VIEWS.active;
  const { pages, more, apply } = useRunPages(props.experimentId, filter, sortText, view);
  const live = useLiveRuns({
    experimentId: props.experimentId,
    filter,
    sort,
    view,
    runs: pages.runs,
    hasMore: !!pages.next,
    ready: !pages.loading || pages.runs.length > 0,
    apply,
  });

  const keys = useMemo(() => discoverKeys(pages.runs), [pages.runs]);
  const [fallbackCols, setFallbackCols] = useState<Column[]>([]);
  useEffect(() => {
    if (!urlCols && fallbackCols.length === 0 && pages.runs.length) setFallbackCols(defaultCols(keys));
  }, [keys]);
  const cols = urlCols ?? fallbackCols;
  // grouped, the aggregates need every run of the search: read on without waiting for a scroll
  useEffect(() => {
    if (groupBy && pages.next && !pages.loading && !pages.error && pages.runs.length < GROUP_CAP) more();
  }, [groupBy?.key, pages.next, pages.loading, pages.runs.length]);

  const update = (changes: Record<string, string | null>, replace = false) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v === null || v === "") next.delete(k);
          else next.set(k, v);
        }
        return next;
      },
      { replace },
    );

  const filterError = pages.error instanceof ApiError && pages.error.status === "INVALID_ARGUMENT" ? pages.error : null;

  // Runs picked for comparison: kept per experiment while the app runs; the compare page's URL
  // holds them once they are compared.
  const [picked, setPicked] = useState<string[]>(() => pickedIn(props.experimentId));
  const [pickNote, setPickNote] = useState("");
  useEffect(() => setPickedIn(props.experimentId, picked), [picked]);
  const anchor = useRef(-1);
  const [, navigate] = useLocation();
  const toggle = (index: number, range: boolean) => {
    const run = pages.runs[index];
    if (!run) return;
    const id = run.info.runId;
    const on = !picked.includes(id);
    let ids = [id];
    if (range && anchor.current >= 0 && anchor.current !== index) {
      const [a, b] = anchor.current < index ? [anchor.current, index] : [index, anchor.current];
      ids = pages.runs.slice(a, b + 1).map((r) => r.info.runId);
    }
    anchor.current = index;
    const next = on ? [...picked, ...ids.filter((x) => !picked.includes(x))] : picked.filter((x) => !ids.includes(x));
    if (next.length > MAX_COMPARE) {
      setPickNote(`At most ${MAX_COMPARE} runs can be compared at once.`);
      setPicked(next.slice(0, MAX_COMPARE));
      return;
    }
    setPickNote("");
    setPicked(next);
  };

  return (
    <div class="page runs-page">
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/experiments">Experiments</Link> /
          </div>
          <h1>
            <Show data={experiment} what="">
              {(e) => <>{e.name}</>}
            </Show>
          </h1>
        </div>
        <div class="toolbar">
          <select
            aria-label="Which runs"
            value={viewKey}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              update({ view: v === "active" ? null : v });
            }}
          >
            <option value="active">Active runs</option>
            <option value="deleted">Deleted runs</option>
            <option value="all">All runs</option>
          </select>
          <select
            aria-label="Group by"
            value={groupBy ? formatCols([groupBy]) : ""}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              update({ group: v || null, open: null, agg: v && !aggMetric && keys.m.length ? formatCols([{ kind: "m", key: keys.m.find((k) => !k.startsWith("system/")) ?? keys.m[0] }]) : aggMetric ? formatCols([{ kind: "m", key: aggMetric }]) : null });
            }}
            data-testid="group-by"
          >
            <option value="">No grouping</option>
            {keys.p.map((k) => (
              <option key={`p:${k}`} value={formatCols([{ kind: "p", key: k }])}>
                Group by param {k}
              </option>
            ))}
            {keys.t.map((k) => (
              <option key={`t:${k}`} value={formatCols([{ kind: "t", key: k }])}>
                Group by tag {k}
              </option>
            ))}
          </select>
          {groupBy && (
            <select
              aria-label="Aggregate metric"
              value={aggMetric ? formatCols([{ kind: "m", key: aggMetric }]) : ""}
              onChange={(e) => update({ agg: (e.target as HTMLSelectElement).value || null })}
              data-testid="group-metric"
            >
              <option value="">No metric</option>
              {keys.m.map((k) => (
                <option key={k} value={formatCols([{ kind: "m", key: k }])}>
                  min/mean/max of {k}
                </option>
              ))}
            </select>
          )}
          <ColumnPicker keys={keys} cols={cols} onChange={(next) => update({ cols: formatCols(next) || "-" }, true)} />
          <SavedViews key={props.experimentId} experimentId={props.experimentId} params={params} />
          <button
            type="button"
            class="btn primary"
            disabled={picked.length < 2}
            title={picked.length < 2 ? "Pick two runs or more: click their boxes, or Space on the focused row" : undefined}
            onClick={() => navigate(compareHref(picked))}
            data-testid="compare"
          >
            Compare{picked.length ? ` ${picked.length}` : ""}
          </button>
        </div>
      </div>
      <FilterBox
        value={filter}
        error={filterError}
        onApply={(v) => update({ filter: v.trim() || null })}
      />
      {pages.error && !filterError && <ErrorBox error={pages.error} title="Could not search the runs" />}
      {groupBy ? (
        <GroupsTable
          runs={pages.runs}
          by={groupBy}
          metric={aggMetric}
          cols={cols}
          open={openGroups}
          complete={!pages.next || pages.runs.length >= GROUP_CAP}
          onToggle={(value) => {
            const next = openGroups.includes(value) ? openGroups.filter((v) => v !== value) : [...openGroups, value];
            update({ open: next.map((v) => encodeURIComponent(v)).join(",") || null }, true);
          }}
        />
      ) : (
      <RunsTable
        runs={pages.runs}
        cols={cols}
        sort={sort}
        hasMore={!!pages.next}
        loading={pages.loading}
        failed={!!pages.error}
        onNeedMore={more}
        searchKey={`${filter}\u0000${sortText}\u0000${viewKey}`}
        picked={picked}
        pickNote={pickNote}
        live={live.state}
        fresh={live.fresh}
        onToggle={toggle}
        onClearPicked={() => {
          setPicked([]);
          setPickNote("");
        }}
        onOpen={(run) => navigate(`/runs/${encodeURIComponent(run.info.runId)}`)}
        onSort={(key) => {
          const next: Sort | null =
            sort?.key !== key ? { key, desc: true } : sort.desc ? { key, desc: false } : null;
          update({ sort: next ? formatSort(next) : null });
        }}
      />
      )}
    </div>
  );
}

function FilterBox(props: { value: string; error: ApiError | null; onApply: (v: string) => void }) {
  const [text, setText] = useState(props.value);
  useEffect(() => setText(props.value), [props.value]);
  const violation = props.error?.violations[0];
  return (
    <form
      class="filter-box"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        props.onApply(text);
      }}
    >
      <label for="run-filter" class="sr-only">
        Filter runs
      </label>
      <span class="filter-icon" aria-hidden="true">
        ⌕
      </span>
      <input
        id="run-filter"
        type="text"
        spellcheck={false}
        autocomplete="off"
        class={props.error ? "invalid" : ""}
        aria-invalid={props.error ? "true" : undefined}
        aria-describedby={props.error ? "filter-error" : "filter-help"}
        placeholder="metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'nlp%'"
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
      />
      {props.value && (
        <button
          type="button"
          class="btn ghost"
          onClick={() => {
            setText("");
            props.onApply("");
          }}
        >
          Clear
        </button>
      )}
      <button type="submit" class="btn">
        Apply
      </button>
      {props.error ? (
        <div id="filter-error" class="field-error filter-error" role="alert" data-testid="filter-error">
          {props.error.message}
          {violation && !props.error.message.includes(violation.description) && (
            <span class="muted"> ({violation.field}: {violation.description})</span>
          )}
        </div>
      ) : (
        <div id="filter-help" class="muted tiny filter-help">
          MLflow's filter syntax plus OR, NOT and parentheses · <code>attributes.status = 'FAILED'</code> ·{" "}
          <code>params.optimizer IN ('adam', 'sgd')</code> · <code>tags.note IS NULL</code>
        </div>
      )}
    </form>
  );
}
