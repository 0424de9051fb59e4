'use strict';
// Shared by harness.js (main thread) and sandbox-worker.js (worker thread).

const fs = require('fs');

/**
 * Exit codes of the harness process; the run engine maps them to run
 * statuses (docs/vm2.md). Anything else non-zero (e.g. death by a signal) is
 * a plain failure.
 */
const EXIT = Object.freeze({
	OK: 0, // the script and every promise it returned finished
	SCRIPT_FAILED: 1, // uncaught error, rejected or unsettleable promise
	HARNESS_ERROR: 2, // bad input, vm2 missing, bug in the harness
	OUT_OF_MEMORY: 3, // the sandbox hit its heap limit
	TIMED_OUT: 124, // the run's timeout elapsed inside the harness (like coreutils timeout)
});

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Write all of `data` to a file descriptor synchronously, so output is never
 * lost when the process exits right after (process.exit, worker teardown).
 * Returns false when the reader has gone away (EPIPE and the like).
 */
function writeAll(fd, data) {
	const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
	let offset = 0;
	while (offset < buf.length) {
		try {
			offset += fs.writeSync(fd, buf, offset, buf.length - offset);
		} catch (err) {
			// A non-blocking pipe that is full: wait for the reader, briefly.
			if (err && err.code === 'EAGAIN') {
				Atomics.wait(sleepCell, 0, 0, 2);
				continue;
			}
			return false;
		}
	}
	return true;
}

module.exports = { EXIT, writeAll };
