// The console server's JSON API, typed as the server writes it (src/algorun/console/server.py).

export type NodeKind = "endpoint" | "algo" | "connector" | "hook" | "retry" | "dead-letter";

export interface GraphNode {
  id: string;
  kind: NodeKind;
  label: string;
  component: string;
  detail: string;
  topic: string | null;
  replicas: number | null;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  kind: "data" | "retry" | "dead-letter";
  topic: string | null;
  label: string;
}

export interface PipelineGraph {
  pipeline: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
  intervalSeconds: number;
}

export interface NodeFigures {
  state: "up" | "starting" | "down" | "backed-up" | "idle";
  reason: string | null;
  in: number | null;
  out: number | null;
  rateIn: number | null;
  rateOut: number | null;
  backlog: number | null;
  errors: number | null;
  retries: number | null;
  deadLetters: number | null;
  ready: number | null;
  replicas: number | null;
}

export interface EdgeFigures {
  count: number | null;
  backlog: number | null;
  rate: number | null;
}

export interface Figures {
  intervalSeconds: number;
  nodes: Record<string, NodeFigures>;
  edges: Record<string, EdgeFigures>;
  problems: string[];
}

export interface ProcessInfo {
  name: string;
  state: string;
  restarts: number;
  pid: number | null;
  reason: string | null;
  log: string[];
}

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: number;
  timestampMs: number;
  traceId: string | null;
  error: Record<string, string>;
  headers: Record<string, string>;
  size: number;
  preview: string;
  previewEncoding: "utf-8" | "base64";
  truncated: boolean;
}

export interface NodeDetail {
  node: { id: string; kind: NodeKind; label: string; component: string };
  settings: Record<string, unknown>;
  processes: ProcessInfo[];
  deadLetters: DeadLetter[];
  canReplay: boolean;
  problems: string[];
  /** What the panel cannot show here and why (not an error). */
  notes?: string[];
}

export interface ReplayResult {
  replayed: number;
  skipped: number;
  targets: Record<string, number>;
  /** On Kubernetes: the Job that runs the replay. */
  job?: string;
}

/** An answer that was not 2xx: the server's own sentence when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`the console server did not answer (${String(e)})`, 0);
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const said = body && typeof body === "object" && "error" in body ? String((body as { error: unknown }).error) : "";
    throw new ApiError(said || `${init?.method ?? "GET"} ${path} answered ${response.status}`, response.status);
  }
  return body as T;
}

const base = (pipeline: string): string => `/api/pipelines/${pipeline}`;

export const api = {
  pipelines: () => call<{ id: string }[]>("/api/pipelines"),
  graph: (pipeline: string) => call<PipelineGraph>(`${base(pipeline)}/graph`),
  figures: (pipeline: string) => call<Figures>(`${base(pipeline)}/figures`),
  node: (pipeline: string, id: string) => call<NodeDetail>(`${base(pipeline)}/node?id=${encodeURIComponent(id)}`),
  send: (pipeline: string, path: string, body: string, contentType: string | null) =>
    call<Record<string, unknown>>(`${base(pipeline)}/send`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path, body, contentType }),
    }),
  replay: (pipeline: string, node: string, traceId: string | null) =>
    call<ReplayResult>(`${base(pipeline)}/replay`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ node, traceId }),
    }),
};
