// The one way the UI talks to the platform: the gateway's JSON form of the gRPC API.
//
//   POST /api/modelog/v1/{package.Service}/{Method}   body and answer: the messages as proto3 JSON
//   server-streaming methods answer as Server-Sent Events (`data: <json>`, `event: error`)
//   errors: {"error": {"code", "status", "message", "details"}}
//
// The session cookie is HttpOnly: script never sees the token. Writes echo the readable CSRF cookie.

export const TRACKING = "modelog.tracking.v1.Tracking";
export const REGISTRY = "modelog.registry.v1.Registry";
export const EVENTLOG = "modelog.eventlog.v1.EventLog";
export const IDENTITY = "modelog.identity.v1.Identity";
export const IDENTITY_ACCESS = "modelog.identity.v1.Access";
export const AUDIT = "modelog.audit.v1.Audit";
export const LINEAGE = "modelog.audit.v1.Lineage";
export const ARTIFACTS = "modelog.artifacts.v1.Artifacts";
export const MONITORING = "modelog.monitoring.v1.Monitoring";

export interface FieldViolation {
  field: string;
  description: string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: string,
    readonly httpStatus: number,
    readonly details: Array<Record<string, unknown>> = [],
  ) {
    super(message);
    this.name = "ApiError";
  }

  get violations(): FieldViolation[] {
    const bad = this.details.find((d) => String(d["@type"] ?? "").endsWith("google.rpc.BadRequest"));
    return (bad?.fieldViolations as FieldViolation[] | undefined) ?? [];
  }
}

/** Called when the server says the session is gone (expired, signed out in another tab). */
let onUnauthenticated: () => void = () => {};
export function whenSignedOut(handler: () => void): void {
  onUnauthenticated = handler;
}

export function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "modelog_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

function headers(): Record<string, string> {
  return { "content-type": "application/json", "x-csrf-token": csrfToken() };
}

async function failure(res: Response, endsSession = true): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: a proxy's page, or the gateway's plain 404
  }
  const err = (body as { error?: { message?: string; status?: string; details?: [] } } | null)?.error;
  const legacy = body as { message?: string; error_code?: string } | null;
  const message = err?.message ?? legacy?.message ?? `${res.status} ${res.statusText}`;
  const status = err?.status ?? legacy?.error_code ?? String(res.status);
  if (res.status === 401 && endsSession) onUnauthenticated();
  return new ApiError(message, status, res.status, err?.details ?? []);
}

function url(service: string, method: string): string {
  return `/api/modelog/v1/${service}/${method}`;
}

/** One unary call. */
export async function rpc<T>(service: string, method: string, body: object = {}, signal?: AbortSignal): Promise<T> {
  const res = await fetch(url(service, method), {
    method: "POST",
    headers: headers(),
    body: JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/** A server-streaming call: every message as it arrives. EventSource cannot POST, so fetch reads
 * the event stream itself. `onOpen` runs once the server has accepted the call (its 200 came). */
export async function* stream<T>(
  service: string,
  method: string,
  body: object = {},
  signal?: AbortSignal,
  onOpen?: () => void,
): AsyncGenerator<T> {
  const res = await fetch(url(service, method), {
    method: "POST",
    headers: { ...headers(), accept: "text/event-stream" },
    body: JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (!res.ok || !res.body) throw await failure(res);
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const event = parseEvent(block);
      if (event === null) continue;
      if (event.type === "end") return; // the call finished: {"status":"OK"}, not a message
      if (event.type === "error") {
        const err = (JSON.parse(event.data) as { error?: { message: string; status: string; details?: [] } }).error;
        throw new ApiError(err?.message ?? "the stream failed", err?.status ?? "UNKNOWN", 200, err?.details ?? []);
      }
      yield JSON.parse(event.data) as T;
    }
    if (done) return;
  }
}

function parseEvent(block: string): { type: string; data: string } | null {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue; // a comment, such as a keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { type, data: data.join("\n") } : null;
}

export interface Me {
  actor: string;
  roles: string[];
}

export async function currentSession(): Promise<Me | null> {
  const res = await fetch("/auth/session", { credentials: "same-origin" });
  if (res.status === 401) return null;
  if (!res.ok) throw await failure(res, false);
  return (await res.json()) as Me;
}

export async function signIn(token: string): Promise<Me> {
  const res = await fetch("/auth/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  if (!res.ok) throw await failure(res, false); // a refused token: say why, there was no session
  return (await res.json()) as Me;
}

export async function signOut(): Promise<void> {
  await fetch("/auth/session", { method: "DELETE", headers: headers(), credentials: "same-origin" });
}
