// The audit timeline's data: every service's log read backwards in pages and merged newest first, or
// one entity's timeline across the logs from the lineage service. Filters the server cannot apply
// (actor, type within a page) are applied here, on what was read.

import { EVENTLOG, LINEAGE, rpc, stream } from "../api";
import { int } from "../format";
import type { LogEvent } from "../types";

export const CHUNK = 500;
const SCAN_CAP = 20_000; // events read per "load more", whatever matched

export interface Entry {
  service: string;
  position: number;
  recordedAt: string;
  type: string;
  actor: string;
  streamId: string;
  streamVersion: number;
  /** For log events: the whole event; for timeline entries: read when opened. */
  event?: LogEvent;
  summary?: string;
  payload?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

export interface Filters {
  service: string;
  type: string;
  actor: string;
  entity: string;
}

/** `run:<id>`, `model:<name>`, … as the lineage service names entities (proto/modelog/audit/v1/lineage.proto). */
export const ENTITY = /^(run|experiment|dataset|artifact|model|monitor):.+/;

function safe(text: string | undefined): Record<string, unknown> {
  try {
    return (JSON.parse(text || "{}") as Record<string, unknown>) ?? {};
  } catch {
    return {};
  }
}

export function fromEvent(e: LogEvent, service: string): Entry {
  const metadata = safe(e.metadataJson);
  return {
    service: e.service || service,
    position: int(e.position),
    recordedAt: e.recordedAt ?? "",
    type: e.type ?? "",
    actor: String(metadata.actor ?? "system"),
    streamId: e.streamId ?? "",
    streamVersion: int(e.streamVersion),
    event: e,
    payload: safe(e.payloadJson),
    metadata,
  };
}

export function matches(e: Entry, f: Filters): boolean {
  if (f.service && e.service !== f.service) return false;
  if (f.type && e.type !== f.type) return false;
  const actor = f.actor.trim().toLowerCase();
  if (actor && !e.actor.toLowerCase().includes(actor)) return false;
  const entity = f.entity.trim();
  if (entity && !ENTITY.test(entity)) {
    // a stream id, exact or a prefix ending in `*` (as Subscribe's filter reads them)
    if (entity.endsWith("*") ? !e.streamId.startsWith(entity.slice(0, -1)) : e.streamId !== entity) return false;
  }
  return true;
}

export async function readBefore(service: string, before: number, signal: AbortSignal): Promise<Entry[]> {
  const from = Math.max(1, before - CHUNK);
  const limit = before - from;
  if (limit <= 0) return [];
  const out: Entry[] = [];
  for await (const batch of stream<{ events?: LogEvent[] }>(EVENTLOG, "ReadLog", { service, fromPosition: from, limit }, signal)) {
    for (const e of batch.events ?? []) out.push(fromEvent(e, service));
  }
  return out;
}

/** Where the merged read of the logs stands: per log, the lowest position read (1: all of it). */
export interface Scan {
  before: Record<string, number>;
  /** Per log, the recorded-at of the oldest event read (what bounds the merged order). */
  oldest: Record<string, string>;
  read: Entry[];
  types: Set<string>;
  scanned: number;
}

export function newScan(heads: Record<string, number>): Scan {
  const before: Record<string, number> = {};
  for (const [log, head] of Object.entries(heads)) before[log] = head + 1;
  return { before, oldest: {}, read: [], types: new Set(), scanned: 0 };
}

/** Events at or after this instant are complete across the logs still being read. */
export function frontier(scan: Scan): string {
  let bound = "";
  for (const [log, before] of Object.entries(scan.before)) {
    if (before <= 1) continue; // this log is read to its start
    const oldest = scan.oldest[log] ?? "\uffff"; // nothing read yet: nothing is complete
    if (oldest > bound) bound = oldest;
  }
  return bound;
}

export function shown(scan: Scan, f: Filters): Entry[] {
  const bound = frontier(scan);
  return scan.read
    .filter((e) => e.recordedAt >= bound && matches(e, f))
    .sort(f.service ? (a, b) => b.position - a.position : (a, b) => (a.recordedAt === b.recordedAt ? b.position - a.position : a.recordedAt < b.recordedAt ? 1 : -1));
}

/** Reads on, the log that bounds the order first, until `want` more events match or the cap. */
export async function scanMore(scan: Scan, f: Filters, want: number, signal: AbortSignal): Promise<Scan> {
  const next: Scan = { ...scan, before: { ...scan.before }, oldest: { ...scan.oldest }, read: [...scan.read], types: new Set(scan.types) };
  const target = shown(scan, f).length + want;
  let scanned = 0;
  while (scanned < SCAN_CAP && shown(next, f).length < target) {
    const open = Object.entries(next.before).filter(([log, b]) => b > 1 && (!f.service || log === f.service));
    if (!open.length) break;
    // the log whose oldest read event is newest holds the frontier back
    open.sort(([a], [b]) => ((next.oldest[b] ?? "\uffff") > (next.oldest[a] ?? "\uffff") ? 1 : -1));
    const [log, before] = open[0];
    const got = await readBefore(log, before, signal);
    scanned += got.length;
    next.before[log] = Math.max(1, before - CHUNK);
    if (got.length) next.oldest[log] = got[0].recordedAt;
    for (const e of got) next.types.add(e.type);
    next.read.push(...got);
    if (!got.length) next.before[log] = 1;
  }
  // logs outside the service filter do not hold the order back
  if (f.service) for (const log of Object.keys(next.before)) if (log !== f.service) next.before[log] = 1;
  next.scanned = scan.scanned + scanned;
  return next;
}

interface TimelineEntry {
  service?: string;
  position?: string;
  recordedAt?: string;
  actor?: string;
  type?: string;
  streamId?: string;
  summary?: string;
}

/** One entity's timeline across every log (the lineage service's view), newest first. */
export async function entityTimeline(entity: string, signal: AbortSignal): Promise<Entry[]> {
  const out: Entry[] = [];
  let token = "";
  for (let page = 0; page < 20; page++) {
    const r = await rpc<{ entries?: TimelineEntry[]; nextPageToken?: string }>(
      LINEAGE,
      "Timeline",
      { entity, limit: 1000, pageToken: token },
      signal,
    );
    for (const t of r.entries ?? []) {
      out.push({
        service: t.service ?? "",
        position: int(t.position),
        recordedAt: t.recordedAt ?? "",
        type: t.type ?? "",
        actor: t.actor || "system",
        streamId: t.streamId ?? "",
        streamVersion: 0,
        summary: t.summary,
      });
    }
    token = r.nextPageToken ?? "";
    if (!token) break;
  }
  return out.reverse();
}

/** The whole event behind a timeline entry. */
export async function readOne(service: string, position: number, signal?: AbortSignal): Promise<Entry | null> {
  for await (const batch of stream<{ events?: LogEvent[] }>(EVENTLOG, "ReadLog", { service, fromPosition: position, limit: 1 }, signal)) {
    const e = batch.events?.[0];
    if (e) return fromEvent(e, service);
  }
  return null;
}
