// The static site's backend (v4compact site export): answers the explorer page's API calls
// (app.js, the same page code the server sends) from the exported files under data/, and
// computes in this browser what the server computes in Python: the 219 predictions for a
// photo, activation maps, filter ablations with their held-out R², and synthesis. The models
// run with TensorFlow.js (v4runtime.js); preprocessing and synthesis are in v4synth.js.
// Every URL is relative to the page, so the site works under any sub-path (GitHub Pages).
"use strict";

(function () {
  // The runtime (TensorFlow.js and the models, 1 MB) loads when a page first computes
  // something, not with the gallery: scripts next to this one, in this order.
  const HERE = document.currentScript ? document.currentScript.src : document.baseURI;
  const RUNTIME = ["vendor/tf-core.min.js", "vendor/tf-backend-cpu.min.js", "vendor/tf-backend-webgl.min.js",
    "vendor/tf-backend-wasm.min.js", "v4runtime.js", "v4synth.js"];
  let V4 = null;
  function loadScript(name) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(name, HERE).href;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${name}: the export is incomplete; export the site again`));
      document.head.append(script);
    });
  }
  // Files of one API route: /api/neurons/201025/10 -> data/neurons/201025/10 (+ .json); the
  // same rule as v4compact.web.siteexport.data_path (":" of user ids becomes "@").
  const fileName = (text) => String(text).replace(/:/g, "@"); // as siteexport.file_name
  const dataPath = (route, suffix = "") => "data/" + fileName(route.slice("/api/".length)) + suffix;

  class NotInExport extends Error {
    constructor(message, status = 404) { super(message); this.status = status; }
  }

  // Opened straight from disk, the browser refuses the page's requests for its own files
  // (Chromium: "Cross origin requests are only supported for ... http, https").
  const FROM_DISK = "this site must be served, not opened from disk: run 'python -m http.server' " +
    "in its folder and open http://127.0.0.1:8000/";

  async function getJson(url) {
    if (location.protocol === "file:") throw new NotInExport(FROM_DISK, 0);
    const response = await fetch(url);
    if (!response.ok) {
      throw new NotInExport(response.status === 404
        ? "not in this export: the site was exported without it (v4compact site export --neurons/--sessions chose a subset)"
        : `${response.status} ${response.statusText} for ${url}`, response.status);
    }
    return response.json();
  }
  const once = new Map();
  function cached(key, make) {
    if (!once.has(key)) once.set(key, make().catch((error) => { once.delete(key); throw error; }));
    return once.get(key);
  }

  // ---------- runtime, models, data ----------
  const site = () => cached("site", () => getJson("data/site.json"));
  // TensorFlow.js's own pick ("auto": WebGL where it starts), except a WebGL drawn in
  // software (no GPU: SwiftShader), 50-60x slower here than WebAssembly, which computes in
  // exact float32 with XNNPACK; ?backend=cpu|webgl|wasm in the page's address forces one.
  const ready = () => cached("runtime", async () => {
    for (const name of RUNTIME) await loadScript(name);
    V4 = window.V4;
    const asked = new URLSearchParams(location.search).get("backend");
    let backend = await V4.init(asked || "auto");
    if (!asked && V4.backendInfo().software) backend = await V4.init("wasm");
    return backend;
  });
  const modelIndex = () => cached("models", async () => {
    const rows = await getJson("data/models/index.json");
    return new Map(rows.map((r) => [r.neuron_id, r.manifest]));
  });
  async function model(neuronId) {
    const index = await modelIndex();
    if (!index.has(neuronId)) throw new NotInExport(`neuron ${neuronId} is not in this export`);
    await ready();
    return cached(`model:${neuronId}`, () => V4.loadModel(index.get(neuronId)));
  }
  const heldout = (sessionId) => cached(`heldout:${sessionId}`, async () => {
    const stem = fileName(sessionId);
    const meta = await getJson(`data/heldout/${stem}.json`);
    const response = await fetch(`data/heldout/${stem}.bin`);
    if (!response.ok) throw new NotInExport(`the held-out photos of session ${sessionId} are not in this export`);
    return { ...meta, pixels: new Uint8Array(await response.arrayBuffer()) };
  });
  async function predictInBatches(m, pixels, count, batch = 50) {
    const size = pixels.length / count;
    const out = new Float32Array(count);
    for (let start = 0; start < count; start += batch) {
      const stop = Math.min(count, start + batch);
      out.set(await m.predict(pixels.subarray(start * size, stop * size)), start);
      await new Promise((resolve) => setTimeout(resolve, 0)); // keep the page responsive
    }
    return out;
  }

  // Pixels of an image URL (a session photo or a preferred image: 112x112 PNGs).
  async function imagePixels(url) {
    const blob = await (await fetch(url)).blob();
    const bitmap = await createImageBitmap(blob);
    return V4.preprocess(bitmap);
  }
  function pngUrl(pixels, size = 112) {
    const canvas = document.createElement("canvas");
    canvas.width = size; canvas.height = size;
    const rgba = new ImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      rgba.data[4 * i] = pixels[3 * i]; rgba.data[4 * i + 1] = pixels[3 * i + 1];
      rgba.data[4 * i + 2] = pixels[3 * i + 2]; rgba.data[4 * i + 3] = 255;
    }
    canvas.getContext("2d").putImageData(rgba, 0, 0);
    return canvas.toDataURL("image/png");
  }

  // Raw R²: the squared Pearson correlation (v4compact.metrics.raw_r2), NaN images ignored.
  function rawR2(measured, predicted) {
    let n = 0, mx = 0, my = 0;
    for (let i = 0; i < measured.length; i++) if (Number.isFinite(measured[i])) { n++; mx += measured[i]; my += predicted[i]; }
    mx /= n; my /= n;
    let sxy = 0, sxx = 0, syy = 0;
    for (let i = 0; i < measured.length; i++) {
      if (!Number.isFinite(measured[i])) continue;
      const dx = measured[i] - mx, dy = predicted[i] - my;
      sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
    }
    const r = sxy / Math.sqrt(sxx * syy);
    return r * r;
  }
  const round5 = (v) => Math.round(v * 1e5) / 1e5;

  // ---------- computed routes ----------
  // POST /api/predict: every exported neuron's response to a photo, as the server answers.
  async function predict(file) {
    await ready();
    let bitmap;
    try { bitmap = await createImageBitmap(file); } catch (error) {
      throw new NotInExport("this file is not an image the browser can read; choose a JPEG, PNG, GIF, WebP or BMP", 415);
    }
    const pixels = V4.preprocess(bitmap);
    const index = await modelIndex();
    const release = [...index.entries()].filter(([id]) => !id.includes(":"));
    const population = await cached("population", () => V4.loadPopulation(release.map(([, url]) => url)));
    const values = await population.predict(pixels);
    const stats = await cached("stats", () => getJson("data/population_stats.json").catch(() => null));
    const responses = population.neuronIds.map((id, i) => {
      const s = stats && stats[id];
      return { neuron_id: id, session_id: Number(id.split("/")[0]), response: values[i],
        zscore: s && s[1] > 0 ? (values[i] - s[0]) / s[1] : null };
    });
    const useZ = responses.every((r) => r.zscore !== null);
    responses.sort(useZ ? (a, b) => b.zscore - a.zscore : (a, b) => b.response - a.response);
    const note = useZ
      ? "Bars compare each neuron's response with its usual response to natural photos (0 = typical, 2 = unusually strong, below 0 = weaker than usual)"
      : "Bars show each model's output in z-scored units (0 is about the neuron's average response to natural photos, 1 is one standard deviation above it), not spikes";
    return { image_png: pngUrl(pixels), responses, note: `${note}; computed in this browser` };
  }

  // GET /api/neurons/{s}/{n}/ablation: the filter switched off, scored on the held-out half.
  async function ablation(neuronId, layer, filter) {
    const [sid, idx] = neuronId.split("/");
    const detail = await getJson(dataPath(`/api/neurons/${sid}/${idx}`, ".json"));
    const full = await model(neuronId);
    const silenced = full.withFilterOff(layer, filter);
    try {
      const data = await heldout(sid);
      const measuredAll = data.responses[idx];
      const count = data.shape[0];
      // the full model's predictions are the same for every filter: computed once a neuron
      const before = await cached(`heldout-predictions:${neuronId}`, () => predictInBatches(full, data.pixels, count));
      const after = await predictInBatches(silenced, data.pixels, count);
      const position = new Map(data.image_indices.map((image, i) => [image, i]));
      const points = detail.heldout_points || { image_indices: [], measured: [] };
      const pick = (values) => points.image_indices.map((image) => round5(values[position.get(image)]));
      const cal = detail.calibration;
      const spikes = (values) => (cal ? values.map((v) => round5(cal.slope * v + cal.intercept)) : null);
      const shownBefore = pick(before), shownAfter = pick(after);
      return {
        neuron_id: neuronId, layer, filter,
        metric: `raw R², held-out half (${count} photos), computed in this browser`,
        before: rawR2(measuredAll, before), after: rawR2(measuredAll, after),
        predicted_before: shownBefore, predicted_after: shownAfter,
        predicted_before_spikes: spikes(shownBefore), predicted_after_spikes: spikes(shownAfter),
        measured: points.measured,
        // over the scatter's photos, as the server (all held-out photos when none are drawn)
        mean_abs_change: shownBefore.length
          ? shownAfter.reduce((s, v, i) => s + Math.abs(v - shownBefore[i]), 0) / shownBefore.length
          : before.reduce((s, v, i) => s + Math.abs(after[i] - v), 0) / count,
      };
    } catch (error) {
      if (!(error instanceof NotInExport)) throw error;
      // no held-out photos exported: the mean output on the preferred images, as the server
      const starts = (detail.preferred || []).map((p) => p.url);
      if (!starts.length) throw new NotInExport(`neuron ${neuronId} has no photos or preferred images in this export`);
      const pixels = new Uint8Array(starts.length * 112 * 112 * 3);
      for (let i = 0; i < starts.length; i++) pixels.set(await imagePixels(starts[i]), i * 112 * 112 * 3);
      const before = Array.from(await full.predict(pixels), round5);
      const after = Array.from(await silenced.predict(pixels), round5);
      const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
      return { neuron_id: neuronId, layer, filter, metric: "mean model output on the preferred images (z-scored units)",
        before: mean(before), after: mean(after), predicted_before: before, predicted_after: after,
        predicted_before_spikes: null, predicted_after_spikes: null, measured: [],
        mean_abs_change: after.reduce((s, v, i) => s + Math.abs(v - before[i]), 0) / after.length };
    } finally {
      silenced.dispose();
    }
  }

  // An activation map on a canvas (the server sends a PNG): the filter's map on a picture.
  function activation(neuronId, layer, filter, imageUrl, drawHeat) {
    const canvas = document.createElement("canvas");
    canvas.className = "mapimg";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `activation of ${layer} filter ${filter}`);
    (async () => {
      const m = await model(neuronId);
      const pixels = await imagePixels(imageUrl);
      const tf = window.tf;
      const maps = tf.tidy(() => m.activations(tf.tensor4d(Float32Array.from(pixels), [1, 112, 112, 3]), layer));
      const [, h, w, c] = maps.shape;
      const data = await maps.data();
      maps.dispose();
      const rows = [];
      for (let y = 0; y < h; y++) {
        const row = [];
        for (let x = 0; x < w; x++) row.push(data[(y * w + x) * c + filter]);
        rows.push(row);
      }
      drawHeat(canvas, rows);
    })().catch((error) => { canvas.replaceWith(Object.assign(document.createElement("p"), { className: "error", textContent: `Problem: ${error.message}` })); });
    return canvas;
  }

  // GET /api/synthesize/stream: the same events (start, progress, done, error), computed here.
  async function stream(url, handlers, signal) {
    const query = new URLSearchParams(url.split("?")[1] || "");
    const ids = (query.get("neurons") || "").split(",").map((s) => s.trim()).filter(Boolean);
    const objective = query.get("objective") || "maximize";
    const preset = query.get("preset") || "upstream";
    const seed = Number(query.get("seed") || 0), steps = Number(query.get("steps") || 100);
    const options = await getJson("data/synthesis/options.json");
    const presets = await cached("presets", () => getJson("data/synthesis/presets.json"));
    const fail = (detail) => { handlers.error({ detail, status: 400 }); return true; };
    if (!ids.length || ids.length > 4) return fail(`choose 1 to 4 neurons, got ${ids.length}`);
    if (new Set(ids).size !== ids.length) return fail("a neuron is listed twice; list each neuron once");
    if (!options.objectives.includes(objective)) return fail(`unknown objective '${objective}'`);
    if (objective === "filter" && ids.length !== 1) return fail("the 'filter' objective works on one neuron's network at a time");
    if (!presets[preset]) return fail(`the preset '${preset}' runs only on the server; choose one of ${Object.keys(presets).join(", ")}`);
    if (!(steps >= 1 && steps <= options.max_steps)) return fail(`steps must be between 1 and ${options.max_steps}, got ${steps}`);
    if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 31)) return fail(`seed must be between 0 and ${2 ** 31 - 1}, got ${seed}`);
    const index = await modelIndex();
    for (const id of ids) if (!index.has(id)) return fail(`unknown neuron ${id}: not one of this site's neurons`);
    handlers.start({ steps, neurons: ids });
    await ready(); // the runtime defines window.tf
    const tf = window.tf;
    const layer = query.get("layer") || "layer4", filterIndex = Number(query.get("filter_index") || 0);
    const images = [];
    const current = ids.map(() => null);
    const scores = ids.map(() => 0);
    const every = Math.max(1, Math.floor(steps / 25));
    for (let k = 0; k < ids.length; k++) {
      const m = await model(ids[k]);
      const fn = objective === "filter"
        ? (x) => { // the filter's mean activation (a one-hot product: every backend has its gradient)
          const maps = m.activations(x, layer);
          const [, h, w, c] = maps.shape;
          if (filterIndex >= c) throw new Error(`channel ${filterIndex} is out of range for layer '${layer}' with ${c} channels; use 0..${c - 1}`);
          const onehot = tf.reshape(tf.oneHot(tf.tensor1d([filterIndex], "int32"), c), [1, 1, 1, c]);
          return tf.div(tf.sum(tf.mul(maps, onehot)), h * w);
        }
        : objective === "minimize" ? (x) => tf.neg(tf.sum(m.apply(x))) : (x) => tf.sum(m.apply(x));
      const result = await V4.synthesize({ objective: fn, preset, presetTable: presets, steps, seed: seed + k, signal, every,
        onStep(step, value, pixels) {
          scores[k] = objective === "minimize" ? -value : value;
          if (pixels) current[k] = pngUrl(Uint8Array.from(pixels, (v) => Math.max(0, Math.min(255, Math.round(v)))));
          handlers.progress({ step, steps, scores: scores.slice(0, k + 1), images: current.filter(Boolean) });
        } });
      if (result.stopped) return true;
      const png = pngUrl(result.pixels);
      current[k] = png;
      const response = objective === "filter" ? result.value : (await m.predict(result.pixels))[0];
      images.push({ neuron_id: ids[k], response, png });
    }
    const info = await site();
    handlers.done({ images, provenance: { neurons: ids, objective_choice: objective, preset: presets[preset],
      steps, seed, computed_in: `this browser (TensorFlow.js, ${window.tf.getBackend()} backend)`,
      seed_note: "the start noise comes from the page's own seeded generator, not numpy's: the same seed gives the same picture in this site, not the same as the Python synthesis",
      v4compact: info.v4compact } });
    return true;
  }

  window.V4_SITE = {
    mode: "static",
    url(path) { return path.startsWith("/api/") ? dataPath(path) : path; },
    notebookUrl(name) { return `data/tutorials/${encodeURIComponent(name)}.ipynb`; },
    backend: ready,
    async api(path, options = {}) {
      const [route, search = ""] = path.split("?");
      const params = new URLSearchParams(search);
      if (route === "/api/build") return { enabled: false, running: false, ready: 0, total: 0 };
      if (route === "/api/predict") return predict(options.body.get("image"));
      if (route === "/api/synthesis/options") {
        const [opts, presets] = await Promise.all([getJson(dataPath(route, ".json")),
          cached("presets", () => getJson("data/synthesis/presets.json"))]);
        return { ...opts, presets: opts.presets.filter((p) => presets[p]) };
      }
      const abl = route.match(/^\/api\/neurons\/(\d{6})\/(\d{1,4})\/ablation$/);
      if (abl) return ablation(`${abl[1]}/${abl[2]}`, params.get("layer"), Number(params.get("filter")));
      return getJson(dataPath(route, ".json"));
    },
    activation,
    stream,
  };
})();
