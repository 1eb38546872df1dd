// How figures are written on the graph and in the panel.

export function count(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  if (value >= 1_000_000) return `${(value / 1_000_000).toFixed(1)}M`;
  if (value >= 10_000) return `${(value / 1_000).toFixed(1)}k`;
  return String(Math.round(value));
}

export function rate(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–/s";
  return value >= 10 ? `${Math.round(value)}/s` : `${value.toFixed(1)}/s`;
}

export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}

/** Keeps the start of a sentence (a reason reads from its beginning); the whole is in the node's tooltip. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
