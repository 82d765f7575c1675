// v4runtime.js: the compact models of V4 neurons, run in the page with TensorFlow.js.
//
// Needs the vendored TensorFlow.js scripts loaded first (vendor/tf-core.min.js, then any of
// tf-backend-cpu / -webgl / -wasm .min.js), which define the global `tf`. Defines window.V4:
//   V4.init(backend = "auto")                -> Promise<string>  backend in use
//   V4.backendInfo()                         -> {backend, float32, renderer, software}
//   V4.loadModel(manifestUrl)                -> Promise<CompactModel>
//   V4.loadPopulation(manifestUrls, onProgress) -> Promise<Population>
// Models are written by v4compact.web.browser_weights.write_browser_model (<stem>.json +
// <stem>.bin, batch norm folded); every architectural fact (image size, channel means,
// strides, "same" pads, stage names) is read from the manifest. A model takes raw pixels
// 0-255, NHWC float32, and re-centres them itself, exactly as the Python package does.
// Only tf.* functions are used, never chained tensor methods (x.sum()): tf-core.min.js does
// not register those.
// Network: only the manifest / weight URLs given, and (wasm backend) the vendor folder's
// .wasm files, located from this script's own URL so the site works under any sub-path.
(function () {
  "use strict";

  const V4 = (window.V4 = window.V4 || {});
  const FORMAT = "v4compact-browser-model";
  const VERSION = 1;
  // this script's folder + "vendor/": where the .wasm binaries live (the page may be served
  // under any sub-path, so never a root-relative URL)
  const SCRIPT_URL = document.currentScript ? document.currentScript.src : document.baseURI;
  const VENDOR_URL = new URL("vendor/", SCRIPT_URL).href;
  const PREDICT_BATCH = 16; // images per forward pass in predict()
  const LOAD_CONCURRENCY = 8; // weight files fetched at once by loadPopulation

  function requireTf() {
    if (!window.tf) {
      throw new Error("TensorFlow.js is not loaded: include vendor/tf-core.min.js and a backend " +
                      "script before v4runtime.js");
    }
    return window.tf;
  }

  // The wasm backend fetches its binary when it starts: tell it where, before any start
  // (here, when this script runs, and again in init if the wasm script came later). Only
  // the single-threaded binaries are vendored (threads need a cross-origin-isolated page).
  let wasmConfigured = false;
  function configureWasm() {
    const tf = window.tf;
    if (wasmConfigured || !tf || !tf.wasm) return;
    wasmConfigured = true;
    try {
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
      tf.wasm.setWasmPaths(VENDOR_URL);
    } catch (err) { // started by someone else already: leave it as it is
      console.warn(`v4runtime: wasm paths not set (${err.message})`);
    }
  }
  configureWasm();

  /**
   * Start TensorFlow.js on a backend.
   * @param {string} backend "auto" (the backend in use, else what TF.js picks: webgl when
   *   it starts, else wasm if its script is loaded, else cpu), "cpu" (exact float32, plain
   *   JavaScript, slowest), "webgl" (GPU; float16 on devices without float32 render targets)
   *   or "wasm" (exact float32, XNNPACK; single-threaded).
   * @returns {Promise<string>} the backend in use.
   */
  V4.init = async function init(backend = "auto") {
    const tf = requireTf();
    configureWasm();
    if (backend === "auto") {
      await tf.ready();
      return tf.getBackend();
    }
    if (!["cpu", "webgl", "wasm"].includes(backend)) {
      throw new Error(`unknown backend "${backend}"; choose auto, cpu, webgl or wasm`);
    }
    if (!tf.findBackendFactory(backend)) {
      throw new Error(`the ${backend} backend is not loaded: include ` +
                      `vendor/tf-backend-${backend}.min.js`);
    }
    if (!(await tf.setBackend(backend))) {
      throw new Error(`the ${backend} backend could not start in this browser`);
    }
    await tf.ready();
    return tf.getBackend();
  };

  /**
   * What the current backend computes with.
   * @returns {{backend: string, float32: boolean, renderer: string|null, software: boolean}}
   *   float32: false where WebGL stores tensors as float16 (devices without float32 render
   *   targets); renderer: the WebGL renderer (webgl only); software: WebGL drawn by the CPU
   *   (SwiftShader, llvmpipe), where wasm is far faster.
   */
  V4.backendInfo = function backendInfo() {
    const tf = requireTf();
    const backend = tf.getBackend();
    const webgl = backend === "webgl";
    const float32 = !webgl || tf.env().getBool("WEBGL_RENDER_FLOAT32_ENABLED");
    const renderer = webgl ? webglRenderer() : null;
    const software = Boolean(renderer && /swiftshader|llvmpipe|softpipe|software/i.test(renderer));
    return {backend, float32, renderer, software};
  };

  let rendererName; // cached: a throwaway context per call would exhaust the browser's
  function webglRenderer() {
    if (rendererName !== undefined) return rendererName;
    rendererName = null;
    try {
      const gl = document.createElement("canvas").getContext("webgl2");
      if (gl) {
        const debug = gl.getExtension("WEBGL_debug_renderer_info");
        rendererName = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL
          : gl.RENDERER));
        const lose = gl.getExtension("WEBGL_lose_context");
        if (lose) lose.loseContext();
      }
    } catch (err) { // no WebGL: leave the renderer unknown
      rendererName = null;
    }
    return rendererName;
  }

  // The input gradient of a "valid" convolution of stride s whose input was padded by
  // (top, left), from forward ops only: dx[i] = sum_o dy[o] w[i - s*o], i.e. dy spread by the
  // stride, padded by k-1 on both sides, correlated with the kernel flipped in both spatial
  // axes (and, for a full convolution, its in/out channels swapped: `flipped` comes ready),
  // then the padding cut off. inShape: [N, H, W, C] of the unpadded input.
  function convInputGradient(dy, flipped, stride, top, left, inShape, depthwise) {
    const tf = requireTf();
    const [n, h, w, c] = dy.shape;
    const k = flipped.shape[0];
    let g = dy;
    if (stride > 1) { // rows, then columns (rank 4 at most: WebGL's pad fails on rank 6)
      const rows = tf.pad(tf.reshape(dy, [n, h, 1, w * c]),
                          [[0, 0], [0, 0], [0, stride - 1], [0, 0]]);
      const cols = tf.pad(tf.reshape(rows, [n * h * stride, w, 1, c]),
                          [[0, 0], [0, 0], [0, stride - 1], [0, 0]]);
      g = tf.reshape(cols, [n, h * stride, w * stride, c]);
    }
    g = tf.pad(g, [[0, 0], [k - 1, k - 1], [k - 1, k - 1], [0, 0]]);
    const full = depthwise ? tf.depthwiseConv2d(g, flipped, 1, "valid")
      : tf.conv2d(g, flipped, 1, "valid");
    return tf.slice(full, [0, top, left, 0], [n, inShape[1], inShape[2], full.shape[3]]);
  }

  async function fetchOk(url, what) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${what} ${url}: HTTP ${response.status}`);
    return response;
  }

  async function readModelFiles(manifestUrl) {
    const url = new URL(manifestUrl, document.baseURI).href;
    const manifest = await (await fetchOk(url, "model manifest")).json();
    if (manifest.format !== FORMAT || manifest.version !== VERSION) {
      throw new Error(`${url} is not a ${FORMAT} manifest of version ${VERSION} ` +
                      `(format ${manifest.format}, version ${manifest.version})`);
    }
    const binUrl = new URL(manifest.weights, url).href;
    const buffer = await (await fetchOk(binUrl, "model weights")).arrayBuffer();
    if (buffer.byteLength !== manifest.byte_length) {
      throw new Error(`${binUrl} has ${buffer.byteLength} bytes, the manifest says ` +
                      `${manifest.byte_length}; write the model again`);
    }
    return {manifest, buffer};
  }

  function makeWeights(manifest, buffer) {
    const tf = requireTf();
    const weights = {};
    for (const t of manifest.tensors) {
      // a view of the file's little-endian floats (every browser is little-endian)
      const values = new Float32Array(buffer, t.byte_offset, t.byte_length / 4);
      weights[t.name] = tf.tensor(values, t.shape, "float32");
    }
    return weights;
  }

  /** One neuron's compact model. Create with V4.loadModel. */
  class CompactModel {
    constructor(manifest, weights) {
      const tf = requireTf();
      this.manifest = manifest;
      this.neuronId = manifest.neuron_id;
      this.modelId = manifest.model_id;
      this.numFilters = manifest.num_filters.slice();
      this.imageSize = manifest.image_size;
      this.stageNames = manifest.stage_names.slice();
      this.layerNames = manifest.layers.map((layer) => layer.name);
      this.outputUnits = manifest.output_units;
      this.weights = weights;
      this.mean = tf.tensor1d(manifest.image_mean, "float32");
      this.backward = null; // see backwardWeights()
      this.disposed = false;
    }

    checkInput(x) {
      const size = this.imageSize;
      if (this.disposed) throw new Error(`model ${this.neuronId} was disposed`);
      if (x.rank !== 4 || x.shape[1] !== size || x.shape[2] !== size || x.shape[3] !== 3) {
        throw new Error(`images must be a [N, ${size}, ${size}, 3] tensor of pixels 0-255, ` +
                        `got [${x.shape}]`);
      }
    }

    // Raw pixels -> {value: the map of stage `stop` (a stage name) or the outputs (stop
    // null), acts: the post-activation map of every layer run to its end}.
    forward(x, stop) {
      const tf = requireTf();
      const w = this.weights;
      const acts = [];
      let y = tf.sub(x.dtype === "float32" ? x : tf.cast(x, "float32"), this.mean);
      for (const layer of this.manifest.layers) {
        const name = layer.name;
        const activation = layer.relu ? "relu" : "linear";
        y = tf.pad(y, [[0, 0], layer.pads[0], layer.pads[1], [0, 0]]);
        if (layer.kind === "conv") {
          y = tf.fused.conv2d({x: y, filter: w[`${name}.kernel`], strides: layer.stride,
                               pad: "valid", bias: w[`${name}.bias`], activation});
        } else {
          y = tf.depthwiseConv2d(y, w[`${name}.depthwise`], layer.stride, "valid");
          if (stop === `${name}.depthwise`) return {value: y, acts};
          y = tf.fused.conv2d({x: y, filter: w[`${name}.pointwise`], strides: 1, pad: "valid",
                               bias: w[`${name}.bias`], activation});
        }
        acts.push(y);
        if (stop === name) return {value: y, acts};
      }
      const n = y.shape[0];
      const out = tf.fused.matMul({a: tf.reshape(y, [n, -1]), b: w["readout.weight"],
                                   bias: w["readout.bias"]});
      return {value: tf.reshape(out, [n]), acts};
    }

    // Kernels of the backward pass (flipped, channels swapped), made once per model.
    backwardWeights() {
      const tf = requireTf();
      if (!this.backward) {
        this.backward = tf.tidy(() => {
          const out = {};
          for (const layer of this.manifest.layers) {
            const name = layer.name;
            if (layer.kind === "conv") {
              const kernel = this.weights[`${name}.kernel`];
              out[name] = tf.reverse(tf.transpose(kernel, [0, 1, 3, 2]), [0, 1]);
            } else {
              out[`${name}.depthwise`] = tf.reverse(this.weights[`${name}.depthwise`], [0, 1]);
              out[`${name}.pointwise`] = tf.transpose(this.weights[`${name}.pointwise`],
                                                      [0, 1, 3, 2]);
            }
          }
          return out;
        });
        // kept: made inside the caller's tidy (e.g. tf.grad's), but owned by the model
        Object.values(this.backward).forEach((tensor) => tf.keep(tensor));
      }
      return this.backward;
    }

    // d<dy, forward(x, stop).value>/dx, from the layers' post-activation maps `acts`.
    backwardPass(dy, acts, stop, inShape) {
      const tf = requireTf();
      const layers = this.manifest.layers;
      const back = this.backwardWeights();
      const shapeOf = (k) => (k < 0 ? inShape : acts[k].shape);
      const intoInput = (g, k) => { // gradient at layer k's depthwise / conv output -> input
        const layer = layers[k];
        const depthwise = layer.kind !== "conv";
        return convInputGradient(g, back[depthwise ? `${layer.name}.depthwise` : layer.name],
                                 layer.stride, layer.pads[0][0], layer.pads[1][0],
                                 shapeOf(k - 1), depthwise);
      };
      let last = acts.length - 1;
      let g;
      if (stop === null) {
        const readout = this.weights["readout.weight"];
        g = tf.reshape(tf.matMul(tf.reshape(dy, [-1, 1]), readout, false, true),
                       acts[last].shape);
      } else if (stop.endsWith(".depthwise")) { // acts holds the layers before it
        g = intoInput(dy, last + 1);
      } else {
        g = dy;
      }
      for (let k = last; k >= 0; k -= 1) {
        const layer = layers[k];
        if (layer.relu) g = tf.mul(g, tf.step(acts[k])); // ReLU passes where its output > 0
        if (layer.kind !== "conv") g = tf.conv2d(g, back[`${layer.name}.pointwise`], 1, "valid");
        g = intoInput(g, k);
      }
      return g;
    }

    // forward() as one differentiable op whose gradient is backwardPass(): TF.js's core
    // bundle registers no gradients, and its wasm backend has no depthwise backprop kernel,
    // so the model brings its own backward pass, made of forward ops every backend has.
    run(x, stop) {
      const tf = requireTf();
      const op = tf.customGrad((input, save) => {
        const {value, acts} = this.forward(input, stop);
        save(acts);
        return {value, gradFunc: (dy, saved) => this.backwardPass(dy, saved, stop, input.shape)};
      });
      return op(x);
    }

    /**
     * Outputs for images; differentiable (tf.grad gives input gradients).
     * @param {tf.Tensor4D} x [N, 112, 112, 3] float32 pixels 0-255, not re-centred.
     * @returns {tf.Tensor1D} [N] outputs in z-scored units.
     */
    apply(x) {
      this.checkInput(x);
      return requireTf().tidy(() => this.run(x, null));
    }

    /**
     * Feature maps of one stage.
     * @param {tf.Tensor4D} x as for apply.
     * @param {string} stage one of stageNames: "layer0", "layer1.depthwise", "layer1", ...
     * @returns {tf.Tensor4D} [N, H, W, C]: the post-ReLU map of "layerK", or the depthwise
     *   output inside layerK's separable convolution.
     */
    activations(x, stage) {
      if (!this.stageNames.includes(stage)) {
        throw new Error(`unknown stage "${stage}"; choose one of ${this.stageNames.join(", ")}`);
      }
      this.checkInput(x);
      return requireTf().tidy(() => this.run(x, stage));
    }

    /**
     * Outputs for images, read back.
     * @param {Uint8Array|Uint8ClampedArray|Float32Array|tf.Tensor4D} pixels N*112*112*3
     *   channels-last RGB pixels 0-255 (or a tensor as for apply).
     * @returns {Promise<Float32Array>} [N] outputs in z-scored units.
     */
    async predict(pixels) {
      return runBatched(pixels, this.imageSize, 1, (x) => this.apply(x));
    }

    /**
     * A new model with one filter switched off: its post-ReLU map is zero, as
     * v4compact.web.ablation.silenced_copy does (here by zeroing the filter's output weights
     * and bias, which gives exactly zero after the ReLU). This model is unchanged.
     * @param {string} layer "layer0" ... "layer4".
     * @param {number} index the filter (output channel) of that layer.
     * @returns {CompactModel} dispose it when done.
     */
    withFilterOff(layer, index) {
      const tf = requireTf();
      const k = this.layerNames.indexOf(layer);
      if (k < 0) {
        throw new Error(`unknown layer "${layer}"; choose one of ${this.layerNames.join(", ")}`);
      }
      const count = this.numFilters[k];
      if (!Number.isInteger(index) || index < 0 || index >= count) {
        throw new Error(`${layer} has filters 0 to ${count - 1}, not ${index}; pick one of those`);
      }
      const kernel = k === 0 ? `${layer}.kernel` : `${layer}.pointwise`;
      const weights = {};
      for (const [name, tensor] of Object.entries(this.weights)) {
        if (name === kernel || name === `${layer}.bias`) {
          weights[name] = tf.tidy(() => {
            // mask on the last (output-channel) axis
            const mask = tf.sub(1, tf.reshape(tf.oneHot([index], count), [count]));
            return tf.mul(tensor, mask);
          });
        } else {
          weights[name] = tf.clone(tensor);
        }
      }
      return new CompactModel(this.manifest, weights);
    }

    /** Free the model's tensors. */
    dispose() {
      if (this.disposed) return;
      for (const tensor of Object.values(this.weights)) tensor.dispose();
      if (this.backward) for (const tensor of Object.values(this.backward)) tensor.dispose();
      this.mean.dispose();
      this.disposed = true;
    }
  }

  // pixels (typed array or tensor) -> Float32Array [N * width] from fn(x) -> [N] or [N, width]
  async function runBatched(pixels, size, width, fn) {
    const tf = requireTf();
    const perImage = size * size * 3;
    let images;
    let owned = false;
    if (pixels instanceof tf.Tensor) {
      images = pixels;
    } else {
      if (!pixels || pixels.length % perImage !== 0 || pixels.length === 0) {
        throw new Error(`pixels must hold N * ${size} * ${size} * 3 values (RGB 0-255), ` +
                        `got ${pixels ? pixels.length : pixels}`);
      }
      const n = pixels.length / perImage;
      images = tf.tensor4d(pixels instanceof Float32Array ? pixels : Float32Array.from(pixels),
                           [n, size, size, 3], "float32");
      owned = true;
    }
    try {
      const n = images.shape[0];
      const out = new Float32Array(n * width);
      for (let start = 0; start < n; start += PREDICT_BATCH) {
        const count = Math.min(PREDICT_BATCH, n - start);
        const result = tf.tidy(() => fn(tf.slice(images, [start, 0, 0, 0], [count, -1, -1, -1])));
        out.set(await result.data(), start * width);
        result.dispose();
      }
      return out;
    } finally {
      if (owned) images.dispose();
    }
  }

  /**
   * Load one compact model.
   * @param {string} manifestUrl URL of <stem>.json (relative URLs resolve against the page).
   * @returns {Promise<CompactModel>} with neuronId, numFilters, apply, predict, activations,
   *   withFilterOff, dispose.
   */
  V4.loadModel = async function loadModel(manifestUrl) {
    requireTf();
    const {manifest, buffer} = await readModelFiles(manifestUrl);
    return new CompactModel(manifest, makeWeights(manifest, buffer));
  };

  /**
   * Load many compact models (e.g. all 219) to predict one photo with all of them.
   * @param {string[]} manifestUrls manifest URLs, in output order.
   * @param {(loaded: number, total: number) => void} [onProgress] called after each model.
   * @returns {Promise<{neuronIds: string[], models: CompactModel[],
   *   predict: (pixels) => Promise<Float32Array>, dispose: () => void}>}
   *   predict takes pixels as CompactModel.predict does and returns [N * numModels] outputs,
   *   image-major (out[i * numModels + m]), in z-scored units.
   */
  V4.loadPopulation = async function loadPopulation(manifestUrls, onProgress) {
    requireTf();
    if (!manifestUrls || !manifestUrls.length) {
      throw new Error("loadPopulation needs at least one manifest URL");
    }
    const models = new Array(manifestUrls.length);
    let next = 0;
    let loaded = 0;
    let failure = null;
    async function worker() {
      while (next < manifestUrls.length && !failure) {
        const index = next++;
        try {
          models[index] = await V4.loadModel(manifestUrls[index]);
        } catch (err) {
          failure = failure || err;
          return;
        }
        loaded += 1;
        if (onProgress) onProgress(loaded, manifestUrls.length);
      }
    }
    await Promise.all(Array.from({length: Math.min(LOAD_CONCURRENCY, manifestUrls.length)},
                                 worker));
    if (failure) { // no half-loaded population: free what did load
      for (const model of models) if (model) model.dispose();
      throw failure;
    }
    const size = models[0].imageSize;
    return {
      neuronIds: models.map((m) => m.neuronId),
      models,
      async predict(pixels) {
        return runBatched(pixels, size, models.length, (x) => {
          const tf = requireTf();
          // one model at a time, its intermediate maps freed before the next runs
          const outputs = models.map((model) => model.apply(x));
          const stacked = tf.stack(outputs, 1);
          outputs.forEach((t) => t.dispose());
          return stacked;
        });
      },
      dispose() { models.forEach((m) => m.dispose()); },
    };
  };
})();
