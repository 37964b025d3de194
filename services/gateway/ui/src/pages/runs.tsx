import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { ApiError, rpc, TRACKING } from "../api";
import { ErrorBox, Show, useAsync } from "../components/common";
import { useVirtualRows } from "../components/virtual";
import { ColumnPicker } from "./picker";
import type { Experiment, Run } from "../types";
import {
  ATTRS,
  attrText,
  cellText,
  colId,
  defaultCols,
  discoverKeys,
  formatCols,
  formatSort,
  metricTitle,
  parseCols,
  parseSort,
  sortKeyOf,
  type Column,
  type Sort,
} from "./columns";

const ROW_HEIGHT = 30;
const FIRST_PAGE = 200; // small, so the first rows paint at once
const PAGE = 1000; // the server's maximum
const COL_WIDTH = 130;
const VIEWS = { active: "VIEW_TYPE_ACTIVE_ONLY", deleted: "VIEW_TYPE_DELETED_ONLY", all: "VIEW_TYPE_ALL" } as const;

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

  const fetchPage = async (token: string, size: number, signal: AbortSignal) =>
    rpc<{ runs?: Run[]; nextPageToken?: string }>(
      TRACKING,
      "SearchRuns",
      { experimentIds: [experimentId], filter, orderBy: sort ? [sort] : [], pageSize: size, pageToken: token, view },
      signal,
    );

  useEffect(() => {
    ctl.current?.abort();
    const c = (ctl.current = new AbortController());
    busy.current = true;
    setPages((p) => ({ ...p, loading: true, error: null }));
    fetchPage("", FIRST_PAGE, c.signal).then(
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
        setPages((p) => ({
          runs: p.runs.concat(page.runs ?? []),
          next: page.nextPageToken ?? "",
          loading: false,
          error: null,
        }));
      },
      (error: Error) => {
        if (c.signal.aborted) return;
        busy.current = false;
        setPages((p) => ({ ...p, loading: false, error }));
      },
    );
  };
  return { pages, more };
}

export function Runs(props: { experimentId: string }) {
  const [params, setParams] = useSearchParams();
  const filter = params.get("filter") ?? "";
  const sortText = params.get("sort") ?? "";
  const viewKey = (params.get("view") ?? "active") as keyof typeof VIEWS;
  const urlCols = parseCols(params.get("cols"));
  const sort = parseSort(sortText);

  const [experiment] = useAsync(
    (signal) =>
      rpc<{ experiment: Experiment }>(TRACKING, "GetExperiment", { experimentId: props.experimentId }, signal).then(
        (r) => r.experiment,
      ),
    [props.experimentId],
  );
  const { pages, more } = useRunPages(props.experimentId, filter, sortText, VIEWS[viewKey] ?? VIEWS.active);

  const keys = useMemo(() => discoverKeys(pages.runs), [pages.runs]);
  const [fallbackCols, setFallbackCols] = useState<Column[]>([]);
  useEffect(() => {
    if (!urlCols && fallbackCols.length === 0 && pages.runs.length) setFallbackCols(defaultCols(keys));
  }, [keys]);
  const cols = urlCols ?? fallbackCols;

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
          <ColumnPicker keys={keys} cols={cols} onChange={(next) => update({ cols: formatCols(next) || "-" }, true)} />
        </div>
      </div>
      <FilterBox
        value={filter}
        error={filterError}
        onApply={(v) => update({ filter: v.trim() || null })}
      />
      {pages.error && !filterError && <ErrorBox error={pages.error} title="Could not search the runs" />}
      <RunsTable
        runs={pages.runs}
        cols={cols}
        sort={sort}
        hasMore={!!pages.next}
        loading={pages.loading}
        failed={!!pages.error}
        onNeedMore={more}
        searchKey={`${filter}\u0000${sortText}\u0000${viewKey}`}
        onSort={(key) => {
          const next: Sort | null =
            sort?.key !== key ? { key, desc: true } : sort.desc ? { key, desc: false } : null;
          update({ sort: next ? formatSort(next) : null });
        }}
      />
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

function RunsTable(props: {
  runs: Run[];
  cols: Column[];
  sort: Sort | null;
  hasMore: boolean;
  loading: boolean;
  failed: boolean;
  onNeedMore: () => void;
  searchKey: string;
  onSort: (key: string) => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  // a new search starts at its first row
  useEffect(() => {
    if (scroller.current) scroller.current.scrollTop = 0;
  }, [props.searchKey]);
  const count = props.runs.length;
  const virtual = useVirtualRows({ count, rowHeight: ROW_HEIGHT, scrollElement: () => scroller.current });
  const items = virtual.getVirtualItems();
  const last = items.length ? items[items.length - 1].index : 0;
  useEffect(() => {
    if (props.hasMore && !props.loading && last >= count - 300) props.onNeedMore();
  }, [last, count, props.hasMore, props.loading]);

  const widths = [...ATTRS.map((a) => a.width), ...props.cols.map(() => COL_WIDTH)];
  // a last, flexible column fills a wide window, so rows never end in mid-air
  const template = widths.map((w) => `${w}px`).join(" ") + " minmax(0, 1fr)";
  const total = widths.reduce((a, b) => a + b, 0);
  const now = Date.now();
  const arrow = (key: string | undefined) =>
    key && props.sort?.key === key ? (props.sort.desc ? " ↓" : " ↑") : "";
  const ariaSort = (key: string | undefined) =>
    key && props.sort?.key === key ? (props.sort.desc ? "descending" : "ascending") : undefined;

  const header = (
    <div class="vt-row vt-head" role="row" style={{ gridTemplateColumns: template, minWidth: `${total}px` }}>
      {ATTRS.map((a, i) => (
        <div role="columnheader" class={`vt-cell ${i === 0 ? "pin" : ""}`} aria-sort={ariaSort(a.sortKey)} key={a.id}>
          {a.sortKey ? (
            <button type="button" class="sort" onClick={() => props.onSort(a.sortKey!)}>
              {a.label}
              {arrow(a.sortKey)}
            </button>
          ) : (
            <span class="plain">{a.label}</span>
          )}
        </div>
      ))}
      {props.cols.map((c) => {
        const key = sortKeyOf(c);
        return (
          <div role="columnheader" class={`vt-cell kind-${c.kind}`} aria-sort={ariaSort(key)} key={colId(c)} title={key}>
            <button type="button" class="sort" onClick={() => props.onSort(key)}>
              <span class="kind-dot" aria-hidden="true" />
              <span class="col-name">{c.key}</span>
              {arrow(key)}
            </button>
          </div>
        );
      })}
      <div role="presentation" class="vt-cell filler" />
    </div>
  );

  return (
    <div class="vt-wrap">
      <div class="vt-status muted small" data-testid="run-count" aria-live="polite">
        {props.failed
          ? ""
          : count === 0 && props.loading
            ? "Loading runs…"
            : `${count.toLocaleString("en-US")} run${count === 1 ? "" : "s"}${props.hasMore ? " loaded, more as you scroll" : ""}${props.loading && count ? " · loading…" : ""}`}
      </div>
      <div
        class="vt-scroll"
        ref={scroller}
        role="table"
        aria-label="Runs"
        aria-rowcount={props.hasMore ? -1 : count + 1}
        data-testid="runs-table"
      >
        {header}
        <div class="vt-body" role="rowgroup" style={{ height: `${virtual.getTotalSize()}px`, minWidth: `${total}px` }}>
          {items.map((item) => {
            const run = props.runs[item.index];
            return (
              <div
                key={run.info.runId}
                role="row"
                aria-rowindex={item.index + 2}
                class={`vt-row ${item.index % 2 ? "odd" : ""} ${run.info.deleted ? "deleted" : ""}`}
                style={{ gridTemplateColumns: template, transform: `translateY(${item.start}px)`, height: `${ROW_HEIGHT}px` }}
              >
                {ATTRS.map((a, i) => {
                  const text = attrText(run, a.id, now);
                  return (
                    <div role="cell" class={`vt-cell ${i === 0 ? "pin" : ""} attr-${a.id}`} key={a.id}>
                      {a.id === "name" ? (
                        <Link href={`/runs/${encodeURIComponent(run.info.runId)}`} title={run.info.runId}>
                          {text}
                        </Link>
                      ) : a.id === "status" ? (
                        <span class={`dot status-${text.toLowerCase()}`}>{text}</span>
                      ) : (
                        text
                      )}
                    </div>
                  );
                })}
                {props.cols.map((c) => {
                  const text = cellText(run, c);
                  return (
                    <div
                      role="cell"
                      class={`vt-cell ${c.kind === "m" ? "num" : ""}`}
                      key={colId(c)}
                      title={c.kind === "m" ? metricTitle(run, c.key) : text.length > 14 ? text : undefined}
                    >
                      {text}
                    </div>
                  );
                })}
                <div role="presentation" class="vt-cell filler" />
              </div>
            );
          })}
        </div>
        {count === 0 && !props.loading && (
          <div class="empty in-table">{props.failed ? "No runs to show: fix the filter above." : "No runs match."}</div>
        )}
      </div>
    </div>
  );
}
