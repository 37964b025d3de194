// A lineage graph as SVG: datasets -> runs -> artifact versions -> model versions -> aliases, stages
// and monitors, laid out in layers by longest path from the sources (a Sugiyama layout cut down to
// what a lineage needs: layers, then a few barycentre sweeps to uncross edges).

import { useMemo, useState } from "preact/hooks";
import { useLocation } from "wouter-preact";
import { fmtTimestamp } from "../format";
import type { LineageEdge, LineageNode } from "../types";

const W = 168;
const H = 38;
const GAP_X = 64;
const GAP_Y = 14;
const PAD = 12;
const MAX_NODES = 300;

const KIND: Record<string, { label: string; color: string; rank: number }> = {
  dataset: { label: "dataset", color: "#9a6700", rank: 1 },
  experiment: { label: "experiment", color: "#6e7781", rank: 0 },
  run: { label: "run", color: "#0969da", rank: 2 },
  artifact_version: { label: "artifact", color: "#8250df", rank: 3 },
  artifact_alias: { label: "artifact alias", color: "#8250df", rank: 4 },
  model: { label: "model", color: "#1a7f37", rank: 4 },
  model_version: { label: "model version", color: "#1a7f37", rank: 4 },
  model_alias: { label: "alias", color: "#bf3989", rank: 5 },
  model_stage: { label: "stage", color: "#bc4c00", rank: 5 },
  monitor: { label: "monitor", color: "#cf222e", rank: 6 },
};

function kindOf(kind: string | undefined) {
  return KIND[kind ?? ""] ?? { label: kind ?? "", color: "#57606a", rank: 3 };
}

function attrs(n: LineageNode): Record<string, unknown> {
  try {
    return JSON.parse(n.attrsJson || "{}") as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** What a node says in its box, and where it leads. */
export function describe(n: LineageNode): { text: string; href?: string } {
  const label = n.label ?? n.id;
  const a = attrs(n);
  let m: RegExpExecArray | null;
  if ((m = /^run:(.+)$/.exec(label))) return { text: String(a.name || m[1].slice(0, 12)), href: `/runs/${m[1]}` };
  if ((m = /^artifact:(.+):v(\d+)$/.exec(label))) return { text: `${m[1]}:v${m[2]}`, href: `/artifacts/${encodeURIComponent(m[1])}?v=${m[2]}` };
  if ((m = /^dataset:(.+)$/.exec(label))) return { text: String(a.name || m[1].slice(0, 12)) };
  if ((m = /^model:(.+)\/(\d+)$/.exec(label))) return { text: `${m[1]} v${m[2]}`, href: `/models/${encodeURIComponent(m[1])}` };
  if ((m = /^model:(.+)@(.+)$/.exec(label))) return { text: `@${m[2]}` };
  if ((m = /^model:(.+)#(.+)$/.exec(label))) return { text: m[2] };
  if ((m = /^monitor:(.+)$/.exec(label))) return { text: String(a.name || m[1]) };
  if ((m = /^experiment:(.+)$/.exec(label))) return { text: m[1].slice(0, 12), href: `/experiments/${m[1]}` };
  return { text: label };
}

interface Placed {
  node: LineageNode;
  layer: number;
  row: number;
  x: number;
  y: number;
}

/** Layers by longest path from the sources (a cycle's leftovers go by kind), rows by barycentre. */
export function layout(nodes: LineageNode[], edges: LineageEdge[]): { placed: Map<string, Placed>; width: number; height: number } {
  const ids = new Set(nodes.map((n) => n.id));
  const es = edges.filter((e) => ids.has(e.src) && ids.has(e.dst) && e.src !== e.dst);
  const out = new Map<string, string[]>();
  const inn = new Map<string, string[]>();
  for (const e of es) {
    out.set(e.src, [...(out.get(e.src) ?? []), e.dst]);
    inn.set(e.dst, [...(inn.get(e.dst) ?? []), e.src]);
  }
  const layer = new Map<string, number>();
  const indeg = new Map(nodes.map((n) => [n.id, (inn.get(n.id) ?? []).length]));
  const queue = nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id);
  queue.forEach((id) => layer.set(id, 0));
  while (queue.length) {
    const id = queue.shift()!;
    for (const d of out.get(id) ?? []) {
      layer.set(d, Math.max(layer.get(d) ?? 0, (layer.get(id) ?? 0) + 1));
      indeg.set(d, (indeg.get(d) ?? 1) - 1);
      if (indeg.get(d) === 0) queue.push(d);
    }
  }
  for (const n of nodes) if (!layer.has(n.id)) layer.set(n.id, kindOf(n.kind).rank);
  const layers: string[][] = [];
  for (const n of [...nodes].sort((a, b) => kindOf(a.kind).rank - kindOf(b.kind).rank || (a.label ?? "").localeCompare(b.label ?? ""))) {
    const l = layer.get(n.id)!;
    (layers[l] ??= []).push(n.id);
  }
  const dense = layers.filter((l) => l && l.length);
  const rowOf = new Map<string, number>();
  dense.forEach((l) => l.forEach((id, i) => rowOf.set(id, i)));
  const sweep = (l: string[], near: Map<string, string[]>) => {
    const bary = (id: string) => {
      const ns = (near.get(id) ?? []).map((x) => rowOf.get(x)).filter((r): r is number => r !== undefined);
      return ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : rowOf.get(id)!;
    };
    l.sort((a, b) => bary(a) - bary(b));
    l.forEach((id, i) => rowOf.set(id, i));
  };
  for (let pass = 0; pass < 3; pass++) {
    for (let i = 1; i < dense.length; i++) sweep(dense[i], inn);
    for (let i = dense.length - 2; i >= 0; i--) sweep(dense[i], out);
  }
  const tallest = Math.max(1, ...dense.map((l) => l.length));
  const height = PAD * 2 + tallest * H + (tallest - 1) * GAP_Y;
  const width = PAD * 2 + dense.length * W + Math.max(0, dense.length - 1) * GAP_X;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const placed = new Map<string, Placed>();
  dense.forEach((l, li) => {
    const top = PAD + ((tallest - l.length) * (H + GAP_Y)) / 2; // shorter layers are centred
    l.forEach((id, row) => {
      placed.set(id, { node: byId.get(id)!, layer: li, row, x: PAD + li * (W + GAP_X), y: top + row * (H + GAP_Y) });
    });
  });
  return { placed, width, height };
}

function cut(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

export function LineageGraph(props: { nodes: LineageNode[]; edges: LineageEdge[]; highlight?: string }) {
  const [, navigate] = useLocation();
  const [hover, setHover] = useState<string | null>(null);
  const nodes = props.nodes.slice(0, MAX_NODES);
  const { placed, width, height } = useMemo(() => layout(nodes, props.edges), [props.nodes, props.edges]);
  const near = (id: string) =>
    hover !== null && (id === hover || props.edges.some((e) => (e.src === hover && e.dst === id) || (e.dst === hover && e.src === id)));
  return (
    <div class="lineage-scroll">
      <svg width={width} height={height} class="lineage" aria-label="Lineage graph" role="group" data-testid="lineage">
        <defs>
          <marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0 0 L8 4 L0 8 z" fill="#8c959f" />
          </marker>
        </defs>
        <g>
          {props.edges.map((e, i) => {
            const a = placed.get(e.src);
            const b = placed.get(e.dst);
            if (!a || !b || a === b) return null;
            const x1 = a.x + W;
            const y1 = a.y + H / 2;
            const x2 = b.x;
            const y2 = b.y + H / 2;
            const back = x2 <= x1; // an edge within a layer or backwards: bow around
            const dx = back ? 60 : Math.max(24, (x2 - x1) / 2);
            const d = `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}`;
            const ended = !!e.endedPosition && e.endedPosition !== "0";
            const lit = hover !== null && (e.src === hover || e.dst === hover);
            return (
              <path
                key={i}
                d={d}
                class={`lg-edge ${ended ? "ended" : ""} ${lit ? "lit" : ""}`}
                data-relation={e.relation}
                marker-end="url(#arrow)"
              >
                <title>{`${e.relation}${e.recordedAt ? ` · since ${fmtTimestamp(e.recordedAt)}` : ""}${ended ? ` · until ${fmtTimestamp(e.endedAt)}` : ""}`}</title>
              </path>
            );
          })}
        </g>
        {[...placed.values()].map((p) => {
          const k = kindOf(p.node.kind);
          const { text, href } = describe(p.node);
          const dim = hover !== null && !near(p.node.id);
          const box = (
            <g
              transform={`translate(${p.x} ${p.y})`}
              class={`lg-node ${dim ? "dim" : ""} ${props.highlight === p.node.id ? "root" : ""}`}
              data-kind={p.node.kind}
              onMouseEnter={() => setHover(p.node.id)}
              onMouseLeave={() => setHover(null)}
            >
              <rect width={W} height={H} rx={6} stroke={k.color} />
              <rect width={4} height={H} rx={2} fill={k.color} stroke="none" />
              <text x={12} y={14} class="lg-kind" fill={k.color}>
                {k.label}
              </text>
              <text x={12} y={29} class="lg-text">
                {cut(text, 22)}
              </text>
              <title>{`${p.node.label ?? p.node.id}${p.node.recordedAt ? `\nsince ${fmtTimestamp(p.node.recordedAt)}` : ""}`}</title>
            </g>
          );
          return href ? (
            <a
              key={p.node.id}
              href={href}
              class="lg-link"
              onClick={(e) => {
                e.preventDefault();
                navigate(href);
              }}
            >
              {box}
            </a>
          ) : (
            <g key={p.node.id}>{box}</g>
          );
        })}
      </svg>
      {props.nodes.length > MAX_NODES && <p class="muted tiny">Showing {MAX_NODES} of {props.nodes.length} nodes.</p>}
    </div>
  );
}
