// Copy the pinned TensorFlow.js files (from node_modules, installed by `npm ci` from
// package-lock.json) into the Python package, which ships them with the explorer's static
// site: `pip install` + `v4compact site export` then need no Node.js.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "v4compact", "web", "static", "vendor");
const files = {
  "tf-core.min.js": "@tensorflow/tfjs-core/dist/tf-core.min.js",
  "tf-backend-cpu.min.js": "@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js",
  "tf-backend-webgl.min.js": "@tensorflow/tfjs-backend-webgl/dist/tf-backend-webgl.min.js",
  "tf-backend-wasm.min.js": "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
  "tfjs-backend-wasm.wasm": "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
  "tfjs-backend-wasm-simd.wasm": "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
};
mkdirSync(out, { recursive: true });
const versions = {};
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", source), join(out, name));
  const pkg = source.split("/").slice(0, 2).join("/");
  versions[pkg] = JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"))).version;
}
writeFileSync(join(out, "versions.json"), JSON.stringify({ files: Object.keys(files), versions }, null, 1) + "\n");
console.log(`copied ${Object.keys(files).length} files to ${out}`);
