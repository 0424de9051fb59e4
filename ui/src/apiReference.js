// /admin/scripts/api: a readable API reference rendered from GET /api/openapi.json.
// A small renderer of the document the server generates from its own routes, so the
// page cannot disagree with the server. Every string from the document goes in as text
// (dom.js h()), never as markup.
import "./apiReference.css";
import { h, replace } from "./dom.js";

const DOC_URL = "/api/openapi.json";
const REF_PREFIX = "#/components/schemas/";
const TAG_TITLES = { scripts: "Scripts", runs: "Runs", service: "Service", ui: "Admin page" };

function refName(schema) {
  return schema && typeof schema.$ref === "string" && schema.$ref.startsWith(REF_PREFIX)
    ? schema.$ref.slice(REF_PREFIX.length)
    : null;
}

function schemaLink(name) {
  // Handled here: the app's router would otherwise take the click for a page change.
  const jump = (e) => {
    e.preventDefault();
    document.getElementById(`schema-${name}`)?.scrollIntoView({ block: "start" });
  };
  return h("a.api-schema-link", { href: `#schema-${name}`, onclick: jump }, name);
}

/** A short type text for a schema: "string", "array of EnvEntry", "integer 100…86400000", links for refs. */
function typeOf(schema) {
  if (!schema || typeof schema !== "object") return "any";
  const ref = refName(schema);
  if (ref) return schemaLink(ref);
  if (Array.isArray(schema.oneOf) && schema.oneOf.every((s) => s.properties?.event?.const)) {
    // A text/event-stream: one variant per event name, its data a JSON document.
    return ["events ", schema.oneOf.flatMap((s, i) => [i ? ", " : "", h("code", s.properties.event.const), " (", typeOf(s.properties.data?.contentSchema), ")"])];
  }
  if (Array.isArray(schema.anyOf)) {
    return schema.anyOf.flatMap((s, i) => (i ? [" | ", typeOf(s)] : [typeOf(s)]));
  }
  if (schema.type === "array") return ["array of ", typeOf(schema.items)];
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
    return ["object of ", typeOf(schema.additionalProperties)];
  }
  return schema.type || "any";
}

function constraintsOf(schema) {
  if (!schema || typeof schema !== "object") return "";
  const out = [];
  if (schema.minLength !== undefined || schema.maxLength !== undefined) out.push(`length ${schema.minLength ?? 0}…${schema.maxLength ?? "∞"}`);
  if (schema.minimum !== undefined || schema.maximum !== undefined) out.push(`${schema.minimum ?? "−∞"}…${schema.maximum ?? "∞"}`);
  if (schema.maxItems !== undefined) out.push(`at most ${schema.maxItems} items`);
  if (schema.pattern) out.push(`pattern ${schema.pattern}`);
  if (schema.format) out.push(schema.format);
  if (schema.default !== undefined) out.push(`default ${JSON.stringify(schema.default)}`);
  return out.join(", ");
}

function propertiesTable(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(props);
  if (!names.length) return h("p.muted", schema && schema.additionalProperties === false ? "No fields." : "Any JSON object.");
  return h(
    "table.api-table",
    h("thead", h("tr", h("th", "Field"), h("th", "Type"), h("th", "Rules"), h("th", "Meaning"))),
    h(
      "tbody",
      names.map((name) =>
        h(
          "tr",
          h("td", h("code", name), required.has(name) ? h("span.api-required", " required") : null),
          h("td.api-type", typeOf(props[name])),
          h("td.api-rules", constraintsOf(props[name])),
          h("td", props[name].description || ""),
        ),
      ),
    ),
  );
}

function bodySummary(content) {
  if (!content) return null;
  return Object.entries(content).map(([media, { schema }]) => h("span.api-media", h("code", media), schema ? [" ", typeOf(schema)] : null));
}

function operationCard(method, path, op) {
  const params = op.parameters || [];
  const body = op.requestBody;
  return h(
    "article.api-op",
    { id: `op-${op.operationId}`, dataset: { method, path } },
    h(
      "header.api-op-head",
      h(`span.api-method.api-method-${method}`, method.toUpperCase()),
      h("code.api-path", path),
      h("span.api-summary", op.summary || ""),
      op.security && op.security.length ? h("span.api-auth", { title: "Needs the admin's credentials" }, "auth") : h("span.api-auth.api-open", "no auth"),
    ),
    op.description ? h("p.api-desc", op.description) : null,
    params.length
      ? h(
          "table.api-table",
          h("thead", h("tr", h("th", "Parameter"), h("th", "In"), h("th", "Type"), h("th", "Rules"), h("th", "Meaning"))),
          h("tbody", params.map((p) => h("tr", h("td", h("code", p.name)), h("td", p.in), h("td.api-type", typeOf(p.schema)), h("td.api-rules", constraintsOf(p.schema)), h("td", p.description || "")))),
        )
      : null,
    body ? h("p.api-body", body.required ? "Body: " : "Body (optional): ", bodySummary(body.content)) : null,
    h(
      "ul.api-responses",
      Object.entries(op.responses || {}).map(([status, reply]) =>
        h("li", h(`span.api-status.api-status-${status[0]}xx`, status), " ", reply.description || "", reply.content ? [" — ", bodySummary(reply.content)] : null),
      ),
    ),
  );
}

function renderDocument(doc) {
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationCard(method, path, op));
    }
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  return [
    h("p.api-intro", doc.info?.description || ""),
    h(
      "p.api-intro.muted",
      "Authentication: ",
      Object.entries(schemes).map(([name, s], i) => [i ? "; " : "", h("code", name), ` (${s.scheme}) — ${s.description || ""}`]),
      ". The raw document: ",
      h("a", { href: DOC_URL, target: "_blank", rel: "noopener" }, DOC_URL),
      ".",
    ),
    [...byTag.entries()].map(([tag, cards]) => h("section.api-tag", { id: `tag-${tag}` }, h("h2", TAG_TITLES[tag] || tag), cards)),
    h(
      "section.api-tag#schemas",
      h("h2", "Schemas"),
      Object.entries(schemas).map(([name, schema]) =>
        h("article.api-schema", { id: `schema-${name}` }, h("h3", h("code", name)), schema.description ? h("p.api-desc", schema.description) : null, propertiesTable(schema)),
      ),
    ),
  ];
}

export class ApiReferenceView {
  constructor() {
    this.body = h("div.view-body.api-reference", h("p.muted", { role: "status" }, "Loading the API document…"));
    this.el = h(
      "section.view.api-view",
      h("header.view-head", h("div.view-head-text", h("a.back-link", { href: "/admin/scripts", "data-link": true }, "‹ Scripts"), h("h1.view-title", "API reference"), h("div.view-subtitle.muted", "Generated from the server's routes (OpenAPI 3.1)"))),
      this.body,
    );
  }

  async mount() {
    document.title = "API · Scriptbox";
    let doc;
    try {
      const res = await fetch(DOC_URL, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = await res.json();
    } catch (err) {
      if (!this.destroyed) replace(this.body, h("p.error", `Cannot load ${DOC_URL}: ${err.message}`));
      return;
    }
    if (!this.destroyed) replace(this.body, renderDocument(doc));
  }

  destroy() {
    this.destroyed = true;
  }
}
