'use strict';
// Scriptbox vm2 harness, main thread.
//
// Input: ONE JSON document on stdin: {"script": str, "env": {str: str},
// "params": {str: string|number|boolean|null}, "timeoutMs": int}. The script
// never appears on the command line or in the process environment.
//
// The sandbox thread starts, and loads vm2, while the input is still being
// read. With the argument --pooled the process was started ahead of its run
// (scriptbox/engine/vm2pool.py): it waits with everything loaded, so its run
// pays neither node's start-up nor module loading, and its timeout counts from
// the arrival of the input instead of the start of the process.
//
// The script runs in a vm2 `VM` inside a worker thread (sandbox-worker.js).
// This thread only supervises, which buys two things a single thread cannot:
//  - a real wall-clock timeout: vm2's `timeout` only covers the synchronous
//    part of vm.run(); a script stuck in a promise callback (or in a getter
//    that host code reads) blocks its own thread, but not this one;
//  - a clean out-of-memory failure: the worker's heap limit ends the worker
//    with ERR_WORKER_OUT_OF_MEMORY instead of aborting the whole process.
// Exit codes are in common.js.

const path = require('path');
const { Worker } = require('worker_threads');
const { EXIT, writeAll } = require('./common');

const MAX_INPUT_BYTES = 64 * 1024 * 1024;
const DEFAULT_HEAP_MB = 192;
const MAX_TIMER_MS = 2 ** 31 - 1;
const POOLED = process.argv.slice(2).includes('--pooled');

function fail(code, message) {
	writeAll(2, `${message}\n`);
	process.exit(code);
}

/** The sandbox heap limit: the same --max-old-space-size as this process. */
function heapLimitMb() {
	for (const arg of process.execArgv) {
		const m = /^--max-old-space-size=(\d+)$/.exec(arg);
		if (m) return Number(m[1]);
	}
	return DEFAULT_HEAP_MB;
}

function parseInput(text) {
	let input;
	try {
		input = JSON.parse(text);
	} catch {
		fail(EXIT.HARNESS_ERROR, 'vm2 harness: standard input is not a JSON document');
	}
	if (input === null || typeof input !== 'object') fail(EXIT.HARNESS_ERROR, 'vm2 harness: input must be a JSON object');
	const { script, env = {}, params = {}, timeoutMs } = input;
	if (typeof script !== 'string') fail(EXIT.HARNESS_ERROR, 'vm2 harness: "script" must be a string');
	if (env === null || typeof env !== 'object' || Array.isArray(env)) fail(EXIT.HARNESS_ERROR, 'vm2 harness: "env" must be an object');
	for (const [key, value] of Object.entries(env)) {
		if (typeof value !== 'string') fail(EXIT.HARNESS_ERROR, `vm2 harness: env value of ${JSON.stringify(key)} must be a string`);
	}
	if (params === null || typeof params !== 'object' || Array.isArray(params)) fail(EXIT.HARNESS_ERROR, 'vm2 harness: "params" must be an object');
	if (!Number.isInteger(timeoutMs) || timeoutMs < 1) fail(EXIT.HARNESS_ERROR, 'vm2 harness: "timeoutMs" must be a positive integer');
	return { script, env, params, timeoutMs };
}

let timer;

function start(worker, { script, env, params, timeoutMs }) {
	// The timeout counts from where the engine's outer timeout counts: the
	// spawn of a process started for the run, the hand-over of a pooled one.
	const elapsed = POOLED ? 0 : Math.round(process.uptime() * 1000);
	const remaining = Math.min(Math.max(1, timeoutMs - elapsed), MAX_TIMER_MS);
	timer = setTimeout(() => fail(EXIT.TIMED_OUT, `Script timed out after ${timeoutMs} ms`), remaining);
	worker.postMessage({ script, envJson: JSON.stringify(env), paramsJson: JSON.stringify(params), deadline: Date.now() + remaining, timeoutMs });
}

/** The sandbox thread; it prepares vm2 and waits for the run's input (start). */
function startWorker() {
	const heapMb = heapLimitMb();
	let worker;
	try {
		worker = new Worker(path.join(__dirname, 'sandbox-worker.js'), {
			env: {},
			argv: [],
			stdin: false,
			resourceLimits: { maxOldGenerationSizeMb: heapMb, stackSizeMb: 4 },
			trackUnmanagedFds: true,
		});
	} catch (err) {
		fail(EXIT.HARNESS_ERROR, `vm2 harness: cannot start the sandbox thread: ${err && err.message}`);
	}
	worker.on('error', (err) => {
		if (err && err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
			fail(EXIT.OUT_OF_MEMORY, `Script ran out of memory (heap limit ${heapMb} MB)`);
		}
		fail(EXIT.HARNESS_ERROR, `vm2 harness error: ${err && err.stack ? err.stack : err}`);
	});
	worker.on('exit', (code) => {
		clearTimeout(timer);
		process.exit(code);
	});
	return worker;
}

function main() {
	try {
		require.resolve(path.join(__dirname, 'node_modules', 'vm2'));
	} catch {
		fail(EXIT.HARNESS_ERROR, `vm2 harness: the vm2 package is not installed (run: cd ${__dirname} && npm ci)`);
	}
	const worker = startWorker();
	const chunks = [];
	let size = 0;
	process.stdin.on('data', (chunk) => {
		size += chunk.length;
		if (size > MAX_INPUT_BYTES) fail(EXIT.HARNESS_ERROR, 'vm2 harness: input is too large');
		chunks.push(chunk);
	});
	process.stdin.on('error', (err) => fail(EXIT.HARNESS_ERROR, `vm2 harness: cannot read standard input: ${err.message}`));
	process.stdin.on('end', () => start(worker, parseInput(Buffer.concat(chunks).toString('utf8'))));
}

main();
