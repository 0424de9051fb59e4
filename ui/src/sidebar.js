// The scripts list (#scripts-list): name, codeIdentifier, type/runner, enabled toggle,
// last run status and time; a filter box and the "New script" button. A view of the
// scripts store: it renders whenever the store changes.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { formatRelative } from "./format.js";
import { isActive } from "./vocabulary.js";
import { statusIcon, statusLabel, toast } from "./widgets.js";

export class Sidebar {
  constructor({ store }) {
    this.store = store;
    this.activeId = null;
    this.filterInput = h("input", {
      type: "search", id: "script-filter", placeholder: "Filter scripts", autocomplete: "off", spellcheck: "false",
      "aria-label": "Filter scripts by name or code identifier",
      oninput: () => this.render(),
      onkeydown: (e) => {
        if (e.key === "Escape") { this.filterInput.value = ""; this.render(); }
        if (e.key === "Enter") {
          const first = this.list.querySelector("a.script-link");
          if (first) first.click();
        }
      },
    });
    this.count = h("span.muted.list-count");
    this.list = h("ul.script-list#scripts-list", { "aria-label": "Scripts" });
    this.status = h("p.muted.list-status", { role: "status" }, "Loading…");
    this.el = h(
      "aside.sidebar",
      { "aria-label": "Scripts" },
      h(
        "div.sidebar-head",
        h("div.sidebar-title", h("h2", "Scripts"), this.count),
        h("a.btn.primary.small#new-script", { href: "/admin/scripts/new", "data-link": true }, "+ New script"),
      ),
      h("div.sidebar-filter", this.filterInput),
      h("div.sidebar-scroll", this.list, this.status),
    );
    store.subscribe(() => this.onStoreChanged());
  }

  onStoreChanged() {
    if (this.store.error) {
      this.status.hidden = false;
      this.status.textContent = `Could not load scripts: ${this.store.error.message}`;
      return;
    }
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    for (const li of this.list.children) {
      const on = li.dataset.id === id;
      li.classList.toggle("active", on);
      const a = li.querySelector("a");
      if (a) {
        if (on) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
    }
  }

  render() {
    const scripts = this.store.scripts;
    const q = this.filterInput.value.trim().toLowerCase();
    const shown = scripts
      .filter((s) => !q || s.name.toLowerCase().includes(q) || s.codeIdentifier.toLowerCase().includes(q))
      .sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base", numeric: true }));
    // Keep keyboard focus on the same script across re-renders (the list refreshes itself).
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusId = focused?.closest("li")?.dataset.id;
    const focusSel = focused?.matches("input") ? "input" : "a";
    replace(this.list, shown.map((s) => this.item(s)));
    if (focusId) this.list.querySelector(`li[data-id="${CSS.escape(focusId)}"] ${focusSel}`)?.focus();
    this.count.textContent = scripts.length ? String(scripts.length) : "";
    this.status.hidden = shown.length > 0;
    this.status.textContent = !this.store.loaded
      ? "Loading…"
      : scripts.length === 0
        ? "No scripts yet. Create the first one."
        : "No script matches the filter.";
  }

  item(s) {
    const href = `/admin/scripts/${s.id}`;
    const last = s.lastRun || null;
    const toggleId = `enabled-${s.id}`;
    const toggle = h("input", {
      type: "checkbox", id: toggleId, role: "switch", checked: s.enabled !== false,
      "aria-label": `Enabled: ${s.name}`,
      onchange: (e) => this.toggle(s, e.target),
    });
    const active = s.id === this.activeId;
    return h(
      `li.script-item${active ? ".active" : ""}${s.enabled === false ? ".disabled" : ""}`,
      { dataset: { id: s.id, ident: s.codeIdentifier } },
      h(
        "a.script-link",
        { href, "data-link": true, "aria-current": active ? "page" : undefined },
        h("span.script-name", s.name),
        h(
          "span.script-meta",
          h("code.ident", s.codeIdentifier),
          h("span.kind", { title: `type ${s.type}, runner ${s.runner}` }, s.type === s.runner ? s.type : `${s.type} · ${s.runner}`),
        ),
        h(
          "span.script-last",
          last
            ? h(
                `span.last-run.status-text-${last.status}`,
                { title: `Last run ${statusLabel(last.status)} ${last.finishedAt || last.createdAt || ""}`, "data-status": last.status },
                h("span.status-icon", { "aria-hidden": "true" }, statusIcon(last.status)),
                h("span.visually-hidden", `Last run ${statusLabel(last.status)}, `),
                isActive(last.status) ? statusLabel(last.status) : formatRelative(last.finishedAt || last.createdAt),
              )
            : h("span.muted", "never run"),
        ),
      ),
      h("label.switch.compact", { for: toggleId, title: s.enabled === false ? "Disabled" : "Enabled" }, toggle, h("span.switch-track", { "aria-hidden": "true" })),
    );
  }

  async toggle(s, input) {
    const want = input.checked;
    input.disabled = true;
    try {
      const doc = await api.updateScript(s.id, { enabled: want });
      this.store.upsert({ ...doc, lastRun: s.lastRun }, "toggle");
      toast(`${doc.name} ${doc.enabled ? "enabled" : "disabled"}`);
    } catch (err) {
      input.checked = !want;
      toast(`Could not change ${s.name}: ${err.message}`, "error");
    } finally {
      input.disabled = false;
    }
  }
}
