// Source of the code that runs first inside a browser run's Web Worker, before the
// user's script. It is stringified into the worker's Blob (see browserRunner.js), so it
// must not reference anything outside itself.
//
// It takes away every way to reach the network or shared storage (the script gets no
// server access beyond its own worker), routes console.* to the page, tracks timers so a
// script that schedules work runs until that work is done (like node), and reports the
// outcome. The page enforces the timeout and cancel with worker.terminate().
export function bootstrap(self, env, firstLine) {
  "use strict";
  const post = self.postMessage.bind(self);
  const realClose = self.close.bind(self);
  const realSetTimeout = self.setTimeout.bind(self);
  const realClearTimeout = self.clearTimeout.bind(self);
  const realSetInterval = self.setInterval.bind(self);
  const realClearInterval = self.clearInterval.bind(self);

  // ---- no network, no storage, no nested workers ----
  const blocked = [
    "fetch", "XMLHttpRequest", "importScripts", "WebSocket", "WebSocketStream", "WebTransport",
    "EventSource", "indexedDB", "caches", "Worker", "SharedWorker", "BroadcastChannel",
    "FontFace", "fonts", "fetchLater", "navigator",
  ];
  const deny = (name) => function blockedApi() {
    throw new Error(`${name} is not available to browser scripts (no network access)`);
  };
  for (const name of blocked) {
    // Own property and every prototype that defines it (WorkerGlobalScope.prototype ...).
    for (let o = self; o; o = Object.getPrototypeOf(o)) {
      if (Object.prototype.hasOwnProperty.call(o, name)) {
        try {
          delete o[name];
        } catch (_err) {
          // non-configurable: shadowed below
        }
      }
    }
    try {
      const keep = name === "navigator" ? Object.freeze({ userAgent: "scriptbox-browser-runner" }) : undefined;
      Object.defineProperty(self, name, {
        value: keep === undefined && name !== "indexedDB" && name !== "caches" && name !== "fonts" ? deny(name) : keep,
        writable: false,
        configurable: false,
      });
    } catch (_err) {
      // already gone
    }
  }

  // The page reads the worker's messages as the run's output and outcome: only the
  // bootstrap may post them, or a script could end its run early or forge output.
  for (let o = self; o; o = Object.getPrototypeOf(o)) {
    if (Object.prototype.hasOwnProperty.call(o, "postMessage")) {
      try {
        delete o.postMessage;
      } catch (_err) {
        // shadowed below
      }
    }
  }
  Object.defineProperty(self, "postMessage", {
    value: function postMessage() {
      throw new Error("postMessage is not available to browser scripts (use console.log)");
    },
    writable: false,
    configurable: false,
  });

  // ---- console ----
  const seen = () => {
    const set = new WeakSet();
    return (_key, value) => {
      if (typeof value === "bigint") return `${value}n`;
      if (typeof value === "function") return `[Function ${value.name || "anonymous"}]`;
      if (typeof value === "symbol") return value.toString();
      if (value === undefined) return "undefined";
      if (value instanceof Map) return { "[Map]": Array.from(value.entries()) };
      if (value instanceof Set) return { "[Set]": Array.from(value.values()) };
      if (value && typeof value === "object") {
        if (set.has(value)) return "[Circular]";
        set.add(value);
      }
      return value;
    };
  };
  // Stack frames point into the worker's Blob; show them as lines of the user's script
  // and leave out the bootstrap's own frames.
  const here = String(self.location && self.location.href);
  const cleanStack = (stack) => stack
    .split("\n")
    .map((line) => {
      const at = line.indexOf(here);
      if (at === -1) return line;
      const m = /^:(\d+):(\d+)/.exec(line.slice(at + here.length));
      if (!m || Number(m[1]) < firstLine) return null;
      return `${line.slice(0, at)}script:${Number(m[1]) - firstLine + 1}:${m[2]}${line.slice(at + here.length + m[0].length)}`;
    })
    .filter((line) => line !== null)
    .join("\n");
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack && v.stack.includes(v.message) ? cleanStack(v.stack) : `${v.name}: ${v.message}`;
    if (v === undefined) return "undefined";
    if (typeof v === "function") return `[Function ${v.name || "anonymous"}]`;
    if (typeof v === "symbol" || typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
    if (typeof v === "bigint") return `${v}n`;
    try {
      const one = JSON.stringify(v, seen());
      if (one === undefined) return String(v);
      return one.length > 100 ? JSON.stringify(v, seen(), 2) : one;
    } catch (_err) {
      return String(v);
    }
  };
  const format = (args) => {
    if (typeof args[0] === "string" && args[0].includes("%") && args.length > 1) {
      let i = 1;
      const first = args[0].replace(/%([sdifoOjc%])/g, (m, c) => {
        if (c === "%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        if (c === "c") return "";
        if (c === "d" || c === "i") return String(parseInt(a, 10));
        if (c === "f") return String(parseFloat(a));
        return show(a);
      });
      args = [first, ...args.slice(i)];
    }
    return args.map(show).join(" ");
  };
  // Output is batched only while it floods: a write more than 50 ms after the last
  // message goes out at once (so the line before a hang is seen); writes in quick
  // succession collect into one message per 50 ms / 64 KiB / stream switch, so a loop
  // of console.log calls costs a few messages, not one each.
  let indent = "";
  let buffer = "";
  let bufferStream = "stdout";
  let lastPost = -Infinity;
  let flushTimer = 0;
  const flush = () => {
    if (flushTimer) realClearTimeout(flushTimer);
    flushTimer = 0;
    if (!buffer) return;
    post({ t: "out", stream: bufferStream, data: buffer });
    buffer = "";
    lastPost = performance.now();
  };
  const write = (stream, args) => {
    let text = format(args);
    if (indent) text = text.split("\n").map((l) => indent + l).join("\n");
    if (buffer && stream !== bufferStream) flush();
    bufferStream = stream;
    buffer += `${text}\n`;
    if (buffer.length >= 65536 || performance.now() - lastPost >= 50) flush();
    else if (!flushTimer) flushTimer = realSetTimeout(flush, 50);
  };
  const counts = new Map();
  const timers = new Map();
  const con = {
    log: (...a) => write("stdout", a),
    info: (...a) => write("stdout", a),
    debug: (...a) => write("stdout", a),
    dir: (...a) => write("stdout", a),
    table: (...a) => write("stdout", a),
    warn: (...a) => write("stderr", a),
    error: (...a) => write("stderr", a),
    trace: (...a) => write("stderr", ["Trace:", ...a]),
    assert: (cond, ...a) => {
      if (!cond) write("stderr", ["Assertion failed:", ...a]);
    },
    group: (...a) => {
      if (a.length) write("stdout", a);
      indent += "  ";
    },
    groupCollapsed: (...a) => con.group(...a),
    groupEnd: () => {
      indent = indent.slice(2);
    },
    count: (label = "default") => {
      counts.set(label, (counts.get(label) || 0) + 1);
      write("stdout", [`${label}: ${counts.get(label)}`]);
    },
    countReset: (label = "default") => counts.delete(label),
    time: (label = "default") => timers.set(label, performance.now()),
    timeLog: (label = "default", ...a) => write("stdout", [`${label}: ${(performance.now() - (timers.get(label) || 0)).toFixed(3)}ms`, ...a]),
    timeEnd: (label = "default") => {
      con.timeLog(label);
      timers.delete(label);
    },
  };
  Object.defineProperty(self, "console", { value: Object.freeze(con), writable: false, configurable: false });

  // ---- pending timers: the run ends when main() settled and no timer is left ----
  let mainDone = false;
  let finished = false;
  const pending = new Set();
  const finish = (ok, error) => {
    if (finished) return;
    finished = true;
    flush();
    post({ t: "done", ok, error: error || null });
  };
  const maybeFinish = () => {
    if (mainDone && pending.size === 0) finish(true);
  };
  // After the current task, a promise rejected and left unhandled in it is reported by
  // an "unhandledrejection" event in a task the browser queues then; checking two tasks
  // later lets that event fail the run before it could be reported a success.
  const maybeFinishLater = () => realSetTimeout(() => realSetTimeout(maybeFinish, 0), 0);
  const fail = (err) => {
    const text = show(err);
    flush();
    post({ t: "out", stream: "stderr", data: `Uncaught ${text}\n` });
    finish(false, err && err.message ? err.message : text);
  };
  self.setTimeout = (fn, ms, ...args) => {
    const id = realSetTimeout(() => {
      pending.delete(id);
      try {
        if (typeof fn === "function") fn(...args);
      } catch (err) {
        fail(err);
        return;
      }
      maybeFinishLater();
    }, ms);
    pending.add(id);
    return id;
  };
  self.clearTimeout = (id) => {
    pending.delete(id);
    realClearTimeout(id);
    realSetTimeout(maybeFinish, 0);
  };
  self.setInterval = (fn, ms, ...args) => {
    const id = realSetInterval(() => {
      try {
        if (typeof fn === "function") fn(...args);
      } catch (err) {
        realClearInterval(id);
        pending.delete(id);
        fail(err);
      }
    }, ms);
    pending.add(id);
    return id;
  };
  self.clearInterval = (id) => {
    pending.delete(id);
    realClearInterval(id);
    realSetTimeout(maybeFinish, 0);
  };
  // close() would stop the worker without a word to the page, which would then wait
  // for the timeout: it ends the run now instead, as a successful exit.
  Object.defineProperty(self, "close", {
    value: function close() {
      mainDone = true;
      pending.clear();
      finish(true);
      realClose();
    },
    writable: false,
    configurable: false,
  });
  self.addEventListener("error", (ev) => {
    ev.preventDefault();
    fail(ev.error || new Error(ev.message));
  });
  self.addEventListener("unhandledrejection", (ev) => {
    ev.preventDefault();
    fail(ev.reason);
  });

  const frozenEnv = Object.freeze({ ...env });
  // The user's code only appears after this function returned, so nothing of it runs
  // before the lockdown above.
  return (main) => {
    Promise.resolve()
      .then(() => main(frozenEnv, con))
      .then(
        () => {
          mainDone = true;
          // Let callbacks queued by the script's last await settle first.
          maybeFinishLater();
        },
        (err) => fail(err),
      );
  };
}
