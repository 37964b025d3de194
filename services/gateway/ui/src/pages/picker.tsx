import { useEffect, useRef, useState } from "preact/hooks";
import { colId, KIND_LABEL, type Column, type Kind } from "./columns";

/** Which params, metrics and tags the runs table shows, in the order they were picked. */
export function ColumnPicker(props: { keys: Record<Kind, string[]>; cols: Column[]; onChange: (cols: Column[]) => void }) {
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState("");
  const root = useRef<HTMLDivElement>(null);

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

  const chosen = new Set(props.cols.map(colId));
  const toggle = (c: Column) =>
    props.onChange(chosen.has(colId(c)) ? props.cols.filter((x) => colId(x) !== colId(c)) : [...props.cols, c]);
  const needle = q.trim().toLowerCase();

  return (
    <div class="picker" ref={root}>
      <button
        type="button"
        class="btn"
        aria-expanded={open}
        aria-haspopup="dialog"
        onClick={() => setOpen(!open)}
        data-testid="column-picker"
      >
        Columns <span class="count-pill">{props.cols.length}</span>
      </button>
      {open && (
        <div class="popover" role="dialog" aria-label="Choose columns">
          <input
            type="search"
            class="search"
            placeholder="Find a key…"
            aria-label="Find a column"
            value={q}
            onInput={(e) => setQ((e.target as HTMLInputElement).value)}
            autofocus
          />
          <div class="picker-groups">
            {(["m", "p", "t"] as Kind[]).map((kind) => {
              const keys = props.keys[kind].filter((k) => !needle || k.toLowerCase().includes(needle));
              return (
                <fieldset key={kind} class={`picker-group kind-${kind}`}>
                  <legend>
                    <span class="kind-dot" aria-hidden="true" />
                    {KIND_LABEL[kind]} <span class="muted">({props.keys[kind].length})</span>
                  </legend>
                  {keys.length === 0 && <div class="muted tiny">none{needle ? " match" : ""}</div>}
                  {keys.slice(0, 300).map((key) => {
                    const c = { kind, key };
                    return (
                      <label key={key} class="check">
                        <input type="checkbox" checked={chosen.has(colId(c))} onChange={() => toggle(c)} />
                        <span>{key}</span>
                      </label>
                    );
                  })}
                </fieldset>
              );
            })}
          </div>
          <div class="picker-foot">
            <span class="muted tiny">Keys of the loaded runs</span>
            <button type="button" class="btn ghost" onClick={() => props.onChange([])}>
              None
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
