// Draws the placed graph as SVG and writes the live figures onto it. Elements carry data-* attributes naming
// their node or edge, so the page's tests and styles find them without knowing positions.
import type { EdgeFigures, Figures, NodeFigures } from "./api";
import { clip, count, rate, shorten } from "./format";
import type { Placement, PlacedEdge, PlacedNode, Point } from "./layout";

const SVG = "http://www.w3.org/2000/svg";

function el<K extends keyof SVGElementTagNameMap>(
  name: K,
  attrs: Record<string, string | number>,
  parent?: Element,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  parent?.appendChild(e);
  return e;
}

function text(parent: Element, x: number, y: number, cls: string, content: string): SVGTextElement {
  const t = el("text", { x, y, class: cls }, parent);
  t.textContent = content;
  return t;
}

function pathOf(points: Point[]): string {
  if (points.length === 0) return "";
  const [first, ...rest] = points;
  return `M${first!.x},${first!.y} ` + rest.map((p) => `L${p.x},${p.y}`).join(" ");
}

const KIND_TITLE: Record<string, string> = {
  endpoint: "endpoint path",
  algo: "algo",
  connector: "data connector",
  hook: "event hook",
  retry: "retry topic",
  "dead-letter": "dead-letter topic",
};

export interface Drawn {
  svg: SVGSVGElement;
  update(figures: Figures): void;
}

export function draw(placement: Placement, onSelect: (nodeId: string) => void): Drawn {
  const svg = el("svg", {
    width: placement.width,
    height: placement.height,
    viewBox: `0 0 ${placement.width} ${placement.height}`,
    role: "img",
    "aria-label": "pipeline graph",
  });
  const defs = el("defs", {}, svg);
  for (const kind of ["data", "retry", "dead-letter"]) {
    const marker = el(
      "marker",
      { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      defs,
    );
    el("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow arrow-${kind}` }, marker);
  }
  const edgeLayer = el("g", { class: "edges" }, svg);
  const nodeLayer = el("g", { class: "nodes" }, svg);
  const edgeFigures = new Map<string, SVGTextElement>();
  const edgeGroups = new Map<string, SVGGElement>();
  for (const placed of placement.edges) drawEdge(edgeLayer, placed, edgeFigures, edgeGroups);
  const nodeGroups = new Map<string, { group: SVGGElement; lines: SVGTextElement[] }>();
  for (const placed of placement.nodes) nodeGroups.set(placed.node.id, drawNode(nodeLayer, placed, onSelect));

  return {
    svg,
    update(figures: Figures) {
      for (const [id, drawn] of nodeGroups) {
        const f = figures.nodes[id];
        if (f) writeNode(drawn.group, drawn.lines, f);
      }
      for (const [id, label] of edgeFigures) {
        const f = figures.edges[id];
        if (f) writeEdge(edgeGroups.get(id)!, label, f);
      }
    },
  };
}

function drawEdge(
  layer: Element,
  placed: PlacedEdge,
  figures: Map<string, SVGTextElement>,
  groups: Map<string, SVGGElement>,
): void {
  const { edge } = placed;
  const group = el(
    "g",
    { class: `edge edge-${edge.kind}`, "data-edge-id": edge.id, "data-source": edge.source, "data-target": edge.target },
    layer,
  );
  el("path", { d: pathOf(placed.points), class: "edge-line", "marker-end": `url(#arrow-${edge.kind})` }, group);
  const { x, y } = placed.labelAt;
  if (edge.kind === "data") {
    const name = text(group, x, y - 4, "edge-topic", shorten(edge.label, 34));
    const title = el("title", {}, name);
    title.textContent = edge.topic ?? "";
  }
  figures.set(edge.id, text(group, x, edge.kind === "data" ? y + 11 : y + 4, "edge-figures", ""));
  groups.set(edge.id, group);
}

function drawNode(
  layer: Element,
  placed: PlacedNode,
  onSelect: (nodeId: string) => void,
): { group: SVGGElement; lines: SVGTextElement[] } {
  const { node } = placed;
  const left = placed.x - placed.width / 2;
  const top = placed.y - placed.height / 2;
  const group = el(
    "g",
    { class: `node node-${node.kind}`, "data-node-id": node.id, "data-kind": node.kind, "data-state": "unknown", tabindex: 0 },
    layer,
  );
  el("rect", { x: left, y: top, width: placed.width, height: placed.height, rx: 8, class: "node-box" }, group);
  text(group, left + 10, top + 16, "node-kind", KIND_TITLE[node.kind] ?? node.kind);
  const name = text(group, left + 10, top + 33, "node-label", shorten(node.label, 30));
  el("title", {}, name).textContent = `${node.label}${node.detail ? ` (${node.detail})` : ""}`;
  const lines = [text(group, left + 10, top + 50, "node-figures", "")];
  if (node.kind !== "retry" && node.kind !== "dead-letter") {
    lines.push(text(group, left + 10, top + 66, "node-figures", ""), text(group, left + 10, top + 82, "node-figures", ""));
    lines.push(text(group, left + 10, top + 99, "node-reason", ""));
  }
  group.addEventListener("click", () => onSelect(node.id));
  group.addEventListener("keydown", (e) => {
    if (e.key === "Enter") onSelect(node.id);
  });
  return { group, lines };
}

function writeNode(group: SVGGElement, lines: SVGTextElement[], f: NodeFigures): void {
  group.setAttribute("data-state", f.state);
  const kind = group.getAttribute("data-kind");
  const [first, second, third, reason] = lines;
  if (kind === "retry" || kind === "dead-letter") {
    first!.textContent = `${count(f.in)} messages` + (f.backlog !== null ? `, backlog ${count(f.backlog)}` : "");
  } else {
    const ready = f.replicas ? ` · ${f.ready ?? 0}/${f.replicas} ready` : "";
    first!.textContent = `in ${rate(f.rateIn)} · out ${rate(f.rateOut)}${ready}`;
    const totals = [`in ${count(f.in)}`, `out ${count(f.out)}`];
    if (f.backlog !== null) totals.push(`backlog ${count(f.backlog)}`);
    second!.textContent = totals.join(" · ");
    const trouble: string[] = [];
    if (f.errors !== null) trouble.push(`errors ${count(f.errors)}`);
    if (f.retries !== null) trouble.push(`retries ${count(f.retries)}`);
    if (f.deadLetters !== null) trouble.push(`dead ${count(f.deadLetters)}`);
    third!.textContent = trouble.join(" · ");
    if (reason) reason.textContent = f.state === "up" ? "" : clip(`${f.state}${f.reason ? `: ${f.reason}` : ""}`, 36);
  }
  for (const [key, value] of Object.entries({
    in: f.in,
    out: f.out,
    backlog: f.backlog,
    errors: f.errors,
    retries: f.retries,
    "dead-letters": f.deadLetters,
  })) {
    group.setAttribute(`data-${key}`, value === null ? "" : String(value));
  }
  let tooltip = group.querySelector("title.state-reason");
  if (!tooltip) {
    tooltip = el("title", { class: "state-reason" }, group);
  }
  tooltip.textContent = f.reason ?? f.state;
  group.setAttribute("data-reason", f.reason ?? "");
}

function writeEdge(group: SVGGElement, label: SVGTextElement, f: EdgeFigures): void {
  const parts: string[] = [];
  if (f.count !== null) parts.push(`${count(f.count)} msgs`);
  if (f.backlog) parts.push(`backlog ${count(f.backlog)}`);
  label.textContent = parts.join(" · ");
  group.setAttribute("data-count", f.count === null ? "" : String(f.count));
  group.setAttribute("data-backlog", f.backlog === null ? "" : String(f.backlog));
  group.classList.toggle("edge-backed-up", (f.backlog ?? 0) > 100);
}
