// Small helpers for building the panel: every text goes in through textContent, never as markup.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const child of children) {
    if (child !== null) e.append(child);
  }
  return e;
}

export function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

/** Asks in the page (a dialog, not window.confirm) and resolves true when confirmed. */
export function confirmInPage(question: string, confirmLabel: string): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>("confirm");
  byId("confirm-text").textContent = question;
  const ok = byId<HTMLButtonElement>("confirm-ok");
  ok.textContent = confirmLabel;
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      ok.onclick = null;
      byId<HTMLButtonElement>("confirm-cancel").onclick = null;
      dialog.close();
      resolve(answer);
    };
    ok.onclick = () => done(true);
    byId<HTMLButtonElement>("confirm-cancel").onclick = () => done(false);
    dialog.showModal();
  });
}
