'use strict';
// Host-side half of console output: turns the JSON description made by
// prelude.js (inside the sandbox) back into *fresh host objects* and lets
// node's own util.inspect / console format them. Nothing here ever sees a
// sandbox object, so inspect cannot run sandbox code (no custom inspect
// functions, no getters, no proxies) and cannot hand host objects to it.
//
// The input is untrusted: a script may have tampered with the sandbox's
// built-ins and garbled the description. Every node is validated, and
// anything unexpected becomes a harmless placeholder.

const util = require('util');

const ERROR_CONSTRUCTORS = {
	__proto__: null,
	Error,
	TypeError,
	RangeError,
	SyntaxError,
	ReferenceError,
	EvalError,
	URIError,
	AggregateError,
};

const TYPED_ARRAYS = {
	__proto__: null,
	Int8Array,
	Uint8Array,
	Uint8ClampedArray,
	Int16Array,
	Uint16Array,
	Int32Array,
	Uint32Array,
	Float32Array,
	Float64Array,
	BigInt64Array,
	BigUint64Array,
};

// Collections larger than this are rebuilt with this many entries (node shows
// 100 anyway); only the "... N more items" count can then be off.
const MAX_REBUILT_SIZE = 10000;
const MAX_REBUILT_BYTES = 1 << 20;

/** A value that prints as fixed text. */
class Placeholder {
	constructor(text) {
		this.text = text;
	}

	[util.inspect.custom](depth, options) {
		return options.stylize(this.text, 'special');
	}
}

function isString(v) {
	return typeof v === 'string';
}

function makeFunction(kind, name) {
	let fn;
	switch (kind) {
		case 'class':
			fn = class {};
			break;
		case 'async':
			fn = async function () {};
			break;
		case 'generator':
			fn = function* () {};
			break;
		case 'asyncgenerator':
			fn = async function* () {};
			break;
		default:
			fn = function () {};
	}
	Object.defineProperty(fn, 'name', { value: name, configurable: true });
	return fn;
}

class Rebuilder {
	constructor() {
		this.refs = new Map();
		this.protos = new Map();
	}

	/** A prototype whose constructor is named `name` (node prints `name {}`). */
	protoFor(name, parent) {
		if (name === null) return null;
		if (parent === Object.prototype && name === 'Object') return Object.prototype;
		if (parent === Array.prototype && name === 'Array') return Array.prototype;
		const key = `${name}\u0000${parent === Object.prototype ? 'o' : parent === Array.prototype ? 'a' : 'e'}`;
		let proto = this.protos.get(key);
		if (proto === undefined) {
			proto = Object.create(parent);
			const ctor = makeFunction('function', name);
			ctor.prototype = proto;
			Object.defineProperty(proto, 'constructor', { value: ctor, writable: true, configurable: true });
			this.protos.set(key, proto);
		}
		return proto;
	}

	value(node) {
		if (!Array.isArray(node) || node.length === 0) return new Placeholder('[unprintable]');
		switch (node[0]) {
			case 'u':
				return undefined;
			case 'z':
				return null;
			case 'b':
				return node[1] === true;
			case 'n':
				return isString(node[1]) ? Number(node[1]) : NaN;
			case 's':
				return isString(node[1]) ? node[1] : '';
			case 'g':
				try {
					return BigInt(node[1]);
				} catch {
					return new Placeholder('[bigint]');
				}
			case 'y':
				return Symbol(isString(node[1]) ? node[1] : undefined);
			case 'r': {
				const target = this.refs.get(node[1]);
				return target === undefined ? new Placeholder('[Circular]') : target;
			}
			case 'x':
				return new Placeholder(`[${isString(node[1]) ? node[1] : 'unprintable'}]`);
			case 'o':
				return this.object(node);
			default:
				return new Placeholder('[unprintable]');
		}
	}

	key(node) {
		if (Array.isArray(node) && node[0] === 'y') return Symbol(isString(node[1]) ? node[1] : undefined);
		return Array.isArray(node) && isString(node[1]) ? node[1] : '';
	}

	object(node) {
		const [, id, kind, rawInfo, props] = node;
		const info = rawInfo !== null && typeof rawInfo === 'object' ? rawInfo : {};
		const ctor = info.c === null ? null : isString(info.c) ? info.c : 'Object';
		let target;
		switch (kind) {
			case 'function':
				target = makeFunction(info.fk, isString(info.name) ? info.name : '');
				if (info.fk === 'class' && isString(info.ext) && info.ext !== '') {
					Object.setPrototypeOf(target, makeFunction('function', info.ext));
				}
				break;
			case 'array':
			case 'arguments':
				target = this.arrayLike(kind, info, ctor);
				break;
			case 'typed':
				target = this.typedArray(info);
				break;
			case 'arraybuffer':
				target = this.arrayBuffer(info);
				break;
			case 'map':
				target = new Map();
				break;
			case 'set':
				target = new Set();
				break;
			case 'weakmap':
				target = new WeakMap();
				break;
			case 'weakset':
				target = new WeakSet();
				break;
			case 'date':
				target = new Date(isString(info.t) ? Number(info.t) : NaN);
				break;
			case 'regexp':
				try {
					target = new RegExp(String(info.source), String(info.flags));
				} catch {
					target = new Placeholder(`/${info.source}/${info.flags}`);
				}
				break;
			case 'boxed':
				target = Object(this.value(info.prim));
				break;
			case 'error':
				target = this.error(info, ctor);
				break;
			case 'promise':
				target = new Placeholder('Promise { <unknown> }');
				break;
			case 'stub':
				target = info.base === 'array' ? [] : {};
				Object.setPrototypeOf(target, this.protoFor(ctor, info.base === 'array' ? Array.prototype : Object.prototype));
				break;
			case 'object':
				target = Object.create(this.protoFor(ctor, Object.prototype));
				if (isString(info.tag)) Object.defineProperty(target, Symbol.toStringTag, { value: info.tag, configurable: true });
				break;
			default:
				return new Placeholder('[unprintable]');
		}
		this.refs.set(id, target);

		// Contents are filled in after registering the object so that cycles
		// resolve to the same host object (node then prints [Circular *1]).
		if (kind === 'map' && Array.isArray(info.entries)) {
			for (const entry of info.entries) {
				if (Array.isArray(entry)) target.set(this.value(entry[0]), this.value(entry[1]));
			}
			this.padCollection(target, info.size, (m) => m.set(Symbol(), undefined));
		} else if (kind === 'set' && Array.isArray(info.values)) {
			for (const v of info.values) target.add(this.value(v));
			this.padCollection(target, info.size, (s) => s.add(Symbol()));
		} else if ((kind === 'array' || kind === 'arguments') && Array.isArray(info.items)) {
			for (const item of info.items) {
				if (!Array.isArray(item) || !Number.isInteger(item[0]) || item[0] < 0 || item[0] >= target.length) continue;
				this.define(target, String(item[0]), item[1]);
			}
		} else if (kind === 'error') {
			if (info.cause !== undefined) {
				Object.defineProperty(target, 'cause', { value: this.value(info.cause), writable: true, configurable: true });
			}
			if (info.errors !== undefined) {
				Object.defineProperty(target, 'errors', { value: this.value(info.errors), writable: true, configurable: true });
			}
		}

		const extensible =
			typeof target === 'function' || (typeof target === 'object' && target !== null && !(target instanceof Placeholder));
		if (Array.isArray(props) && extensible) {
			for (const prop of props) {
				if (Array.isArray(prop)) this.define(target, this.key(prop[0]), prop[1]);
			}
		}
		return target;
	}

	define(target, key, desc) {
		if (!Array.isArray(desc)) return;
		try {
			if (desc[0] === 'a') {
				Object.defineProperty(target, key, {
					get: desc[1] === true ? function () {} : undefined,
					set: desc[2] === true ? function () {} : undefined,
					enumerable: true,
					configurable: true,
				});
			} else {
				Object.defineProperty(target, key, {
					value: this.value(desc[1]),
					writable: true,
					enumerable: true,
					configurable: true,
				});
			}
		} catch {
			// e.g. a key that clashes with a non-configurable property of the
			// rebuilt object: that property is simply not shown.
		}
	}

	padCollection(collection, size, addOne) {
		const wanted = Number.isInteger(size) ? Math.min(size, MAX_REBUILT_SIZE) : 0;
		while (collection.size < wanted) addOne(collection);
	}

	arrayLike(kind, info, ctor) {
		const len = Number.isInteger(info.len) && info.len >= 0 && info.len < 4294967296 ? info.len : 0;
		if (kind === 'arguments') {
			const args = (function () {
				return arguments;
			})(...new Array(Math.min(len, MAX_REBUILT_SIZE)));
			for (let i = 0; i < args.length; i++) delete args[i];
			return args;
		}
		const arr = new Array(len);
		if (ctor !== 'Array') Object.setPrototypeOf(arr, this.protoFor(ctor, Array.prototype));
		return arr;
	}

	typedArray(info) {
		const Ctor = TYPED_ARRAYS[info.type];
		const len = Number.isInteger(info.len) && info.len >= 0 ? info.len : 0;
		if (Ctor === undefined || len > MAX_REBUILT_BYTES) {
			return new Placeholder(`${isString(info.type) ? info.type : 'TypedArray'}(${len}) [ ... ]`);
		}
		const out = new Ctor(len);
		const items = Array.isArray(info.items) ? info.items : [];
		const big = Ctor === BigInt64Array || Ctor === BigUint64Array;
		for (let i = 0; i < items.length && i < len; i++) {
			try {
				out[i] = big ? BigInt(items[i]) : Number(items[i]);
			} catch {
				// leave the element at zero
			}
		}
		return out;
	}

	arrayBuffer(info) {
		const len = Number.isInteger(info.len) && info.len >= 0 ? info.len : 0;
		const Ctor = info.shared === true && typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : ArrayBuffer;
		if (len > MAX_REBUILT_BYTES) return new Placeholder(`${Ctor.name} { byteLength: ${len} }`);
		const buffer = new Ctor(len);
		const view = new Uint8Array(buffer);
		const bytes = Array.isArray(info.bytes) ? info.bytes : [];
		for (let i = 0; i < bytes.length && i < len; i++) view[i] = Number(bytes[i]);
		return buffer;
	}

	error(info, ctor) {
		const name = isString(info.name) ? info.name : 'Error';
		const message = isString(info.message) ? info.message : '';
		const Ctor = ERROR_CONSTRUCTORS[ctor] || Error;
		const err = Ctor === AggregateError ? new AggregateError([], message) : new Ctor(message);
		if (!(ctor in ERROR_CONSTRUCTORS) && ctor !== null) {
			Object.setPrototypeOf(err, this.protoFor(ctor, Ctor.prototype));
		}
		if (name !== Ctor.name) Object.defineProperty(err, 'name', { value: name, writable: true, configurable: true });
		const stack = isString(info.stack) ? info.stack : `${name}${message ? `: ${message}` : ''}`;
		Object.defineProperty(err, 'stack', { value: stack, writable: true, configurable: true });
		if (Ctor === AggregateError) delete err.errors;
		return err;
	}
}

/**
 * Rebuild the list of values described by `json` (made by prelude.js's
 * encodeValues) as host values. Never throws.
 */
function rebuildValues(json) {
	let nodes;
	try {
		nodes = JSON.parse(json);
	} catch {
		return [new Placeholder('[unprintable]')];
	}
	if (!Array.isArray(nodes)) return [new Placeholder('[unprintable]')];
	const rebuilder = new Rebuilder();
	return nodes.map((node) => {
		try {
			return rebuilder.value(node);
		} catch {
			return new Placeholder('[unprintable]');
		}
	});
}

module.exports = { rebuildValues, Placeholder };
