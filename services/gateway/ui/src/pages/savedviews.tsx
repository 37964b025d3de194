// Saved views of the runs table: a name for the URL state (filter, columns, sort, group, which runs),
// kept in this browser's local storage per experiment. A view holds no secret and no data, only a
// query string, so it is the same thing a bookmark is; sharing one is sharing its link.

import { useEffect, useRef, useState } from "preact/hooks";
import { Link } from "wouter-preact";

export interface SavedView {
  name: string;
  query: string;
  savedAt: number;
}

/** The URL parameters that make a view of the runs table. */
export const VIEW_KEYS = ["filter", "sort", "cols", "view", "group", "agg", "open"];

const storageKey = (experimentId: string) => `modelog.views.${experimentId}`;

export function loadViews(experimentId: string): SavedView[] {
  try {
    const raw = JSON.parse(localStorage.getItem(storageKey(experimentId)) ?? "[]") as unknown;
    return Array.isArray(raw)
      ? raw.filter((v): v is SavedView => !!v && typeof v.name === "string" && typeof v.query === "string")
      : [];
  } catch {
    return [];
  }
}

function storeViews(experimentId: string, views: SavedView[]): void {
  localStorage.setItem(storageKey(experimentId), JSON.stringify(views));
}

export function viewQuery(params: URLSearchParams): string {
  const out = new URLSearchParams();
  for (const k of VIEW_KEYS) {
    const v = params.get(k);
    if (v !== null && v !== "") out.set(k, v);
  }
  return out.toString();
}

export function SavedViews(props: { experimentId: string; params: URLSearchParams }) {
  const [views, setViews] = useState<SavedView[]>(() => loadViews(props.experimentId));
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [note, setNote] = useState("");
  const root = useRef<HTMLDivElement>(null);
  const current = viewQuery(props.params);
  const base = `/experiments/${encodeURIComponent(props.experimentId)}`;

  useEffect(() => {
    if (!open) return;
    const away = (e: MouseEvent) => root.current && !root.current.contains(e.target as Node) && setOpen(false);
    const esc = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    document.addEventListener("mousedown", away);
    document.addEventListener("keydown", esc);
    return () => {
      document.removeEventListener("mousedown", away);
      document.removeEventListener("keydown", esc);
    };
  }, [open]);
  // another tab saved or deleted one
  useEffect(() => {
    const sync = (e: StorageEvent) => e.key === storageKey(props.experimentId) && setViews(loadViews(props.experimentId));
    window.addEventListener("storage", sync);
    return () => window.removeEventListener("storage", sync);
  }, [props.experimentId]);

  const save = (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (!n) {
      setNote("Name the view first.");
      return;
    }
    const next = [...views.filter((v) => v.name !== n), { name: n, query: current, savedAt: Date.now() }].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    storeViews(props.experimentId, next);
    setViews(next);
    setNote(views.some((v) => v.name === n) ? `Replaced “${n}”.` : `Saved “${n}”.`);
    setName("");
  };
  const remove = (n: string) => {
    const next = views.filter((v) => v.name !== n);
    storeViews(props.experimentId, next);
    setViews(next);
    setNote(`Deleted “${n}”.`);
  };
  const active = views.find((v) => v.query === current);

  return (
    <div class="picker" ref={root}>
      <button type="button" class="btn" aria-expanded={open} aria-haspopup="dialog" onClick={() => setOpen(!open)} data-testid="saved-views">
        {active ? <>View: {active.name}</> : "Views"} <span class="count-pill">{views.length}</span>
      </button>
      {open && (
        <div class="popover views-popover" role="dialog" aria-label="Saved views">
          <form class="view-save" onSubmit={save}>
            <label for="view-name" class="sr-only">
              Name of the view
            </label>
            <input
              id="view-name"
              type="text"
              class="search"
              placeholder="Name this view…"
              value={name}
              maxLength={80}
              onInput={(e) => setName((e.target as HTMLInputElement).value)}
              autofocus
            />
            <button type="submit" class="btn primary">
              Save current view
            </button>
          </form>
          <p class="muted tiny">
            Saves the filter, columns, sort and grouping in this browser, for this experiment.
            {note && (
              <span role="status" class="view-note">
                {" "}
                {note}
              </span>
            )}
          </p>
          {views.length === 0 ? (
            <p class="muted small">No saved view yet.</p>
          ) : (
            <ul class="views" aria-label="Saved views">
              {views.map((v) => (
                <li key={v.name} class={v.query === current ? "on" : ""}>
                  <Link href={`${base}${v.query ? "?" + v.query : ""}`} onClick={() => setOpen(false)} className="view-link">
                    {v.name}
                  </Link>
                  <span class="muted tiny mono view-query" title={decodeURIComponent(v.query)}>
                    {decodeURIComponent(v.query.replace(/\+/g, " ")) || "default view"}
                  </span>
                  <button type="button" class="btn ghost small-btn" aria-label={`Delete the view ${v.name}`} onClick={() => remove(v.name)}>
                    Delete
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
