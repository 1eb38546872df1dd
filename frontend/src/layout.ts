// Positions come from dagre's layered layout (left to right, as data flows); nothing here places a node itself.
import { Graph, layout } from "@dagrejs/dagre";
import type { GraphEdge, GraphNode, PipelineGraph } from "./api";

export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 108;
const TOPIC_NODE_HEIGHT = 60;

export interface Point {
  x: number;
  y: number;
}

export interface PlacedNode {
  node: GraphNode;
  x: number; // centre
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  edge: GraphEdge;
  points: Point[];
  labelAt: Point;
}

export interface Placement {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}

function height(node: GraphNode): number {
  return node.kind === "retry" || node.kind === "dead-letter" ? TOPIC_NODE_HEIGHT : NODE_HEIGHT;
}

export function place(graph: PipelineGraph): Placement {
  const g = new Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 36, ranksep: 90, edgesep: 20, marginx: 24, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    g.setNode(node.id, { width: NODE_WIDTH, height: height(node) });
  }
  for (const edge of graph.edges) {
    // The label box makes room for the topic name and its backlog beside the edge.
    const labelled = edge.kind === "data";
    g.setEdge(
      edge.source,
      edge.target,
      { width: labelled ? 200 : 60, height: labelled ? 30 : 16, labelpos: "c", minlen: 1 },
      edge.id,
    );
  }
  layout(g);
  const nodes: PlacedNode[] = graph.nodes.map((node) => {
    const at = g.node(node.id);
    return { node, x: at.x, y: at.y, width: at.width, height: at.height };
  });
  const edges: PlacedEdge[] = graph.edges.map((edge) => {
    const at = g.edge({ v: edge.source, w: edge.target, name: edge.id });
    const points: Point[] = ((at.points ?? []) as Point[]).map((p) => ({ x: p.x, y: p.y }));
    const middle = points[Math.floor(points.length / 2)] ?? { x: 0, y: 0 };
    return { edge, points, labelAt: { x: at.x ?? middle.x, y: at.y ?? middle.y } };
  });
  const label = g.graph();
  return { nodes, edges, width: label.width ?? 800, height: label.height ?? 600 };
}
