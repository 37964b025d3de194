import { useEffect, useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { REGISTRY, rpc } from "../api";
import { Chip, SearchBox, Show, useAsync } from "../components/common";
import { fmtAgo, fmtTimestamp, int } from "../format";
import type { Model } from "../types";

interface Page {
  models: Model[];
  next: string;
}

export function Models() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [typed, setTyped] = useState(q);
  const [extra, setExtra] = useState<Page | null>(null);
  // the server filters by name: ask it once the typing pauses
  useEffect(() => {
    const t = setTimeout(() => typed !== q && setParams(typed ? { q: typed } : {}, { replace: true }), 250);
    return () => clearTimeout(t);
  }, [typed]);
  useEffect(() => setExtra(null), [q]);

  const [data] = useAsync(
    (signal) =>
      rpc<{ models?: Model[]; nextPageToken?: string }>(REGISTRY, "SearchModels", { nameContains: q, pageSize: 200 }, signal).then(
        (r): Page => ({ models: r.models ?? [], next: r.nextPageToken ?? "" }),
      ),
    [q],
  );

  return (
    <div class="page">
      <div class="page-head">
        <h1>Registered models</h1>
        <div class="toolbar">
          <SearchBox value={typed} label="Search models" placeholder="Name contains…" onInput={setTyped} />
        </div>
      </div>
      <Show data={data} what="models">
        {(first) => {
          const page = extra ?? first;
          const loadMore = async () => {
            const r = await rpc<{ models?: Model[]; nextPageToken?: string }>(REGISTRY, "SearchModels", {
              nameContains: q,
              pageSize: 200,
              pageToken: page.next,
            });
            setExtra({ models: page.models.concat(r.models ?? []), next: r.nextPageToken ?? "" });
          };
          if (page.models.length === 0)
            return (
              <div class="empty">
                {q ? (
                  <>No model's name contains “{q}”.</>
                ) : (
                  <>
                    No registered models yet: <code>modelog models register NAME --artifact ARTIFACT:vN</code>
                  </>
                )}
              </div>
            );
          return (
            <>
              <table class="grid-table" aria-label="Registered models">
                <thead>
                  <tr>
                    <th>Name</th>
                    <th class="num">Latest</th>
                    <th>Production</th>
                    <th>Aliases</th>
                    <th>Project</th>
                    <th>Created by</th>
                    <th>Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {page.models.map((m) => (
                    <tr key={m.modelId ?? m.name}>
                      <td>
                        <Link href={`/models/${encodeURIComponent(m.name)}`} className="strong">
                          {m.name}
                        </Link>
                        {m.deleted && <Chip kind="warn">deleted</Chip>}
                        {m.description && <div class="muted tiny desc-line">{m.description.split("\n")[0]}</div>}
                      </td>
                      <td class="num">{int(m.latestVersion) ? `v${int(m.latestVersion)}` : "–"}</td>
                      <td>
                        {(m.productionVersions ?? []).length === 0 && <span class="muted">–</span>}
                        {(m.productionVersions ?? []).map((v) => (
                          <Chip key={v} kind="stage-production">
                            v{v}
                          </Chip>
                        ))}
                      </td>
                      <td>
                        {Object.entries(m.aliases ?? {}).map(([a, v]) => (
                          <Chip key={a} kind="alias">
                            @{a} → v{v}
                          </Chip>
                        ))}
                      </td>
                      <td>{m.project ?? "default"}</td>
                      <td>{m.createdBy}</td>
                      <td title={fmtTimestamp(m.updatedAt)}>{fmtAgo(Date.parse(m.updatedAt ?? ""))}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {page.next && (
                <button type="button" class="btn" onClick={loadMore}>
                  More models
                </button>
              )}
            </>
          );
        }}
      </Show>
    </div>
  );
}
