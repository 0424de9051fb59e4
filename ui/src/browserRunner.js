// Runs `browser` scripts in a dedicated Web Worker and reports the outcome.
//
// The worker is a module worker made from a Blob URL holding the bootstrap and the script.
// It is created with credentials: "omit", so even module imports it might attempt carry no
// Basic-auth credentials; the bootstrap removes fetch/XHR/WebSocket/storage APIs first.
// The page enforces the timeout and cancel by terminating the worker.
//
// Local runs live in a registry independent of any view, so navigating inside the app
// does not kill a running script; views subscribe to a run's output by run id.
import { api } from "./api.js";
import { StreamMasker } from "./secretMask.js";
import { DEFAULT_TIMEOUT_MS, isActive } from "./vocabulary.js";
import { bootstrap } from "./worker-bootstrap.js";

// What we send back to the server is bounded: the first KEEP_HEAD characters and a
// rolling KEEP_TAIL, with a marker for what was dropped in between; and the JSON body is
// cut further if it would pass the server's 8 MiB request limit (MAX_BODY).
const KEEP_HEAD = 1024 * 1024;
const KEEP_TAIL = 256 * 1024;
const MAX_BODY = 7.5 * 1024 * 1024;
// Reporting the outcome is retried when the server cannot be reached (or answers 5xx).
const REPORT_RETRY_MS = [1000, 2000, 4000, 8000];

const runs = new Map();

export function localRun(runId) {
  return runs.get(runId) || null;
}

export function activeLocalRuns() {
  return [...runs.values()].filter((r) => !r.finished);
}

class LocalRun {
  constructor(runId, script, params) {
    this.runId = runId;
    this.scriptId = script.id;
    this.status = "running";
    this.exitCode = null;
    this.error = null;
    this.finished = false;
    this.startedAt = Date.now();
    this.finishedAt = null;
    this.timeoutMs = Number(script.timeoutMs) || DEFAULT_TIMEOUT_MS;
    this.listeners = new Set();
    this.chunks = []; // [{stream, data}] replayed to late subscribers
    this.notes = []; // the page's own remarks after the end (not uploaded)
    this.headBytes = 0;
    this.tail = [];
    this.tailBytes = 0;
    this.droppedBytes = 0;
    this.runDoc = null;
    this.reported = null; // promise of the browser-result answer
    // The values of secret parameters never reach the screen or the upload in clear.
    const secrets = (script.params || []).filter((p) => p.type === "secret").map((p) => params?.[p.name]);
    this.maskers = { stdout: new StreamMasker(secrets), stderr: new StreamMasker(secrets) };
    this.maskWhole = (text) => {
      const m = new StreamMasker(secrets);
      return m.feed(text) + m.flush();
    };
    this.start(script, params);
  }

  start(script, params) {
    const prelude = `const bootstrap = ${bootstrap.toString()};`;
    // The user's first line number within the Blob, for readable stack traces (JSON has
    // no raw line breaks, so the values below never add lines). The values go straight
    // into the call: a placeholder replaced in turn could be matched inside an env value.
    const firstLine = prelude.split("\n").length + 3;
    const source = [
      prelude,
      `const run = bootstrap(self, ${JSON.stringify(envObject(script.env))}, ${firstLine}, ${JSON.stringify(params || {})});`,
      "run(async function (env, console) {",
      script.script || "",
      "});",
    ].join("\n");
    this.url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    try {
      this.worker = new Worker(this.url, { type: "module", credentials: "omit", name: `scriptbox-run-${this.runId}` });
    } catch (err) {
      this.output("stderr", `Could not start the worker: ${err.message}\n`);
      this.finish("failed", 1, err.message);
      return;
    }
    this.worker.onmessage = (ev) => {
      const m = ev.data || {};
      if (m.t === "out" && Array.isArray(m.parts)) {
        for (let i = 0; i + 1 < m.parts.length; i += 2) {
          this.output(m.parts[i] === "stderr" ? "stderr" : "stdout", wellFormed(String(m.parts[i + 1])));
        }
      }
      else if (m.t === "done") this.finish(m.ok ? "succeeded" : "failed", m.ok ? 0 : 1, m.error);
    };
    this.worker.onerror = (ev) => {
      // Errors the bootstrap could not catch: chiefly a syntax error in the script. A
      // module worker's load error carries no message, so ask a parse check for one.
      ev.preventDefault();
      const report = (msg) => {
        if (this.finished) return;
        this.output("stderr", `${msg}\n`);
        this.finish("failed", 1, msg);
      };
      if (ev.message) report(ev.message);
      else explainLoadError(script.script || "").then(report);
    };
    this.timer = setTimeout(() => {
      this.output("stderr", `\nTimed out after ${this.timeoutMs} ms; the worker was stopped.\n`);
      this.finish("timed_out", null, `timed out after ${this.timeoutMs} ms`);
    }, this.timeoutMs);
  }

  output(stream, raw) {
    if (this.finished || !raw) return;
    this.emit(stream, this.maskers[stream].feed(raw));
  }

  /** Keeps and shows output that is already masked. */
  emit(stream, data) {
    if (!data) return;
    const chunk = { stream, data };
    const size = data.length;
    if (!this.headFull && this.headBytes + size <= KEEP_HEAD) {
      this.headBytes += size;
      this.chunks.push(chunk);
    } else {
      this.headFull = true; // from now on only the rolling tail, so the order stays right
      this.tail.push(chunk);
      this.tailBytes += size;
      while (this.tailBytes > KEEP_TAIL && this.tail.length > 1) {
        const old = this.tail.shift();
        this.tailBytes -= old.data.length;
        this.droppedBytes += old.data.length;
      }
    }
    for (const fn of this.listeners) fn.onOutput?.(stream, data);
  }

  /** Replays what is kept, then delivers live output; returns an unsubscribe function. */
  subscribe(listener) {
    for (const c of [...this.recorded(), ...this.notes]) listener.onOutput?.(c.stream, c.data);
    if (this.finished) listener.onEnd?.(this.summary());
    else this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  recorded() {
    if (!this.tail.length) return this.chunks;
    const marker = this.droppedBytes
      ? [{ stream: "stderr", data: `\n[${this.droppedBytes} characters of output dropped by the browser runner]\n` }]
      : [];
    return [...this.chunks, ...marker, ...this.tail];
  }

  cancel() {
    if (this.finished) return;
    this.output("stderr", "\nCanceled; the worker was stopped.\n");
    this.finish("canceled", null, "canceled by the user");
  }

  summary() {
    return {
      id: this.runId,
      scriptId: this.scriptId,
      status: this.status,
      exitCode: this.exitCode,
      startedAt: new Date(this.startedAt).toISOString(),
      finishedAt: this.finishedAt ? new Date(this.finishedAt).toISOString() : null,
      ...(this.runDoc || {}),
    };
  }

  /** Shows what the maskers still hold back: the output is over. */
  flushMasked() {
    for (const [stream, masker] of Object.entries(this.maskers)) {
      this.emit(stream, masker.flush());
    }
  }

  finish(status, exitCode, error) {
    if (this.finished) return;
    this.flushMasked();
    this.finished = true;
    this.status = status;
    this.exitCode = exitCode;
    this.error = error ? this.maskWhole(wellFormed(String(error))) : null;
    this.finishedAt = Date.now();
    clearTimeout(this.timer);
    if (this.worker) this.worker.terminate();
    URL.revokeObjectURL(this.url);
    const body = resultBody(status, exitCode, this.error, this.recorded());
    this.reported = this.report(body);
    this.reported.then(() => {
      for (const fn of this.listeners) fn.onEnd?.(this.summary());
      this.listeners.clear();
    });
  }

  /** Posts the outcome; resolves when the server has it or it cannot be recorded. */
  async report(body) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        this.runDoc = await api.browserResult(this.runId, body);
        return;
      } catch (err) {
        if ((err.status === 0 || err.status >= 500) && attempt < REPORT_RETRY_MS.length) {
          if (attempt === 0) {
            // Show the outcome now rather than "running" while we retry.
            this.note(`\n[scriptbox] cannot record the result yet (${err.message}); retrying…\n`);
            for (const fn of this.listeners) fn.onEnd?.(this.summary());
          }
          await new Promise((resolve) => setTimeout(resolve, REPORT_RETRY_MS[attempt]));
          continue;
        }
        // 409: the run was ended elsewhere meanwhile (canceled through the API): show the
        // server's record. Anything else: the local outcome stands, marked as unrecorded.
        const doc = await api.getRun(this.runId).catch(() => null);
        if (doc && !isActive(doc.status)) this.runDoc = doc;
        else this.note(`\n[scriptbox] the result could not be recorded on the server: ${err.message}\n`);
        return;
      }
    }
  }

  /** A page-side remark after the run finished: shown, not part of the uploaded output. */
  note(text) {
    const chunk = { stream: "stderr", data: text };
    this.notes.push(chunk);
    for (const fn of this.listeners) fn.onOutput?.(chunk.stream, chunk.data);
  }

  /** Best effort report when the page goes away mid-run. */
  abandon() {
    if (this.finished) return;
    this.flushMasked();
    this.finished = true;
    if (this.worker) this.worker.terminate();
    const closing = { stream: "stderr", data: "\nThe admin page was closed; the browser run stopped.\n" };
    const body = resultBody("canceled", null, "admin page closed", [...this.recorded(), closing]);
    const blob = new Blob([JSON.stringify(body)], { type: "application/json" });
    navigator.sendBeacon?.(`/api/admin/scripts/runs/${encodeURIComponent(this.runId)}/browser-result`, blob);
  }
}

/**
 * Why a script does not load, from a classic worker that only parses it: the code sits
 * inside a function expression that is never called, after the same lockdown as a run.
 * Classic workers report syntax errors with a message and a line number.
 */
function explainLoadError(code) {
  const fallback = "SyntaxError: the script could not be parsed";
  // The lockdown takes postMessage away from scripts; the check keeps its own first.
  const head = `const parsed = self.postMessage.bind(self);\nconst bootstrap = ${bootstrap.toString()};\nbootstrap(self, {}, 0);\n(async function (env, console) {`;
  const firstLine = head.split("\n").length + 1;
  const source = `${head}\n${code}\n});\nparsed("parsed");`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  return new Promise((resolve) => {
    let worker = null;
    const done = (msg) => {
      clearTimeout(timer);
      worker?.terminate();
      URL.revokeObjectURL(url);
      resolve(msg);
    };
    const timer = setTimeout(() => done(fallback), 3000);
    try {
      worker = new Worker(url, { name: "scriptbox-parse-check" });
    } catch {
      done(fallback);
      return;
    }
    worker.onmessage = () => done(fallback);
    worker.onerror = (ev) => {
      ev.preventDefault();
      const line = ev.lineno ? ` (script line ${Math.max(1, ev.lineno - firstLine + 1)})` : "";
      done(ev.message ? `${ev.message.replace(/^Uncaught /, "")}${line}` : fallback);
    };
  });
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The text with lone UTF-16 surrogates as U+FFFD: they cannot be sent as UTF-8 JSON. */
export function wellFormed(text) {
  return text.replace(LONE_SURROGATE, "\uFFFD");
}

function envObject(env) {
  const out = {};
  for (const row of Array.isArray(env) ? env : []) {
    if (row && typeof row.key === "string" && row.key) out[row.key] = String(row.value ?? "");
  }
  return out;
}

/** The browser-result body, shrunk (oldest output first) until it fits MAX_BODY bytes. */
export function resultBody(status, exitCode, error, chunks) {
  const body = { status, exitCode, output: coalesce(chunks) };
  if (error) body.error = String(error).slice(0, 2000);
  let size = new Blob([JSON.stringify(body)]).size;
  while (size > MAX_BODY && body.output.length) {
    // Drop from the front, keeping the end of the output (where errors usually are).
    let cut = size - MAX_BODY;
    const out = body.output;
    let dropped = 0;
    while (cut > 0 && out.length > 1) {
      const first = out.shift();
      cut -= first.data.length;
      dropped += first.data.length;
    }
    if (out.length === 1 && cut > 0) {
      const keep = Math.max(0, out[0].data.length - cut * 2);
      dropped += out[0].data.length - keep;
      out[0].data = out[0].data.slice(-keep || out[0].data.length);
      if (keep === 0) out.length = 0;
    }
    out.unshift({ stream: "stderr", data: `[${dropped} characters of earlier output dropped to fit the upload]\n` });
    size = new Blob([JSON.stringify(body)]).size;
  }
  return body;
}

/** Merges consecutive chunks of the same stream so the result body stays small. */
function coalesce(chunks) {
  const out = [];
  for (const c of chunks) {
    const last = out[out.length - 1];
    if (last && last.stream === c.stream && last.data.length < 65536) last.data += c.data;
    else out.push({ stream: c.stream, data: c.data });
  }
  return out;
}

/** Starts a browser run for an already created run id (POST .../run answered it). */
/** params: the run's parameter values (typed), the script's frozen `params` global. */
export function startBrowserRun(runId, script, params = {}) {
  const run = new LocalRun(runId, script, params);
  runs.set(runId, run);
  return run;
}

window.addEventListener("pagehide", () => {
  for (const run of activeLocalRuns()) run.abandon();
});
