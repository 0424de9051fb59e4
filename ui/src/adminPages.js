// What the admin pages that manage a list (Tokens, Notifications) share: the page frame, the
// scripts to limit an entry to, and the server's field errors above a form.
import { api } from "./api.js";
import { h, replace } from "./dom.js";

/** The page: a header (back link, title, subtitle) and a body of `children`. */
export function managedPage(className, title, subtitle, ...children) {
  return h(
    `section.view.${className}`,
    h("header.view-head", h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true }, "‹ Scripts"), h("h1.view-title", title), h("div.view-subtitle.muted", subtitle))),
    h("div.view-body", ...children),
  );
}

/** Fills `select` with every script (name and codeIdentifier); resolves to the scripts ([] if unreachable). */
export async function loadScriptChoices(select) {
  let scripts = [];
  try {
    const data = await api.listScripts();
    scripts = (data && data.scripts) || [];
  } catch {
    scripts = [];
  }
  replace(select, scripts.map((s) => h("option", { value: s.id }, `${s.name} (${s.codeIdentifier})`)));
  return scripts;
}

/** A script's name for a list, or its id marked deleted. */
export function scriptName(scripts, id) {
  const s = (scripts || []).find((x) => x.id === id);
  return s ? s.name : `${id} (deleted)`;
}

/** The server's message and each bad field (`fields`) in the form's error box. */
export function showFormErrors(box, err) {
  const fields = Object.entries(err.fields || {}).map(([k, v]) => `${k}: ${v}`);
  replace(box, err.message, fields.length ? h("ul", fields.map((f) => h("li", f))) : null);
  box.hidden = false;
}
