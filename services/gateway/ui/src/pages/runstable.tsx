// The runs grid: virtualized rows (only those in view are in the DOM), server-side sort by header,
// boxes and the keyboard to pick runs for comparison. One tab stop: arrows move the focused row,
// Enter opens it, Space picks it, Shift+Space or Shift+click picks a range, Escape clears the picks.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { useVirtualRows } from "../components/virtual";
import { LiveBadge, type LiveState } from "../live";
import type { Run } from "../types";
import { ATTRS, attrText, cellText, colId, metricTitle, sortKeyOf, type Column, type Sort } from "./columns";

const ROW_HEIGHT = 30;
const HEAD_HEIGHT = 32; // the sticky header row inside the scrolling grid
const PICK_WIDTH = 34;
const COL_WIDTH = 130;

export function RunsTable(props: {
  runs: Run[];
  cols: Column[];
  sort: Sort | null;
  hasMore: boolean;
  loading: boolean;
  failed: boolean;
  onNeedMore: () => void;
  searchKey: string;
  onSort: (key: string) => void;
  picked: string[];
  pickNote: string;
  live: LiveState;
  fresh: Set<string>;
  onToggle: (index: number, range: boolean) => void;
  onClearPicked: () => void;
  onOpen: (run: Run) => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(-1);
  // a new search starts at its first row
  useEffect(() => {
    if (scroller.current) scroller.current.scrollTop = 0;
    setActive(-1);
  }, [props.searchKey]);
  const count = props.runs.length;
  const virtual = useVirtualRows({
    count,
    rowHeight: ROW_HEIGHT,
    offset: HEAD_HEIGHT,
    scrollElement: () => scroller.current,
  });
  const items = virtual.getVirtualItems();
  const last = items.length ? items[items.length - 1].index : 0;
  useEffect(() => {
    if (props.hasMore && !props.loading && last >= count - 300) props.onNeedMore();
  }, [last, count, props.hasMore, props.loading]);
  const picked = useMemo(() => new Set(props.picked), [props.picked]);

  // One tab stop for the whole grid: arrows move the focused row, Enter opens it, Space picks it
  // for comparison (Shift+Space: every row from the last one picked).
  const move = (to: number) => {
    if (count === 0) return;
    const i = Math.max(0, Math.min(count - 1, to));
    setActive(i);
    virtual.scrollToIndex(i, { align: "auto" });
  };
  const firstInView = () => Math.ceil((scroller.current?.scrollTop ?? 0) / ROW_HEIGHT);
  const pageRows = () => Math.max(1, Math.floor(((scroller.current?.clientHeight ?? 600) - HEAD_HEIGHT) / ROW_HEIGHT) - 1);
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.target !== scroller.current || e.altKey || e.ctrlKey || e.metaKey) return;
    const from = active >= 0 && active < count ? active : -1;
    const step = (n: number) => move(from < 0 ? firstInView() : from + n);
    switch (e.key) {
      case "ArrowDown":
        step(1);
        break;
      case "ArrowUp":
        step(-1);
        break;
      case "PageDown":
        step(pageRows());
        break;
      case "PageUp":
        step(-pageRows());
        break;
      case "Home":
        move(0);
        break;
      case "End":
        move(count - 1);
        break;
      case "Enter":
        if (from < 0) return;
        props.onOpen(props.runs[from]);
        break;
      case " ":
        if (from < 0) step(0);
        else props.onToggle(from, e.shiftKey);
        break;
      case "Escape":
        if (props.picked.length) props.onClearPicked();
        else setActive(-1);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  const widths = [PICK_WIDTH, ...ATTRS.map((a) => a.width), ...props.cols.map(() => COL_WIDTH)];
  // a last, flexible column fills a wide window, so rows never end in mid-air
  const template = widths.map((w) => `${w}px`).join(" ") + " minmax(0, 1fr)";
  const total = widths.reduce((a, b) => a + b, 0);
  const now = Date.now();
  const arrow = (key: string | undefined) =>
    key && props.sort?.key === key ? (props.sort.desc ? " ↓" : " ↑") : "";
  const ariaSort = (key: string | undefined) =>
    key && props.sort?.key === key ? (props.sort.desc ? "descending" : "ascending") : undefined;
  const activeRun = active >= 0 ? props.runs[active] : undefined;

  const header = (
    <div class="vt-row vt-head" role="row" style={{ gridTemplateColumns: template, minWidth: `${total}px` }}>
      <div role="columnheader" class="vt-cell pick" aria-label="Picked for comparison">
        <input
          type="checkbox"
          tabIndex={-1}
          aria-label="Clear the runs picked for comparison"
          checked={props.picked.length > 0}
          disabled={props.picked.length === 0}
          ref={(el) => {
            if (el) el.indeterminate = props.picked.length > 0 && props.picked.length < count;
          }}
          onChange={props.onClearPicked}
        />
      </div>
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
      <div role="columnheader" class="vt-cell filler" aria-hidden="true" />
    </div>
  );

  return (
    <div class="vt-wrap">
      <div class="vt-status muted small">
        <span data-testid="run-count" aria-live="polite">
          {props.failed
            ? ""
            : count === 0 && props.loading
              ? "Loading runs…"
              : `${count.toLocaleString("en-US")} run${count === 1 ? "" : "s"}${props.hasMore ? " loaded, more as you scroll" : ""}${props.loading && count ? " · loading…" : ""}`}
        </span>
        {props.picked.length > 0 && (
          <span class="picked-note" data-testid="picked">
            {" · "}
            <strong>{props.picked.length}</strong> picked for comparison{" "}
            <button type="button" class="linkish" onClick={props.onClearPicked}>
              clear
            </button>
          </span>
        )}
        {props.pickNote && <span class="field-error"> · {props.pickNote}</span>}
        <LiveBadge state={props.live} what="new runs and their metrics" />
        <span class="keys-help tiny"> ↑↓ move · Enter opens · Space picks · Shift+click or Shift+Space picks a range</span>
      </div>
      <div
        class="vt-scroll"
        ref={scroller}
        role="grid"
        tabIndex={0}
        aria-label="Runs"
        aria-multiselectable="true"
        aria-rowcount={props.hasMore ? -1 : count + 1}
        aria-activedescendant={activeRun ? rowId(activeRun) : undefined}
        onKeyDown={onKeyDown}
        data-testid="runs-table"
      >
        {header}
        <div class="vt-body" role="rowgroup" style={{ height: `${virtual.getTotalSize()}px`, minWidth: `${total}px` }}>
          {items.map((item) => {
            const run = props.runs[item.index];
            const isPicked = picked.has(run.info.runId);
            const cls = [
              "vt-row",
              item.index % 2 ? "odd" : "",
              run.info.deleted ? "deleted" : "",
              isPicked ? "picked" : "",
              item.index === active ? "active" : "",
              props.fresh.has(run.info.runId) ? "fresh" : "",
            ].join(" ");
            return (
              <div
                key={run.info.runId}
                id={rowId(run)}
                role="row"
                aria-rowindex={item.index + 2}
                aria-selected={isPicked}
                class={cls}
                style={{
                  gridTemplateColumns: template,
                  transform: `translateY(${item.start - HEAD_HEIGHT}px)`,
                  height: `${ROW_HEIGHT}px`,
                }}
                onMouseDown={() => setActive(item.index)}
              >
                <div role="gridcell" class="vt-cell pick">
                  <input
                    type="checkbox"
                    tabIndex={-1}
                    aria-label={`Pick ${run.info.name || run.info.runId} for comparison`}
                    checked={isPicked}
                    onMouseDown={(e) => e.preventDefault()} // keep the focus on the grid
                    onClick={(e) => {
                      e.preventDefault(); // the state decides what is checked
                      props.onToggle(item.index, e.shiftKey);
                      setActive(item.index);
                      scroller.current?.focus({ preventScroll: true });
                    }}
                  />
                </div>
                {ATTRS.map((a, i) => {
                  const text = attrText(run, a.id, now);
                  return (
                    <div role="gridcell" class={`vt-cell ${i === 0 ? "pin" : ""} attr-${a.id}`} key={a.id}>
                      {a.id === "name" ? (
                        <Link href={`/runs/${encodeURIComponent(run.info.runId)}`} title={run.info.runId} tabIndex={-1}>
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
                      role="gridcell"
                      class={`vt-cell ${c.kind === "m" ? "num" : ""}`}
                      key={colId(c)}
                      title={c.kind === "m" ? metricTitle(run, c.key) : text.length > 14 ? text : undefined}
                    >
                      {text}
                    </div>
                  );
                })}
                <div role="gridcell" class="vt-cell filler" aria-hidden="true" />
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

function rowId(run: Run): string {
  return `run-row-${run.info.runId}`;
}
