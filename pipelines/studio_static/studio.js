// epoxy-beam LF studio. Every value from the server is set with textContent (never innerHTML).
// What is shown (numbers, headers, labels, document texts and fields) arrives formatted by the
// server (pipelines/rendering.py); this file only builds the DOM from it.
"use strict";

const TOKEN = new URLSearchParams(window.location.search).get("token") || "";
const POLL_MS = 1500;
let version = -1;
let savedSource = null;  // the file text last loaded into the editor
let selectedLf = null;

function $(id) { return document.getElementById(id); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function api(path, body) {
  const options = { headers: { "X-Studio-Token": TOKEN } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok && !data.error) data.error = response.status + " " + response.statusText;
  return data;
}

function cellNode(cell) {
  // A cell is a string or {text, delta, trend}: a figure and its change from the previous state.
  if (typeof cell === "string") return document.createTextNode(cell);
  const span = el("span", cell.text);
  if (cell.delta) span.appendChild(el("span", " " + cell.delta, cell.trend));
  return span;
}

function fillTable(table, view) {
  table.replaceChildren();
  const head = el("tr");
  view.columns.forEach((name) => head.appendChild(el("th", name)));
  table.appendChild(head);
  view.rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell) => {
      const td = el("td");
      td.appendChild(cellNode(cell));
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  return table;
}

function documentBody(doc, className) {
  // The document's thumbnail (non-text documents with an image field) and its text or fields.
  const box = el("div", null, className);
  if (doc.thumbnail && doc.thumbnail.startsWith("data:image/")) {
    const img = el("img", null, "thumbnail");
    img.alt = "";
    img.src = doc.thumbnail;
    box.appendChild(img);
  }
  box.appendChild(el("span", doc.text, "text"));
  return box;
}

function documentNode(doc, extra) {
  const box = el("div", null, "doc");
  box.dataset.id = doc.id;
  box.appendChild(documentBody(doc, "body"));
  box.appendChild(el("div", doc.meta.join(" · "), "meta"));
  if (extra) box.appendChild(extra);
  return box;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function render(state) {
  showError(state.error);
  $("path").textContent = state.path;
  $("status").textContent = state.status;
  const editor = $("source");
  if (savedSource === null || editor.value === savedSource) {
    editor.value = state.source;
    $("disk_note").textContent = "";
  } else if (state.source !== savedSource) {
    $("disk_note").textContent = "the file changed on disk; Save overwrites it";
  }
  savedSource = state.source;
  document.querySelectorAll("select.classes").forEach((select) => {
    if (select.options.length === state.classes.length) return;
    select.replaceChildren();
    state.classes.forEach((name, index) => {
      const option = el("option", name);
      option.value = String(index);
      select.appendChild(option);
    });
  });
  fillTable($("metrics"), state.metrics_table);
  fillTable($("distribution"), state.distribution_table);
  $("covered").textContent = state.covered_text;
  renderLfTable(state);
  $("changed_count").textContent = "(" + state.changed_count + ")";
  $("changed").replaceChildren(...state.changed.map((doc) => documentNode(doc)));
  if (selectedLf && state.lf_view.rows.some((row) => row.lf === selectedLf)) showLf(selectedLf);
}

function renderLfTable(state) {
  const view = state.lf_view;
  const table = fillTable($("lf_table"), { columns: view.columns, rows: view.rows.map((row) => row.cells) });
  Array.from(table.rows).slice(1).forEach((tr, i) => {
    const name = view.rows[i].lf;
    tr.className = "lf" + (state.applied.includes(name) ? " applied" : "");
    tr.dataset.lf = name;
    tr.addEventListener("click", () => showLf(name));
  });
}

async function showLf(name) {
  selectedLf = name;
  const d = await api("/api/lf/" + encodeURIComponent(name));
  const box = $("lf_details");
  $("lf_name").textContent = name;
  if (d.error) { box.replaceChildren(el("p", d.error, "error")); return; }
  const parts = [el("p", d.summary)];
  parts.push(el("h3", "Votes"), ...d.votes.map((doc) => documentNode(doc)));
  const gained = el("div"); gained.id = "gained";
  gained.appendChild(el("h3", "Gained by extension"));
  d.gained.forEach((doc) => {
    const source = el("div", doc.source_caption + ": ", "source");
    source.appendChild(documentBody(doc.source, "source_doc"));
    gained.appendChild(documentNode(doc, source));
  });
  parts.push(gained, el("h3", "Errors on dev rows"), ...d.errors.map((doc) => documentNode(doc)));
  if (d.failures.length) {
    parts.push(el("h3", "Failures"), ...d.failures.map((f) => el("div", f.text, "doc")));
  }
  box.replaceChildren(...parts);
}

async function refresh() {
  const state = await api("/api/state?since=" + version);
  if (state.unchanged) return;
  if (state.error && state.lf_view === undefined) { showError(state.error); return; }
  version = state.version;
  render(state);
}

async function submit(path, body) {
  const state = await api(path, body);
  if (state.lf_view === undefined) { showError(state.error); return; }
  version = state.version;
  savedSource = null;  // the editor takes the saved file
  render(state);
}

function formValues(form) { return Object.fromEntries(new FormData(form).entries()); }

window.addEventListener("DOMContentLoaded", () => {
  $("save").addEventListener("click", () => submit("/api/source", { source: $("source").value }));
  $("keyword_form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit("/api/quick_lf", { kind: "keyword", ...formValues(event.target) });
  });
  $("regex_form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit("/api/quick_lf", { kind: "regex", ...formValues(event.target) });
  });
  $("search_form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("/api/search?q=" + encodeURIComponent(formValues(event.target).q));
    const box = $("search_results");
    box.replaceChildren(el("p", result.summary),
      ...result.hits.map((doc) => documentNode(doc)));
  });
  $("export").addEventListener("click", async () => {
    const result = await api("/api/export", {});
    $("export_result").replaceChildren(...(result.error ? [el("p", result.error, "error")]
      : Object.entries(result.written).map(([kind, path]) => el("div", kind + ": " + path))));
  });
  refresh();
  setInterval(refresh, POLL_MS);
});
