// Live updates: the audit service's Subscribe stream (history from a cursor, then every new event
// as it commits, with heartbeats), read through the JSON API as Server-Sent Events. Nothing polls:
// a page asks the server again only for what an event says has changed.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, AUDIT, stream } from "./api";
import type { LogEvent } from "./types";

export interface LiveFilter {
  services?: string[];
  /** `<Type>` or `<service>.<Type>`. */
  types?: string[];
  /** Exact stream ids, or prefixes ending in `*`. */
  streams?: string[];
}

export interface LiveEvent {
  service: string;
  position: number;
  streamId: string;
  type: string;
  payload: Record<string, unknown>;
}

/** off: not asked (or not allowed); connecting; on: the server follows the log for us; retrying. */
export type LiveState = "off" | "connecting" | "on" | "retrying";

interface SubscribeMessage {
  events?: { events?: LogEvent[] };
  heartbeat?: { at?: string };
  cursor?: string;
}

const HEARTBEAT_S = 10;
// The refusals a retry would only repeat.
const FINAL = new Set(["PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT", "NOT_FOUND", "UNIMPLEMENTED"]);

function parsed(e: LogEvent): LiveEvent {
  let payload: Record<string, unknown> = {};
  try {
    payload = JSON.parse(e.payloadJson || "{}") as Record<string, unknown>;
  } catch {
    // a payload that is not JSON says nothing the page can use
  }
  return { service: e.service ?? "", position: Number(e.position ?? 0), streamId: e.streamId ?? "", type: e.type ?? "", payload };
}

export interface Live {
  state: LiveState;
  /** Where the stream is: a cursor that resumes right after the last message. */
  cursor: () => string;
}

/** Every event matching `filter` from now on, in log order, handed to `onEvents` batch by batch.
 * The stream resumes after a drop from the last cursor it was given, so nothing is missed; a new
 * filter (a page following other runs) resumes from there too. `from` gives a cursor to start at
 * (another stream's) instead of now. `null`: follow nothing. */
export function useLive(
  filter: LiveFilter | null,
  onEvents: (events: LiveEvent[]) => void,
  from?: () => string,
): Live {
  const handler = useRef(onEvents);
  handler.current = onEvents;
  const cursor = useRef("");
  const start = useRef(from);
  start.current = from;
  const [state, setState] = useState<LiveState>("off");
  const key = filter ? JSON.stringify(filter) : "";

  useEffect(() => {
    if (!filter) {
      setState("off");
      return;
    }
    const ctl = new AbortController();
    let delay = 1000;
    (async () => {
      while (!ctl.signal.aborted) {
        setState((s) => (s === "on" ? "retrying" : s === "off" ? "connecting" : s));
        try {
          const at = cursor.current || start.current?.() || "now";
          const body = { ...filter, fromCursor: at, heartbeatS: HEARTBEAT_S };
          for await (const msg of stream<SubscribeMessage>(AUDIT, "Subscribe", body, ctl.signal, () => setState("on"))) {
            delay = 1000;
            const events = msg.events?.events ?? [];
            if (msg.cursor) cursor.current = msg.cursor;
            if (events.length) handler.current(events.map(parsed));
          }
        } catch (err) {
          if (ctl.signal.aborted) return;
          if (err instanceof ApiError && FINAL.has(err.status)) {
            setState("off");
            return;
          }
        }
        if (ctl.signal.aborted) return;
        setState("retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    })();
    return () => ctl.abort();
  }, [key]);
  return { state, cursor: () => cursor.current };
}

/** The run id of a tracking stream id (`run-<id>`), or "". */
export function runOf(streamId: string): string {
  return streamId.startsWith("run-") ? streamId.slice(4) : "";
}

export function LiveBadge(props: { state: LiveState; what: string }) {
  if (props.state === "off") return null;
  const on = props.state === "on";
  return (
    <span
      class={`live ${on ? "on" : "waiting"}`}
      data-live={props.state}
      title={on ? `Live: ${props.what} appear as they happen` : "Connecting to the event stream…"}
    >
      <span class="live-dot" aria-hidden="true" />
      {on ? "Live" : "Connecting…"}
    </span>
  );
}
