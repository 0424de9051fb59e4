// The schedule section of the editor (SPEC §8.1): cron with a live preview (the server's
// next five due times and a description), time zone, overlap, catch-up, enable switch.
// Also the "next run" label of the scripts list.
import { api } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { formatDateTime } from "./format.js";
import { ScheduleParams } from "./scheduleParams.js";

const PREVIEW_DELAY_MS = 250;
const OVERLAP = [
  ["skip", "Skip the due time (default)"],
  ["queue", "Queue it behind the running one"],
  ["allow", "Run side by side"],
];
const CATCH_UP = [
  ["none", "Do not run missed times (default)"],
  ["latest", "Run the latest missed time once"],
];

/** IANA zone names this browser knows, UTC first; the current value is kept even if unknown. */
function timeZones(current) {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    zones = [];
  }
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const all = ["UTC", ...[local, current].filter(Boolean), ...zones];
  return [...new Set(all)];
}

/** "in 12 s" / "in 5 min" / a local date and time, for a future ISO time. */
export function formatNextRun(iso, now = Date.now()) {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((t - now) / 1000));
  if (s < 60) return `in ${s} s`;
  if (s < 3600) return `in ${Math.round(s / 60)} min`;
  return formatDateTime(iso);
}

/** The scripts list's label for a scheduled script, or null. */
export function nextRunLabel(script) {
  const next = script && script.schedule && script.schedule.nextRunAt;
  if (!next) return null;
  return h("span.next-run", { title: `Next scheduled run ${next}`, dataset: { nextRunAt: next } }, `next ${formatNextRun(next)}`);
}

export class ScheduleSection {
  /** schedule: the stored `schedule` (or null); errorSlot(name) makes the form's error slot. */
  constructor({ schedule, errorSlot, onChange }) {
    const s = schedule || null;
    this.onChange = onChange;
    this.gen = 0;
    this.timer = null;
    this.on = h("input", { type: "checkbox", id: uid("sched-on"), name: "schedule-on", role: "switch", checked: !!s });
    this.cron = h("input.mono", { type: "text", id: uid("sched-cron"), name: "schedule-cron", spellcheck: "false", placeholder: "*/5 * * * *  or  0 30 2 * * 1-5  or  @daily", value: s ? s.cron : "" });
    this.zone = h("select", { id: uid("sched-tz"), name: "schedule-timezone" }, timeZones(s && s.timezone).map((z) => h("option", { value: z }, z)));
    this.zone.value = (s && s.timezone) || "UTC";
    this.overlap = h("select", { id: uid("sched-overlap"), name: "schedule-overlap" }, OVERLAP.map(([v, l]) => h("option", { value: v }, l)));
    this.overlap.value = (s && s.overlap) || "skip";
    this.catchUp = h("select", { id: uid("sched-catchup"), name: "schedule-catchUp" }, CATCH_UP.map(([v, l]) => h("option", { value: v }, l)));
    this.catchUp.value = (s && s.catchUp) || "none";
    this.enabled = h("input", { type: "checkbox", id: uid("sched-enabled"), name: "schedule-enabled", role: "switch", checked: !s || s.enabled !== false });
    this.params = new ScheduleParams({ values: s && s.params, errorSlot });
    this.description = h("p.schedule-description", { "aria-live": "polite" });
    this.nextList = h("ol.schedule-next", { "aria-label": "Next due times" });
    this.state = h("p.hint.schedule-state");
    this.showState(s);

    const field = (name, label, control, hint = null) => {
      const err = errorSlot(`schedule.${name}`);
      control.setAttribute("aria-describedby", err.id);
      return h("div.field", { dataset: { field: `schedule.${name}` } }, h("label.label", { for: control.id }, label), control, hint, err);
    };
    const toggle = (input, text) => h("label.switch", { for: input.id }, input, h("span.switch-track", { "aria-hidden": "true" }), h("span.switch-text", text));
    this.body = h(
      "div.schedule-body",
      h(
        "div.grid-2",
        field("cron", "Cron", this.cron, h("p.hint", "5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.")),
        field("timezone", "Time zone", this.zone, h("p.hint", "A local time skipped by a DST change does not fire; a repeated one fires once.")),
      ),
      h("div.schedule-preview", this.description, this.nextList),
      h(
        "div.grid-4",
        field("overlap", "If a run is still active", this.overlap),
        field("catchUp", "Missed while no server ran", this.catchUp),
        field("enabled", "Schedule", toggle(this.enabled, "Fires when due")),
      ),
      this.params.el,
      this.state,
    );
    this.el = h(
      "fieldset.field.schedule-field",
      { dataset: { field: "schedule" } },
      h("legend", "Schedule"),
      toggle(this.on, "Run on a schedule"),
      this.body,
      errorSlot("schedule"),
    );
    this.on.addEventListener("change", () => this.sync());
    this.cron.addEventListener("input", () => this.schedulePreview());
    this.zone.addEventListener("change", () => this.schedulePreview());
    this.sync();
  }

  sync() {
    this.body.hidden = !this.on.checked;
    if (this.on.checked) this.schedulePreview();
  }

  schedulePreview() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.preview(), PREVIEW_DELAY_MS);
  }

  async preview() {
    const gen = ++this.gen;
    const cron = this.cron.value.trim();
    if (!cron) {
      this.description.textContent = "Enter a cron expression to see when it fires.";
      replace(this.nextList);
      return;
    }
    try {
      const data = await api.schedulePreview(cron, this.zone.value);
      if (gen !== this.gen) return;
      this.description.classList.remove("invalid");
      this.description.textContent = data.description || "";
      replace(this.nextList, (data.next || []).map((t) => h("li", h("time", { datetime: t, title: t }, formatDateTime(t)))));
    } catch (err) {
      if (gen !== this.gen) return;
      const fields = err.fields || {};
      this.description.classList.add("invalid");
      this.description.textContent = Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ") || err.message;
      replace(this.nextList);
    }
  }

  showState(s) {
    if (!s) {
      this.state.textContent = "";
      return;
    }
    const parts = [];
    if (s.nextRunAt) parts.push(`Next run ${formatDateTime(s.nextRunAt)}.`);
    if (s.firedCount) parts.push(`Fired ${s.firedCount}×, last for ${formatDateTime(s.lastFiredAt)}.`);
    if (s.skippedCount) parts.push(`Skipped ${s.skippedCount}× (a run was still active), last ${formatDateTime(s.lastSkippedAt)}.`);
    if (s.missedCount) parts.push(`Missed ${s.missedCount}× (no server running), last ${formatDateTime(s.lastMissedAt)}.`);
    this.state.textContent = parts.join(" ");
  }

  /** The `schedule` to send: null when off. */
  value() {
    if (!this.on.checked) return null;
    return {
      cron: this.cron.value.trim(),
      timezone: this.zone.value,
      enabled: this.enabled.checked,
      overlap: this.overlap.value,
      catchUp: this.catchUp.value,
      params: this.params.value(),
    };
  }

  /** The script's parameter declarations changed (or were loaded). */
  syncParams(decls) {
    this.params.sync(decls);
  }

  destroy() {
    clearTimeout(this.timer);
    this.gen++;
  }
}
