// Small shared widgets: status badges, toasts, the confirm dialog, empty states.
import { h } from "./dom.js";

const STATUS_LABEL = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  canceled: "canceled",
  timed_out: "timed out",
  idle: "not run",
  unsaved: "not saved",
};

// Glyphs that DejaVu (the Linux fallback font) has, so they never render as boxes.
const STATUS_ICON = {
  queued: "○",
  running: "●",
  succeeded: "✓",
  failed: "✕",
  canceled: "⊘",
  timed_out: "◷",
  idle: "–",
};

/** "⌘" on Apple platforms, "Ctrl" elsewhere (for shortcut hints). */
export const MOD_KEY = typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent) ? "⌘" : "Ctrl";

export function statusLabel(status) {
  return STATUS_LABEL[status] || String(status || "unknown");
}

export function statusIcon(status) {
  return STATUS_ICON[status] || "•";
}

export function statusBadge(status, extra = {}) {
  const s = status || "idle";
  return h(
    `span.badge.status.status-${s}`,
    { "data-status": s, ...extra },
    h("span.status-icon", { "aria-hidden": "true" }, STATUS_ICON[s] || "•"),
    statusLabel(s),
  );
}

export function setStatusBadge(el, status) {
  const s = status || "idle";
  el.className = `badge status status-${s}`;
  el.dataset.status = s;
  el.textContent = "";
  el.append(h("span.status-icon", { "aria-hidden": "true" }, STATUS_ICON[s] || "•"), statusLabel(s));
}

let toastBox = null;

export function toast(message, kind = "info", ms = 3500) {
  if (!toastBox) {
    toastBox = h("div.toasts", { role: "status", "aria-live": "polite" });
    document.body.appendChild(toastBox);
  }
  const t = h(`div.toast.toast-${kind}`, message);
  toastBox.appendChild(t);
  setTimeout(() => {
    t.classList.add("leaving");
    setTimeout(() => t.remove(), 250);
  }, kind === "error" ? Math.max(ms, 6000) : ms);
  return t;
}

/**
 * A modal confirm built on <dialog> (keyboard and focus handled by the browser).
 * Resolves true when the confirm button is used.
 */
export function confirmDialog({ title, message, confirm = "OK", cancel = "Cancel", danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const okBtn = h(`button.btn${danger ? ".danger" : ".primary"}`, { type: "submit", value: "ok" }, confirm);
    const cancelBtn = h("button.btn", { type: "submit", value: "cancel", formnovalidate: true }, cancel);
    const dlg = h(
      "dialog.modal",
      { "aria-labelledby": titleId },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, title),
        message ? h("p", message) : null,
        h("div.modal-actions", cancelBtn, okBtn),
      ),
    );
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok");
      dlg.remove();
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    (danger ? cancelBtn : okBtn).focus();
  });
}

/** The whole-view message for "nothing here": a title, an optional explanation and a way back. */
export function emptyState(title, message, back) {
  return h(
    "div.empty-state",
    h("h1", title),
    message ? h("p", message) : null,
    back ? h("a.btn", { href: back.href, "data-link": true }, back.label) : null,
  );
}
