// Sandbox-side half of the Scriptbox vm2 harness.
//
// This file is NOT loaded with require(): sandbox-worker.js reads it as text and
// runs it inside the vm2 VM, so everything here lives in the sandbox realm and
// can only see what the sandbox sees. The value of the script is a function
// `install(emit, envJson, paramsJson)` that the host calls exactly once, before the user's
// script runs.
//
// Design rule: the ONLY host object the sandbox ever holds is `emit` (a host
// function, wrapped by vm2's bridge), and it is only ever called with two
// strings. Values the script logs are turned into a JSON description here, in
// the sandbox, and rebuilt as fresh host objects on the other side
// (format.js), so host code such as util.inspect never touches a sandbox
// object and never hands a host object (an options bag, the inspect function,
// a host error) back into the sandbox.
//
// Everything the code below relies on is captured before the user's script
// runs. A script can still monkey-patch built-ins, but that can only garble
// its own output, never reach the host.
(function () {
	'use strict';

	const globalObject = globalThis;
	const R = Reflect;
	const apply = R.apply;
	const ownKeys = R.ownKeys;
	const getPrototypeOf = R.getPrototypeOf;
	const setPrototypeOf = R.setPrototypeOf;
	const getOwnPropertyDescriptor = R.getOwnPropertyDescriptor;
	const defineProperty = R.defineProperty;
	const isArray = Array.isArray;
	const freeze = Object.freeze;
	const jsonStringify = JSON.stringify;
	const jsonParse = JSON.parse;
	const LocalError = Error;
	const LocalTypeError = TypeError;
	const LocalPromise = Promise;
	const promiseResolve = Promise.resolve;
	const promiseThen = Promise.prototype.then;
	const objectToString = Object.prototype.toString;
	const isPrototypeOf = Object.prototype.isPrototypeOf;
	const functionToString = Function.prototype.toString;
	const stringSlice = String.prototype.slice;
	const stringIndexOf = String.prototype.indexOf;
	const symbolDescription = getOwnPropertyDescriptor(Symbol.prototype, 'description').get;
	const symbolToStringTag = Symbol.toStringTag;
	const errorPrototype = Error.prototype;
	const mapSize = getOwnPropertyDescriptor(Map.prototype, 'size').get;
	const mapEntries = Map.prototype.entries;
	const mapIteratorNext = getPrototypeOf(new Map().entries()).next;
	const setSize = getOwnPropertyDescriptor(Set.prototype, 'size').get;
	const setValues = Set.prototype.values;
	const setIteratorNext = getPrototypeOf(new Set().values()).next;
	const weakMapHas = WeakMap.prototype.has;
	const weakSetHas = WeakSet.prototype.has;
	const dateGetTime = Date.prototype.getTime;
	const regExpSource = getOwnPropertyDescriptor(RegExp.prototype, 'source').get;
	const regExpFlags = getOwnPropertyDescriptor(RegExp.prototype, 'flags').get;
	const TypedArrayPrototype = getPrototypeOf(Uint8Array.prototype);
	const typedArrayTag = getOwnPropertyDescriptor(TypedArrayPrototype, symbolToStringTag).get;
	const typedArrayLength = getOwnPropertyDescriptor(TypedArrayPrototype, 'length').get;
	const arrayBufferByteLength = getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get;
	const sharedArrayBufferByteLength =
		typeof SharedArrayBuffer === 'function'
			? getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'byteLength').get
			: undefined;
	const LocalUint8Array = Uint8Array;
	const boxedValueOf = [
		['number', Number.prototype.valueOf],
		['string', String.prototype.valueOf],
		['boolean', Boolean.prototype.valueOf],
		['bigint', BigInt.prototype.valueOf],
		['symbol', Symbol.prototype.valueOf],
	];

	// How much of a logged value is described. Node prints 2 levels for
	// console.log and 4 for '%o', so 6 leaves room; deeper levels become stubs
	// that the host prints as [Object]. The node budget bounds the work (and the
	// JSON size) of a single console call on a huge object graph.
	const DEFAULT_DEPTH = 6;
	const MAX_DEPTH = 100;
	const NODE_BUDGET = 100000;
	// Node shows at most 100 array/Map/Set entries and 50 ArrayBuffer bytes.
	const MAX_ITEMS = 101;
	const MAX_BYTES = 51;
	const MAX_HOLE_SCAN = 10000;

	function call(fn, thisArg, args) {
		return apply(fn, thisArg, args === undefined ? [] : args);
	}

	// Containers for the description have a null prototype so that a script's
	// Array.prototype.toJSON or Object.prototype setters cannot reach them.
	function list() {
		const a = [];
		setPrototypeOf(a, null);
		return a;
	}
	function record() {
		return { __proto__: null };
	}
	function push(a, v) {
		defineProperty(a, a.length, { __proto__: null, value: v, writable: true, enumerable: true, configurable: true });
	}
	function tuple() {
		const a = list();
		for (let i = 0; i < arguments.length; i++) push(a, arguments[i]);
		return a;
	}

	function numberText(n) {
		return n === 0 && 1 / n < 0 ? '-0' : '' + n;
	}

	function symbolDesc(sym) {
		try {
			const d = call(symbolDescription, sym);
			return typeof d === 'string' ? d : null;
		} catch (e) {
			return null;
		}
	}

	function brand(fn, value, args) {
		try {
			call(fn, value, args);
			return true;
		} catch (e) {
			return false;
		}
	}

	function ownDataValue(obj, key) {
		const d = getOwnPropertyDescriptor(obj, key);
		return d !== undefined && 'value' in d ? d : undefined;
	}

	// The constructor name node would print ("Foo" for `new Foo()`), or null
	// for an object without a prototype. Reads data properties only.
	function constructorName(obj) {
		let proto = obj;
		for (let guard = 0; proto !== null && guard < 1000; guard++) {
			const d = getOwnPropertyDescriptor(proto, 'constructor');
			if (d !== undefined && typeof d.value === 'function') {
				const n = ownDataValue(d.value, 'name');
				if (n !== undefined && typeof n.value === 'string' && n.value !== '') return n.value;
			}
			proto = getPrototypeOf(proto);
		}
		return proto === null && getPrototypeOf(obj) === null ? null : 'Object';
	}

	function functionKind(fn) {
		let source = '';
		try {
			source = call(functionToString, fn);
		} catch (e) {
			source = '';
		}
		if (call(stringSlice, source, [0, 5]) === 'class' && (source.length === 5 || ' {'.indexOf(source[5]) >= 0)) {
			return 'class';
		}
		const tag = call(objectToString, fn);
		if (tag === '[object AsyncFunction]') return 'async';
		if (tag === '[object GeneratorFunction]') return 'generator';
		if (tag === '[object AsyncGeneratorFunction]') return 'asyncgenerator';
		return 'function';
	}

	function createEncoder(maxDepth) {
		const seen = new Map();
		let nextId = 1;
		let budget = NODE_BUDGET;

		function encodeKey(key) {
			return typeof key === 'symbol' ? tuple('y', symbolDesc(key)) : tuple('s', key);
		}

		// Own enumerable properties, as node's util.inspect lists them.
		function encodeProps(obj, depth, skipIndices) {
			const out = list();
			let keys;
			try {
				keys = ownKeys(obj);
			} catch (e) {
				return out;
			}
			for (let i = 0; i < keys.length; i++) {
				const key = keys[i];
				if (skipIndices && typeof key === 'string' && isIndex(key)) continue;
				let d;
				try {
					d = getOwnPropertyDescriptor(obj, key);
				} catch (e) {
					continue;
				}
				if (d === undefined || !d.enumerable) continue;
				if ('value' in d) {
					push(out, tuple(encodeKey(key), tuple('v', encode(d.value, depth + 1))));
				} else {
					push(out, tuple(encodeKey(key), tuple('a', d.get !== undefined, d.set !== undefined)));
				}
			}
			return out;
		}

		function isIndex(key) {
			if (key.length === 0 || key.length > 10) return false;
			for (let i = 0; i < key.length; i++) {
				const c = key.charCodeAt(i);
				if (c < 48 || c > 57 || (i === 0 && c === 48 && key.length > 1)) return false;
			}
			return +key < 4294967295;
		}

		function encodeArrayItems(arr, len, depth) {
			const items = list();
			let count = 0;
			const scan = len < MAX_HOLE_SCAN ? len : MAX_HOLE_SCAN;
			for (let i = 0; i < scan && count < MAX_ITEMS; i++) {
				const d = getOwnPropertyDescriptor(arr, '' + i);
				if (d === undefined) continue;
				count++;
				push(items, tuple(i, 'value' in d ? tuple('v', encode(d.value, depth + 1)) : tuple('a', d.get !== undefined, d.set !== undefined)));
			}
			return items;
		}

		function encodeObject(value, depth) {
			const known = seen.get(value);
			if (known !== undefined) return tuple('r', known);
			const id = nextId++;
			seen.set(value, id);
			const ctor = constructorName(value);
			const info = record();
			info.c = ctor;

			// Past the depth limit (or the budget) only a stub is described; node
			// prints those as [Object] / [Array] / [Foo].
			const stub = depth > maxDepth || --budget < 0;

			if (typeof value === 'function') {
				// Node prints a function's name at any depth, so functions are never stubs.
				const nameDesc = ownDataValue(value, 'name');
				info.name = nameDesc !== undefined && typeof nameDesc.value === 'string' ? nameDesc.value : '';
				info.fk = functionKind(value);
				if (info.fk === 'class') {
					const base = getPrototypeOf(value);
					if (typeof base === 'function') {
						const baseName = ownDataValue(base, 'name');
						if (baseName !== undefined && typeof baseName.value === 'string') info.ext = baseName.value;
					}
				}
				return tuple('o', id, 'function', info, stub ? list() : encodeProps(value, depth, false));
			}

			const isArr = isArray(value);
			if (stub) {
				info.base = isArr ? 'array' : 'object';
				return tuple('o', id, 'stub', info, list());
			}

			if (isArr) {
				const len = value.length >>> 0;
				info.len = len;
				info.items = encodeArrayItems(value, len, depth);
				return tuple('o', id, 'array', info, len > MAX_HOLE_SCAN ? list() : encodeProps(value, depth, true));
			}

			const taType = (function () {
				try {
					return call(typedArrayTag, value);
				} catch (e) {
					return undefined;
				}
			})();
			if (typeof taType === 'string') {
				const len = call(typedArrayLength, value);
				info.type = taType;
				info.len = len;
				const items = list();
				for (let i = 0; i < len && i < MAX_ITEMS; i++) {
					const v = value[i];
					push(items, typeof v === 'bigint' ? '' + v : numberText(v));
				}
				info.items = items;
				return tuple('o', id, 'typed', info, list());
			}

			for (const shared of [false, true]) {
				const getter = shared ? sharedArrayBufferByteLength : arrayBufferByteLength;
				if (getter === undefined) continue;
				let byteLength;
				try {
					byteLength = call(getter, value);
				} catch (e) {
					continue;
				}
				info.shared = shared;
				info.len = byteLength;
				const bytes = list();
				const view = new LocalUint8Array(value, 0, byteLength < MAX_BYTES ? byteLength : MAX_BYTES);
				for (let i = 0; i < view.length; i++) push(bytes, view[i]);
				info.bytes = bytes;
				return tuple('o', id, 'arraybuffer', info, encodeProps(value, depth, false));
			}

			if (brand(mapSize, value)) {
				info.size = call(mapSize, value);
				const entries = list();
				const it = call(mapEntries, value);
				for (let i = 0; i < MAX_ITEMS; i++) {
					const step = call(mapIteratorNext, it);
					if (step.done) break;
					push(entries, tuple(encode(step.value[0], depth + 1), encode(step.value[1], depth + 1)));
				}
				info.entries = entries;
				return tuple('o', id, 'map', info, encodeProps(value, depth, false));
			}

			if (brand(setSize, value)) {
				info.size = call(setSize, value);
				const values = list();
				const it = call(setValues, value);
				for (let i = 0; i < MAX_ITEMS; i++) {
					const step = call(setIteratorNext, it);
					if (step.done) break;
					push(values, encode(step.value, depth + 1));
				}
				info.values = values;
				return tuple('o', id, 'set', info, encodeProps(value, depth, false));
			}

			if (brand(weakMapHas, value, [{}])) return tuple('o', id, 'weakmap', info, list());
			if (brand(weakSetHas, value, [{}])) return tuple('o', id, 'weakset', info, list());

			if (brand(dateGetTime, value)) {
				info.t = numberText(call(dateGetTime, value));
				return tuple('o', id, 'date', info, encodeProps(value, depth, false));
			}

			if (brand(regExpSource, value) && value !== RegExp.prototype) {
				info.source = call(regExpSource, value);
				info.flags = call(regExpFlags, value);
				return tuple('o', id, 'regexp', info, encodeProps(value, depth, false));
			}

			for (let i = 0; i < boxedValueOf.length; i++) {
				const type = boxedValueOf[i][0];
				let prim;
				try {
					prim = call(boxedValueOf[i][1], value);
				} catch (e) {
					continue;
				}
				info.prim = encode(prim, depth + 1);
				info.type = type;
				return tuple('o', id, 'boxed', info, encodeProps(value, depth, type === 'string'));
			}

			if (call(isPrototypeOf, errorPrototype, [value])) {
				info.name = safeString(() => value.name, 'Error');
				info.message = safeString(() => value.message, '');
				info.stack = safeString(() => value.stack, null);
				// vm2 gives every error it sanitises an own `cause: undefined`;
				// only a real cause is shown.
				const cause = ownDataValue(value, 'cause');
				if (cause !== undefined && !cause.enumerable && cause.value !== undefined) info.cause = encode(cause.value, depth + 1);
				const errors = ownDataValue(value, 'errors');
				if (errors !== undefined && !errors.enumerable) info.errors = encode(errors.value, depth + 1);
				return tuple('o', id, 'error', info, encodeProps(value, depth, false));
			}

			const tag = call(objectToString, value);
			if (tag === '[object Promise]') return tuple('o', id, 'promise', info, encodeProps(value, depth, false));
			if (tag === '[object Arguments]') {
				const len = value.length >>> 0;
				info.len = len;
				info.items = encodeArrayItems(value, len, depth);
				return tuple('o', id, 'arguments', info, list());
			}

			try {
				const t = value[symbolToStringTag];
				if (typeof t === 'string' && t !== '' && t !== ctor) {
					const own = getOwnPropertyDescriptor(value, symbolToStringTag);
					if (own === undefined || !own.enumerable) info.tag = t;
				}
			} catch (e) {
				// A throwing Symbol.toStringTag getter only loses the tag.
			}
			return tuple('o', id, 'object', info, encodeProps(value, depth, false));
		}

		function encode(value, depth) {
			switch (typeof value) {
				case 'undefined':
					return tuple('u');
				case 'boolean':
					return tuple('b', value);
				case 'number':
					return tuple('n', numberText(value));
				case 'string':
					return tuple('s', value);
				case 'bigint':
					return tuple('g', '' + value);
				case 'symbol':
					return tuple('y', symbolDesc(value));
				default:
					break;
			}
			if (value === null) return tuple('z');
			try {
				return encodeObject(value, depth);
			} catch (e) {
				return tuple('x', 'value could not be inspected');
			}
		}

		return encode;
	}

	function safeString(get, fallback) {
		try {
			const v = get();
			if (typeof v === 'string') return v;
			if (v === undefined) return fallback;
			if (typeof v === 'symbol') return v.toString();
			return '' + v;
		} catch (e) {
			return fallback;
		}
	}

	function encodeValues(values, depth) {
		const encode = createEncoder(depth);
		const out = list();
		for (let i = 0; i < values.length; i++) push(out, encode(values[i], 0));
		return call(jsonStringify, undefined, [out]);
	}

	// Error.stack as node formats it ("    at fn (script.js:3:5)"), built from
	// vm2's sanitised call sites. vm2 reports every host frame (and this
	// prelude, whose file name starts with '/') with a null file name; those
	// frames are left out.
	function prepareStackTrace(error, callSites) {
		let text;
		try {
			const name = safeString(() => error.name, 'Error');
			const message = safeString(() => error.message, '');
			text = message === '' ? name : name === '' ? message : name + ': ' + message;
		} catch (e) {
			text = 'Error';
		}
		const count = callSites.length;
		for (let i = 0; i < count; i++) {
			try {
				const cs = callSites[i];
				const file = cs.getFileName();
				let fn = cs.getFunctionName();
				let location;
				if (typeof file === 'string' && file !== '') {
					// vm2 runs scripts under a timeout through a tiny host script of this name.
					if (file === 'timeout_bridge.js') continue;
					location = file + ':' + cs.getLineNumber() + ':' + cs.getColumnNumber();
				} else if (fn) {
					// A built-in such as Array.prototype.forEach.
					location = '<anonymous>';
				} else {
					continue;
				}
				const isCtor = cs.isConstructor();
				if (!cs.isToplevel() && !isCtor) {
					const type = cs.getTypeName();
					const method = cs.getMethodName();
					if (fn && type && call(stringIndexOf, fn, [type + '.']) !== 0) fn = type + '.' + fn;
					else if (!fn && type) fn = type + '.' + (method || '<anonymous>');
					if (fn && method && method !== fn && call(stringIndexOf, fn, ['.' + method]) < 0) fn += ' [as ' + method + ']';
				}
				let line = fn ? (isCtor ? 'new ' : '') + fn + ' (' + location + ')' : location;
				if (cs.isAsync()) line = 'async ' + line;
				text += '\n    at ' + line;
			} catch (e) {
				text += '\n    at <unknown>';
			}
		}
		return text;
	}

	return function install(emit, envJson, paramsJson) {
		LocalError.prepareStackTrace = prepareStackTrace;

		function send(kind, payload) {
			emit(kind, payload);
		}

		function consoleMethod(kind, depthFromOptions) {
			const method = {
				[kind](...args) {
					let depth = DEFAULT_DEPTH;
					if (depthFromOptions) {
						const options = args[1];
						if (options !== null && typeof options === 'object') {
							const d = ownDataValue(options, 'depth');
							if (d !== undefined) {
								if (d.value === null || d.value === Infinity) depth = MAX_DEPTH;
								else if (typeof d.value === 'number' && d.value + 2 > depth) depth = d.value + 2 > MAX_DEPTH ? MAX_DEPTH : d.value + 2;
							}
						}
					}
					send(kind, encodeValues(args, depth));
				},
			}[kind];
			return method;
		}

		const sandboxConsole = {};
		const plain = ['log', 'info', 'debug', 'warn', 'error', 'table', 'assert', 'count', 'countReset',
			'group', 'groupCollapsed', 'groupEnd', 'time', 'timeEnd', 'timeLog'];
		for (let i = 0; i < plain.length; i++) sandboxConsole[plain[i]] = consoleMethod(plain[i], false);
		sandboxConsole.dir = consoleMethod('dir', true);
		sandboxConsole.dirxml = consoleMethod('log', false);
		sandboxConsole.trace = function trace(...args) {
			// The trace is the sandbox's own stack, never the host's.
			const stack = safeString(() => new LocalError('trace').stack, '');
			const firstBreak = call(stringIndexOf, stack, ['\n']);
			send('trace', encodeValues([firstBreak < 0 ? '' : call(stringSlice, stack, [firstBreak + 1]), ...args], DEFAULT_DEPTH));
		};

		let env;
		try {
			env = call(jsonParse, undefined, [envJson]);
		} catch (e) {
			env = {};
		}
		freeze(env);
		// Typed values (string, number, boolean, null); parsed inside the sandbox like env.
		let params;
		try {
			params = call(jsonParse, undefined, [paramsJson === undefined ? '{}' : paramsJson]);
		} catch (e) {
			params = {};
		}
		freeze(params);

		// Node's Buffer is a host object behind a proxy; pure JS utilities do not
		// need it, so it is not offered at all (one less bridge surface).
		delete globalObject.Buffer;
		defineProperty(globalObject, 'console', { __proto__: null, value: sandboxConsole, writable: true, enumerable: false, configurable: true });
		defineProperty(globalObject, 'env', { __proto__: null, value: env, writable: false, enumerable: false, configurable: false });
		defineProperty(globalObject, 'params', { __proto__: null, value: params, writable: false, enumerable: false, configurable: false });
		defineProperty(globalObject, 'queueMicrotask', {
			__proto__: null,
			value: function queueMicrotask(callback) {
				if (typeof callback !== 'function') throw new LocalTypeError('The "callback" argument must be of type function');
				call(promiseThen, call(promiseResolve, LocalPromise, []), [() => callback()]);
			},
			writable: true,
			enumerable: false,
			configurable: true,
		});

		function describe(value) {
			return encodeValues([value], DEFAULT_DEPTH);
		}

		// If the script's completion value is a promise (or thenable), report when
		// it settles. Returns true when there is something to wait for.
		function settle(value) {
			if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
			let then;
			try {
				then = value.then;
			} catch (e) {
				send('rejected', describe(e));
				return true;
			}
			if (typeof then !== 'function') return false;
			let adopted;
			try {
				adopted = call(promiseResolve, LocalPromise, [value]);
			} catch (e) {
				send('rejected', describe(e));
				return true;
			}
			call(promiseThen, adopted, [
				() => send('resolved', ''),
				(reason) => send('rejected', describe(reason)),
			]);
			return true;
		}

		return { describe, settle };
	};
})();
