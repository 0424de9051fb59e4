// Source of the code that runs first inside a browser run's Web Worker, before the
// user's script. It is stringified into the worker's Blob (see browserRunner.js), so it
// must not reference anything outside itself (not even module-level constants).
//
// It takes away every way to reach the network or shared storage (the script gets no
// server access beyond its own worker), routes console.* to the page, tracks timers so a
// script that schedules work runs until that work is done (like node), and reports the
// outcome. The page enforces the timeout and cancel with worker.terminate().
//
// The script shares this realm and may patch any prototype or global (Promise.prototype.then,
// the Set.prototype.size getter, Array/String/JSON methods, Error.prepareStackTrace ...).
// So everything the outcome depends on is captured here, before the script exists, and
// used only in ways that do no lookup the script could redirect: methods are called
// through captured functions ("uncurried", as node's primordials do), bookkeeping uses
// null-prototype objects and plain counters, events are read through captured getters,
// and the script's promise is observed with the captured `then` after giving that
// promise an own `constructor` of undefined (so no species lookup reaches the script).
export function bootstrap(self, env, firstLine, params) {
  "use strict";
  // ---- intrinsics, captured before any user code runs ----
  const FunctionCall = Function.prototype.call;
  const uncurry = (fn) => FunctionCall.bind(fn);
  const apply = Reflect.apply;
  const defineProperty = Object.defineProperty;
  const getOwnDescriptor = Object.getOwnPropertyDescriptor;
  const getPrototypeOf = Object.getPrototypeOf;
  const freeze = Object.freeze;
  const hasOwn = uncurry(Object.prototype.hasOwnProperty);
  const StringCtor = String;
  const NumberCtor = Number;
  const stringify = JSON.stringify;
  const ErrorCtor = Error;
  const strSlice = uncurry(String.prototype.slice);
  const strIndexOf = uncurry(String.prototype.indexOf);
  const strSplit = uncurry(String.prototype.split);
  const strIncludes = uncurry(String.prototype.includes);
  const strReplace = uncurry(String.prototype.replace);
  const strStartsWith = uncurry(String.prototype.startsWith);
  // Defining (not assigning) the next index: no setter on Array/Object.prototype runs.
  const arrPush = (arr, value) => {
    defineProperty(arr, arr.length, { value, writable: true, enumerable: true, configurable: true });
  };
  const arrJoin = uncurry(Array.prototype.join);
  const regexpExec = uncurry(RegExp.prototype.exec);
  const promiseThen = Promise.prototype.then;
  const AsyncFunctionProto = getPrototypeOf(async () => {});
  const errorEventError = getOwnDescriptor(ErrorEvent.prototype, "error").get;
  const errorEventMessage = getOwnDescriptor(ErrorEvent.prototype, "message").get;
  const rejectionReason = getOwnDescriptor(PromiseRejectionEvent.prototype, "reason").get;
  const preventDefault = Event.prototype.preventDefault;
  const addListener = uncurry(EventTarget.prototype.addEventListener);
  const now = Performance.prototype.now.bind(self.performance);
  const post = self.postMessage.bind(self);
  const realClose = self.close.bind(self);
  const realSetTimeout = self.setTimeout.bind(self);
  const realClearTimeout = self.clearTimeout.bind(self);
  const realSetInterval = self.setInterval.bind(self);
  const realClearInterval = self.clearInterval.bind(self);
  const STACK_LINE = /^:(\d+):(\d+)/;

  // ---- no network, no storage, no nested workers ----
  const blocked = [
    "fetch", "XMLHttpRequest", "importScripts", "WebSocket", "WebSocketStream", "WebTransport",
    "EventSource", "indexedDB", "caches", "Worker", "SharedWorker", "BroadcastChannel",
    "FontFace", "fonts", "fetchLater", "navigator",
  ];
  const deny = (name) => function blockedApi() {
    throw new Error(`${name} is not available to browser scripts (no network access)`);
  };
  // Own property and every prototype that defines it (WorkerGlobalScope.prototype ...).
  const removeEverywhere = (name) => {
    for (let o = self; o; o = getPrototypeOf(o)) {
      if (hasOwn(o, name)) {
        try {
          delete o[name];
        } catch (_err) {
          // non-configurable: shadowed by the caller
        }
      }
    }
  };
  for (const name of blocked) {
    removeEverywhere(name);
    try {
      const keep = name === "navigator" ? freeze({ userAgent: "scriptbox-browser-runner" }) : undefined;
      defineProperty(self, name, {
        value: keep === undefined && name !== "indexedDB" && name !== "caches" && name !== "fonts" ? deny(name) : keep,
        writable: false,
        configurable: false,
      });
    } catch (_err) {
      // already gone
    }
  }

  // The page reads the worker's messages as the run's output and outcome: only the
  // bootstrap may post them, or a script could end its run early or forge output. The
  // prototypes' own close() would stop the worker without a word to the page.
  removeEverywhere("postMessage");
  removeEverywhere("close");
  defineProperty(self, "postMessage", {
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
  /** A string data property of `obj` or its prototypes; getters and proxies' traps may
   * run only through the descriptor read, which is guarded. */
  const dataString = (obj, key) => {
    try {
      for (let o = obj, depth = 0; o !== null && depth < 50; o = getPrototypeOf(o), depth++) {
        const d = getOwnDescriptor(o, key);
        if (d) return typeof d.value === "string" ? d.value : null;
      }
    } catch (_err) {
      // a hostile proxy
    }
    return null;
  };
  // Stack frames point into the worker's Blob; show them as lines of the user's script
  // and leave out the bootstrap's own frames. Only "    at ..." lines are taken from the
  // stack (Error.prepareStackTrace belongs to the script); the header is rebuilt below.
  const here = StringCtor(self.location && self.location.href);
  const stackFrames = (stack) => {
    const out = [];
    const lines = strSplit(stack, "\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (!strStartsWith(line, "    at ")) continue;
      const at = strIndexOf(line, here);
      if (at === -1) {
        arrPush(out, line);
        continue;
      }
      const m = regexpExec(STACK_LINE, strSlice(line, at + here.length));
      if (!m || NumberCtor(m[1]) < firstLine) continue;
      arrPush(out, `${strSlice(line, 0, at)}script:${NumberCtor(m[1]) - firstLine + 1}:${m[2]}${strSlice(line, at + here.length + m[0].length)}`);
    }
    return out;
  };
  /** {message, text} of a thrown value, from own data only; never throws. */
  const describeError = (err) => {
    if (err === null || (typeof err !== "object" && typeof err !== "function")) {
      let text;
      try {
        text = typeof err === "symbol" ? "Symbol()" : `${err}`;
      } catch (_err) {
        text = "[unprintable value]";
      }
      return { message: text, text };
    }
    const message = dataString(err, "message");
    if (message === null) {
      let text = "[object]";
      try {
        text = show(err);
      } catch (_err) {
        // the script broke its own formatting helpers
      }
      return { message: text, text };
    }
    const name = dataString(err, "name") || "Error";
    const lines = [message === "" ? name : `${name}: ${message}`];
    try {
      // V8 gives errors an own `stack` accessor (or data property); only "    at" lines
      // of it are used, so Error.prepareStackTrace cannot change the message above.
      const d = getOwnDescriptor(err, "stack");
      const stack = d && (typeof d.value === "string" ? d.value : typeof d.get === "function" ? apply(d.get, err, []) : null);
      const frames = typeof stack === "string" ? stackFrames(stack) : [];
      for (let i = 0; i < frames.length; i++) arrPush(lines, frames[i]);
    } catch (_err) {
      // frames are a convenience; the message above is what counts
    }
    return { message, text: arrJoin(lines, "\n") };
  };
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return describeError(v).text;
    if (v === undefined) return "undefined";
    if (typeof v === "function") return `[Function ${v.name || "anonymous"}]`;
    if (typeof v === "symbol" || typeof v === "number" || typeof v === "boolean" || v === null) return StringCtor(v);
    if (typeof v === "bigint") return `${v}n`;
    try {
      const one = stringify(v, seen());
      if (one === undefined) return StringCtor(v);
      return one.length > 100 ? stringify(v, seen(), 2) : one;
    } catch (_err) {
      return StringCtor(v);
    }
  };
  const format = (args) => {
    if (typeof args[0] === "string" && strIncludes(args[0], "%") && args.length > 1) {
      let i = 1;
      const first = strReplace(args[0], /%([sdifoOjc%])/g, (m, c) => {
        if (c === "%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        if (c === "c") return "";
        if (c === "d" || c === "i") return StringCtor(parseInt(a, 10));
        if (c === "f") return StringCtor(parseFloat(a));
        return show(a);
      });
      const rest = [first];
      for (; i < args.length; i++) arrPush(rest, args[i]);
      args = rest;
    }
    const parts = [];
    for (let i = 0; i < args.length; i++) arrPush(parts, show(args[i]));
    return arrJoin(parts, " ");
  };

  // ---- output: batched and rate-limited ----
  // A flood (for(;;) console.log(...)) must neither keep the page's main thread busy nor
  // delay its timeout: the page gets at most one message per FLUSH_MS, and at most
  // RATE_CHARS characters per second after a BURST_CHARS burst; the rest is dropped and
  // counted, and a marker in the output says how much. A write that comes FLUSH_MS after
  // the last message goes out at once, so the line before a hang is seen; the timer
  // below flushes the rest once the script yields. Both streams travel in one message
  // ([stream, text, stream, text, ...]), so alternating log/error costs nothing extra.
  const FLUSH_MS = 50;
  const RATE_CHARS = 512 * 1024;
  const BURST_CHARS = 1024 * 1024;
  let indent = "";
  let parts = [];
  let partStream = "";
  let partText = "";
  let budget = BURST_CHARS;
  let budgetAt = now();
  let droppedChars = 0;
  let droppedWrites = 0;
  let lastPost = -Infinity;
  let flushTimer = 0;
  const refill = (t) => {
    budget += ((t - budgetAt) * RATE_CHARS) / 1000;
    if (budget > BURST_CHARS) budget = BURST_CHARS;
    budgetAt = t;
  };
  const closePart = () => {
    if (partText) {
      arrPush(parts, partStream);
      arrPush(parts, partText);
    }
    partText = "";
  };
  /** Puts the marker for what was dropped since the last one into the output. */
  const noteDropped = () => {
    if (!droppedChars) return;
    closePart();
    arrPush(parts, "stderr");
    arrPush(parts, `\n[scriptbox] ${droppedChars} characters of output (${droppedWrites} writes) dropped: browser runs may write ${RATE_CHARS / 1024} KiB/s after a ${BURST_CHARS / 1024} KiB burst\n`);
    droppedChars = 0;
    droppedWrites = 0;
  };
  const flush = () => {
    if (flushTimer) realClearTimeout(flushTimer);
    flushTimer = 0;
    noteDropped();
    closePart();
    if (!parts.length) return;
    const out = parts;
    parts = [];
    post({ t: "out", parts: out });
    lastPost = now();
  };
  const write = (stream, args) => {
    let text = format(args);
    if (indent) {
      const lines = strSplit(text, "\n");
      const indented = [];
      for (let i = 0; i < lines.length; i++) arrPush(indented, indent + lines[i]);
      text = arrJoin(indented, "\n");
    }
    text += "\n";
    const t = now();
    refill(t);
    if (text.length > budget) {
      droppedChars += text.length;
      droppedWrites += 1;
    } else {
      budget -= text.length;
      if (stream !== partStream) closePart();
      partStream = stream;
      partText += text;
    }
    if (t - lastPost >= FLUSH_MS) flush();
    else if (!flushTimer) flushTimer = realSetTimeout(flush, FLUSH_MS);
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
      indent = strSlice(indent, 2);
    },
    count: (label = "default") => {
      counts.set(label, (counts.get(label) || 0) + 1);
      write("stdout", [`${label}: ${counts.get(label)}`]);
    },
    countReset: (label = "default") => counts.delete(label),
    time: (label = "default") => timers.set(label, now()),
    timeLog: (label = "default", ...a) => write("stdout", [`${label}: ${(now() - (timers.get(label) || 0)).toFixed(3)}ms`, ...a]),
    timeEnd: (label = "default") => {
      con.timeLog(label);
      timers.delete(label);
    },
  };
  defineProperty(self, "console", { value: freeze(con), writable: false, configurable: false });

  // ---- outcome: the run ends when main() settled and no timer is left ----
  let mainDone = false;
  let finished = false;
  // Pending timer ids: a null-prototype object and a counter, so no Set/Map method or
  // getter the script could patch decides when the run is over.
  const pending = Object.create(null);
  let pendingCount = 0;
  const track = (id) => {
    if (!(id in pending)) pendingCount += 1;
    pending[id] = true;
  };
  const untrack = (id) => {
    if (id in pending) {
      pendingCount -= 1;
      delete pending[id];
    }
  };
  const finish = (ok, error) => {
    if (finished) return;
    finished = true;
    try {
      flush();
    } catch (_err) {
      // the outcome below must go out even if the output could not
    }
    post({ t: "done", ok, error: error || null });
  };
  const maybeFinish = () => {
    if (mainDone && pendingCount === 0) finish(true);
  };
  // After the current task, a promise rejected and left unhandled in it is reported by
  // an "unhandledrejection" event in a task the browser queues then; checking two tasks
  // later lets that event fail the run before it could be reported a success.
  const maybeFinishLater = () => realSetTimeout(() => realSetTimeout(maybeFinish, 0), 0);
  const fail = (err) => {
    if (finished) return;
    const { message, text } = describeError(err);
    // Reported as failed before anything else can go wrong.
    try {
      noteDropped();
      closePart();
      partStream = "stderr";
      partText = `Uncaught ${text}\n`;
    } catch (_err) {
      // the message below still carries the reason
    }
    finish(false, message);
  };
  // An async callback's promise keeps the run open until it settles and fails it when
  // it rejects. Waiting for the "unhandledrejection" event alone is not enough: under
  // load the browser may report it after the checks of maybeFinishLater. Only a real
  // async function is followed: what it returns is always a fresh intrinsic promise
  // (whatever the script patched), so reading it runs none of the script's code.
  let asyncSeq = 0;
  const follow = (fn, result) => {
    if (getPrototypeOf(fn) !== AsyncFunctionProto) return;
    asyncSeq += 1;
    const key = -asyncSeq; // timer ids are positive
    track(key);
    defineProperty(result, "constructor", { value: undefined }); // see the note in the returned function
    apply(promiseThen, result, [
      () => {
        untrack(key);
        maybeFinishLater();
      },
      (err) => fail(err),
    ]);
  };
  self.setTimeout = (fn, ms, ...args) => {
    const id = realSetTimeout(() => {
      untrack(id);
      try {
        if (typeof fn === "function") follow(fn, apply(fn, undefined, args));
      } catch (err) {
        fail(err);
        return;
      }
      maybeFinishLater();
    }, ms);
    track(id);
    return id;
  };
  self.clearTimeout = (id) => {
    untrack(id);
    realClearTimeout(id);
    realSetTimeout(maybeFinish, 0);
  };
  self.setInterval = (fn, ms, ...args) => {
    const id = realSetInterval(() => {
      try {
        if (typeof fn === "function") apply(fn, undefined, args);
      } catch (err) {
        realClearInterval(id);
        untrack(id);
        fail(err);
      }
    }, ms);
    track(id);
    return id;
  };
  self.clearInterval = (id) => {
    untrack(id);
    realClearInterval(id);
    realSetTimeout(maybeFinish, 0);
  };
  // close() would stop the worker without a word to the page, which would then wait
  // for the timeout: it ends the run now instead, as a successful exit.
  defineProperty(self, "close", {
    value: function close() {
      mainDone = true;
      finish(true);
      realClose();
    },
    writable: false,
    configurable: false,
  });
  // Capturing listeners registered now run before any listener the script adds to the
  // global (same target, registration order), so it cannot stop these from seeing errors.
  addListener(self, "error", (ev) => {
    let error;
    try {
      apply(preventDefault, ev, []);
      error = apply(errorEventError, ev, []);
      if (error === undefined || error === null) error = new ErrorCtor(apply(errorEventMessage, ev, []));
    } catch (_err) {
      error = new ErrorCtor("an error event without details");
    }
    fail(error);
  }, true);
  addListener(self, "unhandledrejection", (ev) => {
    let reason;
    try {
      apply(preventDefault, ev, []);
      reason = apply(rejectionReason, ev, []);
    } catch (_err) {
      reason = new ErrorCtor("an unhandled rejection without details");
    }
    fail(reason);
  }, true);

  const frozenEnv = freeze({ ...env });
  // The run's parameter values (typed, SPEC §8.2): a frozen global `params`, as in vm2 scripts.
  defineProperty(self, "params", { value: freeze({ ...(params || {}) }), writable: false, configurable: false });
  // The user's code only appears after this function returned, so nothing of it runs
  // before the lockdown above.
  return (main) => {
    let promise;
    try {
      promise = main(frozenEnv, con);
    } catch (err) {
      fail(err); // not reached for an async main, kept for safety
      return;
    }
    // An own `constructor` of undefined makes `then` use the real Promise for the
    // derived promise (SpeciesConstructor), so a patched Promise.prototype.constructor
    // or Symbol.species never runs; the captured `then` itself cannot be replaced.
    try {
      defineProperty(promise, "constructor", { value: undefined });
    } catch (_err) {
      fail(new ErrorCtor("the script's body did not return a promise"));
      return;
    }
    apply(promiseThen, promise, [
      () => {
        mainDone = true;
        // Let callbacks queued by the script's last await settle first.
        maybeFinishLater();
      },
      (err) => fail(err),
    ]);
  };
}
