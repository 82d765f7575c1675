// v4synth.js: the model input and the preferred-stimulus synthesis of v4compact, in the browser.
//
// A plain script (no bundler, no network). It needs TensorFlow.js (the global `tf`) for
// V4.synthesize only; V4.preprocess is plain JavaScript. It adds to window.V4:
//
//   V4.preprocess(source) -> Uint8Array(112*112*3)
//   V4.preprocessPixels(rgba, width, height) -> Uint8Array(112*112*3)
//   V4.synthesize(options) -> Promise<result>
//   V4.synthesisOps: the building blocks (blur, transforms, PRNG), for tests and demos
//
// tf-core.min.js registers no gradients. The models bring their own (v4runtime.js); this
// script registers, for kernels that have none, the gradients of the glue an objective puts on
// a model's outputs (tf.add / sub / mul / div / neg / reshape / sum / mean / gather), and its
// own transforms and penalty are tf.customGrad ops.
//
// Preprocessing is the one image path of the Python package (v4compact.models.inputs):
// transparency composited on white with Pillow's rounding, centre crop to the largest
// centred square, resize to 112x112 with Pillow's bicubic filter in Pillow's own fixed-point
// arithmetic (so the pixels are Python's, not the browser's canvas smoothing, which differs
// between browsers). Synthesis is v4compact.synthesis.render for the pixel parameterisation
// with the normalised-gradient update (the "upstream" and "upstream_robust" presets).
"use strict";

(function () {
  const V4 = (window.V4 = window.V4 || {});

  /** Side of the square images the compact models take (v4compact.images.IMAGE_SIZE). */
  const SIZE = 112;

  // ---------------------------------------------------------------------------------------
  // Preprocessing
  // ---------------------------------------------------------------------------------------

  // Pillow's bicubic kernel (Resample.c bicubic_filter, a = -0.5) and its support.
  const BICUBIC_A = -0.5;
  const BICUBIC_SUPPORT = 2.0;
  // Pillow's fixed-point precision of the 8-bit resampling passes: 32 - 8 - 2 bits.
  const PRECISION_BITS = 22;
  const ONE = 2 ** PRECISION_BITS;

  function bicubic(x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * BICUBIC_A;
    return 0.0;
  }

  // Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis: output pixel i reads
  // input pixels bounds[2i] .. bounds[2i] + bounds[2i+1] - 1 with integer weights
  // weights[i*ksize ...] (2^22 = 1). When shrinking, the kernel widens by the reduction
  // factor (support = 2 * scale): that is Pillow's antialiasing.
  function coefficients(inSize, in0, in1, outSize) {
    const scale = (in1 - in0) / outSize;
    const filterscale = scale < 1.0 ? 1.0 : scale;
    const support = BICUBIC_SUPPORT * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const weights = new Int32Array(outSize * ksize);
    const k = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = in0 + (xx + 0.5) * scale;
      const ss = 1.0 / filterscale; // Pillow multiplies by the reciprocal: keep its rounding
      let ww = 0.0;
      let xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      let xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      for (let x = 0; x < xmax; x++) {
        const w = bicubic((x + xmin - center + 0.5) * ss);
        k[x] = w;
        ww += w;
      }
      for (let x = 0; x < xmax; x++) {
        const w = ww !== 0.0 ? k[x] / ww : k[x];
        weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { bounds, weights, ksize };
  }

  // Pillow's clip8: the fixed-point sum back to 0..255 (floor, then clamp). The sums are
  // exact integers in float64 (|sum| < 2^31), as in Pillow's int arithmetic.
  function clip8(sum) {
    const v = Math.floor(sum / ONE);
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  // One 8-bit pass of Pillow's resampling along x (horizontal) or y (vertical) of an RGB
  // image (3 bytes a pixel): output line i of the pass reads input lines offset + i
  // (horizontal) or output column i reads the coefficients' input range (vertical).
  function resampleHorizontal(src, width, rows, offset, coeffs, outWidth) {
    const { bounds, weights, ksize } = coeffs;
    const out = new Uint8Array(rows * outWidth * 3);
    for (let yy = 0; yy < rows; yy++) {
      const row = (yy + offset) * width * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], k0 = xx * ksize;
        let s0 = ONE / 2, s1 = ONE / 2, s2 = ONE / 2;
        for (let x = 0; x < xmax; x++) {
          const k = weights[k0 + x], p = row + (x + xmin) * 3;
          s0 += src[p] * k;
          s1 += src[p + 1] * k;
          s2 += src[p + 2] * k;
        }
        const o = (yy * outWidth + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  function resampleVertical(src, width, bounds, coeffs, outHeight) {
    const { weights, ksize } = coeffs;
    const out = new Uint8Array(outHeight * width * 3);
    for (let yy = 0; yy < outHeight; yy++) {
      const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], k0 = yy * ksize;
      for (let xx = 0; xx < width; xx++) {
        let s0 = ONE / 2, s1 = ONE / 2, s2 = ONE / 2;
        for (let y = 0; y < ymax; y++) {
          const k = weights[k0 + y], p = ((y + ymin) * width + xx) * 3;
          s0 += src[p] * k;
          s1 += src[p + 1] * k;
          s2 += src[p + 2] * k;
        }
        const o = (yy * width + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  // Pillow's ImagingResampleInner (Pillow 13) for an 8-bit RGB image: two separable passes,
  // each rounded to 8 bits. The order matters for the rounding: Pillow 13 resamples
  // vertically first when the height shrinks by more than twice as many pixels as the
  // width; otherwise (and always before Pillow 13) horizontally first, over only the rows
  // the vertical pass reads. `box` = [left, top, right, bottom] in input pixels.
  function resampleBicubic(rgb, width, height, box, outWidth, outHeight) {
    const needHorizontal = outWidth !== width || box[0] !== 0 || box[2] !== outWidth;
    const needVertical = outHeight !== height || box[1] !== 0 || box[3] !== outHeight;
    const horizontalFirst = !(height - outHeight > 0 && height - outHeight > (width - outWidth) * 2);
    const vert = coefficients(height, box[1], box[3], outHeight);
    const horiz = needHorizontal ? coefficients(width, box[0], box[2], outWidth) : null;
    let out = rgb;
    if (horizontalFirst) {
      let vBounds = vert.bounds;
      if (needHorizontal) {
        const first = vert.bounds[0];
        const last = vert.bounds[outHeight * 2 - 2] + vert.bounds[outHeight * 2 - 1];
        vBounds = Int32Array.from(vert.bounds);
        for (let i = 0; i < outHeight; i++) vBounds[i * 2] -= first;
        out = resampleHorizontal(out, width, last - first, first, horiz, outWidth);
      }
      if (needVertical) out = resampleVertical(out, needHorizontal ? outWidth : width, vBounds, vert, outHeight);
    } else {
      if (needVertical) out = resampleVertical(out, width, vert.bounds, vert, outHeight);
      if (needHorizontal) out = resampleHorizontal(out, width, outHeight, 0, horiz, outWidth);
    }
    return out === rgb ? Uint8Array.from(rgb) : out;
  }

  /**
   * Raw RGBA pixels (what a 2D canvas's getImageData gives) -> the model input.
   *
   * Transparency is composited on white with Pillow's rounding
   * ((rgb * a + 255 * (255 - a) + 127) // 255, as v4compact.models.inputs); a 112x112 image
   * passes through; any other size is centre-cropped to its largest centred square (offsets
   * rounded down) and resized to 112x112 with Pillow's bicubic filter (antialiased when
   * shrinking), bit-exactly as ImageOps.fit(image, (112, 112), BICUBIC) with Pillow 13
   * (Pillow 10-12 run the two passes of tall photos in the other order, which moves some
   * pixels by up to about 3 grey levels).
   *
   * @param {Uint8Array|Uint8ClampedArray} rgba width*height*4 bytes, row-major, not
   *   premultiplied (ImageData.data).
   * @param {number} width image width in pixels.
   * @param {number} height image height in pixels.
   * @returns {Uint8Array} 112*112*3 RGB bytes, row-major HWC, pixels 0-255.
   */
  function preprocessPixels(rgba, width, height) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new Error(`image size must be positive integers, got ${width}x${height}`);
    }
    if (!rgba || rgba.length !== width * height * 4) {
      throw new Error(`expected ${width}x${height}x4 = ${width * height * 4} RGBA bytes, got ${rgba ? rgba.length : rgba}`);
    }
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      const a = rgba[i + 3];
      if (a === 255) {
        rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
      } else { // 65152 - a * (255 - c) == c * a + 255 * (255 - a) + 127
        rgb[j] = Math.floor((65152 - a * (255 - rgba[i])) / 255);
        rgb[j + 1] = Math.floor((65152 - a * (255 - rgba[i + 1])) / 255);
        rgb[j + 2] = Math.floor((65152 - a * (255 - rgba[i + 2])) / 255);
      }
    }
    if (width === SIZE && height === SIZE) return rgb;
    const side = Math.min(width, height);
    const left = Math.floor((width - side) / 2), top = Math.floor((height - side) / 2);
    return resampleBicubic(rgb, width, height, [left, top, left + side, top + side], SIZE, SIZE);
  }

  /**
   * An image the browser decoded -> the model input (see preprocessPixels).
   *
   * The source is drawn unscaled onto a 2D canvas and read back with getImageData, so the
   * browser only decodes; all resampling is preprocessPixels'. Browsers apply the EXIF
   * orientation when drawing (as Pillow's exif_transpose in Python). Semi-transparent
   * pixels survive the canvas's premultiplied storage exactly for the white composite:
   * getImageData un-premultiplies with rounding, and compositing that recovers the stored
   * premultiplied value. Colour management: browsers convert images with an ICC profile
   * to sRGB, Pillow ignores profiles; create the source with
   * createImageBitmap(blob, {colorSpaceConversion: "none"}) to read the stored values.
   *
   * @param {HTMLImageElement|ImageBitmap|HTMLCanvasElement|OffscreenCanvas|ImageData|HTMLVideoElement} source
   * @returns {Uint8Array} 112*112*3 RGB bytes, row-major HWC, pixels 0-255.
   */
  function preprocess(source) {
    if (!source) throw new Error("V4.preprocess needs an image, canvas, ImageBitmap or ImageData");
    if (typeof ImageData !== "undefined" && source instanceof ImageData) {
      return preprocessPixels(source.data, source.width, source.height);
    }
    if (typeof HTMLImageElement !== "undefined" && source instanceof HTMLImageElement && !source.complete) {
      throw new Error("the image has not finished loading; await image.decode() first");
    }
    const width = source.naturalWidth || source.videoWidth || source.width;
    const height = source.naturalHeight || source.videoHeight || source.height;
    if (!(width > 0 && height > 0)) throw new Error("the image has no pixels (not loaded, or broken)");
    const canvas = typeof OffscreenCanvas !== "undefined"
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement("canvas"), { width, height });
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, 0, 0);
    return preprocessPixels(ctx.getImageData(0, 0, width, height).data, width, height);
  }

  // ---------------------------------------------------------------------------------------
  // Synthesis building blocks (tf.js ops on [N, H, W, C] float32 pixels)
  // ---------------------------------------------------------------------------------------

  /**
   * mulberry32: a small seeded PRNG (32-bit state) giving floats in [0, 1). It is not
   * numpy's or torch's stream: a seed gives the same image on every run of this script in
   * the same browser and backend, not the image Python's synthesis gives for that seed.
   */
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function next() {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const randInt = (rng, low, high) => low + Math.floor(rng() * (high - low + 1)); // inclusive

  /** Normalised 1-D Gaussian, radius int(4 * sigma + 0.5) (regularizers.gaussian_kernel). */
  function gaussianKernel(sigma, truncate = 4.0) {
    if (!(sigma > 0)) throw new Error(`blur sigma must be > 0, got ${sigma}`);
    const radius = Math.trunc(truncate * sigma + 0.5);
    const k = new Float64Array(2 * radius + 1);
    let sum = 0;
    for (let i = -radius; i <= radius; i++) {
      k[i + radius] = Math.exp(-0.5 * (i / sigma) ** 2);
      sum += k[i + radius];
    }
    return Float32Array.from(k, (v) => v / sum);
  }

  // Index i of an axis of length n, mirror-reflected at the borders without repeating the
  // edge (-1 -> 1, n -> n - 2; torch "reflect", scipy "mirror"), folded once.
  function reflect(i, n) {
    i = Math.abs(i);
    return i >= n ? 2 * (n - 1) - i : i;
  }
  function reflectedRange(n, start, length) {
    return Int32Array.from({ length }, (_, i) => reflect(start + i, n));
  }

  /**
   * Separable Gaussian blur of [N, H, W, C] (each channel on its own) with mirror-reflected
   * borders, the boundary of regularizers.gaussian_blur: the padding is a gather, then two
   * depthwise convolutions. Used on images and gradients in the update (not differentiated).
   */
  function gaussianBlur(x, sigma) {
    const tf = window.tf;
    const kernel = gaussianKernel(sigma);
    const r = (kernel.length - 1) / 2;
    const [, h, w, c] = x.shape;
    if (r >= h || r >= w) {
      throw new Error(`a blur of sigma ${sigma} reaches ${r} pixels, more than an image side of ${Math.min(h, w)}`);
    }
    return tf.tidy(() => {
      const padded = tf.gather(tf.gather(x, reflectedRange(h, -r, h + 2 * r), 1),
        reflectedRange(w, -r, w + 2 * r), 2);
      const taps = new Float32Array(kernel.length * c);
      for (let t = 0; t < kernel.length; t++) taps.fill(kernel[t], t * c, (t + 1) * c);
      const vertical = tf.tensor4d(taps, [kernel.length, 1, c, 1]);
      const horizontal = tf.tensor4d(taps, [1, kernel.length, c, 1]);
      return tf.depthwiseConv2d(tf.depthwiseConv2d(padded, vertical, 1, "valid"), horizontal, 1, "valid");
    });
  }

  // A linear map of pixel positions of [N, H, W, C] images, the form of every transform here:
  // out[p] = sum_k weight[k][p] * in[index[k][p]] over the H * W positions p (unit: all
  // weights 1, as in a shift). Its gradient is the transposed map, of the same form, so the
  // transforms are differentiable with gathers only (tf-core.min.js registers no gradients;
  // every backend has gather).
  function transposeMap(map, size) {
    const degree = new Int32Array(size);
    map.index.forEach((index, k) => index.forEach((q, p) => { if (map.weight[k][p] !== 0) degree[q]++; }));
    let terms = 1;
    for (const d of degree) if (d > terms) terms = d;
    const index = Array.from({ length: terms }, () => new Int32Array(size));
    const weight = Array.from({ length: terms }, () => new Float32Array(size));
    const filled = new Int32Array(size);
    map.index.forEach((idx, k) => idx.forEach((q, p) => {
      const w = map.weight[k][p];
      if (w !== 0) { const t = filled[q]++; index[t][q] = p; weight[t][q] = w; }
    }));
    return { index, weight };
  }

  function applyMap(x, map) {
    const tf = window.tf;
    const [n, h, w, c] = x.shape;
    return tf.tidy(() => {
      const flat = tf.reshape(x, [n, h * w, c]);
      let out = null;
      map.index.forEach((index, k) => {
        let term = tf.gather(flat, tf.tensor1d(index, "int32"), 1);
        if (!map.unit) term = tf.mul(term, tf.tensor3d(map.weight[k], [1, h * w, 1]));
        out = out === null ? term : tf.add(out, term);
      });
      return tf.reshape(out, x.shape);
    });
  }

  const mapCache = new Map();
  function cachedMap(key, size, build) {
    if (!mapCache.has(key)) {
      if (mapCache.size >= 64) mapCache.clear();
      const forward = build();
      mapCache.set(key, { forward, backward: transposeMap(forward, size) });
    }
    return mapCache.get(key);
  }

  // The map as a differentiable op.
  function mapOp(x, maps) {
    const tf = window.tf;
    return tf.customGrad((input) => ({
      value: applyMap(input, maps.forward),
      gradFunc: (dy) => applyMap(dy, maps.backward),
    }))(x);
  }

  /**
   * Shift [N, H, W, C] by (dy, dx) whole pixels, reflected at the borders: out[i, j] =
   * in[i + dy, j + dx] (transforms.jitter after drawing dy, dx). Differentiable.
   */
  function shift(x, dy, dx) {
    const [, h, w] = x.shape;
    return mapOp(x, cachedMap(`shift:${h},${w},${dy},${dx}`, h * w, () => {
      const index = new Int32Array(h * w);
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) index[i * w + j] = reflect(i + dy, h) * w + reflect(j + dx, w);
      }
      return { index: [index], weight: [new Float32Array(h * w).fill(1)], unit: true };
    }));
  }

  // Source index of torch.grid_sample (align_corners=False, padding_mode="reflection"):
  // unnormalise, reflect about -0.5 and size - 0.5, clip to [0, size - 1].
  function sourceIndex(coord, size) {
    let v = ((coord + 1) * size - 1) / 2;
    const min = -0.5, span = size;
    v = Math.abs(v - min);
    const extra = v % span;
    const flips = Math.floor(v / span);
    v = flips % 2 === 0 ? extra + min : span - extra + min;
    return Math.min(size - 1, Math.max(v, 0));
  }

  /**
   * Rotate [N, H, W, C] by angleDeg degrees and zoom by scale about the centre, bilinear,
   * reflected at the borders: the _affine of transforms.py (affine_grid + grid_sample,
   * align_corners=False; its sampling grid computed here in float64, torch's in float32).
   * Differentiable.
   */
  function affine(x, angleDeg, scale) {
    const [, h, w] = x.shape;
    return mapOp(x, cachedMap(`affine:${h},${w},${angleDeg},${scale}`, h * w, () => {
      const theta = (angleDeg * Math.PI) / 180;
      const cos = Math.cos(theta) / scale, sin = Math.sin(theta) / scale;
      const index = [0, 1, 2, 3].map(() => new Int32Array(h * w));
      const weight = [0, 1, 2, 3].map(() => new Float32Array(h * w));
      for (let i = 0; i < h; i++) {
        const y = (2 * i + 1) / h - 1; // affine_grid's base grid, align_corners=False
        for (let j = 0; j < w; j++) {
          const x0 = (2 * j + 1) / w - 1;
          const ix = sourceIndex(cos * x0 - sin * y, w);
          const iy = sourceIndex(sin * x0 + cos * y, h);
          const left = Math.floor(ix), top = Math.floor(iy), fx = ix - left, fy = iy - top;
          const corners = [[top, left, (1 - fx) * (1 - fy)], [top, left + 1, fx * (1 - fy)],
            [top + 1, left, (1 - fx) * fy], [top + 1, left + 1, fx * fy]];
          const p = i * w + j;
          corners.forEach(([cy, cx, cw], k) => { // corners outside the image add nothing
            const inside = cy >= 0 && cy < h && cx >= 0 && cx < w;
            index[k][p] = inside ? cy * w + cx : 0;
            weight[k][p] = inside ? cw : 0;
          });
        }
      }
      return { index, weight };
    }));
  }

  /**
   * Mean absolute neighbour difference, vertical plus horizontal, of one image [1, H, W, C]
   * (regularizers.total_variation without the weight). Differentiable; the gradient of |d|
   * is sign(d), 0 at 0 as in torch (clipped pixels make equal neighbours).
   */
  function totalVariation(x) {
    const tf = window.tf;
    return tf.customGrad((v, save) => {
      const [n, h, w, c] = v.shape;
      const dh = tf.sub(tf.slice(v, [0, 1, 0, 0], [n, h - 1, w, c]), tf.slice(v, [0, 0, 0, 0], [n, h - 1, w, c]));
      const dw = tf.sub(tf.slice(v, [0, 0, 1, 0], [n, h, w - 1, c]), tf.slice(v, [0, 0, 0, 0], [n, h, w - 1, c]));
      save([dh, dw]);
      return {
        value: tf.add(tf.mean(tf.abs(dh)), tf.mean(tf.abs(dw))),
        gradFunc: (dy, [sh, sw]) => {
          const gh = tf.div(tf.sign(sh), sh.size), gw = tf.div(tf.sign(sw), sw.size);
          // d[i] = v[i + 1] - v[i]: v[i + 1] gets +g[i], v[i] gets -g[i]
          const g = tf.add(
            tf.sub(tf.pad(gh, [[0, 0], [1, 0], [0, 0], [0, 0]]), tf.pad(gh, [[0, 0], [0, 1], [0, 0], [0, 0]])),
            tf.sub(tf.pad(gw, [[0, 0], [0, 0], [1, 0], [0, 0]]), tf.pad(gw, [[0, 0], [0, 0], [0, 1], [0, 0]])));
          return tf.mul(g, dy);
        },
      };
    })(x);
  }

  // Gradients of the glue between a model's differentiable outputs and a scalar objective
  // (sums, means, signs, weights, picking outputs or channels), which tf-core.min.js does not
  // register: registered here for kernels that have none, so a full TensorFlow.js build keeps
  // its own. The models' own backward passes are theirs (v4runtime.js).
  function registerGradients() {
    const tf = window.tf;
    if (!tf || !tf.registerGradient) return;
    const unbroadcast = (g, shape) => { // sum a broadcast gradient back to an input's shape
      const axes = tf.broadcast_util.getReductionAxes(shape, g.shape);
      return tf.reshape(axes.length ? tf.sum(g, axes) : g, shape);
    };
    const spread = (dy, x, axis) => { // dy of a reduction over axis, back to x's shape
      const kept = x.shape.slice();
      const axes = tf.util.parseAxisParam(axis, x.shape);
      axes.forEach((a) => { kept[a] = 1; });
      return { grad: tf.mul(tf.reshape(dy, kept), tf.ones(x.shape, "float32")), count: axes.reduce((n, a) => n * x.shape[a], 1) };
    };
    const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);
    const configs = [
      { kernelName: "Add", inputsToSave: ["a", "b"],
        gradFunc: (dy, [a, b]) => ({ a: () => unbroadcast(dy, a.shape), b: () => unbroadcast(dy, b.shape) }) },
      { kernelName: "Sub", inputsToSave: ["a", "b"],
        gradFunc: (dy, [a, b]) => ({ a: () => unbroadcast(dy, a.shape), b: () => unbroadcast(tf.neg(dy), b.shape) }) },
      { kernelName: "Multiply", inputsToSave: ["a", "b"],
        gradFunc: (dy, [a, b]) => ({
          a: () => unbroadcast(tf.mul(dy, tf.cast(b, "float32")), a.shape),
          b: () => unbroadcast(tf.mul(dy, tf.cast(a, "float32")), b.shape),
        }) },
      { kernelName: "RealDiv", inputsToSave: ["a", "b"],
        gradFunc: (dy, [a, b]) => ({
          a: () => unbroadcast(tf.div(dy, b), a.shape),
          b: () => unbroadcast(tf.neg(tf.div(tf.mul(dy, a), tf.square(b))), b.shape),
        }) },
      { kernelName: "Neg", gradFunc: (dy) => ({ x: () => tf.neg(dy) }) },
      { kernelName: "Reshape", inputsToSave: ["x"], gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy, x.shape) }) },
      { kernelName: "Sum", inputsToSave: ["x"], gradFunc: (dy, [x], attrs) => ({ x: () => spread(dy, x, attrs.axis).grad }) },
      { kernelName: "Mean", inputsToSave: ["x"],
        gradFunc: (dy, [x], attrs) => ({ x: () => { const s = spread(dy, x, attrs.axis); return tf.div(s.grad, s.count); } }) },
      { kernelName: "GatherV2", inputsToSave: ["x", "indices"],
        gradFunc: (dy, [x, indices], attrs) => ({
          x: () => {
            if (attrs.batchDims) throw new Error("v4synth.js: no gradient for tf.gather with batchDims");
            const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0];
            const outer = x.shape.slice(0, axis), inner = x.shape.slice(axis + 1);
            const values = tf.reshape(dy, [...outer, indices.size, ...inner]);
            const perm = [outer.length, ...range(0, outer.length), ...range(outer.length + 1, outer.length + 1 + inner.length)];
            const summed = tf.unsortedSegmentSum(tf.transpose(values, perm), tf.reshape(indices, [indices.size]), x.shape[axis]);
            return tf.transpose(summed, tf.backend_util.getUndoAxesPermutation(perm));
          },
          indices: () => tf.zeros(indices.shape),
        }) },
    ];
    for (const config of configs) if (!tf.getGradient(config.kernelName)) tf.registerGradient(config);
  }

  // ITU-R BT.601 luma (regularizers.to_grayscale).
  const LUMA = [0.299, 0.587, 0.114];
  function toGrayscale(x) {
    const tf = window.tf;
    return tf.tidy(() => {
      const lum = tf.sum(tf.mul(x, tf.tensor1d(LUMA)), 3, true);
      return tf.tile(lum, [1, 1, 1, 3]);
    });
  }

  /** Shrink the deviation from the image mean to an RMS of at most maxRms (limit_contrast). */
  function limitContrast(x, maxRms) {
    const tf = window.tf;
    return tf.tidy(() => {
      const mean = tf.mean(x);
      const dev = tf.sub(x, mean);
      const rms = tf.sqrt(tf.mean(tf.square(dev)));
      const factor = tf.minimum(tf.div(maxRms, tf.add(rms, 1e-8)), 1.0);
      return tf.add(mean, tf.mul(dev, factor));
    });
  }

  // ---------------------------------------------------------------------------------------
  // Synthesis
  // ---------------------------------------------------------------------------------------

  // The fields of v4compact.synthesis.presets.Preset (browser_presets.preset_table() writes
  // them). An unknown field is an error, so a new Python setting cannot be silently ignored.
  const PRESET_FIELDS = ["name", "param", "optimizer", "step_size", "steps", "grad_blur_sigma",
    "image_blur_sigma", "image_blur_every", "init_low", "init_high", "jitter", "scales",
    "angles", "total_variation", "max_contrast", "grayscale", "eval_every"];

  function resolvePreset(options) {
    let preset = options.preset;
    if (typeof preset === "string") {
      const table = options.presetTable;
      if (!table) {
        throw new Error(`preset "${preset}" is a name: pass presetTable too (the JSON of v4compact.web.browser_presets.preset_table())`);
      }
      if (!Object.prototype.hasOwnProperty.call(table, preset)) {
        throw new Error(`unknown preset "${preset}"; this page runs ${Object.keys(table).join(", ")}`);
      }
      preset = table[preset];
    }
    if (!preset || typeof preset !== "object") {
      throw new Error("options.preset must be a preset name (with presetTable) or a preset settings object");
    }
    const unknown = Object.keys(preset).filter((k) => !PRESET_FIELDS.includes(k));
    if (unknown.length) throw new Error(`v4synth.js does not implement the preset setting(s) ${unknown.join(", ")}`);
    const missing = PRESET_FIELDS.filter((k) => k !== "name" && !(k in preset));
    if (missing.length) throw new Error(`the preset lacks ${missing.join(", ")}`);
    if (preset.param !== "pixel" || preset.optimizer !== "normalized_gradient") {
      throw new Error(`preset "${preset.name}" uses the ${preset.param} parameterisation with ${preset.optimizer}; ` +
        "the browser runs pixel images with the normalized_gradient update");
    }
    const s = { ...preset };
    if (options.steps !== undefined) s.steps = options.steps;
    if (!Number.isInteger(s.steps) || s.steps < 1) throw new Error(`steps must be an integer >= 1, got ${s.steps}`);
    if (!(s.init_low >= 0 && s.init_low <= s.init_high && s.init_high <= 255)) {
      throw new Error(`noise range must satisfy 0 <= low <= high <= 255, got [${s.init_low}, ${s.init_high}]`);
    }
    if (!Number.isInteger(s.jitter) || s.jitter < 0) throw new Error(`jitter needs pixels >= 0, got ${s.jitter}`);
    if (s.scales.some((v) => !(v > 0))) throw new Error(`scales must be positive, got ${s.scales}`);
    if (s.max_contrast !== null && !(s.max_contrast > 0)) throw new Error(`max contrast must be > 0 pixel units, got ${s.max_contrast}`);
    if (!Number.isFinite(s.total_variation)) throw new Error(`total_variation must be finite, got ${s.total_variation}`);
    return s;
  }

  // One step's random transform, drawn in the order of render._build_transforms:
  // jitter(j), random_scale, random_rotate, jitter(max(1, j // 2)); null without transforms.
  function drawTransform(s, rng) {
    if (!(s.jitter || s.scales.length || s.angles.length)) return null;
    const parts = [];
    const jitter = (p) => parts.push({ kind: "shift", dy: randInt(rng, -p, p), dx: randInt(rng, -p, p) });
    if (s.jitter) jitter(s.jitter);
    if (s.scales.length) {
      const scale = s.scales[Math.floor(rng() * s.scales.length)];
      if (scale !== 1.0) parts.push({ kind: "affine", angle: 0.0, scale });
    }
    if (s.angles.length) {
      const angle = s.angles[Math.floor(rng() * s.angles.length)];
      if (angle !== 0.0) parts.push({ kind: "affine", angle, scale: 1.0 });
    }
    if (s.jitter) jitter(Math.max(1, Math.floor(s.jitter / 2)));
    return parts;
  }

  function applyTransform(x, parts) {
    for (const p of parts) x = p.kind === "shift" ? shift(x, p.dy, p.dx) : affine(x, p.angle, p.scale);
    return x;
  }

  function asScalar(value) {
    const tf = window.tf;
    if (!(value instanceof tf.Tensor) || value.size !== 1) {
      throw new Error(`the objective must return a tf.Scalar, got ${value instanceof tf.Tensor ? `shape [${value.shape}]` : typeof value}`);
    }
    return value.rank === 0 ? value : tf.reshape(value, []);
  }

  // The full objective: the caller's plus the total-variation penalty, as render adds it.
  function fullScore(objective, x, s) {
    const tf = window.tf;
    const score = asScalar(objective(x));
    return s.total_variation ? tf.sub(score, tf.mul(s.total_variation, totalVariation(x))) : score;
  }

  // The update of render for a pixel image: gradient / (RMS + 1e-5), blurred, step_size
  // pixel units up; grayscale / contrast projections; clip to 0-255; every image_blur_every
  // steps blur the image and clip again.
  function update(img, grad, s, step) {
    const tf = window.tf;
    let g = tf.div(grad, tf.add(tf.sqrt(tf.mean(tf.square(grad))), 1e-5));
    if (s.grad_blur_sigma) g = gaussianBlur(g, s.grad_blur_sigma);
    let out = tf.add(img, tf.mul(g, s.step_size));
    if (s.grayscale) out = toGrayscale(out);
    if (s.max_contrast) out = limitContrast(out, s.max_contrast);
    out = tf.clipByValue(out, 0, 255);
    if (s.image_blur_every && (step + 1) % s.image_blur_every === 0) {
      out = tf.clipByValue(gaussianBlur(out, s.image_blur_sigma), 0, 255);
    }
    return out;
  }

  function startImage(options, s, seed) {
    const tf = window.tf;
    const shape = [1, SIZE, SIZE, 3];
    const init = options.init;
    if (init === undefined || init === null) {
      const rng = mulberry32(seed);
      const noise = new Float32Array(SIZE * SIZE * 3);
      for (let i = 0; i < noise.length; i++) noise[i] = s.init_low + (s.init_high - s.init_low) * rng();
      return tf.tensor4d(noise, shape);
    }
    if (init instanceof tf.Tensor) {
      if (init.size !== SIZE * SIZE * 3) throw new Error(`init must hold 112x112x3 pixels, got shape [${init.shape}]`);
      return tf.tidy(() => tf.reshape(tf.cast(init, "float32"), shape));
    }
    if (!init || init.length !== SIZE * SIZE * 3) {
      throw new Error(`init must be 112*112*3 = ${SIZE * SIZE * 3} pixels (HWC, 0-255), got ${init ? init.length : init}`);
    }
    return tf.tensor4d(Float32Array.from(init), shape);
  }

  const roundPixels = (data) => Uint8ClampedArray.from(data); // round half to even, clip

  /**
   * Gradient ascent on a 112x112 image: v4compact.synthesis.render for pixel images with the
   * normalised-gradient update (presets "upstream" and "upstream_robust").
   *
   * Each step: the objective (plus -total_variation * TV) of the image, randomly jittered /
   * zoomed / rotated when the preset says so; its gradient with respect to the image divided
   * by its RMS (+1e-5), Gaussian-blurred (mirror borders); a step of step_size pixel units;
   * the image clipped to 0-255, and every image_blur_every steps blurred and clipped. The best
   * image is kept: without transforms the image scored at each step, with transforms the
   * untransformed image every eval_every steps; the image after the last step is always
   * scored. The start noise (uniform in [init_low, init_high], drawn in HWC order) comes from
   * mulberry32(seed), the transforms from mulberry32(seed + 1) (Python seeds torch with seed
   * and seed + 1; the streams differ, so a seed reproduces a picture here, not Python's).
   * The affine transforms compute torch's sampling grid in float64 (torch: float32), which
   * moves sample points by about 1e-6 pixel.
   *
   * @param {object} options
   * @param {function} options.objective (x: tf.Tensor4D [1,112,112,3] float32 pixels 0-255)
   *   => tf.Scalar to maximise (negate it to minimise); called inside tf.tidy.
   * @param {string|object} options.preset a name in options.presetTable, or a settings object
   *   with every field of v4compact.synthesis.presets.Preset.
   * @param {object} [options.presetTable] {name: settings}, browser_presets.preset_table().
   * @param {number} [options.steps] optimisation steps (default: the preset's).
   * @param {number} [options.seed=0] integer 0 <= seed < 2^32.
   * @param {Float32Array|number[]|tf.Tensor} [options.init] start image, 112*112*3 pixels
   *   0-255 HWC (instead of noise; not disposed).
   * @param {function} [options.onStep] onStep(step, value, pixels): step = steps done
   *   (1-based), value = that step's objective, pixels = Uint8ClampedArray 112*112*3 of the
   *   image now; called every `every` steps and after the last.
   * @param {number} [options.every=10] steps between onStep calls.
   * @param {AbortSignal} [options.signal] stops the run before the next step.
   * @param {number} [options.yieldEvery=1] steps between `await tf.nextFrame()` (0 = never).
   * @returns {Promise<{pixels: Uint8ClampedArray, value: number, bestStep: number,
   *   steps: number, trace: number[], stopped: boolean, last: Float32Array, seed: number,
   *   preset: object}>} pixels: the best image rounded (112*112*3 HWC); value: its
   *   objective; bestStep: how many updates that image had had (0 = the start); steps:
   *   steps done; trace: each step's objective (on the transformed image with
   *   transforms); stopped: the signal ended the run; last: the float image after the last
   *   step (pass it as init to continue); preset: the settings used.
   */
  async function synthesize(options) {
    const tf = window.tf;
    if (!tf) throw new Error("V4.synthesize needs TensorFlow.js (the global tf) loaded first");
    if (!options || typeof options.objective !== "function") {
      throw new Error("V4.synthesize needs options.objective: (x: tf.Tensor4D [1,112,112,3] pixels 0-255) => tf.Scalar");
    }
    registerGradients();
    const s = resolvePreset(options);
    const seed = options.seed === undefined ? 0 : options.seed;
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`seed must be an integer 0 <= seed < 2^32, got ${seed}`);
    const every = options.every === undefined ? 10 : options.every;
    const yieldEvery = options.yieldEvery === undefined ? 1 : options.yieldEvery;
    if (!Number.isInteger(every) || every < 1) throw new Error(`every must be an integer >= 1, got ${every}`);
    if (!Number.isInteger(yieldEvery) || yieldEvery < 0) throw new Error(`yieldEvery must be an integer >= 0, got ${yieldEvery}`);
    const { objective, onStep, signal } = options;
    const rng = mulberry32((seed + 1) >>> 0);

    let img = startImage(options, s, seed);
    let best = null, bestValue = -Infinity, bestStep = 0;
    const trace = [];
    let step = 0, stopped = false;
    // Keep x as the best image when its value beats the best so far (consider takes x).
    const consider = (x, value, atStep) => {
      if (best === null || value > bestValue) {
        if (best !== null) best.dispose();
        best = x; bestValue = Number.isNaN(value) ? -Infinity : value; bestStep = atStep;
      } else {
        x.dispose();
      }
    };
    const scoreNow = async (atStep) => { // the untransformed image, without gradients
      const value = tf.tidy(() => fullScore(objective, img, s));
      const v = (await value.data())[0];
      value.dispose();
      consider(tf.clone(img), v, atStep);
    };
    try {
      for (; step < s.steps; step++) {
        if (signal && signal.aborted) { stopped = true; break; }
        const parts = drawTransform(s, rng);
        const { value, next } = tf.tidy(() => {
          const f = (x) => fullScore(objective, parts ? applyTransform(x, parts) : x, s);
          const { value: v, grad } = tf.valueAndGrad(f)(img);
          return { value: v, next: update(img, grad, s, step) };
        });
        const v = (await value.data())[0];
        value.dispose();
        trace.push(v);
        if (parts === null) consider(img, v, step); else img.dispose();
        img = next;
        if (parts !== null && (step + 1) % s.eval_every === 0) await scoreNow(step + 1);
        if (onStep && ((step + 1) % every === 0 || step + 1 === s.steps)) {
          onStep(step + 1, v, roundPixels(await img.data()));
        }
        if (yieldEvery && (step + 1) % yieldEvery === 0) await tf.nextFrame();
      }
      await scoreNow(step); // the image after the last step
      return {
        pixels: roundPixels(await best.data()),
        value: bestValue,
        bestStep,
        steps: step,
        trace,
        stopped,
        last: Float32Array.from(await img.data()),
        seed,
        preset: s,
      };
    } finally {
      img.dispose();
      if (best !== null) best.dispose();
    }
  }

  registerGradients(); // now if tf is loaded first (as it should be), else at the first run
  V4.preprocess = preprocess;
  V4.preprocessPixels = preprocessPixels;
  V4.synthesize = synthesize;
  V4.synthesisOps = {
    mulberry32, gaussianKernel, gaussianBlur, shift, affine, totalVariation, toGrayscale,
    limitContrast, registerGradients, PRESET_FIELDS,
  };
})();
