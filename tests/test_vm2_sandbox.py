"""The node/vm2 runner, end to end at the process level: real node, real vm2.

Every test builds its launch with prepare_vm2_launch() and starts it the way
the run engine does (new session, the spec's env/cwd/preexec, the JSON document
on stdin), so what is tested here is exactly what the engine runs.

SCENARIOS and ESCAPE_SCENARIOS are plain data so that the end-to-end tests
through the HTTP API can reuse them (script, expected exit code, expected run
status, fragments expected in stdout/stderr).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from scriptbox.runners.base import RunnerUnavailable
from scriptbox.runners.vm2_runner import (
    EXIT_HARNESS_ERROR,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    EXIT_SCRIPT_FAILED,
    EXIT_TIMED_OUT,
    prepare_vm2_launch,
)

HOST_SECRET = "vm2-test-host-secret-7f3a"


@dataclasses.dataclass(frozen=True)
class Scenario:
    script: str
    exit_code: int
    status: str  # the run status the engine should record
    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout_ms: int = 10_000
    max_seconds: float | None = None  # wall time the harness may take at most


SCENARIOS: dict[str, Scenario] = {
    "output_and_env": Scenario(
        script='console.log("hello", env.NAME, {a: 1, list: [1, "two"]}); console.error("to stderr", 42)',
        env={"NAME": "world"},
        exit_code=EXIT_OK,
        status="succeeded",
        stdout=("hello world { a: 1, list: [ 1, 'two' ] }\n",),
        stderr=("to stderr 42\n",),
    ),
    "uncaught_error": Scenario(
        script='function check(x) { if (!x) throw new Error("check failed: " + x) }\ncheck(0)',
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Uncaught Error: check failed: 0", "at check (script.js:1:"),
    ),
    "thrown_non_error": Scenario(
        script='throw {code: 7}',
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Uncaught { code: 7 }",),
    ),
    "syntax_error": Scenario(
        script="let x = ;",
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("SyntaxError: Unexpected token ';'",),
    ),
    "infinite_loop": Scenario(
        script="while (true) {}",
        timeout_ms=1000,
        exit_code=EXIT_TIMED_OUT,
        status="timed_out",
        stderr=("timed out after 1000 ms",),
        max_seconds=5,
    ),
    "infinite_loop_in_a_promise_callback": Scenario(
        # Runs after vm.run() returned, i.e. outside vm2's own timeout.
        script="Promise.resolve().then(() => { while (true) {} })",
        timeout_ms=1000,
        exit_code=EXIT_TIMED_OUT,
        status="timed_out",
        max_seconds=5,
    ),
    "endless_microtask_chain": Scenario(
        script="(function spin() { return Promise.resolve().then(spin) })()",
        timeout_ms=1000,
        exit_code=EXIT_TIMED_OUT,
        status="timed_out",
        max_seconds=5,
    ),
    "blocking_wait": Scenario(
        script="Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)",
        timeout_ms=1000,
        exit_code=EXIT_TIMED_OUT,
        status="timed_out",
        max_seconds=5,
    ),
    "never_settling_promise": Scenario(
        # Nothing can ever settle it (there are no timers or I/O in the
        # sandbox), so the harness fails at once instead of idling until the
        # timeout.
        script='console.log("waiting"); new Promise(() => {})',
        timeout_ms=20_000,
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stdout=("waiting\n",),
        stderr=("never settle",),
        max_seconds=5,
    ),
    "returned_promise_is_awaited": Scenario(
        script="(async () => { for (let i = 0; i < 1000; i++) await null; console.log('after 1000 awaits') })()",
        exit_code=EXIT_OK,
        status="succeeded",
        stdout=("after 1000 awaits\n",),
        max_seconds=5,
    ),
    "returned_promise_rejects": Scenario(
        script="(async () => { await null; throw new TypeError('late failure') })()",
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Uncaught TypeError: late failure",),
    ),
    "top_level_await": Scenario(
        script="const v = await Promise.resolve(41); console.log('value', v + 1)",
        exit_code=EXIT_OK,
        status="succeeded",
        stdout=("value 42\n",),
    ),
    "unhandled_async_rejection": Scenario(
        script="(async () => { throw new RangeError('nobody catches this') })(); 'not the promise'",
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Uncaught (in promise) RangeError: nobody catches this",),
    ),
    "memory_bomb": Scenario(
        script="const hog = []; while (true) hog.push(new Array(100000).fill(1.5))",
        exit_code=EXIT_OUT_OF_MEMORY,
        status="failed",
        stderr=("ran out of memory",),
        max_seconds=20,
    ),
    "string_memory_bomb": Scenario(
        script="let s = 'x'; while (true) s += s",
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Invalid string length",),
    ),
    "array_buffer_bomb": Scenario(
        # Off-heap memory: capped by the address-space limit, not the V8 heap.
        script="const keep = []; for (let i = 0; i < 200; i++) keep.push(new Uint8Array(30e6).fill(1))",
        exit_code=EXIT_SCRIPT_FAILED,
        status="failed",
        stderr=("Array buffer allocation failed",),
        max_seconds=20,
    ),
}


# --- escape attempts --------------------------------------------------------
#
# ESCAPE_KIT is prepended to every escape script. probe(value) reports a value
# that does not belong to the sandbox realm: an object whose prototype chain
# ends anywhere but the sandbox's Object.prototype, or a Function-like
# constructor that is not one of the sandbox's own. For such a constructor it
# goes all the way: compile "return process", print the host pid and the host
# secret, write a marker file. test_escape_detector_catches_a_real_escape
# proves the kit does report a real escape (plain node `vm`, no vm2).
ESCAPE_KIT = r"""
const SANDBOX_CONSTRUCTORS = [Function, (async function () {}).constructor,
  (function* () {}).constructor, (async function* () {}).constructor];
function probe(value, how) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  let root = value;
  try { for (let p = Object.getPrototypeOf(value); p !== null; p = Object.getPrototypeOf(p)) root = p; }
  catch (e) { return; }
  if (root !== value && root !== Object.prototype) console.log('FOREIGN object via ' + how);
  if (typeof value === 'function' && !SANDBOX_CONSTRUCTORS.includes(value) && /Function$/.test(String(value.name))) {
    console.log('FOREIGN constructor via ' + how);
    try {
      const p = value('return process')();
      console.log('ESCAPED via ' + how + ' pid=' + p.pid + ' secret=' + p.env.SCRIPTBOX_TEST_SECRET);
      const req = p.mainModule ? (m) => p.mainModule.require(m) : value('return require')();
      req('fs').writeFileSync(env.MARKER, 'escaped');
    } catch (e) {}
  }
}
function probeDeep(value, how) {
  probe(value, how);
  try {
    probe(value.constructor, how + '.constructor');
    probe(value.constructor.constructor, how + '.constructor.constructor');
  } catch (e) {}
}
"""

ESCAPE_SCENARIOS: dict[str, str] = {
    # The canonical escape: walk constructors up to a Function constructor.
    "constructor_chain": r"""
probeDeep(this, 'this'); probeDeep(globalThis, 'globalThis'); probeDeep(env, 'env');
probeDeep(console, 'console'); probeDeep(console.log, 'console.log');
try { this.constructor.constructor('return process')() } catch (e) { probeDeep(e, 'ctor call'); }
try { Object.getPrototypeOf(async function () {}).constructor('return process')() } catch (e) { probeDeep(e, 'async'); }
console.log('done');
""",
    # Reading a file / spawning a process / any host capability.
    "host_capabilities": r"""
const attempts = {
  require: () => require('fs').readFileSync('/etc/passwd', 'utf8'),
  process: () => process.binding('spawn_sync'),
  globalProcess: () => globalThis.process.mainModule.require('child_process').execSync('touch ' + env.MARKER),
  module: () => module.require('child_process'),
  dynamicImport: () => import('child_process'),
  functionConstructor: () => Function('return process')().pid,
  indirectEval: () => (0, eval)('process'),
  wasm: () => new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])),
  buffer: () => Buffer.from('x'),
  timer: () => setTimeout(() => {}, 10),
};
for (const [name, attempt] of Object.entries(attempts)) {
  try {
    const r = attempt();
    if (r && typeof r.then === 'function') r.then(() => console.log('RESOLVED ' + name), () => {});
    else console.log('RETURNED ' + name);
  } catch (e) { console.log('blocked ' + name + ': ' + e.name); probeDeep(e, name); }
}
console.log('done');
""",
    # Errors that V8 or host code creates while serving the sandbox.
    "host_errors": r"""
try { console.log(Symbol('s'), { [Symbol('k')]: Symbol() }); } catch (e) { probeDeep(e, 'console.log(Symbol)'); }
try { `${Symbol()}` } catch (e) { probeDeep(e, 'symbol to string'); }
const named = new Error('gen'); named.name = Symbol('n');
try { named.stack } catch (e) { probeDeep(e, 'stack with symbol name'); }
try { null.x } catch (e) { probeDeep(e, 'null property'); }
try { new Array(-1) } catch (e) { probeDeep(e, 'array length'); }
try { JSON.parse('{') } catch (e) { probeDeep(e, 'json'); }
console.log('done');
""",
    # Error.prepareStackTrace sees call sites; overflow the stack at many
    # depths so that it sometimes overflows inside host code (console, bridge).
    "prepare_stack_trace_and_overflow": r"""
Error.prepareStackTrace = (err, frames) => {
  for (const f of frames) {
    try { probeDeep(f.getThis(), 'frame.getThis'); probeDeep(f.getFunction(), 'frame.getFunction'); } catch (e) {}
  }
  return 'custom';
};
let max = 0;
function measure(n) { max = n; measure(n + 1); }
try { measure(0) } catch (e) { probeDeep(e, 'overflow'); e.stack; }
function deepLog(n) { if (n === 0) { console.log(0); return 0; } return deepLog(n - 1) + 1; }
let overflows = 0;
for (let d = max + 10; d > max - 600; d -= 7) {
  try { deepLog(d) } catch (e) {
    overflows++; probeDeep(e, 'deep console ' + d);
    try { e.stack } catch (x) { probeDeep(x, 'stack'); }
  }
}
Error.prepareStackTrace = undefined;
console.log('done overflows=' + (overflows > 0));
""",
    # Buffer.apply / __lookupGetter__('__proto__') proto walks (vm2 GHSA class).
    "proto_walk_and_lookup_getter": r"""
console.log('Buffer is ' + typeof Buffer);
const getProto = ({}).__lookupGetter__('__proto__');
const starts = [['console.log', console.log], ['env', env], ['Error', Error],
  ['Promise', Promise], ['VMError', VMError]];
for (const [name, start] of starts) {
  let o = start;
  for (let i = 0; i < 20 && o !== null; i++) { probeDeep(o, name + ' proto ' + i); o = getProto.call(o); }
}
try { probeDeep(Function.prototype.apply.call(getProto, console.log, []), 'apply getter'); }
catch (e) { probeDeep(e, 'apply'); }
for (const k of Object.getOwnPropertyNames(Object.prototype)) {
  const d = Object.getOwnPropertyDescriptor(Object.prototype, k);
  probeDeep(d.value, 'Object.prototype.' + k); probeDeep(d.get, 'get ' + k); probeDeep(d.set, 'set ' + k);
}
console.log('done');
""",
    # Promise species, thenables, async generator yield* return.
    "promise_species_and_thenables": r"""
class Evil extends Promise {
  static get [Symbol.species]() {
    return function Capture(executor) {
      executor((v) => probeDeep(v, 'species resolve'), (e) => probeDeep(e, 'species reject'));
    };
  }
}
const p = Evil.resolve(1);
p.then(() => { const e = new Error('x'); e.name = Symbol(); return e.stack; });
p.then(() => { function r() { r() } r(); });
Evil.reject(new Error('r')).then(null, (e) => probeDeep(e, 'evil reject'));
const thenable = { then(resolve, reject) {
  probeDeep(resolve, 'thenable resolve'); probeDeep(reject, 'thenable reject');
  function r() { r() } try { r() } catch (e) { reject(e) } } };
(async () => {
  try { await thenable } catch (e) { probeDeep(e, 'awaited thenable'); }
  async function* inner() { yield 1 }
  async function* outer() { yield* inner() }
  const it = outer(); await it.next();
  try {
    const r = await it.return({ then(res, rej) { function d() { d() } try { d() } catch (e) { rej(e) } } });
    probeDeep(r && r.value, 'yield* return');
  } catch (e) { probeDeep(e, 'yield* return error'); }
  console.log('done');
})();
""",
    # Symbols as channels into host code: util.inspect.custom, toStringTag
    # getters, toPrimitive. None of the script's code may run on behalf of
    # console formatting.
    "symbols_and_custom_inspect": r"""
const bait = {
  [Symbol.for('nodejs.util.inspect.custom')](depth, options, inspect) {
    console.log('CUSTOM INSPECT CALLED'); probeDeep(options, 'options'); probeDeep(inspect, 'inspect'); return 'x';
  },
  get [Symbol.toStringTag]() { return 'Bait' },
  toString() { console.log('TOSTRING CALLED'); return 'b' },
  [Symbol.toPrimitive]() { console.log('TOPRIMITIVE CALLED'); return 1 },
  get sneaky() { console.log('GETTER CALLED'); return 1 },
};
console.log(bait); console.log('%o %O %s %d %j', bait, bait, bait, bait, bait);
console.dir(bait, { depth: 5, customInspect: true, showProxy: true, getters: true });
console.table([bait]);
for (const s of Object.getOwnPropertyNames(Symbol)) {
  if (typeof Symbol[s] === 'symbol') probeDeep(Object(Symbol[s]), s);
}
console.log('done');
""",
    # getOwnPropertyDescriptor tricks: every value, getter and setter reachable
    # from the global object, and every prototype, must be of the sandbox.
    "descriptor_walk_of_everything_reachable": r"""
const seen = new Set(); const queue = [[globalThis, 'globalThis']];
while (queue.length && seen.size < 20000) {
  const [o, path] = queue.shift();
  if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
  seen.add(o); probe(o, path);
  let keys = []; try { keys = Reflect.ownKeys(o) } catch (e) { continue }
  for (const k of keys) {
    let d; try { d = Reflect.getOwnPropertyDescriptor(o, k) } catch (e) { continue }
    if (!d) continue;
    const name = path + '.' + String(k);
    if ('value' in d) queue.push([d.value, name]);
    else { queue.push([d.get, name + '<get>']); queue.push([d.set, name + '<set>']); }
  }
  try { queue.push([Reflect.getPrototypeOf(o), path + '.__proto__']) } catch (e) {}
}
console.log('done scanned=' + seen.size);
""",
    # A rejection reason the host reads in its unhandledRejection handler: its
    # getters must not run, and must not see host callers if they did.
    "hostile_unhandled_rejection_reason": r"""
const evil = {};
for (const key of ['stack', 'message', 'name', 'constructor']) {
  Object.defineProperty(evil, key, { get() {
    console.log('GETTER RAN ' + key);
    let c = null; try { c = arguments.callee.caller } catch (e) {}
    probeDeep(c, 'caller of ' + key); return 'x'; } });
}
console.log('done');
(async () => { throw evil })();
0;
""",
    # The completion value is read by the harness: a hostile `then` getter.
    "hostile_completion_value": r"""
console.log('done');
({ get then() {
  let c = null; try { c = arguments.callee.caller } catch (e) {}
  probeDeep(c, 'then caller');
  return function (resolve, reject) { probeDeep(resolve, 'resolve'); probeDeep(reject, 'reject'); resolve(1) };
} })
""",
}

ESCAPE_EXIT_CODES: dict[str, int] = {
    "hostile_unhandled_rejection_reason": EXIT_SCRIPT_FAILED,
}
# Proof that an attempt really exercised what it set out to.
ESCAPE_EXPECTED_OUTPUT: dict[str, tuple[str, ...]] = {
    "host_capabilities": tuple(
        f"blocked {name}:" for name in ("require", "process", "globalProcess", "module", "dynamicImport",
                                        "functionConstructor", "indirectEval", "wasm", "buffer", "timer")
    ),
    "prepare_stack_trace_and_overflow": ("done overflows=true",),
    "proto_walk_and_lookup_getter": ("Buffer is undefined",),
    "hostile_unhandled_rejection_reason": ("Uncaught (in promise)",),
}


@dataclasses.dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    pid: int
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_vm2(script: str, env: dict[str, str] | None = None, timeout_ms: int = 10_000) -> Outcome:
    """Start the vm2 runner's process like the run engine does; wait for it."""
    spec = prepare_vm2_launch(script, env or {}, timeout_ms)
    started = time.monotonic()
    proc = subprocess.Popen(
        spec.argv,
        env=spec.env,
        cwd=spec.cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=spec.preexec,
    )
    try:
        out, err = proc.communicate(spec.stdin_data, timeout=timeout_ms / 1000 + 15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert spec.cleanup is not None
        spec.cleanup()
    return Outcome(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                   proc.pid, time.monotonic() - started)


@pytest.fixture
def host_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's own environment, which no sandbox may read."""
    monkeypatch.setenv("SCRIPTBOX_TEST_SECRET", HOST_SECRET)
    return HOST_SECRET


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_ends_with_the_expected_exit_code_and_output(name: str) -> None:
    scenario = SCENARIOS[name]
    outcome = run_vm2(scenario.script, scenario.env, scenario.timeout_ms)
    assert outcome.exit_code == scenario.exit_code, outcome
    for fragment in scenario.stdout:
        assert fragment in outcome.stdout, outcome
    for fragment in scenario.stderr:
        assert fragment in outcome.stderr, outcome
    if scenario.max_seconds is not None:
        assert outcome.seconds < scenario.max_seconds, outcome


def test_timeout_fires_at_the_runs_timeout_not_later() -> None:
    outcome = run_vm2("for (;;) {}", timeout_ms=1500)
    assert outcome.exit_code == EXIT_TIMED_OUT
    assert 1.3 < outcome.seconds < 3.5, outcome.seconds


def test_host_is_healthy_after_a_memory_bomb() -> None:
    bomb = SCENARIOS["memory_bomb"]
    assert run_vm2(bomb.script).exit_code == EXIT_OUT_OF_MEMORY
    after = run_vm2('console.log("still fine")')
    assert (after.exit_code, after.stdout) == (EXIT_OK, "still fine\n")


# Values whose console.log output must be byte-for-byte what node prints.
FORMAT_CASES = [
    "{a: 1, b: 'two', c: [1, 2, {d: {e: {f: 1}}}]}",
    "[1, , 3, undefined, null]",
    "new Array(5)",
    "Array.from({length: 150}, (_, i) => i)",
    "new Map([[1, {x: 2}], ['k', [3]]])",
    "new Set(['a', 1, {}])",
    "new Date(86400000)",
    "/ab+c/gi",
    "[5n, -0, NaN, -Infinity, 1e21]",
    "Symbol('desc')",
    "{[Symbol('k')]: 1, 'with space': 2}",
    "function named() {}",
    "() => {}",
    "class Base {}",
    "class Derived extends Map {}",
    "async function af() {}",
    "function* gen() {}",
    "(() => { class Point { constructor() { this.x = 1; this.y = 2 } } return new Point() })()",
    "Object.create(null)",
    "Object.assign(Object.create(null), {a: 1})",
    "(() => { const o = {name: 'loop'}; o.self = o; o.list = [o]; return o })()",
    "{get g() { return 1 }, set s(v) {}, get gs() { return 1 }, set gs(v) {}}",
    "[new Number(3), new String('str'), new Boolean(false)]",
    "new Uint8Array([1, 2, 3])",
    "new Float64Array(2)",
    "new ArrayBuffer(4)",
    "new WeakMap()",
    "'%s is %d years, %i, %f, %j %o %%', 'Bob', 42.5, 42.5, '1.5', {a: [1]}, {b: 2}",
    "'a string', 'another', 3",
    "{s: 'quoted \\'string\\'', n: 'line\\nbreak'}",
    "(function () { return arguments })(1, 'a')",
    "Math",
    "[[[[['deep']]]]]",
]


def test_console_formats_values_exactly_like_node() -> None:
    # The comparison is against a plain node process running the same lines.
    script = "\n".join(f"console.log({case});" for case in FORMAT_CASES)
    expected = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=30)
    outcome = run_vm2(script)
    assert outcome.exit_code == EXIT_OK, outcome
    assert outcome.stdout.splitlines() == expected.stdout.splitlines()


def test_console_methods_route_to_stdout_and_stderr() -> None:
    outcome = run_vm2(
        "console.log('L'); console.info('I'); console.debug('D'); console.warn('W'); console.error('E');"
        "console.group('G'); console.log('nested'); console.groupEnd(); console.count(); console.count();"
        "console.assert(false, 'A'); console.table([{a: 1}]); console.dir({x: {y: {z: {w: 1}}}}, {depth: 0});"
        "function where() { console.trace('T') } where()"
    )
    assert outcome.exit_code == EXIT_OK, outcome
    assert outcome.stdout.startswith("L\nI\nD\nG\n  nested\ndefault: 1\ndefault: 2\n")
    assert "│ (index) │ a │" in outcome.stdout
    assert "{ x: [Object] }" in outcome.stdout
    assert outcome.stderr.startswith("W\nE\nAssertion failed: A\nTrace: T\n    at where (script.js:1:")
    # Only the sandbox's own frames: no host paths in a trace.
    assert "/" not in outcome.stderr


def test_env_is_a_frozen_plain_object() -> None:
    outcome = run_vm2(
        "'use strict';"
        "console.log(Object.isFrozen(env), Object.getPrototypeOf(env) === Object.prototype, JSON.stringify(env));"
        "try { env.API_KEY = 'changed' } catch (e) { console.log(e.name) }"
        "console.log(env.API_KEY, Object.keys(env).length)",
        env={"API_KEY": "k-123", "EMPTY": ""},
    )
    assert outcome.exit_code == EXIT_OK, outcome
    assert outcome.stdout == 'true true {"API_KEY":"k-123","EMPTY":""}\nTypeError\nk-123 2\n'


def test_sandbox_globals_are_only_javascript_builtins_console_and_env() -> None:
    outcome = run_vm2(
        "for (const n of ['process', 'require', 'module', 'Buffer', 'setTimeout', 'setInterval',"
        " 'setImmediate', 'fetch', 'global', 'console', 'env', 'queueMicrotask'])"
        " console.log(n, typeof globalThis[n]);"
        "queueMicrotask(() => console.log('microtask ran'))"
    )
    assert outcome.exit_code == EXIT_OK, outcome
    types = dict(line.split(" ", 1) for line in outcome.stdout.splitlines() if line != "microtask ran")
    assert types == {
        "process": "undefined", "require": "undefined", "module": "undefined", "Buffer": "undefined",
        "setTimeout": "undefined", "setInterval": "undefined", "setImmediate": "undefined", "fetch": "undefined",
        "global": "object", "console": "object", "env": "object", "queueMicrotask": "function",
    }
    assert outcome.stdout.endswith("microtask ran\n")


@pytest.mark.parametrize("name", list(ESCAPE_SCENARIOS))
def test_escape_attempt_does_not_reach_the_host(name: str, tmp_path: Path, host_secret: str) -> None:
    marker = tmp_path / "escaped.marker"
    outcome = run_vm2(ESCAPE_KIT + ESCAPE_SCENARIOS[name], env={"MARKER": str(marker)}, timeout_ms=20_000)
    # The harness behaved: the attempt ran to its end and exited as expected...
    assert outcome.exit_code == ESCAPE_EXIT_CODES.get(name, EXIT_OK), outcome
    assert "done" in outcome.stdout, outcome
    for fragment in ESCAPE_EXPECTED_OUTPUT.get(name, ()):
        assert fragment in outcome.output, outcome
    # ...and nothing of the host was reached.
    assert "FOREIGN" not in outcome.output, outcome.output
    assert "ESCAPED" not in outcome.output, outcome.output
    assert host_secret not in outcome.output
    assert f"pid={outcome.pid}" not in outcome.output
    assert not marker.exists()
    for banned in ("CUSTOM INSPECT CALLED", "TOSTRING CALLED", "TOPRIMITIVE CALLED", "GETTER CALLED", "GETTER RAN"):
        assert banned not in outcome.output, outcome.output
    assert "RETURNED" not in outcome.output and "RESOLVED" not in outcome.output, outcome.output


def test_escape_detector_catches_a_real_escape(tmp_path: Path, host_secret: str) -> None:
    """Without vm2 (plain node `vm`), the same kit does report the escape."""
    marker = tmp_path / "escaped.marker"
    driver = (
        "const vm = require('vm');"
        f"const ctx = vm.createContext({{ console, env: {{ MARKER: {json.dumps(str(marker))} }} }});"
        f"vm.runInContext({json.dumps(ESCAPE_KIT + ESCAPE_SCENARIOS['constructor_chain'])}, ctx);"
    )
    result = subprocess.run(["node", "-e", driver], capture_output=True, text=True, timeout=30)
    assert "ESCAPED via" in result.stdout
    assert host_secret in result.stdout
    assert marker.exists()


def test_process_limits_hold_even_after_a_full_escape(tmp_path: Path, host_secret: str) -> None:
    """Defence in depth: code running *as the harness* (what a vm2 escape
    would get) still cannot write files, start processes, read outside the
    harness directory or see the server's environment."""
    spec = prepare_vm2_launch("", {}, 10_000)
    marker = tmp_path / "marker"
    code = f"""
const attempts = {{
  write: () => require('fs').writeFileSync({json.dumps(str(marker))}, 'x'),
  spawn: () => require('child_process').execFileSync('/bin/true'),
  read: () => require('fs').readFileSync('/etc/passwd', 'utf8'),
  binding: () => process.binding('spawn_sync'),
  evaluate: () => new Function('return 1')(),
}};
for (const [name, attempt] of Object.entries(attempts)) {{
  try {{ attempt(); console.log('ALLOWED ' + name) }} catch (e) {{ console.log('denied ' + name) }}
}}
console.log('env=' + JSON.stringify(process.env));
"""
    try:
        result = subprocess.run(
            [*spec.argv[:-1], "-e", code], env=spec.env, cwd=spec.cwd, capture_output=True, text=True,
            timeout=30, start_new_session=True, preexec_fn=spec.preexec,
        )
    finally:
        assert spec.cleanup is not None
        spec.cleanup()
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("denied ") == 5, result.stdout
    assert "env={}" in result.stdout
    assert host_secret not in result.stdout
    assert not marker.exists()


def test_script_and_env_never_appear_in_argv_or_process_environment() -> None:
    spec = prepare_vm2_launch(
        "const until = Date.now() + 1500; while (Date.now() < until) {} /* needle-in-script */",
        {"NEEDLE_KEY": "needle-in-env"}, 10_000,
    )
    proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=spec.preexec)
    try:
        assert proc.stdin is not None
        proc.stdin.write(spec.stdin_data or b"")
        proc.stdin.close()
        time.sleep(0.5)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert spec.cleanup is not None
        spec.cleanup()
    assert b"needle" not in cmdline
    assert environ == b""
    assert proc.returncode == EXIT_OK


def test_working_directory_is_private_and_removed_by_cleanup() -> None:
    spec = prepare_vm2_launch("1", {}, 5_000)
    workdir = Path(spec.cwd)
    assert workdir.is_dir()
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    assert spec.cleanup is not None
    spec.cleanup()
    assert not workdir.exists()


def test_launch_describes_a_node_process_fed_through_stdin() -> None:
    spec = prepare_vm2_launch("console.log(1)", {"K": "V"}, 1234)
    try:
        assert spec.env == {}
        assert spec.label == "vm2"
        assert spec.argv[-1].endswith("vm2/harness.js")
        assert any(a.startswith("--max-old-space-size=") for a in spec.argv)
        assert "console.log(1)" not in " ".join(spec.argv)
        assert json.loads(spec.stdin_data or b"") == {"script": "console.log(1)", "env": {"K": "V"}, "params": {},
                                                      "timeoutMs": 1234}
    finally:
        assert spec.cleanup is not None
        spec.cleanup()


def test_missing_node_makes_the_runner_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RunnerUnavailable, match="node"):
        prepare_vm2_launch("1", {}, 1000)


def test_missing_vm2_package_makes_the_runner_unavailable(tmp_path: Path) -> None:
    (tmp_path / "harness.js").write_text("// no node_modules next to it\n")
    with pytest.raises(RunnerUnavailable, match="vm2 package is not installed"):
        prepare_vm2_launch("1", {}, 1000, harness_dir=tmp_path)


def test_harness_rejects_input_that_is_not_its_json_document() -> None:
    spec = prepare_vm2_launch("1", {}, 5_000)
    try:
        result = subprocess.run(spec.argv, env=spec.env, cwd=spec.cwd, input=b"console.log(1)",
                                capture_output=True, timeout=30, preexec_fn=spec.preexec)
    finally:
        assert spec.cleanup is not None
        spec.cleanup()
    assert result.returncode == EXIT_HARNESS_ERROR
    assert b"not a JSON document" in result.stderr
