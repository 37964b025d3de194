import { useMemo } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { ARTIFACTS, rpc } from "../api";
import { ArtifactBrowser } from "../components/artifacts";
import { Chip, SearchBox, Show, useAsync } from "../components/common";
import { fmtAgo, fmtTimestamp, int } from "../format";

interface Artifact {
  name: string;
  kind?: string;
  latestVersion?: string;
  createdAt?: string;
  updatedAt?: string;
  project?: string;
}

const KINDS = ["", "dataset", "model", "other"];

/** Every artifact the caller may read: datasets, model packages, a run's files (`run-<id>`). */
export function Artifacts() {
  const [params, setParams] = useSearchParams();
  const kind = params.get("kind") ?? "";
  const q = params.get("q") ?? "";
  const [data] = useAsync(
    (signal) => rpc<{ artifacts?: Artifact[] }>(ARTIFACTS, "ListArtifacts", { kind }, signal).then((r) => r.artifacts ?? []),
    [kind],
  );
  const set = (k: string, v: string) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        if (v) next.set(k, v);
        else next.delete(k);
        return next;
      },
      { replace: true },
    );
  const needle = q.trim().toLowerCase();
  return (
    <div class="page">
      <div class="page-head">
        <h1>Artifacts</h1>
        <div class="toolbar">
          <SearchBox value={q} label="Search artifacts" placeholder="Name contains…" onInput={(v) => set("q", v)} />
          <select aria-label="Kind" value={kind} onChange={(e) => set("kind", (e.target as HTMLSelectElement).value)}>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k ? `${k}s` : "All kinds"}
              </option>
            ))}
          </select>
        </div>
      </div>
      <Show data={data} what="artifacts">
        {(all) => {
          const shown = all.filter((a) => !needle || a.name.toLowerCase().includes(needle)).slice(0, 2000);
          if (shown.length === 0) return <div class="empty">No artifact{needle ? ` whose name contains “${q}”` : " yet"}.</div>;
          return (
            <table class="grid-table" aria-label="Artifacts">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Kind</th>
                  <th class="num">Latest</th>
                  <th>Project</th>
                  <th>Updated</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((a) => (
                  <tr key={a.name}>
                    <td>
                      <Link href={`/artifacts/${encodeURIComponent(a.name)}`} className="strong">
                        {a.name}
                      </Link>
                    </td>
                    <td>
                      <Chip>{a.kind || "other"}</Chip>
                    </td>
                    <td class="num">v{int(a.latestVersion)}</td>
                    <td>{a.project ?? "default"}</td>
                    <td title={fmtTimestamp(a.updatedAt)}>{fmtAgo(Date.parse(a.updatedAt ?? ""))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          );
        }}
      </Show>
    </div>
  );
}

/** One artifact's versions and files (`v`: the version, `file`: the previewed path). */
export function ArtifactPage(props: { name: string }) {
  const [params, setParams] = useSearchParams();
  const version = int(params.get("v") ?? "");
  const path = params.get("file") ?? "";
  const run = useMemo(() => (/^run-([0-9a-f]+)$/.exec(props.name) ?? [])[1], [props.name]);
  return (
    <div class="page">
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/artifacts">Artifacts</Link> /
          </div>
          <h1>{props.name}</h1>
          {run && (
            <p class="lede">
              The files of run <Link href={`/runs/${run}`}>{run.slice(0, 12)}</Link>.
            </p>
          )}
        </div>
      </div>
      <section class="card">
        <ArtifactBrowser
          name={props.name}
          version={version}
          path={path}
          onChange={(v, p) => {
            const next = new URLSearchParams();
            if (v) next.set("v", String(v));
            if (p) next.set("file", p);
            setParams(next, { replace: true });
          }}
          empty="No such artifact, or none you may read."
        />
      </section>
    </div>
  );
}
