// What a run is linked to, from the lineage graph (the audit service's view over every log): the
// artifact versions that hold its dataset inputs, the artifact versions it produced and the model
// versions trained from it. The graph trails the logs by the bus's lag, and needs a role to read:
// without it the run page shows the inputs unlinked.

import { LINEAGE, rpc } from "../api";
import type { LineageGraph } from "../types";

export interface VersionLink {
  name: string;
  version: number;
}

export interface RunLinks {
  /** Dataset digest (lower case, no algorithm prefix) -> the artifact versions with that content. */
  datasets: Map<string, VersionLink[]>;
  produced: VersionLink[];
  models: VersionLink[];
}

export function datasetKey(digest: string): string {
  return digest.trim().toLowerCase().replace(/^sha256:/, "");
}

function artifactVersion(label: string | undefined): VersionLink | null {
  const m = /^artifact:(.+):v(\d+)$/.exec(label ?? "");
  return m ? { name: m[1], version: Number(m[2]) } : null;
}

function modelVersion(label: string | undefined): VersionLink | null {
  const m = /^model:(.+)\/(\d+)$/.exec(label ?? "");
  return m ? { name: m[1], version: Number(m[2]) } : null;
}

export async function runLinks(runId: string, signal: AbortSignal): Promise<RunLinks | null> {
  let graph: LineageGraph;
  try {
    graph = await rpc<LineageGraph>(LINEAGE, "GetLineage", { entity: `run:${runId}`, direction: "DIRECTION_BOTH", depth: 2 }, signal);
  } catch {
    return null; // not in the graph yet, or not ours to read
  }
  const nodes = new Map((graph.nodes ?? []).map((n) => [n.id, n]));
  const root = graph.root ?? "";
  const links: RunLinks = { datasets: new Map(), produced: [], models: [] };
  for (const e of graph.edges ?? []) {
    if (e.endedPosition && e.endedPosition !== "0") continue;
    const src = nodes.get(e.src);
    const dst = nodes.get(e.dst);
    if (e.relation === "content" && src && dst?.kind === "dataset") {
      const v = artifactVersion(src.label);
      const key = datasetKey((dst.label ?? "").replace(/^dataset:/, ""));
      if (v) links.datasets.set(key, [...(links.datasets.get(key) ?? []), v]);
    } else if (e.relation === "produced" && e.src === root) {
      const v = artifactVersion(dst?.label);
      if (v) links.produced.push(v);
    } else if (e.relation === "trained" && e.src === root) {
      const v = modelVersion(dst?.label);
      if (v) links.models.push(v);
    }
  }
  return links;
}
