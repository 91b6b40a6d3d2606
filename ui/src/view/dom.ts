// A small element builder: h("div", {class: "x", onclick}, child, "text").
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c);
  }
  return el;
}

/** Opens a modal dialog (replacing one with the same id) that removes itself when closed. */
export function modal(id: string, ...children: (Node | null)[]): HTMLDialogElement {
  return sheet(id, "modal", ...children);
}

/** A dialog with the given class: "modal" for small ones, "sheet" for near-full-window views. */
export function sheet(id: string, cls: string, ...children: (Node | null)[]): HTMLDialogElement {
  document.getElementById(id)?.remove();
  const d = h("dialog", { id, class: cls }, ...children);
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  if (typeof d.showModal === "function") d.showModal();
  else d.setAttribute("open", "");
  return d;
}

/** Closes a dialog opened by `sheet` or a view opened by `page` (also where the DOM lacks
 * `close`, as in tests). */
export function closeDialog(d: HTMLElement): void {
  if (d instanceof HTMLDialogElement && typeof d.close === "function" && d.open) d.close();
  else if (d.classList.contains("page-view")) closePage(d);
  else d.remove();
}

/**
 * Shows a view in place of the dashboard, filling the window: nothing of the board is painted
 * behind it (as a modal dialog over it was). The dashboard comes back, at the same scroll
 * position, when the view closes.
 */
export function page(id: string, cls: string, ...children: (Node | null)[]): HTMLElement {
  const old = document.getElementById(id);
  if (old) closePage(old);
  const scroller = document.scrollingElement ?? document.documentElement;
  const el = h("section", { id, class: `page-view ${cls}`, tabindex: "-1", "data-back-to": scroller.scrollTop }, ...children);
  document.body.append(el);
  document.body.classList.add("paged");
  scroller.scrollTop = 0;
  el.focus();
  return el;
}

function closePage(el: HTMLElement): void {
  el.remove();
  if (!document.querySelector(".page-view")) document.body.classList.remove("paged");
  (document.scrollingElement ?? document.documentElement).scrollTop = Number(el.dataset.backTo ?? 0);
}
