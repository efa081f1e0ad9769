"""The receiver's web page at `/`: the stored events, newest first, refreshing as they arrive.

One self-contained HTML document (no external assets), which polls the control API
`GET /_receiver/events` once a second. Event values are inserted as text nodes, never as
HTML, so whatever a client sends cannot run in the page.
"""

from __future__ import annotations

from typing import Final

SHOWN_EVENTS: Final = 500
"""Rows the page renders at most; it says when there are more."""

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ODP receiver</title>
<style>
  :root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --accent: #2563eb; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; padding: 1rem 1.5rem; }
  header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
  h1 { font-size: 1.3rem; margin: 0; }
  #status { color: var(--muted); }
  #status.down { color: #dc2626; }
  form { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin: 1rem 0; }
  label { display: flex; flex-direction: column; font-weight: 600; gap: .2rem; }
  input, button { font: inherit; padding: .3rem .6rem; }
  input { min-width: 16rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; vertical-align: top; padding: .35rem .6rem; }
  th { border-bottom: 2px solid var(--line); white-space: nowrap; }
  td { border-bottom: 1px solid var(--line); }
  td.action { font-weight: 600; color: var(--accent); }
  td.num, td.time { white-space: nowrap; color: var(--muted); }
  .pair { display: inline-block; margin-right: .8rem; font-family: ui-monospace, monospace; }
  .pair b { font-weight: 600; }
  .sdk { color: var(--muted); font-size: .85em; }
  #empty, #more { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>ODP receiver</h1>
  <span id="status">connecting&hellip;</span>
</header>
<form id="filters" autocomplete="off">
  <label>Action <input id="action" name="action" placeholder="e.g. purchased"></label>
  <label>Identifier
    <input id="identifier" name="identifier" placeholder="a value, or name=value"></label>
  <button type="reset">Clear filters</button>
</form>
<table id="events">
  <thead><tr><th>#</th><th>Received</th><th>Action</th><th>Type</th>
    <th>Identifiers</th><th>Data</th></tr></thead>
  <tbody></tbody>
</table>
<p id="empty" hidden>No events yet. Point a client's api_host at this address and send some.</p>
<p id="more" hidden></p>
<script>
"use strict";
const SHOWN = __SHOWN__;
const SDK_KEYS = ["idempotence_id", "data_source_type", "data_source", "data_source_version"];
const form = document.getElementById("filters");
const inputs = {action: form.elements.action, identifier: form.elements.identifier};
const body = document.querySelector("#events tbody");
const status = document.getElementById("status");
let shown = null;  // what the table shows: filters and newest event id, to skip redraws
let timer = null;

const query = new URLSearchParams(location.search);
for (const [name, input] of Object.entries(inputs)) input.value = query.get(name) || "";

function filters() {
  const params = new URLSearchParams();
  for (const [name, input] of Object.entries(inputs)) {
    if (input.value.trim()) params.set(name, input.value.trim());
  }
  return params;
}

function cell(row, className, ...children) {
  const td = row.insertCell();
  if (className) td.className = className;
  td.append(...children);
  return td;
}

function pair(name, value, className) {
  const span = document.createElement("span");
  span.className = className ? "pair " + className : "pair";
  const key = document.createElement("b");
  key.textContent = name;
  span.append(key, "=" + (typeof value === "string" ? value : JSON.stringify(value)));
  return span;
}

function render(events, total) {
  const rows = events.map((event) => {
    const row = document.createElement("tr");
    row.dataset.id = event.id;
    cell(row, "num", String(event.id));
    cell(row, "time", new Date(event.received_at).toLocaleTimeString());
    cell(row, "action", event.action);
    cell(row, "type", event.type);
    const ids = Object.entries(event.identifiers || {}).map(([k, v]) => pair(k, v));
    cell(row, "identifiers", ...ids);
    const data = Object.entries(event.data || {});
    const own = data.filter(([k]) => !SDK_KEYS.includes(k)).map(([k, v]) => pair(k, v));
    const sdk = data.filter(([k]) => SDK_KEYS.includes(k)).map(([k, v]) => pair(k, v, "sdk"));
    cell(row, "data", ...own, ...sdk);
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("empty").hidden = total > 0;
  const more = document.getElementById("more");
  more.hidden = total <= events.length;
  more.textContent = `Showing the newest ${events.length} of ${total} events.`;
}

async function refresh() {
  clearTimeout(timer);
  const params = filters();
  try {
    const answer = await fetch("/_receiver/events?" + params, {cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const events = await answer.json();
    const newest = events.length ? events[events.length - 1].id : 0;
    const state = params + "#" + events.length + "#" + newest;
    if (state !== shown) {
      render(events.slice(-SHOWN).reverse(), events.length);
      shown = state;
    }
    const noun = events.length === 1 ? "event" : "events";
    const what = params.toString() ? "matching " + noun : noun;
    const time = new Date().toLocaleTimeString();
    status.textContent = `${events.length} ${what} \\u00b7 updated ${time}`;
    status.className = "";
  } catch (error) {
    status.textContent = "receiver unreachable (" + error.message + "), retrying";
    status.className = "down";
  }
  timer = setTimeout(refresh, 1000);
}

let typing = null;
form.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    const params = filters().toString();
    history.replaceState(null, "", params ? "?" + params : location.pathname);
    refresh();
  }, 200);
});
form.addEventListener("reset", () => setTimeout(() => form.dispatchEvent(new Event("input"))));
refresh();
</script>
</body>
</html>
""".replace("__SHOWN__", str(SHOWN_EVENTS)).encode()
"""The page, as the UTF-8 body of `GET /`."""
