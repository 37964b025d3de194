import type { Double, Int64, RunStatus, Stage } from "./types";

/** A proto3 JSON double as a number ("NaN" and the infinities are strings on the wire). */
export function num(value: Double | undefined): number {
  if (value === undefined) return 0;
  if (typeof value === "number") return value;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return NaN;
}

export function int(value: Int64 | number | undefined): number {
  return value === undefined ? 0 : Number(value);
}

export function fmtNum(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (Number.isInteger(value) && Math.abs(value) < 1e9) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e9)) return value.toExponential(3);
  return Number(value.toPrecision(5)).toString();
}

export function fmtCount(value: number): string {
  return value.toLocaleString("en-US");
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Local time, sortable and unambiguous: 2026-03-01 10:12:03. */
export function fmtTime(ms: number): string {
  if (!ms) return "";
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function fmtTimestamp(rfc3339: string | undefined): string {
  return rfc3339 ? fmtTime(Date.parse(rfc3339)) : "";
}

export function fmtDuration(ms: number): string {
  if (!(ms >= 0)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function fmtAgo(ms: number, now = Date.now()): string {
  if (!ms) return "";
  const s = Math.round((now - ms) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const STATUS: Record<RunStatus, string> = {
  RUN_STATUS_RUNNING: "Running",
  RUN_STATUS_FINISHED: "Finished",
  RUN_STATUS_FAILED: "Failed",
  RUN_STATUS_KILLED: "Killed",
};

export function runStatus(status: RunStatus | undefined): string {
  return status ? STATUS[status] ?? status : "Unknown";
}

export const STAGES: Record<Stage, string> = {
  STAGE_NONE: "None",
  STAGE_STAGING: "Staging",
  STAGE_PRODUCTION: "Production",
  STAGE_ARCHIVED: "Archived",
};

export function stageName(stage: Stage | undefined): string {
  return stage ? STAGES[stage] ?? stage : "None";
}

/** The last part of an enum name, capitalised: VERSION_STATUS_READY -> Ready. */
export function enumName(value: string | undefined, prefix: string): string {
  if (!value) return "";
  const rest = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  return rest.charAt(0) + rest.slice(1).toLowerCase();
}

export function shortDigest(digest: string | undefined): string {
  if (!digest) return "";
  const [algo, hex] = digest.includes(":") ? digest.split(":", 2) : ["", digest];
  return `${algo ? algo + ":" : ""}${hex.slice(0, 12)}`;
}
