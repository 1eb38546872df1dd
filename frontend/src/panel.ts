// The side panel of one step: its state, resolved settings, processes with their recent log lines, its recent
// dead letters (error headers and a payload preview) and the actions: send a test message, replay dead letters.
import { api, ApiError, type DeadLetter, type NodeDetail, type NodeFigures } from "./api";
import { byId, confirmInPage, h } from "./dom";

export class Panel {
  private nodeId: string | null = null;

  constructor(
    private readonly pipeline: string,
    private readonly endpointContentTypes: Map<string, string>,
  ) {
    byId<HTMLButtonElement>("panel-close").onclick = () => this.close();
  }

  get selected(): string | null {
    return this.nodeId;
  }

  close(): void {
    this.nodeId = null;
    byId("panel").hidden = true;
  }

  async open(nodeId: string): Promise<void> {
    this.nodeId = nodeId;
    byId("panel").hidden = false;
    await this.refresh();
  }

  /** Re-reads the panel's node (after an action, or when asked). */
  async refresh(): Promise<void> {
    const nodeId = this.nodeId;
    if (nodeId === null) return;
    const body = byId("panel-body");
    try {
      const detail = await api.node(this.pipeline, nodeId);
      if (this.nodeId !== nodeId) return;
      byId("panel-title").textContent = detail.node.label;
      body.replaceChildren(...this.render(detail));
    } catch (e) {
      byId("panel-title").textContent = nodeId;
      body.replaceChildren(h("p", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e)));
    }
  }

  showState(figures: NodeFigures | undefined): void {
    const state = byId("panel-state");
    if (!figures) {
      state.textContent = "";
      return;
    }
    state.dataset["state"] = figures.state;
    state.textContent = figures.reason ? `${figures.state}: ${figures.reason}` : figures.state;
  }

  private render(detail: NodeDetail): Node[] {
    const parts: Node[] = [];
    for (const problem of detail.problems) parts.push(h("p", { class: "error", role: "alert" }, problem));
    for (const note of detail.notes ?? []) parts.push(h("p", { class: "note" }, note));
    if (detail.node.kind === "endpoint") parts.push(this.sendForm(detail.node.id.replace(/^endpoint:/, "")));
    parts.push(h("h3", {}, "Settings"), h("pre", { class: "settings" }, JSON.stringify(detail.settings, null, 2)));
    if (detail.processes.length > 0) {
      parts.push(h("h3", {}, "Processes"));
      for (const p of detail.processes) {
        const head = `${p.name}: ${p.state}, ${p.restarts} restart${p.restarts === 1 ? "" : "s"}` + (p.pid ? `, pid ${p.pid}` : "");
        parts.push(
          h("div", { class: "process", "data-process": p.name, "data-state": p.state, "data-pid": String(p.pid ?? "") },
            h("div", { class: "process-head" }, head),
            p.reason ? h("div", { class: "process-reason" }, p.reason) : null,
            h("pre", { class: "log" }, p.log.join("\n") || "(no output yet)"),
          ),
        );
      }
    }
    const hasDeadLetters = detail.node.kind === "algo" || detail.node.kind === "hook" || detail.node.kind === "dead-letter";
    if (hasDeadLetters) parts.push(...this.deadLetters(detail));
    return parts;
  }

  private sendForm(path: string): Node {
    const area = h("textarea", { id: "send-body", rows: "4", "aria-label": "message to send" });
    const type = h("input", { id: "send-type", value: this.endpointContentTypes.get(path) ?? "", "aria-label": "content type" });
    const result = h("div", { id: "send-result", role: "status" });
    const button = h("button", { id: "send-button", type: "button" }, `Send to /${path}`);
    button.onclick = async () => {
      result.className = "";
      result.textContent = "sending…";
      try {
        const answer = await api.send(this.pipeline, path, area.value, type.value || null);
        result.textContent = `accepted: ${JSON.stringify(answer)}`;
      } catch (e) {
        result.className = "error";
        result.textContent = e instanceof Error ? e.message : String(e);
      }
    };
    return h("section", { class: "send" }, h("h3", {}, "Send a test message"), area, h("label", {}, "content type ", type), button, result);
  }

  private deadLetters(detail: NodeDetail): Node[] {
    const parts: Node[] = [h("h3", {}, `Recent dead letters (${detail.deadLetters.length})`)];
    const result = h("div", { id: "replay-result", role: "status" });
    if (detail.canReplay) {
      const all = h("button", { id: "replay-all", type: "button" }, "Replay all dead letters");
      all.onclick = () => this.replay(detail, null, result);
      parts.push(all);
    }
    parts.push(result);
    if (detail.deadLetters.length === 0) parts.push(h("p", { class: "empty" }, "none"));
    for (const letter of detail.deadLetters) parts.push(this.letter(detail, letter, result));
    return parts;
  }

  private letter(detail: NodeDetail, letter: DeadLetter, result: HTMLElement): Node {
    const error = letter.error["errorMessage"] ?? "(no errorMessage header)";
    const errorRows = Object.entries(letter.error).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)));
    const item = h(
      "div",
      { class: "dead-letter", "data-trace-id": letter.traceId ?? "" },
      h("div", { class: "dead-letter-head" }, `trace ${letter.traceId ?? "?"} · ${letter.topic}[${letter.partition}]@${letter.offset}`),
      h("div", { class: "dead-letter-error" }, error),
      h("table", { class: "error-headers" }, ...errorRows),
      h("pre", { class: "preview" }, letter.preview + (letter.truncated ? `\n… (${letter.size} bytes)` : "")),
    );
    if (detail.canReplay && letter.traceId) {
      const button = h("button", { type: "button", class: "replay-one" }, "Replay this trace");
      button.onclick = () => this.replay(detail, letter.traceId, result);
      item.append(button);
    }
    return item;
  }

  private async replay(detail: NodeDetail, traceId: string | null, result: HTMLElement): Promise<void> {
    const what = traceId ? `the dead letters of trace ${traceId}` : "all dead letters not replayed yet";
    const yes = await confirmInPage(`Replay ${what} of ${detail.node.label}? They run through the algo again.`, "Replay");
    if (!yes) {
      result.textContent = "replay cancelled";
      return;
    }
    result.className = "";
    result.textContent = "replaying…";
    try {
      const answer = await api.replay(this.pipeline, detail.node.id, traceId);
      const where = Object.entries(answer.targets).map(([t, n]) => `${t}: ${n}`).join(", ") || "nothing";
      result.textContent = answer.job
        ? `replay started in the cluster as Job ${answer.job}`
        : `replayed ${answer.replayed} (${where}); skipped ${answer.skipped}`;
    } catch (e) {
      result.className = "error";
      result.textContent = e instanceof ApiError && e.status === 403 ? `not allowed: ${e.message}` : e instanceof Error ? e.message : String(e);
    }
  }
}
