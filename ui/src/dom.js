// Tiny DOM builder. Text always goes in through textContent / text nodes, never innerHTML,
// so nothing coming from the server (names, output, errors) can become markup.

/**
 * h("button.primary#run", {type: "button", onclick}, "Run") -> HTMLButtonElement
 * Attributes: `class`, `dataset`, `style` (object), `on<event>` handlers, boolean
 * attributes (true/false), everything else via setAttribute. Children: nodes, strings,
 * numbers, arrays, null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(tag);
  const el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") {
        for (const c of String(v).split(/\s+/)) if (c) el.classList.add(c);
      } else if (k === "dataset") {
        Object.assign(el.dataset, v);
      } else if (k === "style" && typeof v === "object") {
        Object.assign(el.style, v);
      } else if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "value" || k === "checked" || k === "selected") {
        el[k] = v;
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

let idCounter = 0;
export function uid(prefix = "f") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}
