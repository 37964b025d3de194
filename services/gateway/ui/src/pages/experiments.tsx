import { useMemo } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { rpc, TRACKING } from "../api";
import { Chip, SearchBox, Show, useAsync } from "../components/common";
import { fmtAgo, fmtTime, int } from "../format";
import type { Experiment } from "../types";

const VIEWS = { active: "VIEW_TYPE_ACTIVE_ONLY", deleted: "VIEW_TYPE_DELETED_ONLY", all: "VIEW_TYPE_ALL" } as const;

async function allExperiments(view: string, signal: AbortSignal): Promise<Experiment[]> {
  const out: Experiment[] = [];
  let pageToken = "";
  do {
    const page = await rpc<{ experiments?: Experiment[]; nextPageToken?: string }>(
      TRACKING,
      "ListExperiments",
      { view, pageSize: 1000, pageToken },
      signal,
    );
    out.push(...(page.experiments ?? []));
    pageToken = page.nextPageToken ?? "";
  } while (pageToken && out.length < 100_000);
  return out;
}

function matches(e: Experiment, words: string[]): boolean {
  const hay = [e.name, e.experimentId, e.description, e.project, ...Object.entries(e.tags ?? {}).flat()]
    .join(" ")
    .toLowerCase();
  return words.every((w) => hay.includes(w));
}

export function Experiments() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const viewKey = (params.get("view") ?? "active") as keyof typeof VIEWS;
  const [data] = useAsync((signal) => allExperiments(VIEWS[viewKey] ?? VIEWS.active, signal), [viewKey]);
  const update = (key: string, value: string) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        if (value) next.set(key, value);
        else next.delete(key);
        return next;
      },
      { replace: true },
    );

  const words = useMemo(() => q.toLowerCase().split(/\s+/).filter(Boolean), [q]);
  return (
    <div class="page">
      <div class="page-head">
        <h1>Experiments</h1>
        <div class="toolbar">
          <SearchBox
            value={q}
            label="Search experiments"
            placeholder="Search by name, id, project, tag…"
            onInput={(v) => update("q", v)}
          />
          <select
            aria-label="Which experiments"
            value={viewKey}
            onChange={(e) => update("view", (e.target as HTMLSelectElement).value === "active" ? "" : (e.target as HTMLSelectElement).value)}
          >
            <option value="active">Active</option>
            <option value="deleted">Deleted</option>
            <option value="all">All</option>
          </select>
        </div>
      </div>
      <Show data={data} what="experiments">
        {(all) => {
          const shown = words.length ? all.filter((e) => matches(e, words)) : all;
          return (
            <>
              <p class="muted small count" data-testid="experiment-count">
                {shown.length === all.length
                  ? `${all.length.toLocaleString("en-US")} experiments`
                  : `${shown.length.toLocaleString("en-US")} of ${all.length.toLocaleString("en-US")} experiments match`}
              </p>
              {shown.length === 0 ? (
                <div class="empty">
                  {all.length === 0 ? (
                    <>
                      No experiments yet. Start one from Python:{" "}
                      <code>modelog.start_run(experiment="churn")</code>
                    </>
                  ) : (
                    <>No experiment matches “{q}”.</>
                  )}
                </div>
              ) : (
                <table class="grid-table" aria-label="Experiments">
                  <thead>
                    <tr>
                      <th>Name</th>
                      <th>Project</th>
                      <th>Description</th>
                      <th>Tags</th>
                      <th>Created</th>
                      <th>Updated</th>
                    </tr>
                  </thead>
                  <tbody>
                    {shown.slice(0, 2000).map((e) => (
                      <tr key={e.experimentId} class={e.deleted ? "deleted" : ""}>
                        <td>
                          <Link href={`/experiments/${encodeURIComponent(e.experimentId)}`} className="strong">
                            {e.name}
                          </Link>
                          {e.deleted && <Chip kind="warn">deleted</Chip>}
                          <div class="muted tiny mono-id">{e.experimentId}</div>
                        </td>
                        <td>{e.project ?? "default"}</td>
                        <td class="desc">{e.description}</td>
                        <td>
                          {Object.entries(e.tags ?? {})
                            .filter(([k]) => !k.startsWith("mlflow."))
                            .slice(0, 6)
                            .map(([k, v]) => (
                              <Chip key={k}>
                                {k}={v}
                              </Chip>
                            ))}
                        </td>
                        <td title={fmtTime(int(e.createdAtMs))}>{fmtAgo(int(e.createdAtMs))}</td>
                        <td title={fmtTime(int(e.updatedAtMs))}>{fmtAgo(int(e.updatedAtMs))}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          );
        }}
      </Show>
    </div>
  );
}
