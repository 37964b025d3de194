import { useLayoutEffect, useReducer, useState } from "preact/hooks";
import {
  elementScroll,
  observeElementOffset,
  observeElementRect,
  Virtualizer,
  type VirtualizerOptions,
} from "@tanstack/virtual-core";

/** TanStack Virtual's framework-free core, bound to Preact the way @tanstack/react-virtual binds
 * it to React: only the rows in view (plus `overscan`) are in the DOM, whatever the row count. */
export function useVirtualRows(opts: {
  count: number;
  rowHeight: number;
  overscan?: number;
  /** Where the rows start inside the scrolling element (below a sticky header), which also hides
   * that much of the view when scrolling a row into it. */
  offset?: number;
  scrollElement: () => HTMLElement | null;
}): Virtualizer<HTMLElement, HTMLElement> {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const options: VirtualizerOptions<HTMLElement, HTMLElement> = {
    count: opts.count,
    getScrollElement: opts.scrollElement,
    estimateSize: () => opts.rowHeight,
    overscan: opts.overscan ?? 12,
    scrollMargin: opts.offset ?? 0,
    scrollPaddingStart: opts.offset ?? 0,
    scrollToFn: elementScroll,
    observeElementRect,
    observeElementOffset,
    onChange: () => rerender(0),
  };
  const [virtualizer] = useState(() => new Virtualizer<HTMLElement, HTMLElement>(options));
  virtualizer.setOptions(options);
  useLayoutEffect(() => virtualizer._didMount(), []);
  useLayoutEffect(() => virtualizer._willUpdate());
  return virtualizer;
}
