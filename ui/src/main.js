// Entry point: the app shell, the client-side router and the global keyboard shortcuts.
//
// Routes (the server answers index.html for all of them):
//   /admin/scripts               home: recent runs (on a narrow window: the list)
//   /admin/scripts/new           a new script
//   /admin/scripts/runs          all runs
//   /admin/scripts/runs/<runId>  one run
//   /admin/scripts/tokens        API tokens
//   /admin/scripts/notifications notification channels
//   /admin/scripts/audit         the audit log
//   /admin/scripts/executors     the processes executing runs
//   /admin/scripts/api           the API reference (from /api/openapi.json)
//   /admin/scripts/<id>          one script: editor, run panel, history, versions
//   /admin/scripts/<id>/versions/<n>[?against=<m>]  one version, diffed against another
import "./styles.css";
import { ApiReferenceView } from "./apiReference.js";
import { AuditView } from "./audit.js";
import { ExecutorsView } from "./executors.js";
import { activeLocalRuns } from "./browserRunner.js";
import { h } from "./dom.js";
import { RunEvents } from "./runEvents.js";
import { RunView, RunsView, HomeView } from "./runViews.js";
import { ScriptView } from "./scriptView.js";
import { Sidebar } from "./sidebar.js";
import { ScriptsStore } from "./scriptsStore.js";
import { NotificationsView } from "./notifications.js";
import { TokensView } from "./tokens.js";
import { VersionView } from "./versions.js";
import { emptyState, MOD_KEY } from "./widgets.js";

const ROOT = "/admin/scripts";
const LIST_REFRESH_MS = 15_000;
// The run-events feed reconnects within a few seconds when the server ends it (a
// restart, its hourly renewal): only a longer loss is worth a word.
const UNREACHABLE_AFTER_MS = 5000;

export function route(pathname) {
  const path = pathname.replace(/\/+$/, "");
  if (path === ROOT || path === "") return { name: "home" };
  const rest = path.startsWith(`${ROOT}/`) ? path.slice(ROOT.length + 1) : null;
  if (rest === null) return { name: "home" };
  if (rest === "new") return { name: "new" };
  if (rest === "runs") return { name: "runs" };
  if (rest === "tokens") return { name: "tokens" };
  if (rest === "notifications") return { name: "notifications" };
  if (rest === "audit") return { name: "audit" };
  if (rest === "executors") return { name: "executors" };
  if (rest === "api") return { name: "api" };
  const run = /^runs\/([^/]+)$/.exec(rest);
  if (run) return { name: "run", runId: decodeURIComponent(run[1]) };
  const version = /^([^/]+)\/versions\/([0-9]{1,9})$/.exec(rest);
  if (version) return { name: "version", id: decodeURIComponent(version[1]), n: Number(version[2]) };
  const script = /^([^/]+)$/.exec(rest);
  if (script) return { name: "script", id: decodeURIComponent(script[1]) };
  return { name: "notfound" };
}

class App {
  constructor(root) {
    this.view = null;
    this.url = location.pathname + location.search;
    // Each entry this page adds carries its position, so a popstate tells how far the
    // browser moved (and the move can be undone while unsaved changes are asked about).
    // A reload keeps the state of its entry.
    this.index = Number.isInteger(history.state?.index) ? history.state.index : 0;
    history.replaceState({ ...history.state, index: this.index }, "", location.href);
    // The one list of scripts; the sidebar and the views subscribe to it.
    this.scripts = new ScriptsStore();
    // Every run's start and end, as it happens (the lists and the sidebar follow it).
    this.runEvents = new RunEvents(this.scripts);
    this.sidebar = new Sidebar({ store: this.scripts });
    this.main = h("main.main#main", { tabindex: "-1" });
    this.navScripts = h("a.nav-link", { href: ROOT, "data-link": true }, "Scripts");
    this.navRuns = h("a.nav-link", { href: `${ROOT}/runs`, "data-link": true }, "Runs");
    this.navTokens = h("a.nav-link", { href: `${ROOT}/tokens`, "data-link": true }, "Tokens");
    this.navNotifications = h("a.nav-link", { href: `${ROOT}/notifications`, "data-link": true }, "Notifications");
    this.navAudit = h("a.nav-link", { href: `${ROOT}/audit`, "data-link": true }, "Audit");
    this.navExecutors = h("a.nav-link", { href: `${ROOT}/executors`, "data-link": true }, "Executors");
    this.navApi = h("a.nav-link#nav-api", { href: `${ROOT}/api`, "data-link": true }, "API");
    this.connNote = h("div.conn-note", { role: "status" });
    this.runEvents.onConnection((up) => this.onConnection(up));
    root.append(
      h("a.skip-link", { href: "#main" }, "Skip to content"),
      h(
        "header.topbar",
        h("a.brand", { href: ROOT, "data-link": true }, h("span.brand-mark", { "aria-hidden": "true" }, "›_"), "Scriptbox"),
        h("nav.topnav", { "aria-label": "Main" }, this.navScripts, this.navRuns, this.navTokens, this.navNotifications, this.navAudit, this.navExecutors, this.navApi),
        h("div.topbar-hint.muted", h("kbd", `${MOD_KEY} S`), " save ", h("kbd", `${MOD_KEY} ↵`), " run"),
      ),
      this.connNote,
      h("div.shell", this.sidebar.el, this.main),
    );

    document.addEventListener("click", (e) => this.onClick(e));
    window.addEventListener("popstate", (e) => this.onPopState(e));
    // Capture phase so the shortcuts win over the code editor's own bindings.
    window.addEventListener("keydown", (e) => this.onKeyDown(e), true);
    window.addEventListener("beforeunload", (e) => {
      if (this.view?.hasUnsavedChanges?.() || activeLocalRuns().length) {
        e.preventDefault();
        e.returnValue = "";
      }
    });
    setInterval(() => {
      if (document.visibilityState === "visible") this.scripts.refresh();
    }, LIST_REFRESH_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.scripts.refresh();
    });

    this.scripts.refresh();
    this.show(route(location.pathname));
  }

  /** A strip under the top bar says so (after UNREACHABLE_AFTER_MS) while the server cannot be reached; the lists reload once it is back. */
  onConnection(up) {
    clearTimeout(this.connTimer);
    if (up) {
      this.connNote.textContent = "";
      this.connNote.classList.remove("shown");
      return;
    }
    this.connTimer = setTimeout(() => {
      this.connNote.textContent = "Server unreachable — reconnecting…";
      this.connNote.classList.add("shown");
    }, UNREACHABLE_AFTER_MS);
  }

  onClick(e) {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !(url.pathname === ROOT || url.pathname.startsWith(`${ROOT}/`))) return;
    e.preventDefault();
    this.navigate(url.pathname + url.search);
  }

  async navigate(path, { force = false } = {}) {
    if (path === location.pathname + location.search && !force) return;
    if (!force && this.view?.canLeave && !(await this.view.canLeave())) return;
    this.index += 1;
    history.pushState({ index: this.index }, "", path);
    this.url = path;
    this.show(route(new URL(path, location.href).pathname));
  }

  /** Changes the address without re-rendering (a new script got its id). */
  replaceUrl(path) {
    history.replaceState({ index: this.index }, "", path);
    this.url = path;
    this.updateChrome(route(path));
  }

  /**
   * Back/Forward: show the entry the browser moved to, never adding one (pushing here
   * would wipe the forward entries). With unsaved changes the move is undone with
   * history.go while the user is asked, and redone if they discard.
   */
  async onPopState(e) {
    const index = Number.isInteger(e.state?.index) ? e.state.index : null;
    if (this.undoing) {
      this.undoing = false; // the popstate of our own undo: we are back where we were
      return;
    }
    const delta = index === null ? null : index - this.index;
    if (!this.confirmed && delta && this.view?.hasUnsavedChanges?.() && this.view.canLeave) {
      this.undoing = true;
      history.go(-delta);
      if (!(await this.view.canLeave())) return;
      this.confirmed = true;
      history.go(delta);
      return;
    }
    this.confirmed = false;
    if (index !== null) this.index = index;
    this.url = location.pathname + location.search;
    this.show(route(location.pathname));
  }

  onKeyDown(e) {
    const mod = e.ctrlKey || e.metaKey;
    if (!mod || e.altKey) return;
    let action = null;
    if (e.key === "s" || e.key === "S") action = "save";
    else if (e.key === "Enter") action = "run";
    if (!action) return;
    if (document.querySelector("dialog[open]")) return;
    if (action === "save") e.preventDefault(); // never the browser's "save page"
    if (this.view?.onKey) {
      e.preventDefault();
      e.stopPropagation();
      this.view.onKey(action);
    }
  }

  updateChrome(r) {
    document.body.dataset.route = r.name;
    this.sidebar.setActive(r.name === "script" || r.name === "version" ? r.id : null);
    const sections = { runs: "runs", run: "runs", tokens: "tokens", notifications: "notifications", audit: "audit", executors: "executors", api: "api" };
    const section = sections[r.name] || "scripts";
    const links = { scripts: this.navScripts, runs: this.navRuns, tokens: this.navTokens, notifications: this.navNotifications, audit: this.navAudit, executors: this.navExecutors, api: this.navApi };
    for (const [name, link] of Object.entries(links)) {
      if (name === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  show(r) {
    if (this.view) this.view.destroy();
    this.updateChrome(r);
    let view;
    if (r.name === "home") view = new HomeView({ app: this });
    else if (r.name === "new") view = new ScriptView({ id: null, app: this });
    else if (r.name === "script") view = new ScriptView({ id: r.id, app: this });
    else if (r.name === "version") {
      const against = Number(new URLSearchParams(location.search).get("against"));
      view = new VersionView({ scriptId: r.id, n: r.n, against: Number.isInteger(against) && against > 0 ? against : null, app: this });
    } else if (r.name === "runs") view = new RunsView({ app: this });
    else if (r.name === "run") view = new RunView({ runId: r.runId, app: this });
    else if (r.name === "tokens") view = new TokensView({ app: this });
    else if (r.name === "notifications") view = new NotificationsView({ app: this });
    else if (r.name === "audit") view = new AuditView({ app: this });
    else if (r.name === "executors") view = new ExecutorsView({ app: this });
    else if (r.name === "api") view = new ApiReferenceView();
    else view = { el: emptyState("Page not found", null, { href: ROOT, label: "Back to scripts" }), destroy() {} };
    this.view = view;
    this.main.replaceChildren(view.el);
    this.main.scrollTop = 0;
    view.mount?.();
  }
}

function start() {
  const root = document.getElementById("app");
  window.scriptbox = new App(root);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
