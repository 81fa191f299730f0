// epoxy-beam LF studio. Every value from the server is set with textContent (never innerHTML).
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

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return value.toFixed(digits);
  return String(value);
}

function delta(value) {
  const span = el("span");
  if (value === null || value === undefined || Math.abs(value) < 5e-4) return span;
  span.textContent = (value > 0 ? " +" : " ") + value.toFixed(3);
  span.className = value > 0 ? "up" : "down";
  return span;
}

function fillTable(table, header, rows) {
  table.replaceChildren();
  const head = el("tr");
  header.forEach((name) => head.appendChild(el("th", name)));
  table.appendChild(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell) => {
      const td = el("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  return table;
}

function documentNode(doc, extra) {
  const box = el("div", null, "doc");
  box.appendChild(el("div", doc.text));
  const meta = [doc.id, "label " + doc.label + " (" + fmt(doc.prob, 2) + ")"];
  if (doc.vote !== undefined) meta.push("vote " + doc.vote);
  if (doc.gold !== undefined) meta.push("gold " + doc.gold);
  if (doc.before !== undefined) meta.push("was " + doc.before);
  if (doc.lfs !== undefined) meta.push("LFs: " + (doc.lfs.join(", ") || "none"));
  box.appendChild(el("div", meta.join(" · "), "meta"));
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
  $("status").textContent = state.documents + " documents · " + state.lf_table.length + " LFs · "
    + state.refit + " relabel " + fmt(state.seconds) + " s"
    + (state.applied.length ? " · applied " + state.applied.join(", ") : "")
    + (state.removed.length ? " · removed " + state.removed.join(", ") : "");
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
  fillTable($("metrics"), ["split", "accuracy", "macro F1", "rows"],
    Object.entries(state.metrics).map(([split, m]) => {
      const acc = el("span", fmt(m.accuracy)); acc.appendChild(delta(m.delta_accuracy));
      const f1 = el("span", fmt(m.macro_f1)); f1.appendChild(delta(m.delta_macro_f1));
      return [split, acc, f1, String(m.rows)];
    }));
  fillTable($("distribution"), ["class", "documents"],
    state.distribution.map((d) => [d.class, String(d.documents)]));
  $("covered").textContent = "covered after extension: " + fmt(100 * state.covered, 1) + " %";
  renderLfTable(state);
  $("changed_count").textContent = "(" + state.changed_count + ")";
  $("changed").replaceChildren(...state.changed.map((doc) => documentNode(doc)));
  if (selectedLf && state.lf_table.some((row) => row.name === selectedLf)) showLf(selectedLf);
}

function renderLfTable(state) {
  const columns = [["name", "LF"], ["Polarity", "polarity"], ["Coverage", "coverage"],
    ["Extended Coverage", "ext. coverage"], ["Overlaps", "overlaps"], ["Conflicts", "conflicts"],
    ["Emp. Acc.", "dev acc."], ["Est. Acc.", "est. acc."], ["failures", "failures"]];
  const table = fillTable($("lf_table"), columns.map((c) => c[1]),
    state.lf_table.map((row) => columns.map(([key]) => (key === "failures" ? String(row[key]) : fmt(row[key])))));
  Array.from(table.rows).slice(1).forEach((tr, i) => {
    const name = state.lf_table[i].name;
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
  const parts = [el("p", "threshold " + fmt(d.threshold) + " · votes on " + d.votes_count
    + " documents · gained " + d.gained_count + " by extension · wrong on " + d.errors_count
    + " of " + d.dev_votes + " dev rows")];
  parts.push(el("h3", "Votes"), ...d.votes.map((doc) => documentNode(doc)));
  const gained = el("div"); gained.id = "gained";
  gained.appendChild(el("h3", "Gained by extension"));
  d.gained.forEach((doc) => {
    const source = el("div", "from neighbour " + doc.source_id + " (similarity " + fmt(doc.similarity)
      + "): " + doc.source_text, "source");
    gained.appendChild(documentNode(doc, source));
  });
  parts.push(gained, el("h3", "Errors on dev rows"), ...d.errors.map((doc) => documentNode(doc)));
  if (d.failures.length) {
    parts.push(el("h3", "Failures"), ...d.failures.map((f) => el("div", f.id + ": " + f.message, "doc")));
  }
  box.replaceChildren(...parts);
}

async function refresh() {
  const state = await api("/api/state?since=" + version);
  if (state.unchanged) return;
  if (state.error && state.lf_table === undefined) { showError(state.error); return; }
  version = state.version;
  render(state);
}

async function submit(path, body) {
  const state = await api(path, body);
  if (state.lf_table === undefined) { showError(state.error); return; }
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
    box.replaceChildren(el("p", result.count + " documents contain " + JSON.stringify(result.query)),
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
