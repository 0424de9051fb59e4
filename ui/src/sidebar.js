// The scripts list (#scripts-list): name, codeIdentifier, type/runner, tags, enabled
// state, last run status and time; a filter box (name, identifier, description, type,
// runner, tags), a sort (name or recently run), grouping by tag, and the "New script"
// button. A view of the scripts store: it renders whenever the store changes.
//
// One Tab stop per row (the link); the row's enable switch is for the mouse and asks
// before it changes anything (keyboard users have the form's Enabled switch).
import { api } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { formatRelative, parseTime } from "./format.js";
import { isActive } from "./vocabulary.js";
import { nextRunLabel } from "./schedule.js";
import { confirmDialog, statusIcon, statusLabel, toast } from "./widgets.js";

const PREFS_KEY = "scriptbox.list";
const UNTAGGED = "Untagged";

function loadPrefs() {
  try {
    return { sort: "name", group: true, ...JSON.parse(localStorage.getItem(PREFS_KEY) || "{}") };
  } catch {
    return { sort: "name", group: true };
  }
}

/** True when every word of `q` is found in one of the script's searchable texts. */
export function matchesFilter(s, q) {
  if (!q) return true;
  const hay = [s.name, s.codeIdentifier, s.description, s.type, s.runner, ...(s.tags || [])]
    .filter(Boolean).join("\n").toLowerCase();
  return q.split(/\s+/).every((word) => hay.includes(word));
}

const byName = (a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base", numeric: true });

function lastRunTime(s) {
  return parseTime(s.lastRun?.createdAt) ?? -Infinity;
}

/** The scripts in display order: by name, or the most recently run first (never run last). */
export function sortScripts(scripts, sort) {
  const sorted = [...scripts];
  if (sort === "recent") sorted.sort((a, b) => lastRunTime(b) - lastRunTime(a) || byName(a, b));
  else sorted.sort(byName);
  return sorted;
}

/** [[tag, scripts]] in tag order, a script under each of its tags, untagged ones last. */
export function groupByTag(scripts) {
  const groups = new Map();
  for (const s of scripts) {
    for (const tag of s.tags?.length ? s.tags : [UNTAGGED]) {
      const key = tag === UNTAGGED ? UNTAGGED : tag.toLowerCase();
      if (!groups.has(key)) groups.set(key, { label: tag, scripts: [] });
      groups.get(key).scripts.push(s);
    }
  }
  const keys = [...groups.keys()].filter((k) => k !== UNTAGGED).sort((a, b) => a.localeCompare(b));
  if (groups.has(UNTAGGED)) keys.push(UNTAGGED);
  return keys.map((k) => [groups.get(k).label, groups.get(k).scripts]);
}

export class Sidebar {
  constructor({ store }) {
    this.store = store;
    this.activeId = null;
    this.prefs = loadPrefs();
    this.filterInput = h("input", {
      type: "search", id: "script-filter", placeholder: "Filter: name, identifier, tag…", autocomplete: "off", spellcheck: "false",
      "aria-label": "Filter scripts by name, identifier, description, type or tag",
      oninput: () => this.render(),
      onkeydown: (e) => {
        if (e.key === "Escape") { this.filterInput.value = ""; this.render(); }
        if (e.key === "Enter") {
          const first = this.list.querySelector("a.script-link");
          if (first) first.click();
        }
      },
    });
    this.sortSelect = h("select#script-sort", { "aria-label": "Sort scripts", onchange: () => this.setPref("sort", this.sortSelect.value) },
      h("option", { value: "name" }, "Name A–Z"), h("option", { value: "recent" }, "Recently run"));
    this.sortSelect.value = this.prefs.sort === "recent" ? "recent" : "name";
    this.groupBox = h("input#script-group", { type: "checkbox", checked: this.prefs.group !== false, onchange: () => this.setPref("group", this.groupBox.checked) });
    this.count = h("span.muted.list-count", { "aria-live": "polite", "data-testid": "list-count" });
    this.list = h("div.script-list#scripts-list", { onkeydown: (e) => this.onListKey(e) });
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
      h("div.sidebar-options", this.sortSelect, h("label.inline-check", { for: this.groupBox.id }, this.groupBox, "Group by tag")),
      h("div.sidebar-scroll", this.list, this.status),
    );
    store.subscribe(() => this.onStoreChanged());
  }

  setPref(name, value) {
    this.prefs[name] = value;
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify(this.prefs));
    } catch {
      // private mode: the choice lasts for this page only
    }
    this.render();
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
    for (const li of this.list.querySelectorAll(".script-item")) {
      const on = li.dataset.id === id;
      li.classList.toggle("active", on);
      const a = li.querySelector("a");
      if (a) {
        if (on) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
    }
  }

  /** Up/Down move between rows: with 70 scripts, Tab alone is a long way round. */
  onListKey(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const links = [...this.list.querySelectorAll("a.script-link")];
    const i = links.indexOf(document.activeElement);
    if (i === -1) return;
    e.preventDefault();
    links[Math.max(0, Math.min(links.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)))].focus();
  }

  render() {
    const scripts = this.store.scripts;
    const q = this.filterInput.value.trim().toLowerCase();
    const shown = sortScripts(scripts.filter((s) => matchesFilter(s, q)), this.prefs.sort);
    const grouped = this.prefs.group !== false && scripts.some((s) => s.tags?.length);
    // Keep keyboard focus on the same script across re-renders (the list refreshes itself).
    const focused = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusId = focused?.closest(".script-item")?.dataset.id;
    const rows = grouped
      ? groupByTag(shown).map(([tag, items]) => {
          const id = uid("group");
          return h(
            "div.script-group", { role: "listitem", dataset: { tag } },
            h("h3.group-title", { id }, tag, h("span.group-count", { "aria-label": `${items.length} scripts` }, String(items.length))),
            h("ul.script-sublist", { "aria-labelledby": id }, items.map((s) => this.item(s))),
          );
        })
      : h("ul.script-sublist", { "aria-label": "Scripts" }, shown.map((s) => this.item(s)));
    replace(this.list, rows);
    // The container is the list only when it holds groups; otherwise the one <ul> is.
    if (grouped) {
      this.list.setAttribute("role", "list");
      this.list.setAttribute("aria-label", "Scripts by tag");
    } else {
      this.list.removeAttribute("role");
      this.list.removeAttribute("aria-label");
    }
    if (focusId) this.list.querySelector(`.script-item[data-id="${CSS.escape(focusId)}"] a`)?.focus();
    this.count.textContent = !scripts.length ? "" : q ? `${shown.length} of ${scripts.length}` : String(scripts.length);
    this.count.title = q ? `${shown.length} of ${scripts.length} scripts match the filter` : "";
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
    const enabled = s.enabled !== false;
    const toggle = h("input", {
      type: "checkbox", role: "switch", checked: enabled, tabindex: "-1",
      "aria-label": `Enabled: ${s.name}`,
      onchange: (e) => this.toggle(s, e.target),
    });
    const active = s.id === this.activeId;
    return h(
      `li.script-item${active ? ".active" : ""}${enabled ? "" : ".disabled"}`,
      { dataset: { id: s.id, ident: s.codeIdentifier } },
      h(
        "a.script-link",
        { href, "data-link": true, "aria-current": active ? "page" : undefined, title: s.name },
        h("span.script-name", s.name),
        h(
          "span.script-meta",
          h("code.ident", s.codeIdentifier),
          h("span.kind", { title: `type ${s.type}, runner ${s.runner}` }, s.type === s.runner ? s.type : `${s.type} · ${s.runner}`),
          enabled ? null : h("span.kind.off", "disabled"),
        ),
        s.tags?.length ? h("span.script-tags", s.tags.map((t) => h("span.tag", t))) : null,
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
          nextRunLabel(s),
        ),
      ),
      h("label.switch.compact", { title: enabled ? `Enabled: click to disable ${s.name}` : `Disabled: click to enable ${s.name}` }, toggle, h("span.switch-track", { "aria-hidden": "true" })),
    );
  }

  /** The row's switch was clicked: ask first (a stray click must not stop a scheduled job). */
  async toggle(s, input) {
    const want = input.checked;
    input.checked = !want; // nothing changes until confirmed
    const scheduled = s.schedule && s.schedule.enabled !== false;
    const ok = await confirmDialog({
      title: want ? `Enable “${s.name}”?` : `Disable “${s.name}”?`,
      message: want
        ? `It can be run again${scheduled ? " and its schedule fires again" : ""}.`
        : `It cannot be run until it is enabled again${scheduled ? "; its schedule stops firing" : ""}. Its history stays.`,
      confirm: want ? "Enable" : "Disable",
      danger: !want,
    });
    if (!ok) return;
    input.disabled = true;
    try {
      const doc = await api.updateScript(s.id, { enabled: want });
      this.store.upsert({ ...doc, lastRun: s.lastRun }, "toggle");
      toast(`${doc.name} ${doc.enabled ? "enabled" : "disabled"}`);
    } catch (err) {
      toast(`Could not change ${s.name}: ${err.message}`, "error");
    } finally {
      input.disabled = false;
    }
  }
}
