// The first calls of the page the app opens on, sent before the session check answers (it takes a
// round trip of its own): the runs table's first page, a run page's run. Whoever renders first takes
// the answer, once; a refused call (no session) is left unclaimed and the sign-in page shows.

import { rpc, TRACKING } from "./api";
import type { Run } from "./types";

export const VIEWS = { active: "VIEW_TYPE_ACTIVE_ONLY", deleted: "VIEW_TYPE_DELETED_ONLY", all: "VIEW_TYPE_ALL" } as const;
export const FIRST_PAGE = 100; // three screens: small, so the first rows paint at once

export interface RunsPage {
  runs?: Run[];
  nextPageToken?: string;
}

export function searchRuns(
  q: { experimentId: string; filter: string; sort: string; view: string },
  token: string,
  size: number,
  signal?: AbortSignal,
): Promise<RunsPage> {
  return rpc<RunsPage>(
    TRACKING,
    "SearchRuns",
    { experimentIds: [q.experimentId], filter: q.filter, orderBy: q.sort ? [q.sort] : [], pageSize: size, pageToken: token, view: q.view },
    signal,
  );
}

const early = new Map<string, Promise<unknown>>();

function keep<T>(key: string, call: Promise<T>): void {
  call.catch(() => undefined); // unclaimed, a refusal is nobody's error
  early.set(key, call);
}

/** The answer sent early for `key`, once; undefined when none was (or it was taken). */
export function take<T>(key: string): Promise<T> | undefined {
  const got = early.get(key) as Promise<T> | undefined;
  early.delete(key);
  return got;
}

export function firstPageKey(q: { experimentId: string; filter: string; sort: string; view: string }): string {
  return `runs\u0000${q.experimentId}\u0000${q.filter}\u0000${q.sort}\u0000${q.view}`;
}

export function runKey(runId: string): string {
  return `run\u0000${runId}`;
}

/** Called once, before the app renders. */
export function prefetch(location: Location): void {
  if (!document.cookie.includes("modelog_csrf=")) return; // no session to call with
  const params = new URLSearchParams(location.search);
  let m: RegExpExecArray | null;
  if ((m = /^\/experiments\/([^/]+)$/.exec(location.pathname))) {
    const view = VIEWS[(params.get("view") ?? "active") as keyof typeof VIEWS] ?? VIEWS.active;
    const q = { experimentId: decodeURIComponent(m[1]), filter: params.get("filter") ?? "", sort: params.get("sort") ?? "", view };
    keep(firstPageKey(q), searchRuns(q, "", FIRST_PAGE));
  } else if ((m = /^\/runs\/([^/]+)$/.exec(location.pathname))) {
    const runId = decodeURIComponent(m[1]);
    keep(runKey(runId), rpc<{ run: Run }>(TRACKING, "GetRun", { runId }));
  }
}
