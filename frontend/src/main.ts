// The console page: picks the pipeline from the address (#owner/name), lays out and draws its graph, then polls
// the figures at the server's interval (the server reads the pipeline at most that often, whatever we ask).
import { api, ApiError, type Figures } from "./api";
import { byId, h } from "./dom";
import { place } from "./layout";
import { Panel } from "./panel";
import { draw, type Drawn } from "./render";

const MIN_SCALE = 0.75;

function showFatal(message: string, known: string[] = []): void {
  const box = byId("message");
  box.hidden = false;
  box.replaceChildren(h("p", { class: "error", role: "alert" }, message));
  if (known.length > 0) {
    box.append(h("p", {}, "Pipelines this console watches:"));
    const list = h("ul", {});
    for (const id of known) list.append(h("li", {}, h("a", { href: `#${id}` }, id)));
    box.append(list);
  }
}

function showProblems(problems: string[]): void {
  const banner = byId("problems");
  banner.hidden = problems.length === 0;
  banner.replaceChildren(...problems.map((p) => h("li", {}, p)));
}

async function choosePipeline(): Promise<string | null> {
  const wanted = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (wanted) return wanted;
  const known = (await api.pipelines()).map((p) => p.id);
  if (known.length === 1) return known[0]!;
  showFatal(known.length === 0 ? "This console watches no pipeline." : "Choose a pipeline.", known);
  return null;
}

async function start(): Promise<void> {
  let pipeline: string | null;
  try {
    pipeline = await choosePipeline();
  } catch (e) {
    showFatal(e instanceof Error ? e.message : String(e));
    return;
  }
  if (pipeline === null) return;
  let graph;
  try {
    graph = await api.graph(pipeline);
  } catch (e) {
    const known = await api.pipelines().then((ps) => ps.map((p) => p.id), () => []);
    showFatal(e instanceof ApiError ? e.message : `the pipeline ${pipeline} could not be shown: ${String(e)}`, known);
    return;
  }
  document.title = `${graph.pipeline} · algorun console`;
  byId("pipeline-name").textContent = graph.pipeline;
  byId("interval").textContent = `figures every ${graph.intervalSeconds} s`;
  const contentTypes = new Map(graph.nodes.filter((n) => n.kind === "endpoint").map((n) => [n.id.replace(/^endpoint:/, ""), n.detail]));
  const panel = new Panel(graph.pipeline, contentTypes);
  let latest: Figures | null = null;
  const lastDead = new Map<string, number | null>();
  const kinds = new Map(graph.nodes.map((n) => [n.id, n.kind]));
  const placement = place(graph);
  // Shrunk to the room beside the panel, down to MIN_SCALE (text stays readable); past that the graph scrolls.
  const fit = (): void => {
    const scale = Math.min(1, Math.max(MIN_SCALE, (byId("graph").clientWidth - 8) / placement.width));
    drawn.svg.setAttribute("width", String(Math.round(placement.width * scale)));
    drawn.svg.setAttribute("height", String(Math.round(placement.height * scale)));
  };
  const drawn: Drawn = draw(placement, (id) => {
    void panel.open(id).then(() => {
      panel.showState(latest?.nodes[id]);
      fit();
    });
  });
  byId("graph").replaceChildren(drawn.svg);
  fit();
  window.addEventListener("resize", fit);
  byId<HTMLButtonElement>("panel-close").addEventListener("click", fit);

  const poll = async (): Promise<void> => {
    try {
      latest = await api.figures(graph.pipeline);
      drawn.update(latest);
      showProblems(latest.problems);
      byId("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (panel.selected) {
        const shown = latest.nodes[panel.selected];
        panel.showState(shown);
        // New dead letters (or fewer, after a replay) show in the open panel without asking.
        const kind = kinds.get(panel.selected);
        const dead = !shown || kind === "endpoint" ? null : kind === "dead-letter" ? shown.in : shown.deadLetters;
        if (dead !== lastDead.get(panel.selected)) {
          if (lastDead.has(panel.selected)) void panel.refresh();
          lastDead.set(panel.selected, dead);
        }
      }
    } catch (e) {
      showProblems([e instanceof Error ? e.message : String(e)]);
    }
    window.setTimeout(() => void poll(), graph.intervalSeconds * 1000);
  };
  byId<HTMLButtonElement>("panel-refresh").onclick = () => void panel.refresh();
  await poll();
}

window.addEventListener("hashchange", () => location.reload());
void start();
