"""In-browser speed of the compact models (static/v4runtime.js, TensorFlow.js) per backend.

Writes the 219 released models with ``write_browser_model`` into a temporary folder beside the
vendored TensorFlow.js files and the runtime, serves it with ``python -m http.server`` on
127.0.0.1 and drives headless Debian chromium (as the browser tests do). Per backend, on a
fresh page: start-up, loading one model, one model's forward pass on one image (with the read
back), ``--steps`` gradient steps of one model (forward + backward + update, read back each
step), loading all 219 models and their 219 predictions for one photo (first call, which
compiles / warms up, and a second one). Run from the project root:

    .venv/bin/python benchmarks/bench_browser.py [--neuron 201025/10] [--steps 100]
        [--backends cpu,wasm,webgl]

Needs ``make vendor`` (TensorFlow.js in src/v4compact/web/static/vendor/) and chromium.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_JS = """async ([backend, url, urls, steps, photo]) => {
  const ms = () => performance.now();
  const r = {};
  let t = ms();
  r.backend = await V4.init(backend);
  r.init = ms() - t;
  r.info = V4.backendInfo();
  const loads = [];
  for (let i = 0; i < 5; i++) {
    t = ms();
    const m = await V4.loadModel(url);
    loads.push(ms() - t);
    m.dispose();
  }
  r.load = loads.sort((a, b) => a - b)[2];
  const model = await V4.loadModel(url);
  const pixels = Uint8Array.from(photo);
  await model.predict(pixels);
  await model.predict(pixels);
  const times = [];
  for (let i = 0; i < 7; i++) {
    t = ms();
    await model.predict(pixels);
    times.push(ms() - t);
  }
  r.forward = times.sort((a, b) => a - b)[3];
  let x = tf.tensor4d(Float32Array.from(pixels), [1, 112, 112, 3]);
  const grad = tf.grad((z) => model.apply(z));
  t = ms();
  for (let i = 0; i < steps; i++) {
    const next = tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(grad(x), 1e3)), 0, 255));
    x.dispose();
    x = next;
    await x.data();
  }
  r.gradSteps = ms() - t;
  x.dispose();
  model.dispose();
  t = ms();
  const population = await V4.loadPopulation(urls);
  r.populationLoad = ms() - t;
  t = ms();
  await population.predict(pixels);
  r.populationFirst = ms() - t;
  if (r.populationFirst < 20000) {
    t = ms();
    await population.predict(pixels);
    r.populationAgain = ms() - t;
  }
  population.dispose();
  r.leaked = tf.memory().numTensors;
  return r;
}"""


def _write_site(folder: Path) -> list[str]:
    """Harness, runtime, vendor files and the 219 models; returns the manifest URLs."""
    from v4compact.models.formats.loaders import load_compact_model
    from v4compact.models.zoo import model_neuron_ids
    from v4compact.web.browser_weights import write_browser_model
    from v4compact.web.siteexport import write_runtime_page

    write_runtime_page(folder, "v4runtime benchmark")
    urls = []
    for neuron_id in model_neuron_ids():
        session, neuron = neuron_id.split("/")
        write_browser_model(load_compact_model(int(session), int(neuron)),
                            folder / "models" / session, neuron)
        urls.append(f"models/{neuron_id}.json")
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neuron", default="201025/10", help="the one model timed alone")
    parser.add_argument("--steps", type=int, default=100, help="gradient steps timed")
    parser.add_argument("--backends", default="cpu,wasm,webgl")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from v4compact import load_session
    from v4compact.web.server import launch_chromium, serve_folder

    session = load_session(201025)
    _, heldout = session.heldout_split()
    photo = np.asarray(session.images[heldout[:1]], dtype=np.uint8).reshape(-1).tolist()
    with tempfile.TemporaryDirectory(prefix="v4-bench-browser-") as tmp:
        started = time.perf_counter()
        urls = _write_site(Path(tmp))
        written = time.perf_counter() - started
        with serve_folder(tmp) as origin, sync_playwright() as playwright:
            base = origin + "/"
            browser = launch_chromium(playwright)
            print(f"chromium {browser.version} headless, {os.cpu_count()} cores; "
                  f"TensorFlow.js 4.22.0; one model: {args.neuron}; weights of 219 models "
                  f"written in {written:.1f} s")
            rows = []
            for backend in args.backends.split(","):
                page = browser.new_page()
                page.goto(base + "index.html")
                rows.append(page.evaluate(BENCH_JS, [backend, f"models/{args.neuron}.json",
                                                     urls, args.steps, photo]))
                page.close()
            browser.close()
    print(f"\n| backend | float32 | start (ms) | load 1 model (ms) | forward, 1 image (ms) | "
          f"{args.steps} gradient steps (s) | load 219 models (s) | "
          "219 predictions, 1 photo: first / again (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        again = f"{r['populationAgain'] / 1e3:.2f}" if "populationAgain" in r else "-"
        print(f"| {r['backend']} | {'yes' if r['info']['float32'] else 'no (float16)'} | "
              f"{r['init']:.0f} | {r['load']:.1f} | {r['forward']:.1f} | "
              f"{r['gradSteps'] / 1e3:.2f} | {r['populationLoad'] / 1e3:.2f} | "
              f"{r['populationFirst'] / 1e3:.2f} / {again} |")
    for r in rows:
        if r["info"]["renderer"]:
            print(f"\n{r['backend']} renderer: {r['info']['renderer']}"
                  f"{' (software)' if r['info']['software'] else ''}")
        assert r["leaked"] == 0, f"{r['backend']}: {r['leaked']} tensors left"


if __name__ == "__main__":
    main()
