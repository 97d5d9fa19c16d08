// Renders /openapi.json as a browsable page: no framework, no external resources.
"use strict";

const METHODS = ["get", "put", "post", "delete", "patch"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Pretty JSON whose "$ref" values link to the schema section.
function jsonBlock(value) {
  const pre = el("pre");
  const text = JSON.stringify(value, null, 2);
  const pattern = /"#\/components\/schemas\/([^"]+)"/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    pre.append(text.slice(last, match.index));
    pre.append(el("a", { href: "#schema-" + match[1] }, match[0]));
    last = match.index + match[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

function resolve(doc, item) {
  if (item && item.$ref) {
    const parts = item.$ref.replace(/^#\//, "").split("/");
    return parts.reduce((node, key) => (node ? node[key] : undefined), doc) || item;
  }
  return item;
}

function parameters(doc, list) {
  if (!list || list.length === 0) return null;
  const table = el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"),
    el("th", {}, "required"), el("th", {}, "schema"), el("th", {}, "description")));
  for (const raw of list) {
    const p = resolve(doc, raw);
    table.append(el("tr", {}, el("td", { class: "path" }, p.name), el("td", {}, p.in),
      el("td", {}, p.required ? "yes" : "no"),
      el("td", { class: "path" }, JSON.stringify(p.schema || {})),
      el("td", {}, p.description || "")));
  }
  return el("div", {}, el("h4", {}, "Parameters"), table);
}

function content(body) {
  const out = [];
  for (const [type, media] of Object.entries((body && body.content) || {})) {
    out.push(el("div", {}, el("em", {}, type)));
    if (media.schema) out.push(jsonBlock(media.schema));
    if (media.example !== undefined) out.push(el("div", {}, "Example:"), jsonBlock(media.example));
  }
  return out;
}

function operation(doc, path, method, op) {
  const secured = (op.security || doc.security || []).length > 0;
  const body = el("div", { class: "op-body" });
  if (op.description) body.append(el("p", {}, op.description));
  body.append(parameters(doc, op.parameters) || "");
  if (op.requestBody) {
    const request = resolve(doc, op.requestBody);
    body.append(el("h4", {}, "Request body" + (request.required ? " (required)" : "")));
    if (request.description) body.append(el("p", {}, request.description));
    body.append(...content(request));
  }
  body.append(el("h4", {}, "Responses"));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const response = resolve(doc, raw);
    body.append(el("div", {}, el("span", { class: "status" }, status), " ",
      response.description || ""));
    body.append(...content(response));
  }
  const id = op.operationId || method + path;
  return el("details", { class: "op", id: "op-" + id },
    el("summary", {}, el("span", { class: "method " + method }, method), " ",
      el("span", { class: "path" }, path), " — ", op.summary || "",
      secured ? el("span", { class: "lock" }, "bearer token") : null),
    body);
}

function render(doc) {
  const info = doc.info || {};
  document.title = (info.title || "API") + " " + (info.version || "");
  document.getElementById("title").textContent = (info.title || "API") + " " + (info.version || "");
  const summary = document.getElementById("summary");
  summary.textContent = info.description || "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, item[method]));
    }
  }
  const main = document.getElementById("operations");
  const toc = document.getElementById("toc");
  for (const [tag, operations] of byTag) {
    toc.append(el("a", { href: "#tag-" + tag }, tag));
    main.append(el("h2", { id: "tag-" + tag }, tag), ...operations);
  }
  const schemas = document.getElementById("schemas");
  const components = (doc.components && doc.components.schemas) || {};
  toc.append(el("a", { href: "#schemas" }, "schemas"));
  schemas.append(el("h2", {}, "Schemas"));
  for (const [name, schema] of Object.entries(components)) {
    schemas.append(el("h3", { id: "schema-" + name }, name), jsonBlock(schema));
  }
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) {
      if (target.tagName === "DETAILS") target.open = true;
      target.scrollIntoView();
    }
  }
}

fetch("/openapi.json")
  .then((resp) => {
    if (!resp.ok) throw new Error("/openapi.json answered " + resp.status);
    return resp.json();
  })
  .then(render)
  .catch((err) => {
    document.getElementById("summary").textContent = "Could not load the document: " + err;
  });
