'use strict';
// Scriptbox vm2 harness, worker thread: owns the vm2 VM and runs the script.
//
// Host objects the sandbox can reach: none but `emit` (see prelude.js), and
// that only ever receives two strings. Values coming out of the sandbox are
// handled in three ways, none of which lets host code touch a sandbox object
// carelessly:
//  - console output and errors are described by sandbox code (prelude.js) as
//    JSON and rebuilt as fresh host objects (format.js);
//  - values thrown by vm.run() arrive as vm2 bridge proxies and are handed
//    straight back to the sandbox-side `describe`;
//  - raw sandbox values that node hands to process-level handlers
//    (unhandledRejection) are read through own data properties only.

const fs = require('fs');
const path = require('path');
const util = require('util');
const { Console } = require('console');
const { Writable } = require('stream');
const { parentPort } = require('worker_threads');
const { VM, VMScript } = require(path.join(__dirname, 'node_modules', 'vm2'));
const { rebuildValues } = require('./format');
const { EXIT, writeAll } = require('./common');

// A leading '/' makes vm2 treat the prelude's frames as host frames, so they
// are hidden from the script's stack traces.
const PRELUDE_FILENAME = '/scriptbox/vm2-prelude.js';
const SCRIPT_FILENAME = 'script.js';
// vm2 hardening advice: cap single Buffer allocations. The sandbox has no
// Buffer at all (prelude.js removes it); this is a second fence.
const BUFFER_ALLOC_LIMIT = 32 * 1024 * 1024;
const CONSOLE_METHODS = new Set([
	'log', 'info', 'debug', 'warn', 'error', 'dir', 'table', 'assert', 'count', 'countReset',
	'group', 'groupCollapsed', 'groupEnd', 'time', 'timeEnd', 'timeLog',
]);

function stream(fd) {
	return new Writable({
		decodeStrings: false,
		write(chunk, encoding, callback) {
			writeAll(fd, chunk);
			callback();
		},
	});
}

const hostConsole = new Console({ stdout: stream(1), stderr: stream(2), colorMode: false });

// The sandbox returned a promise that has not settled yet.
let awaiting = false;

function finish(code, message) {
	if (message !== undefined) writeAll(2, `${message}\n`);
	process.exit(code);
}

/** A string data property of `obj` or its prototypes; getters are never run. */
function dataString(obj, key) {
	let current = obj;
	for (let depth = 0; current !== null && depth < 50; depth++) {
		const d = Reflect.getOwnPropertyDescriptor(current, key);
		if (d !== undefined) return typeof d.value === 'string' ? d.value : undefined;
		current = Reflect.getPrototypeOf(current);
	}
	return undefined;
}

/** Text for a raw sandbox value without calling any of its code. */
function describeRaw(value) {
	if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return util.inspect(value);
	try {
		const message = dataString(value, 'message');
		if (message !== undefined) return `${dataString(value, 'name') || 'Error'}: ${message}`;
	} catch {
		// fall through to the generic text
	}
	return '[non-error value]';
}

function emit(kind, payload) {
	if (typeof kind !== 'string' || typeof payload !== 'string') return;
	try {
		if (kind === 'resolved') {
			awaiting = false;
		} else if (kind === 'rejected') {
			awaiting = false;
			finish(EXIT.SCRIPT_FAILED, `Uncaught ${util.inspect(rebuildValues(payload)[0])}`);
		} else if (kind === 'trace') {
			const [stack, ...args] = rebuildValues(payload);
			const head = args.length === 0 ? 'Trace' : `Trace: ${util.format(...args)}`;
			hostConsole.error(stack ? `${head}\n${stack}` : head);
		} else if (CONSOLE_METHODS.has(kind)) {
			hostConsole[kind](...rebuildValues(payload));
		}
	} catch (err) {
		// Never throw into the sandbox: a host error there is an escape hatch.
		writeAll(2, `vm2 harness: could not write console output (${err && err.message})\n`);
	}
}

function compile(source) {
	try {
		return new VMScript(source, SCRIPT_FILENAME).compile();
	} catch (err) {
		// Top-level `await`: run the script as the body of an async function.
		if (err instanceof SyntaxError && source.includes('await')) {
			try {
				return new VMScript(`(async () => {${source}\n})()`, SCRIPT_FILENAME).compile();
			} catch {
				// report the original error below
			}
		}
		throw err;
	}
}

function compileErrorText(err) {
	// node's vm puts "file:line\n<source line>\n   ^^^\n\n" before the
	// message; keep that and drop the host stack frames after it.
	const stack = typeof err.stack === 'string' ? err.stack : '';
	const cut = stack.indexOf('\n    at ');
	return cut > 0 ? stack.slice(0, cut) : `${err.name}: ${err.message}`;
}

/** Everything that does not depend on the run: handlers, the VM, the prelude. */
function prepare() {
	process.on('unhandledRejection', (reason) => {
		finish(EXIT.SCRIPT_FAILED, `Uncaught (in promise) ${describeRaw(reason)}`);
	});
	process.on('uncaughtException', (err) => {
		if (err instanceof Error) finish(EXIT.HARNESS_ERROR, `vm2 harness error: ${err.stack}`);
		finish(EXIT.SCRIPT_FAILED, `Uncaught ${describeRaw(err)}`);
	});
	process.on('exit', () => {
		if (awaiting) {
			writeAll(2, 'Script failed: the promise it returned can never settle (nothing is left that could settle it)\n');
			process.exitCode = EXIT.SCRIPT_FAILED;
		}
	});

	const vm = new VM({
		allowAsync: true,
		eval: false,
		wasm: false,
		bufferAllocLimit: BUFFER_ALLOC_LIMIT,
	});
	const prelude = fs.readFileSync(path.join(__dirname, 'prelude.js'), 'utf8');
	// The prelude only defines `install`; nothing of the run is in the VM before it is called.
	return { vm, install: vm.run(prelude, PRELUDE_FILENAME) };
}

/** Run the script of the run's input (posted once by harness.js) in the prepared VM. */
function run({ vm, install }, { script, envJson, paramsJson, deadline, timeoutMs }) {
	const timeoutText = `Script timed out after ${timeoutMs} ms`;
	const api = install(emit, envJson, paramsJson);

	let compiled;
	try {
		compiled = compile(script);
	} catch (err) {
		finish(EXIT.SCRIPT_FAILED, err instanceof Error ? compileErrorText(err) : `Uncaught ${describeRaw(err)}`);
	}

	vm.timeout = Math.max(1, deadline - Date.now());
	let result;
	try {
		result = vm.run(compiled);
	} catch (err) {
		if (err === null || (typeof err !== 'object' && typeof err !== 'function')) {
			finish(EXIT.SCRIPT_FAILED, `Uncaught ${util.inspect(err)}`);
		}
		if (util.types.isProxy(err)) {
			// A sandbox value: the sandbox describes it.
			finish(EXIT.SCRIPT_FAILED, `Uncaught ${util.inspect(rebuildValues(api.describe(err))[0])}`);
		}
		if (err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') finish(EXIT.TIMED_OUT, timeoutText);
		// A host error raised by vm2 itself (e.g. a blocked operation).
		finish(EXIT.SCRIPT_FAILED, `Uncaught ${err.name}: ${err.message}`);
	}
	awaiting = api.settle(result) === true;
}

const prepared = prepare();
parentPort.once('message', (input) => {
	// One input per process: from now on only the script keeps this thread alive,
	// so a script with nothing left to do ends (and an unsettleable promise is seen).
	parentPort.unref();
	run(prepared, input);
});
