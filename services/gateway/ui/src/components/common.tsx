import type { ComponentChildren } from "preact";
import { useLayoutEffect, useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { ApiError } from "../api";
import { runStatus, stageName } from "../format";
import type { RunStatus, Stage } from "../types";

export type Async<T> = { state: "loading" } | { state: "error"; error: Error } | { state: "ok"; value: T };

/** The result of `load`, reloaded when `deps` change; a stale answer never overwrites a newer one. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): [Async<T>, () => void] {
  const [result, setResult] = useState<Async<T>>({ state: "loading" });
  const [tick, setTick] = useState(0);
  // a layout effect: the call goes out before the first paint, not a frame after it
  useLayoutEffect(() => {
    const ctl = new AbortController();
    setResult((r) => (r.state === "ok" ? r : { state: "loading" }));
    load(ctl.signal).then(
      (value) => !ctl.signal.aborted && setResult({ state: "ok", value }),
      (error: Error) => !ctl.signal.aborted && setResult({ state: "error", error }),
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return [result, () => setTick((t) => t + 1)];
}

export function ErrorBox(props: { error: Error; title?: string }) {
  const status = props.error instanceof ApiError ? props.error.status : "";
  return (
    <div class="error-box" role="alert">
      <strong>{props.title ?? "Could not load this"}</strong>
      {status && <code class="status">{status}</code>}
      <div class="message">{props.error.message}</div>
    </div>
  );
}

export function Loading(props: { what?: string }) {
  return (
    <div class="loading" aria-busy="true">
      <span class="spinner" aria-hidden="true" /> Loading{props.what ? ` ${props.what}` : ""}…
    </div>
  );
}

export function Show<T>(props: { data: Async<T>; what?: string; children: (value: T) => ComponentChildren }) {
  if (props.data.state === "loading") return <Loading what={props.what} />;
  if (props.data.state === "error") return <ErrorBox error={props.data.error} />;
  return <>{props.children(props.data.value)}</>;
}

export function NotFound() {
  return (
    <div class="page">
      <h1>Nothing here</h1>
      <p class="muted">
        This address shows no page. Go to the <Link href="/experiments">experiments</Link>.
      </p>
    </div>
  );
}

export function StatusBadge(props: { status: RunStatus | undefined }) {
  const name = runStatus(props.status);
  return <span class={`badge status-${name.toLowerCase()}`}>{name}</span>;
}

export function StageBadge(props: { stage: Stage | undefined }) {
  const name = stageName(props.stage);
  return <span class={`badge stage-${name.toLowerCase()}`}>{name}</span>;
}

export function Chip(props: { children: ComponentChildren; kind?: string; title?: string }) {
  return (
    <span class={`chip ${props.kind ?? ""}`} title={props.title}>
      {props.children}
    </span>
  );
}

export function KeyValues(props: { entries: Array<[string, ComponentChildren]>; empty: string; label: string }) {
  if (!props.entries.length) return <p class="muted small">{props.empty}</p>;
  return (
    <table class="kv" aria-label={props.label}>
      <tbody>
        {props.entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function SearchBox(props: {
  value: string;
  placeholder: string;
  label: string;
  onInput: (value: string) => void;
}) {
  return (
    <input
      type="search"
      class="search"
      aria-label={props.label}
      placeholder={props.placeholder}
      value={props.value}
      onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
    />
  );
}

/** Text that may be long: shown cut, whole on hover and in the clipboard. */
export function Mono(props: { text: string; max?: number }) {
  const max = props.max ?? 80;
  const cut = props.text.length > max ? props.text.slice(0, max) + "…" : props.text;
  return (
    <code class="mono" title={props.text.length > max ? props.text : undefined}>
      {cut}
    </code>
  );
}
