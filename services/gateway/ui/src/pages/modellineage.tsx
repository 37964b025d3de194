import { ApiError, LINEAGE, rpc } from "../api";
import { ErrorBox, Loading, useAsync } from "../components/common";
import { LineageGraph } from "../components/lineagegraph";
import type { LineageEdge, LineageGraph as Graph, LineageNode } from "../types";

const MAX_VERSIONS = 20; // the newest ones: a model's graph is the union of its versions' graphs

/** The model's lineage: each version's graph (run, datasets, artifact, aliases, stages, monitors)
 * from the audit service, merged; as it stood at `asOf` when given. */
export function ModelLineage(props: { name: string; versions: number[]; asOf: string | null }) {
  const versions = [...props.versions].sort((a, b) => b - a).slice(0, MAX_VERSIONS);
  const [graph] = useAsync(async (signal) => {
    const nodes = new Map<string, LineageNode>();
    const edges = new Map<string, LineageEdge>();
    let denied: Error | null = null;
    await Promise.all(
      versions.map((v) =>
        rpc<Graph>(
          LINEAGE,
          "GetLineage",
          { entity: `model:${props.name}/${v}`, direction: "DIRECTION_BOTH", depth: 4, ...(props.asOf ? { asOf: props.asOf } : {}) },
          signal,
        ).then(
          (g) => {
            for (const n of g.nodes ?? []) nodes.set(n.id, n);
            for (const e of g.edges ?? []) edges.set(`${e.src}\u0000${e.dst}\u0000${e.relation}`, e);
          },
          (err: Error) => {
            // a version made after `asOf`, or not yet in the (asynchronous) graph: nothing to add
            if (err instanceof ApiError && err.status === "NOT_FOUND") return;
            denied ??= err;
          },
        ),
      ),
    );
    if (denied && nodes.size === 0) throw denied;
    return { nodes: [...nodes.values()], edges: [...edges.values()] };
  }, [props.name, versions.join(","), props.asOf ?? ""]);

  return (
    <section class="card" aria-label="Lineage">
      <h2>
        Lineage{props.asOf && <span class="muted small"> as it stood then</span>}
      </h2>
      {graph.state === "loading" && <Loading what="the lineage" />}
      {graph.state === "error" && <ErrorBox error={graph.error} title="Could not read the lineage" />}
      {graph.state === "ok" &&
        (graph.value.nodes.length === 0 ? (
          <p class="muted small">Nothing in the lineage graph yet (it follows the logs a moment behind).</p>
        ) : (
          <LineageGraph nodes={graph.value.nodes} edges={graph.value.edges} />
        ))}
      <p class="muted tiny">
        Datasets → runs → artifact versions → model versions → aliases, stages and monitors. Click a run or an artifact to open it; hover
        to follow its edges.
      </p>
    </section>
  );
}
