// V4 explorer front-end: plain modern JavaScript, no build step, no external libraries.
// Every view has a permanent URL in the hash: #/neuron/201025/10, #/synthesize?neurons=...
// All text from the server is inserted with textContent (never innerHTML) to stay XSS-safe.
"use strict";

const view = document.getElementById("view");
// The static site (v4compact site export) defines window.V4_SITE (static/site.js): it answers
// the API from the exported files and computes predictions, activation maps, ablations and
// synthesis in this browser. The served explorer has none, and asks its server.
const SITE = window.V4_SITE || null;
// An API URL as this page can load it (the static site maps /api/... to its data/ files).
function u(path) { return SITE ? SITE.url(path) : path; }
let cleanup = []; // functions run when leaving a view (close streams, stop the webcam)

// ---------- tiny DOM helpers ----------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function explain(...text) { return el("p", { class: "explain" }, ...text); }
// Replace the view's content; absent parts (null, undefined, false) are left out.
function show(...nodes) { view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false)); }
function fmt(x, digits = 2) { return x === null || x === undefined || Number.isNaN(x) ? "n/a" : Number(x).toFixed(digits); }
// Two numbers with as many decimals as it takes to tell them apart (2 to 6).
function fmtPair(a, b) {
  let digits = 2;
  while (digits < 6 && fmt(a, digits) === fmt(b, digits)) digits++;
  return [fmt(a, digits), fmt(b, digits)];
}
// A change with its sign and two significant digits ("+0.0031", "-1.2e-7").
function fmtChange(delta) {
  const text = String(Number(Math.abs(delta).toPrecision(2)));
  return (delta < 0 ? "\u2212" : "+") + text;
}
// Units of every compact-model output and of recorded responses (SYSTEM.md sections 4, 9).
const MODEL_UNITS = "z-scored units";
const SPIKE_UNITS = "spikes per 100 ms";
const Z_UNITS_EXPLAINED = "Model outputs are in z-scored units, not spikes: 0 is about the neuron's " +
  "average response to natural photos and 1 is one standard deviation above it.";

async function api(path, options = {}) {
  if (SITE) return SITE.api(path, options);
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return body;
}
function showError(container, error) {
  container.append(el("p", { class: "error", role: "alert", text: `Problem: ${error.message}` }));
}

// Read a server-sent-event stream with fetch: calls handlers[event](data) for each event and
// resolves to true once a "done" or "error" event arrived (false if the stream just ended).
// A non-2xx answer rejects with the server's one-line message.
async function readEvents(url, handlers, signal) {
  const response = await fetch(url, { signal, headers: { accept: "text/event-stream" } });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); if (body && body.detail) detail = body.detail; } catch (_) { /* keep */ }
    throw new Error(detail);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue; // a keep-alive comment
      if (handlers[event]) handlers[event](JSON.parse(data.join("\n")));
      if (event === "done" || event === "error") { reader.cancel().catch(() => {}); return true; }
    }
  }
}

// ---------- router ----------
const routes = [
  [/^\/?$/, gallery],
  [/^\/gallery$/, gallery],
  [/^\/neuron\/(\d{6})\/(\d{1,4})$/, neuronPage],
  [/^\/made\/((?:[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._-]{1,64})|\d{6})\/(\d{1,5})$/, madePage],
  [/^\/synthesize$/, synthesizePage],
  [/^\/try$/, tryPage],
  [/^\/sessions$/, sessionsPage],
  [/^\/session\/(\d{6})$/, sessionPage],
  [/^\/tutorials$/, tutorialsPage],
  [/^\/tutorial\/([A-Za-z0-9_-]+)$/, tutorialPage],
  [/^\/about$/, aboutPage],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: new URLSearchParams(query) };
}

async function route() {
  for (const fn of cleanup) { try { fn(); } catch (_) { /* ignore */ } }
  cleanup = [];
  const { path, params } = parseHash();
  const section = path.split("/")[1] || "gallery";
  for (const a of document.querySelectorAll("[data-nav]")) {
    const target = a.dataset.nav;
    const on = target === section || (target === "gallery" && (section === "neuron" || section === "made"))
      || (target === "sessions" && section === "session") || (target === "tutorials" && section === "tutorial");
    a.classList.toggle("active", on);
  }
  view.replaceChildren(el("p", { class: "loading", text: "Loading..." }));
  for (const [pattern, handler] of routes) {
    const match = path.match(pattern);
    if (match) {
      try {
        await handler(params, ...match.slice(1));
      } catch (error) {
        view.replaceChildren();
        showError(view, error);
      }
      return;
    }
  }
  view.replaceChildren(el("h1", { text: "Page not found" }),
    el("p", {}, "There is nothing at this address. ", el("a", { href: "#/", text: "Go to the neurons" })));
}
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// ---------- Gallery ----------
let galleryCache = null;
// A made model (serve --made RUN) as a gallery card: its report's held-out raw R² as the badge.
function madeAsCard(m) {
  const r2 = m.scores.heldout_raw_r2_step2;
  return { ...m, kind: "made", built: true, health: "ok", problem: "", preferred_url: null,
    heldout: r2 === undefined ? null : { metric: "raw_r2", value: r2,
      label: "held-out raw R² of the made model (from its run's report)" } };
}
async function gallery(params) {
  if (!galleryCache) {
    const [release, made] = await Promise.all([api("/api/neurons"), api("/api/made")]);
    galleryCache = { release, made: made.map(madeAsCard) };
  }
  const release = galleryCache.release, made = galleryCache.made;
  const cards = release.concat(made);
  const sessions = [...new Set(cards.map((c) => String(c.session_id)))];
  const animals = [...new Set(release.map((c) => c.animal))];
  const allAnimals = [...new Set(cards.map((c) => c.animal).filter(Boolean))];
  const datasets = [...new Set(cards.map((c) => c.dataset))];
  const areas = [...new Set(cards.map((c) => c.area).filter(Boolean))];
  const userDatasets = [...new Set(made.map((c) => c.dataset).filter((d) => d !== "cowley2023"))];
  const state = {
    dataset: params.get("dataset") || "",
    area: params.get("area") || "",
    session: params.get("session") || "",
    animal: params.get("animal") || "",
    minR2: params.get("min_r2") || "",
    maxFilters: params.get("max_filters") || "",
    sort: params.get("sort") || "performance",
  };
  const built = release.filter((c) => c.built).length;
  const disabled = release.filter((c) => c.health !== "ok");
  const monkeys = ["no", "one", "two", "three", "four", "five"][animals.length] || String(animals.length);
  const grid = el("div", { class: "cards", id: "gallery-cards" });
  const count = el("span", { class: "muted", id: "gallery-count" });
  const selectSession = el("select", { id: "filter-session" },
    el("option", { value: "", text: "all sessions" }),
    sessions.map((s) => el("option", { value: s, text: s })));
  const selectAnimal = el("select", { id: "filter-animal" },
    el("option", { value: "", text: "all monkeys" }),
    allAnimals.map((a) => el("option", { value: a, text: a })));
  const selectDataset = el("select", { id: "filter-dataset" },
    el("option", { value: "", text: "all datasets" }),
    datasets.map((d) => el("option", { value: d, text: d === "cowley2023" ? "cowley2023 (the release)" : d })));
  const selectArea = el("select", { id: "filter-area" },
    el("option", { value: "", text: "all areas" }),
    areas.map((a) => el("option", { value: a, text: a })));
  const minR2 = el("input", { id: "filter-r2", type: "number", min: "0", max: "1", step: "0.05", placeholder: "0.0" });
  const maxFilters = el("input", { id: "filter-size", type: "number", min: "5", step: "5", placeholder: "any" });
  const sort = el("select", { id: "sort" },
    el("option", { value: "performance", text: "best predicted first" }),
    el("option", { value: "filters", text: "fewest filters first" }),
    el("option", { value: "filters-desc", text: "most filters first" }),
    el("option", { value: "id", text: "session and number" }));
  selectSession.value = state.session; selectAnimal.value = state.animal;
  selectDataset.value = state.dataset; selectArea.value = state.area;
  minR2.value = state.minR2; sort.value = state.sort; maxFilters.value = state.maxFilters;

  function render() {
    let list = cards.slice();
    if (selectDataset.value) list = list.filter((c) => c.dataset === selectDataset.value);
    if (selectArea.value) list = list.filter((c) => c.area === selectArea.value);
    if (selectSession.value) list = list.filter((c) => String(c.session_id) === selectSession.value);
    if (selectAnimal.value) list = list.filter((c) => c.animal === selectAnimal.value);
    const threshold = parseFloat(minR2.value);
    if (!Number.isNaN(threshold)) list = list.filter((c) => c.heldout && c.heldout.value >= threshold);
    const limit = parseInt(maxFilters.value, 10);
    if (!Number.isNaN(limit)) list = list.filter((c) => c.total_filters !== null && c.total_filters <= limit);
    const perf = (c) => (c.heldout ? c.heldout.value : -1);
    const total = (c) => c.total_filters ?? 1e9;
    if (sort.value === "performance") list.sort((a, b) => perf(b) - perf(a));
    if (sort.value === "filters") list.sort((a, b) => total(a) - total(b));
    if (sort.value === "filters-desc") list.sort((a, b) => total(b) - total(a));
    grid.replaceChildren(...list.map((c) => (c.kind === "made" ? madeCard(c) : card(c))));
    count.textContent = `${list.length} of ${cards.length} ${made.length ? "models" : "neurons"} shown`;
    const query = new URLSearchParams();
    if (selectDataset.value) query.set("dataset", selectDataset.value);
    if (selectArea.value) query.set("area", selectArea.value);
    if (selectSession.value) query.set("session", selectSession.value);
    if (selectAnimal.value) query.set("animal", selectAnimal.value);
    if (minR2.value) query.set("min_r2", minR2.value);
    if (maxFilters.value) query.set("max_filters", maxFilters.value);
    if (sort.value !== "performance") query.set("sort", sort.value);
    const hash = "#/" + (query.toString() ? "?" + query : "");
    if (location.hash !== hash && !(location.hash === "" && hash === "#/")) history.replaceState(null, "", hash);
  }
  for (const input of [selectDataset, selectArea, selectSession, selectAnimal, minR2, maxFilters, sort]) input.addEventListener("input", render);

  show(
    el("h1", { text: `${release.length} neurons from the visual cortex of ${monkeys} monkeys` +
      (made.length ? `, and ${made.length} made ${made.length === 1 ? "model" : "models"}` : "") }),
    el("p", { class: "lead" },
      "Each card is one nerve cell (neuron) recorded in area V4, a part of the brain that helps " +
      `recognise shapes, colours and textures. The recordings come from ${monkeys} monkeys (${animals.join(", ")}). ` +
      "For every neuron, scientists trained a small artificial neural network (a \"compact model\") " +
      "that predicts how strongly the neuron fires for any picture. The picture on each card was " +
      "invented by the model: it is an image the neuron should like a lot."),
    explain("How to read a card: ", el("b", { text: "R²" }),
      " says how well the model predicts the real neuron on pictures it never saw during training " +
      "(0 = not at all, 1 = perfectly; \"raw R²\" is the squared correlation with the measured " +
      "responses averaged over repeats, which trial-to-trial noise keeps below 1 even for a " +
      "perfect model). ", el("b", { text: "Filters" }),
      " is the size of the model: how many small pattern detectors it uses in each of its 5 layers."),
    made.length ? explain(el("b", { text: "Made models" }), ` (${made.length}, marked "made") were distilled by ` +
      "v4compact make-compact for neurons of " + (userDatasets.length ? `your own recordings (${userDatasets.join(", ")})`
        : "the release, made again") + ": same kind of compact model, made by " +
      "this toolkit rather than by the paper's authors. Their page says which teacher and which images made them.") : null,
    disabled.length ? el("p", { class: "error", id: "gallery-disabled", role: "alert" },
      `${disabled.length} ${disabled.length === 1 ? "neuron is" : "neurons are"} switched off because ` +
      `${disabled.length === 1 ? "its model file is" : "their model files are"} missing or damaged: ` +
      disabled.map((c) => c.neuron_id).join(", ") + ". Their cards say how to fetch the files again.") : null,
    built < release.length ? el("p", { class: "note", id: "build-progress" },
      `${built} of ${release.length} ready`, el("span", { class: "muted", id: "build-progress-detail",
        text: " (neurons with pictures and scores on this server; the others show \"no picture yet\")" })) : null,
    el("div", { class: "filters" },
      el("label", {}, "Dataset", selectDataset),
      el("label", {}, "Area", selectArea),
      el("label", {}, "Session", selectSession),
      el("label", {}, "Monkey", selectAnimal),
      el("label", {}, "Minimum R²", minR2),
      el("label", {}, "At most this many filters", maxFilters),
      el("label", {}, "Sort", sort),
      count),
    grid);
  render();
  if (built < release.length) watchBuild(built);
}

// While the server builds pages in the background, keep "N of 219 ready" current (the
// gallery's cards are fetched again on the next visit of the gallery).
let buildWatch = null;
function watchBuild(shown) {
  if (buildWatch) clearTimeout(buildWatch);
  const tick = async () => {
    buildWatch = null;
    const line = document.getElementById("build-progress");
    if (!line) return;  // the visitor left the gallery
    let progress;
    try { progress = await api("/api/build"); } catch (error) { return; }
    if (!progress.enabled) return;
    line.firstChild.textContent = `${progress.ready} of ${progress.total} ready`;
    const detail = document.getElementById("build-progress-detail");
    if (detail) detail.textContent = progress.running
      ? " (the server is computing the others in the background; open a neuron to have it computed first)"
      : " (the server has finished building)";
    if (progress.ready !== shown) galleryCache = null;
    if (progress.running) buildWatch = setTimeout(tick, 3000);
  };
  buildWatch = setTimeout(tick, 1000);
}

// Short names of the evaluation's metrics, for badges (the long label comes with each score).
const METRIC_SYMBOLS = { raw_r2: "raw R²", r2_er: "r2_ER", split_half_r2: "split-half R²" };
function metricSymbol(heldout) { return METRIC_SYMBOLS[heldout.metric] || heldout.metric; }

function card(c) {
  const ok = c.health === "ok";
  const image = c.preferred_url
    ? el("img", { src: c.preferred_url, alt: `image preferred by neuron ${c.neuron_id}`, loading: "lazy" })
    : el("div", { class: "noimg", text: c.status === "computing" ? "computing…" : "no picture yet" });
  return el("a", { class: "card" + (ok ? "" : " disabled"), href: `#/neuron/${c.neuron_id}`,
    "data-neuron": c.neuron_id, "data-health": c.health, title: ok ? null : c.problem },
    image,
    el("div", { class: "title", text: `Neuron ${c.neuron_id}` }),
    el("div", { class: "meta" }, `monkey ${c.animal} · `,
      el("span", { class: "badge", title: c.heldout ? c.heldout.label : null,
        text: c.heldout ? `${metricSymbol(c.heldout)} ${fmt(c.heldout.value)}` : "R² n/a" })),
    el("div", { class: "meta", text: c.num_filters ? `filters ${c.num_filters.join("·")}` : "" }),
    ok ? null : el("div", { class: "problem", text: `Switched off: model file ${c.health}. ${c.problem}` }));
}

function madeCard(c) {
  return el("a", { class: "card made", href: `#/made/${c.neuron_id}`, "data-neuron": c.neuron_id, "data-kind": "made" },
    el("div", { class: "noimg", text: "made model" }),
    el("div", { class: "title", text: `Neuron ${c.neuron_id}` }),
    el("div", { class: "meta" }, `${c.dataset}${c.area ? " · " + c.area : ""} · `,
      el("span", { class: "badge", title: c.heldout ? c.heldout.label : null,
        text: c.heldout ? `raw R² ${fmt(c.heldout.value)}` : "R² n/a" })),
    el("div", { class: "meta", text: `filters ${c.num_filters.join("·")} · made` }));
}

// ---------- Neuron page ----------
// A scatter of x against one or two y series; scales to its container (viewBox), so it
// never overflows a phone screen. `identity` draws y = x (same units on both axes).
function scatterPlot({ x, y, y2 = null, xLabel, yLabel, title = "", identity = false }) {
  const W = 380, H = 320, pad = 46;
  const ys = y.concat(y2 || []);
  let [x0, x1] = [Math.min(...x), Math.max(...x)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (identity) { x0 = y0 = Math.min(x0, y0); x1 = y1 = Math.max(x1, y1); }
  const sx = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (W - pad - 10);
  const sy = (v) => H - pad - ((v - y0) / (y1 - y0 || 1)) * (H - pad - 10);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "scatter", role: "img", "aria-label": title });
  root.append(svg("line", { x1: pad, y1: H - pad, x2: W - 5, y2: H - pad, class: "axis" }));
  root.append(svg("line", { x1: pad, y1: 5, x2: pad, y2: H - pad, class: "axis" }));
  if (identity) root.append(svg("line", { x1: sx(x0), y1: sy(y0), x2: sx(x1), y2: sy(y1), class: "identity" }));
  const label = (lx, ly, text, rotate = false) => {
    const t = svg("text", { x: lx, y: ly, "text-anchor": "middle" });
    if (rotate) t.setAttribute("transform", `rotate(-90 ${lx} ${ly})`);
    t.textContent = text;
    root.append(t);
  };
  label((W + pad) / 2, H - 8, xLabel);
  label(12, (H - pad) / 2, yLabel, true);
  label(pad, H - pad + 14, fmt(x0, 1)); label(W - 15, H - pad + 14, fmt(x1, 1));
  label(pad - 16, H - pad, fmt(y0, 1)); label(pad - 16, 14, fmt(y1, 1));
  for (let i = 0; i < x.length; i++) {
    root.append(svg("circle", { cx: sx(x[i]), cy: sy(y[i]), r: 2.6, class: "pt" }));
    if (y2) root.append(svg("circle", { cx: sx(x[i]), cy: sy(y2[i]), r: 2.6, class: "pt after" }));
  }
  return root;
}

function imageStrip(items, { selectable = false, onSelect = null, selected = null } = {}) {
  return el("div", { class: "strip" }, items.map((item) => {
    const img = el("img", { src: item.src, alt: item.alt || "", title: item.title || "" });
    const box = el("div", { class: "thumb" + (selectable ? " selectable" : "") + (selected === item.key ? " selected" : "") },
      img, el("span", { text: item.caption || "" }));
    if (selectable) {
      box.dataset.key = item.key;
      img.addEventListener("click", () => onSelect(item, box));
    }
    return box;
  }));
}

function drawKernel(canvas, kernel, range, rgb) {
  const h = kernel.length, w = kernel[0].length;
  canvas.width = w; canvas.height = h;
  // colour kernels are scaled one by one (their colours matter, not their size)
  const own = rgb ? Math.max(...kernel.flat(2).map(Math.abs)) : range;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const px = kernel[y][x], o = 4 * (y * w + x);
    if (rgb) {
      for (let c = 0; c < 3; c++) data.data[o + c] = Math.max(0, Math.min(255, 128 + 127 * px[c] / (own || 1)));
    } else {
      const v = px[0] / (range || 1); // diverging: blue (negative) - white - red (positive)
      data.data[o] = v > 0 ? 255 : Math.round(255 * (1 + v));
      data.data[o + 1] = Math.round(255 * (1 - Math.abs(v)));
      data.data[o + 2] = v < 0 ? 255 : Math.round(255 * (1 - v));
    }
    data.data[o + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

function drawHeat(canvas, map) {
  const h = map.length, w = map[0].length;
  canvas.width = w; canvas.height = h;
  const max = Math.max(...map.flat()) || 1;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = map[y][x] / max, o = 4 * (y * w + x);
    data.data[o] = Math.round(255 * Math.min(1, 2 * v));
    data.data[o + 1] = Math.round(255 * Math.max(0, 2 * v - 1));
    data.data[o + 2] = Math.round(80 * (1 - v));
    data.data[o + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

// "raw R² goes from 0.4512 to 0.4498 (−0.0014); predictions change by ..." for an ablation.
function ablationSentence(r) {
  const [before, after] = fmtPair(r.before, r.after);
  const score = r.after === r.before
    ? `${r.metric}: stays at ${before}`
    : `${r.metric}: goes from ${before} to ${after} (change ${fmtChange(r.after - r.before)})`;
  if (r.mean_abs_change === 0) return `${score}; the predictions do not change at all.`;
  const z = `${Number(r.mean_abs_change.toPrecision(2))} ${MODEL_UNITS}`;
  if (r.predicted_before_spikes && r.predicted_after_spikes) {
    const n = r.predicted_before_spikes.length;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.abs(r.predicted_after_spikes[i] - r.predicted_before_spikes[i]);
    return `${score}. The predicted responses change by ${Number((sum / n).toPrecision(2))} ${SPIKE_UNITS} ` +
      `on average (${z}).`;
  }
  return `${score}. The model's outputs change by ${z} on average.`;
}

// Poll an unbuilt neuron until the server's builder has written it, then redraw the page
// (only while the visitor is still on it).
function waitUntilBuilt(base, hash) {
  const tick = async () => {
    if (location.hash !== hash) return;
    let detail;
    try { detail = await api(base); } catch (error) { setTimeout(tick, 3000); return; }
    if (location.hash !== hash) return;
    if (detail.status === "ready") { galleryCache = null; route(); return; }
    if (detail.status === "failed") {
      const box = document.getElementById("computing");
      if (box) { box.className = "error"; box.textContent = `Could not compute this neuron: ${detail.build_hint}`; }
      return;
    }
    setTimeout(tick, 1500);
  };
  setTimeout(tick, 1500);
}

async function neuronPage(params, sid, idx) {
  const id = `${sid}/${idx}`;
  const base = `/api/neurons/${sid}/${idx}`;
  const detail = await api(base);
  const page = [];
  page.push(el("p", {}, el("a", { href: "#/", text: "← all neurons" })));
  page.push(el("h1", { text: `Neuron ${id}` }));
  page.push(el("p", { class: "lead" },
    `Recorded in session ${detail.session_id} from monkey ${detail.animal}. ` +
    (detail.num_filters ? `Its compact model has ${detail.total_filters} filters in 5 layers (${detail.num_filters.join(" · ")}).` : "")));
  page.push(el("p", {},
    el("a", { class: "button", href: `#/synthesize?neurons=${id}` , text: "Invent new images for this neuron" }), " ",
    el("a", { class: "button secondary", href: `#/session/${detail.session_id}`, text: "See the recording session" })));
  if (detail.health !== "ok") {
    page.push(el("p", { class: "error", role: "alert", id: "neuron-health" },
      `This neuron is switched off: its model file is ${detail.health}. ${detail.problem}`));
  }
  if (detail.build_hint) page.push(el("p", { class: "note", id: "build-hint", text: detail.build_hint }));
  const pending = detail.status === "computing" || detail.status === "queued" || detail.status === "waiting";
  if (pending) {
    page.push(el("p", { class: "note computing", id: "computing", role: "status", "aria-live": "polite",
      text: "computing… this page fills in by itself when the pictures and scores are ready." }));
    waitUntilBuilt(base, location.hash);
  }

  // performance
  const perf = el("section", { class: "panel", id: "performance" });
  perf.append(el("h2", { text: "Does the model predict the real neuron?" }));
  const scatterBox = el("div", { id: "scatter", class: "chart" });
  const points = detail.heldout_points;
  const calibrated = Boolean(detail.calibration && points && points.predicted_spikes);
  if (detail.heldout && points) {
    const h = detail.heldout;
    perf.append(explain(
      `Each dot is one picture the model never saw while it was being trained (${points.measured.length} pictures). ` +
      `Left-right: how strongly the real neuron fired (${SPIKE_UNITS}, averaged over repeats). ` +
      (calibrated
        ? `Up-down: the model's prediction, turned into ${SPIKE_UNITS} by a straight-line calibration fitted on the ` +
          "other half of the session's pictures. Dots near the grey diagonal are good predictions."
        : `Up-down: the model's output (${MODEL_UNITS}). Dots close to a rising line mean good predictions.`)));
    perf.append(el("p", { id: "score" }, el("b", { text: `${metricSymbol(h)} = ${fmt(h.value)}` }),
      h.ci_low !== null && h.ci_high !== null ? ` (95% interval ${fmt(h.ci_low)} to ${fmt(h.ci_high)})` : "",
      el("span", { class: "muted", text: ` · ${h.label}, on ${h.num_images} held-out pictures. Same number as ` }),
      el("code", { text: `v4compact evaluate ${h.model_id} --sessions ${detail.session_id}` })));
    scatterBox.append(scatterPlot({
      x: points.measured, y: calibrated ? points.predicted_spikes : points.predicted,
      xLabel: `measured (${SPIKE_UNITS})`,
      yLabel: calibrated ? `predicted (${SPIKE_UNITS})` : `model output (${MODEL_UNITS})`,
      title: "measured vs predicted", identity: calibrated }));
  } else {
    perf.append(el("p", { class: "note", text: "No score here: this server has no held-out photos for this neuron." }));
  }
  perf.append(scatterBox);
  page.push(perf);

  // natural images
  if (detail.natural) {
    const nat = el("section", { class: "panel", id: "natural" });
    nat.append(el("h2", { text: "Real photos this neuron likes and dislikes" }));
    nat.append(explain("These are photos the monkey actually saw. \"Measured\" rows are ranked by the real neuron's " +
      "firing; \"predicted\" rows are ranked by the model. If the model is good, the rows look alike. " +
      `Under each photo: the measured and the predicted response, both in ${SPIKE_UNITS}` +
      (calibrated ? " (the prediction calibrated as in the scatter above)." : ".")));
    const rows = [["top_measured", "Strongest measured response"], ["top_predicted", "Strongest predicted response"],
      ["bottom_measured", "Weakest measured response"], ["bottom_predicted", "Weakest predicted response"]];
    for (const [key, title] of rows) {
      nat.append(el("h3", { text: title }));
      nat.append(imageStrip(detail.natural[key].map((item) => ({
        src: u(`/api/sessions/${detail.session_id}/images/${item.image}.png`),
        alt: `photo ${item.image}`,
        caption: item.predicted_spikes === null || item.predicted_spikes === undefined
          ? `measured ${fmt(item.measured, 1)} spikes · model ${fmt(item.predicted, 2)} z`
          : `measured ${fmt(item.measured, 1)} · predicted ${fmt(item.predicted_spikes, 1)}`,
      }))));
    }
    page.push(nat);
  }

  // preferred images
  const pref = el("section", { class: "panel", id: "preferred" });
  pref.append(el("h2", { text: "Pictures invented to excite this neuron" }));
  pref.append(explain("Starting from random noise, the computer changed the pixels step by step to make the model's " +
    "response as big as possible. Each picture started from different noise (a different \"seed\"). " +
    `The number is the model's output for the finished picture, in ${MODEL_UNITS}. ${Z_UNITS_EXPLAINED}`));
  if (detail.preferred && detail.preferred.length) {
    pref.append(imageStrip(detail.preferred.map((p) => ({
      src: p.url, alt: `preferred image, seed ${p.seed}`, caption: `start ${p.seed} · output ${fmt(p.response, 1)} z`,
    }))));
    if (detail.settings) pref.append(el("p", { class: "muted", text:
      `Made with the "${detail.settings.preset}" recipe, ${detail.settings.steps} steps.` }));
  } else {
    pref.append(el("p", { class: "note", text: "Not computed yet. Use the Synthesize page to make some now." }));
  }
  page.push(pref);

  // network
  const net = el("section", { class: "panel network", id: "network" });
  net.append(el("h2", { text: "Inside the model, layer by layer" }));
  net.append(explain("The model looks at a 112×112 picture through 5 layers. Each small square is one filter: " +
    "a tiny pattern detector. In layer 0 the squares show the colours each filter looks for; in later layers " +
    "red means \"add\" and blue means \"subtract\". Click a filter to see where it lights up on a photo, " +
    "and what happens to the predictions if we switch it off."));
  page.push(net);
  view.replaceChildren(...page);
  if (detail.health !== "ok") {
    net.append(el("p", { class: "note", text: "The network cannot be drawn while the model file is " + detail.health + "." }));
    return;
  }

  let network;
  try {
    network = await api(`${base}/network`);
  } catch (error) { showError(net, error); return; }
  net.append(el("p", { class: "muted", text: `${network.num_parameters.toLocaleString()} numbers (parameters) in total.` }));

  // images for activation maps: the neuron's top photos, or its preferred pictures
  const choices = [];
  if (detail.natural) for (const item of detail.natural.top_predicted.slice(0, 4).concat(detail.natural.bottom_predicted.slice(0, 2))) {
    choices.push({ key: `s${item.image}`, src: u(`/api/sessions/${detail.session_id}/images/${item.image}.png`), caption: `photo ${item.image}` });
  }
  for (const p of detail.preferred || []) choices.push({ key: `p${p.seed}`, src: p.url, caption: `invented ${p.seed}` });
  let chosenImage = choices.length ? choices[0].key : null;
  let chosenFilter = null;

  const filterPanel = el("div", { class: "panel", id: "filter-panel" },
    el("h3", { text: "Pick a filter above" }), el("p", { class: "muted", text: "Its activation map and its effect appear here." }));
  const mapBox = el("div", { class: "row" });
  const imagePicker = imageStrip(choices, { selectable: true, selected: chosenImage, onSelect: (item, box) => {
    chosenImage = item.key;
    for (const b of imagePicker.querySelectorAll(".thumb")) b.classList.toggle("selected", b === box);
    if (chosenFilter) showFilter(chosenFilter.layer, chosenFilter.index);
  } });

  async function showFilter(layer, index) {
    chosenFilter = { layer, index };
    for (const k of net.querySelectorAll(".kernel")) k.classList.toggle("selected", k.dataset.layer === layer && Number(k.dataset.index) === index);
    filterPanel.replaceChildren(el("h3", { text: `${layer}, filter ${index}` }));
    if (chosenImage) {
      const chosen = choices.find((c) => c.key === chosenImage);
      const img = SITE
        ? SITE.activation(id, layer, index, chosen.src, drawHeat)
        : el("img", { class: "mapimg", alt: `activation of ${layer} filter ${index}`,
          src: `${base}/activation.png?layer=${layer}&filter=${index}&image=${chosenImage}` });
      mapBox.replaceChildren(
        el("div", { class: "thumb" }, el("img", { class: "big", src: chosen.src, alt: "chosen picture" }), el("span", { text: "picture" })),
        el("div", { class: "thumb" }, img, el("span", { text: "where the filter responds (bright = strong)" })));
      filterPanel.append(el("p", { class: "muted", text: "Choose the picture:" }), imagePicker, mapBox);
    }
    const status = el("p", { class: "muted", text: "Switching the filter off and recomputing the predictions..." });
    const ablationBox = el("div", { id: "ablation-result", class: "chart" });
    filterPanel.append(status, ablationBox);
    try {
      const result = await api(`${base}/ablation?layer=${layer}&filter=${index}`);
      if (chosenFilter.layer !== layer || chosenFilter.index !== index) return; // another click won
      status.replaceChildren(el("b", { text: `With ${layer} filter ${index} switched off: ` }), ablationSentence(result));
      status.className = "ablation-text";
      for (const k of net.querySelectorAll(".kernel")) k.classList.toggle("ablated", k.dataset.layer === layer && Number(k.dataset.index) === index);
      if (result.measured.length) {
        // drawn here, next to the filter that was clicked
        const spikes = Boolean(result.predicted_before_spikes && result.predicted_after_spikes);
        ablationBox.replaceChildren(scatterPlot({
          x: result.measured,
          y: spikes ? result.predicted_before_spikes : result.predicted_before,
          y2: spikes ? result.predicted_after_spikes : result.predicted_after,
          xLabel: `measured (${SPIKE_UNITS})`,
          yLabel: spikes ? `predicted (${SPIKE_UNITS})` : `model output (${MODEL_UNITS})`,
          title: `predictions with and without ${layer} filter ${index}`, identity: spikes }),
        el("p", { class: "legend" }, "blue: full model · red: with ",
          el("b", { text: `${layer} filter ${index}` }), " switched off"));
      }
    } catch (error) { status.replaceChildren(); showError(status, error); }
  }

  net.append(el("div", { class: "netgrid" }, networkLayers(network, showFilter), el("div", { class: "side" }, filterPanel)));
}

// The network's layers, one row of kernels each, and the readout map; onPick(layer, index)
// is called when a kernel is clicked (null: a drawing only).
function networkLayers(network, onPick) {
  const layersBox = el("div", { class: "layers" });
  for (const layer of network.layers) {
    const row = el("div", { class: "kernels" });
    layer.kernels.forEach((kernel, i) => {
      const canvas = el("canvas", { class: "kernel", title: `${layer.name} filter ${i}`, "data-layer": layer.name, "data-index": i,
        role: onPick ? "button" : "img", tabindex: onPick ? "0" : null, "aria-label": `${layer.name} filter ${i}` });
      drawKernel(canvas, kernel, layer.kernel_range, kernel[0][0].length === 3);
      if (onPick) {
        canvas.addEventListener("click", () => onPick(layer.name, i));
        canvas.addEventListener("keydown", (e) => { if (e.key === "Enter") onPick(layer.name, i); });
      }
      row.append(canvas);
    });
    const what = layer.kind === "conv" ? "colour filters looking at the picture"
      : "filters combining the maps of the layer before (each square: its 5×5 spatial pattern)";
    layersBox.append(el("div", { class: "layer" },
      el("div", { class: "layer-head", text: `${layer.name}: ${layer.num_filters} ${what}` }), row));
  }
  const readout = el("canvas", { class: "mapimg", id: "readout-map" });
  drawHeat(readout, network.readout_map);
  layersBox.append(el("div", { class: "layer" },
    el("div", { class: "layer-head", text: "readout: where in the picture the neuron looks" }),
    el("p", { class: "legend", text: "The last step adds up the layer-4 maps, weighted by position. Bright spots " +
      "are the parts of the picture that matter most (its \"receptive field\")." }), readout));
  return layersBox;
}

// ---------- Made model page (serve --made RUN) ----------
async function madePage(params, sid, idx) {
  const id = `${sid}/${idx}`;
  const base = `/api/made/${sid}/${idx}`;
  const d = await api(base);
  const s = d.scores;
  const p = d.provenance;
  const page = [];
  page.push(el("p", {}, el("a", { href: "#/?dataset=" + encodeURIComponent(d.dataset), text: "← all neurons of " + d.dataset })));
  page.push(el("h1", { text: `Neuron ${id}: a made model` }));
  page.push(el("p", { class: "lead" },
    `Neuron ${d.neuron} of session ${d.session_id} (dataset ${d.dataset}` + (d.area ? `, area ${d.area}` : "") +
    (d.animal ? `, animal ${d.animal}` : "") + "). This compact model was made with v4compact make-compact: " +
    "a big \"teacher\" network predicted the neuron on many pictures, and a small \"student\" network learned " +
    `to copy it, then lost the filters it did not need. It has ${d.total_filters} filters in 5 layers ` +
    `(${d.num_filters.join(" · ")}).`));

  const scores = el("section", { class: "panel", id: "made-scores" });
  scores.append(el("h2", { text: "How well does it predict the real neuron?" }));
  scores.append(explain("Raw R² on the held-out half of the session: pictures neither the teacher's mapping nor the " +
    "student saw. 0 = not at all, 1 = perfectly (trial-to-trial noise keeps it below 1). " +
    "\"Fidelity\" is how closely the student copies its teacher (raw R² on held-out training pictures)."));
  const rows = [["this made model (held-out raw R²)", s.heldout_raw_r2_step2],
    ["its teacher (held-out raw R²)", s.teacher_heldout_raw_r2],
    ["the released compact model of this neuron (held-out raw R²)", s.released_heldout_raw_r2],
    ["fidelity to the teacher after distillation", s.teacher_r2_distilled],
    ["fidelity to the teacher after pruning and retraining", s.teacher_r2_step2]];
  scores.append(el("table", { class: "facts", id: "made-score-table" },
    rows.filter(([, v]) => v !== undefined).map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: fmt(v, 3) })))));
  const scatterBox = el("div", { id: "scatter", class: "chart" });
  const points = d.heldout_points;
  if (points) {
    scores.append(el("p", { id: "made-heldout" }, el("b", { text: `raw R² = ${fmt(d.heldout_r2, 3)}` }),
      el("span", { class: "muted", text: ` on the ${points.measured.length} held-out pictures of this server's copy of ` +
        `session ${d.session_id}, computed now. Each dot is one picture: left-right the measured response ` +
        `(${d.session_units}), up-down the model's output (${d.model_units}).` })));
    scatterBox.append(scatterPlot({ x: points.measured, y: points.predicted,
      xLabel: `measured (${d.session_units})`, yLabel: `model output (${d.model_units})`, title: "measured vs predicted" }));
  } else if (d.note) {
    scores.append(el("p", { class: "note", id: "made-note", text: d.note }));
  }
  scores.append(scatterBox);
  page.push(scores);

  const prov = el("section", { class: "panel", id: "provenance" });
  prov.append(el("h2", { text: "Where this model came from" }));
  const facts = [["teacher", p.teacher], ["recipe (preset)", p.preset], ["passes over the pictures", p.passes],
    ["student width before pruning", p.student_width ? p.student_width.join(" · ") : null],
    ["corpus pictures (trained on + held out)", p.corpus_images ? Number(p.corpus_images).toLocaleString() : null],
    ["picture files", p.corpus_shards && p.corpus_shards.length ? p.corpus_shards.join(", ") : null],
    ["filters before pruning", d.filters_before.length ? d.filters_before.join(" · ") : null],
    ["filters after pruning", d.num_filters.join(" · ")],
    ["released model's filters", d.released_filters ? d.released_filters.join(" · ") : null],
    ["pruning", p.pruning && p.pruning.threshold !== null ? `threshold ${p.pruning.threshold}, ${p.pruning.convention}` : null],
    ["parameters", d.num_parameters], ["outputs", p.units], ["run folder", p.run]];
  prov.append(el("table", { class: "facts", id: "provenance-table" },
    facts.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) =>
      el("tr", {}, el("th", { text: k }), el("td", { text: String(v) })))));
  page.push(prov);

  const net = el("section", { class: "panel network", id: "network" });
  net.append(el("h2", { text: "Inside the model, layer by layer" }));
  net.append(explain("Each small square is one filter: a tiny pattern detector. In layer 0 the squares show the " +
    "colours each filter looks for; in later layers red means \"add\" and blue means \"subtract\"."));
  page.push(net);
  view.replaceChildren(...page);
  try {
    const network = await api(`${base}/network`);
    net.append(el("p", { class: "muted", text: `${network.num_parameters.toLocaleString()} numbers (parameters) in total.` }),
      networkLayers(network, null));
  } catch (error) { showError(net, error); }
}

// ---------- Synthesize ----------
async function synthesizePage(params) {
  const options = await api("/api/synthesis/options");
  const neurons = el("input", { id: "syn-neurons", type: "text", value: params.get("neurons") || "201025/10", size: "24" });
  const objective = el("select", { id: "syn-objective" }, options.objectives.map((o) => el("option", { value: o, text: {
    maximize: "make the neuron fire a lot", minimize: "make the neuron fire very little", filter: "excite one filter" }[o] || o })));
  const preset = el("select", { id: "syn-preset" }, options.presets.map((p) => el("option", { value: p, text: p })));
  const seed = el("input", { id: "syn-seed", type: "number", min: "0", value: params.get("seed") || "0" });
  const steps = el("input", { id: "syn-steps", type: "number", min: "1", max: String(options.max_steps), value: params.get("steps") || String(options.default_steps) });
  const layer = el("select", { id: "syn-layer" }, ["layer0", "layer1", "layer2", "layer3", "layer4"].map((l) => el("option", { value: l, text: l })));
  const filterIndex = el("input", { id: "syn-filter", type: "number", min: "0", value: "0" });
  const filterFields = el("span", { class: "hidden" }, el("label", {}, "Layer", layer), el("label", {}, "Filter", filterIndex));
  objective.value = params.get("objective") || "maximize";
  preset.value = params.get("preset") || (options.presets.includes("upstream") ? "upstream" : options.presets[0]);
  const start = el("button", { id: "syn-start", type: "submit", text: "Start" });
  const stop = el("button", { id: "syn-stop", type: "button", class: "secondary", text: "Stop", disabled: true });
  const bar = el("div", { class: "progress" }, el("div", { class: "fill" }));
  const status = el("p", { id: "syn-status", class: "muted", text: "Ready." });
  const live = el("div", { class: "row live", id: "syn-live" });
  const results = el("div", { id: "syn-results" });
  const syncFields = () => filterFields.classList.toggle("hidden", objective.value !== "filter");
  objective.addEventListener("input", syncFields); syncFields();
  let running = null; // the AbortController of the stream being read
  const close = () => { if (running) { running.abort(); running = null; } start.disabled = false; stop.disabled = true; };
  cleanup.push(close);
  stop.addEventListener("click", () => { close(); status.textContent = "Stopped."; });

  const form = el("form", { class: "stack", id: "syn-form" },
    el("label", {}, "Neuron(s), e.g. 201025/10 or 201025/10,190923/0", neurons),
    el("label", {}, "Goal", objective), filterFields,
    el("label", {}, "Recipe (preset)", preset),
    el("label", {}, "Seed (starting noise)", seed),
    el("label", {}, "Steps", steps),
    el("div", {}, start, " ", stop));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    close();
    const query = new URLSearchParams({ neurons: neurons.value.replace(/\s/g, ""), objective: objective.value,
      preset: preset.value, seed: seed.value, steps: steps.value });
    if (objective.value === "filter") { query.set("layer", layer.value); query.set("filter_index", filterIndex.value); }
    history.replaceState(null, "", "#/synthesize?" + query);
    results.replaceChildren(); live.replaceChildren();
    bar.firstChild.style.width = "0%";
    status.textContent = "Waiting for a free worker...";
    start.disabled = true; stop.disabled = false;
    const controller = new AbortController();
    running = controller;
    const problem = (message) => {
      status.replaceChildren(el("span", { class: "error", role: "alert", text: `Problem: ${message}` }));
    };
    const handlers = {
      start() { status.textContent = "Started: the picture changes as the computer improves it."; },
      progress(data) {
        bar.firstChild.style.width = `${Math.round((100 * data.step) / data.steps)}%`;
        status.textContent = `Step ${data.step} of ${data.steps} · model output ` +
          `${data.scores.map((v) => fmt(v, 1)).join(", ")} (${MODEL_UNITS})`;
        live.replaceChildren(...data.images.map((src, i) => el("img", { src, alt: `image ${i} at step ${data.step}` })));
      },
      done(data) {
        bar.firstChild.style.width = "100%";
        status.textContent = "Done! The best picture found is shown below.";
        const provenance = JSON.stringify(data.provenance, null, 2);
        const provUrl = URL.createObjectURL(new Blob([provenance], { type: "application/json" }));
        cleanup.push(() => URL.revokeObjectURL(provUrl));
        results.replaceChildren(el("h2", { text: "Result" }),
          el("p", { class: "muted", text: `"output" is the model's output for the finished picture, in ${MODEL_UNITS}: ` +
            `the bigger it is, the more the neuron would fire. ${Z_UNITS_EXPLAINED}` }),
          el("div", { class: "strip" }, data.images.map((item) => el("div", { class: "thumb" },
            el("img", { class: "big result-image", src: item.png, alt: `result for ${item.neuron_id}` }),
            el("span", { text: `${item.neuron_id} · output ${fmt(item.response, 2)} z` }),
            el("a", { href: item.png, download: `v4_${item.neuron_id.replace("/", "_")}_seed${seed.value}.png`, text: "download PNG" })))),
          el("p", {}, el("a", { href: provUrl, download: "provenance.json", text: "download provenance (JSON)" }),
            el("span", { class: "muted", text: " — the settings that made this picture" +
              (SITE ? " (computed in this browser)." : "; they are also stored inside the PNG.") })),
          el("details", {}, el("summary", { text: "show provenance" }), el("pre", { class: "output", text: provenance })));
      },
      error(data) { problem(data.detail || "the computation failed"); },
    };
    // fetch, not EventSource: a request refused before the stream starts (unknown neuron,
    // bad settings) is a JSON error whose message EventSource could not read
    (SITE ? SITE.stream : readEvents)("/api/synthesize/stream?" + query, handlers, controller.signal)
      .then((ended) => { if (!ended && running === controller) problem("the connection was lost before the end"); })
      .catch((error) => { if (error.name !== "AbortError") problem(error.message); })
      .finally(() => { if (running === controller) { running = null; start.disabled = false; stop.disabled = true; } });
  });

  view.replaceChildren(
    el("h1", { text: "Invent a picture for a neuron" }),
    el("p", { class: "lead", text: "The computer starts from random noise and changes the pixels, step by step, " +
      "so that the model of the neuron responds more and more strongly. Watch the picture appear!" }),
    explain("Tips: more steps give cleaner pictures but take longer (100 steps take a few seconds). A different seed " +
      "starts from different noise and often gives a different picture. Leaving this page stops the computation."),
    el("section", { class: "panel" }, form, el("div", { class: "row" }, bar), status, live),
    results);
}

// ---------- Try your image ----------
async function tryPage() {
  const results = el("div", { id: "try-results" });
  const status = el("p", { class: "muted", id: "try-status" });
  async function send(blob, name = "image.png") {
    const form = new FormData();
    form.append("image", blob, name);
    status.textContent = "Asking every neuron's model...";
    results.replaceChildren();
    try {
      const data = await api("/api/predict", { method: "POST", body: form });
      status.textContent = "";
      showResponses(data);
    } catch (error) { status.replaceChildren(); showError(status, error); }
  }
  function showResponses(data) {
    // z-scores only when every neuron has one: never two scales in one chart
    const useZ = data.responses.every((r) => r.zscore != null);
    const values = data.responses.map((r) => (useZ ? r.zscore : r.response));
    const max = Math.max(...values.map(Math.abs)) || 1;
    const bars = el("div", { class: "bars", id: "response-bars" }, data.responses.map((r, i) => {
      const v = values[i];
      const fill = el("div", { class: "fill" + (v < 0 ? " neg" : "") });
      fill.style.left = v < 0 ? `${50 + (50 * v) / max}%` : "50%";
      fill.style.width = `${(50 * Math.abs(v)) / max}%`;
      return el("a", { class: "bar", href: `#/neuron/${r.neuron_id}`, title: `open neuron ${r.neuron_id}` },
        el("span", { text: r.neuron_id }), el("div", { class: "track" }, fill), el("span", { text: fmt(v, 2) }));
    }));
    const missing = 219 - data.responses.length;
    results.append(el("h2", { text: "How each neuron would respond" }),
      el("div", { class: "row" },
        el("div", { class: "thumb" }, el("img", { class: "big", src: data.image_png, alt: "what the models saw" }),
          el("span", { text: "what the models see (112×112)" })),
        el("div", { class: "grow" }, explain(data.note + ". Click a bar to open that neuron."),
          missing > 0 ? el("p", { class: "note", id: "try-missing", text: `${data.responses.length} neurons answered; ` +
            `${missing} ${missing === 1 ? "is" : "are"} switched off because ${missing === 1 ? "its model file is" : "their model files are"} ` +
            "missing or damaged (the gallery marks them)." }) : null,
          bars)));
  }

  const fileInput = el("input", { id: "try-file", type: "file", accept: "image/*" });
  fileInput.addEventListener("change", () => { if (fileInput.files[0]) send(fileInput.files[0], fileInput.files[0].name); });

  // pick: a few photos of a recording session
  const picks = el("div", { class: "strip", id: "try-picks" });
  for (const index of [0, 7, 42, 99, 150, 333, 512, 777]) {
    const src = u(`/api/sessions/201025/images/${index}.png`);
    const img = el("img", { src, alt: `photo ${index}`, title: "use this photo" });
    img.addEventListener("click", async () => send(await (await fetch(src)).blob(), `photo${index}.png`));
    picks.append(el("div", { class: "thumb selectable" }, img));
  }

  // draw
  const canvas = el("canvas", { class: "draw", id: "try-canvas", width: "224", height: "224" });
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#808080"; ctx.fillRect(0, 0, 224, 224); };
  clear();
  const color = el("input", { type: "color", value: "#ffffff", id: "try-color" });
  let drawing = false;
  const pos = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * 224 / r.width, (e.clientY - r.top) * 224 / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(...pos(e)); });
  canvas.addEventListener("pointermove", (e) => { if (!drawing) return; ctx.lineWidth = 14; ctx.lineCap = "round"; ctx.strokeStyle = color.value; ctx.lineTo(...pos(e)); ctx.stroke(); });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  const useDrawing = el("button", { type: "button", id: "try-draw-send", text: "Use my drawing" });
  useDrawing.addEventListener("click", () => canvas.toBlob((blob) => send(blob, "drawing.png"), "image/png"));
  const clearButton = el("button", { type: "button", class: "secondary", text: "Clear" });
  clearButton.addEventListener("click", clear);

  // webcam
  const video = el("video", { class: "cam", autoplay: true, playsinline: true, muted: true });
  const camStatus = el("span", { class: "muted" });
  const camStart = el("button", { type: "button", class: "secondary", text: "Turn on camera" });
  const camSnap = el("button", { type: "button", text: "Take picture", disabled: true });
  let stream = null;
  camStart.addEventListener("click", async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { camStatus.textContent = "This browser has no camera access here."; return; }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
      video.srcObject = stream; camSnap.disabled = false; camStatus.textContent = "";
    } catch (error) { camStatus.textContent = `Camera not available: ${error.message}`; }
  });
  camSnap.addEventListener("click", () => {
    const snap = document.createElement("canvas");
    snap.width = video.videoWidth; snap.height = video.videoHeight;
    snap.getContext("2d").drawImage(video, 0, 0);
    snap.toBlob((blob) => send(blob, "webcam.png"), "image/png");
  });
  cleanup.push(() => { if (stream) for (const t of stream.getTracks()) t.stop(); });

  const panes = {
    upload: el("div", {}, el("p", { text: "Choose a photo from your computer (JPEG, PNG, GIF, WebP or BMP, up to 10 MB)." }), fileInput),
    pick: el("div", {}, el("p", { text: "Or click one of the photos the monkeys saw:" }), picks),
    draw: el("div", {}, el("p", { text: "Or draw something (try stripes, curves or blobs of colour):" }), canvas,
      el("p", {}, "colour ", color, " ", useDrawing, " ", clearButton)),
    webcam: el("div", {}, el("p", { text: SITE ? "Or use your camera (the picture stays in this browser: the models run here)."
      : "Or use your camera (the picture stays on this computer's server)." }), video,
      el("p", {}, camStart, " ", camSnap, " ", camStatus)),
  };
  const tabs = el("div", { class: "tabs" });
  for (const [name, pane] of Object.entries(panes)) {
    const b = el("button", { type: "button", "data-tab": name, text: name[0].toUpperCase() + name.slice(1) });
    b.addEventListener("click", () => {
      for (const [n, p] of Object.entries(panes)) p.classList.toggle("hidden", n !== name);
      for (const other of tabs.children) other.classList.toggle("on", other === b);
    });
    tabs.append(b);
  }
  view.replaceChildren(
    el("h1", { text: "Try your own picture" }),
    el("p", { class: "lead", text: "Show any picture to the models of all 219 neurons at once and see which neurons " +
      "would fire the most. The picture is cut to a square and shrunk to 112×112 pixels, the size the monkeys saw." }),
    el("section", { class: "panel" }, tabs, ...Object.values(panes), status), results);
  tabs.firstChild.click();
}

// ---------- Sessions ----------
async function sessionsPage() {
  const sessions = await api("/api/sessions");
  const body = el("tbody", {}, sessions.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `#/session/${s.session_id}`, text: s.session_id })),
    el("td", { text: s.animal }), el("td", { text: s.split }), el("td", { text: s.num_neurons }),
    el("td", { text: s.num_images }), el("td", { text: s.median_repeats }),
    el("td", { text: s.has_models ? "yes" : "" }), el("td", { text: s.has_images ? "yes" : "" }),
    el("td", { text: s.image_types }))));
  view.replaceChildren(
    el("h1", { text: "Recording sessions" }),
    el("p", { class: "lead", text: "In each session a monkey looked at hundreds of pictures while tiny electrodes " +
      "counted the spikes of dozens of V4 neurons. Each picture was shown several times (repeats) and the spikes " +
      "were averaged." }),
    explain("\"Split\" says what the session was used for: training the big model, checking it (validation) or " +
      "testing it. The 219 neurons with compact models come from the four test sessions marked \"models\"."),
    el("div", { class: "table-scroll" }, el("table", { class: "meta", id: "sessions-table" },
      el("thead", {}, el("tr", {}, ["session", "monkey", "split", "neurons", "images", "repeats", "models", "images here", "image types"]
        .map((h) => el("th", { text: h })))), body)));
}

async function sessionPage(params, sid) {
  const s = await api(`/api/sessions/${sid}`);
  const items = [
    el("p", {}, el("a", { href: "#/sessions", text: "← all sessions" })),
    el("h1", { text: `Session ${s.session_id}` }),
    el("p", { class: "lead", text: `Monkey ${s.animal}, ${s.split} session: ${s.num_neurons} neurons, ${s.num_images} images, ` +
      `each shown about ${s.median_repeats} times. Images: ${s.image_types}.` }),
    explain("Top: some of the pictures shown. Bottom: a heat map with one row per neuron and one column per " +
      "picture; bright means the neuron fired a lot for that picture (each row is scaled to its own range)."),
  ];
  if (s.figure_url) items.push(el("img", { class: "figure", src: s.figure_url, alt: `figure of session ${s.session_id}` }));
  if (s.has_models) items.push(el("p", {}, el("a", { href: `#/?session=${s.session_id}`, text: "See this session's neurons" })));
  view.replaceChildren(...items);
}

// ---------- Tutorials ----------
function inline(text) {
  // **bold**, *italic*, `code`, [link](https://...) -> DOM nodes
  const out = [];
  const re = /(\*\*[^*]+\*\*|`[^`]+`|\[[^\]]+\]\((https?:\/\/[^)\s]+)\)|\*[^*]+\*)/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const t = m[0];
    if (t.startsWith("**")) out.push(el("b", { text: t.slice(2, -2) }));
    else if (t.startsWith("`")) out.push(el("code", { text: t.slice(1, -1) }));
    else if (t.startsWith("[")) out.push(el("a", { href: m[2], target: "_blank", rel: "noopener", text: t.slice(1, t.indexOf("]")) }));
    else out.push(el("i", { text: t.slice(1, -1) }));
    last = m.index + t.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
function markdown(source) {
  const root = el("div", { class: "nb-md" });
  // badges ([![alt](image)](link)) become plain links; other images their alt text (the
  // page's security policy only shows images from this server)
  source = source.replace(/\[!\[([^\]]*)\]\([^)]*\)\]\((https?:\/\/[^)\s]+)\)/g, "[$1]($2)")
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, "*$1*");
  const lines = source.split("\n");
  let list = null, para = [], code = null;
  const flush = () => { if (para.length) { root.append(el("p", {}, inline(para.join(" ")))); para = []; } };
  for (const line of lines) {
    if (code !== null) {
      if (line.startsWith("```")) { root.append(el("pre", {}, el("code", { text: code.join("\n") }))); code = null; }
      else code.push(line);
      continue;
    }
    if (line.startsWith("```")) { flush(); list = null; code = []; continue; }
    const h = line.match(/^(#{1,4})\s+(.*)/);
    const li = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)/);
    if (h) { flush(); list = null; root.append(el(`h${Math.min(4, h[1].length + 1)}`, {}, inline(h[2]))); }
    else if (li) { flush(); if (!list) { list = el("ul"); root.append(list); } list.append(el("li", {}, inline(li[1]))); }
    else if (list && /^\s+\S/.test(line) && list.lastChild) { list.lastChild.append(" ", ...inline(line.trim())); }
    else if (!line.trim()) { flush(); list = null; }
    else { list = null; para.push(line.trim()); }
  }
  flush();
  if (code !== null) root.append(el("pre", {}, el("code", { text: code.join("\n") })));
  return root;
}

async function tutorialsPage() {
  const books = await api("/api/tutorials");
  show(
    el("h1", { text: "Tutorials" }),
    el("p", { class: "lead", text: "Step-by-step notebooks: load the data, predict a neuron, invent pictures, explore " +
      "filters and run your own experiment. Read them here, with the outputs and figures of a real run, or run the " +
      "code yourself." }),
    books.length && !books[0].colab_url ? el("p", { class: "note", id: "no-colab", text: books[0].repository_note }) : null,
    books.length ? el("ul", { id: "tutorial-list" }, books.map((b) => el("li", {},
      el("a", { href: `#/tutorial/${b.name}`, text: b.title }),
      b.colab_url ? [" · ", el("a", { href: b.colab_url, target: "_blank", rel: "noopener", text: "open in Colab" })] : null)))
      : el("p", { class: "note", text: "No tutorial notebooks were found in this installation (they live in the notebooks/ folder of the source code)." }));
}

async function tutorialPage(params, name) {
  const book = await api(`/api/tutorials/${name}`);
  const items = [el("p", {}, el("a", { href: "#/tutorials", text: "← all tutorials" })),
    // without a public copy the notebook's own first cell says so
    book.colab_url || SITE
      ? el("p", {}, book.colab_url ? el("a", { class: "button", href: book.colab_url, target: "_blank", rel: "noopener", text: "Open in Colab" }) : null,
        " ", SITE ? el("a", { class: "button secondary", id: "tutorial-download", href: SITE.notebookUrl(name), download: `${name}.ipynb`, text: "Download the notebook" }) : null)
      : null].filter((n) => n !== null);
  for (const cell of book.cells) {
    if (cell.kind === "markdown") items.push(el("div", { class: "nb-cell" }, markdown(cell.source)));
    else {
      const box = el("div", { class: "nb-cell" }, el("pre", {}, el("code", { text: cell.source })));
      for (const out of cell.outputs) {
        if (out.kind === "image") box.append(el("div", { class: "nb-out" }, el("img", { src: `data:image/png;base64,${out.png}`, alt: "cell output" })));
        else box.append(el("pre", { class: "output", text: out.text }));
      }
      items.push(box);
    }
  }
  view.replaceChildren(...items);
}

// ---------- About ----------
async function aboutPage() {
  show(
    el("h1", { text: "About this explorer" }),
    el("p", { class: "lead", text: "Your brain's visual system works in stages. Area V4 sits in the middle: its neurons " +
      "respond to shapes, curves, colours and textures. Scientists recorded V4 neurons in macaque monkeys while the " +
      "monkeys looked at thousands of pictures." }),
    el("p", { text: "A big deep network was first trained to predict those recordings. Then, for each of 219 neurons, a " +
      "tiny network was trained to copy the big one and was pruned until only the filters that matter were left. " +
      "Small networks can be read like a diagram: you can see every filter, switch filters off, and invent pictures " +
      "the neuron should love." }),
    el("p", {}, "The research: Cowley, Stan, Pillow & Smith, ",
      el("i", { text: "Compact deep neural network models of visual cortex" }), " (2023)."),
    SITE ? el("p", { id: "about-static", text: "This copy of the explorer is a static website: the models run in your " +
      "own browser (TensorFlow.js), so the pictures you give them never leave this computer. " +
      "Add ?backend=cpu, ?backend=wasm or ?backend=webgl to the address (before the #) to choose how they compute." }) : null);
}
