// TF.js adapter: graph models (model.json) on the cpu, wasm, webgl and webgpu backends.
// Feeds are keyed by the manifest's input names and bound to the model's signature input keys (binding);
// outputs are fetched by their node names (binding) and returned under the manifest's output names.
//
// Threads (wasm): configure({threads: N}) before detect(). TF.js picks its wasm binary itself (threaded SIMD when
// the page is cross-origin isolated, else SIMD, else plain) and sizes XNNPACK's thread pool once, when the backend
// initialises: setThreadsCount(N) is honoured only up to navigator.hardwareConcurrency / 2 (tfjs#8513: on a 2-core
// machine it stays at 1 thread whatever it is told). So while the wasm backend initialises, and only then,
// navigator.hardwareConcurrency reads 2N (withHardwareConcurrency); tf.wasm.getThreadsCount() then says what XNNPACK
// really got, and setup() refuses a row whose thread count was not had.
import { errText, HARDWARE_CONCURRENCY, loadScript, softwareGl, toFloat32, toInt32, webglRenderer,
  webgpuAdapter, withHardwareConcurrency } from '../tensors.js';

const VENDOR = '/vendor/@tensorflow';
export const name = 'tfjs';
export const runtime = 'tfjs';
export const backends = ['cpu', 'wasm', 'webgl', 'webgpu'];
export const threaded = ['wasm'];  // the backends whose thread count configure() sets
let tf = null;
let wanted = 1;  // threads asked for (configure)
let wasmBuild = null;  // {simd, threads} as TF.js decided

export function version() { return tf ? tf.version.tfjs : ''; }

async function ensureRuntime() {
  if (tf) return tf;
  await loadScript(`${VENDOR}/tfjs/dist/tf.min.js`);
  await loadScript(`${VENDOR}/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`);
  await loadScript(`${VENDOR}/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
  tf = globalThis.tf;  // the UMD bundles define it; this module keeps its own reference
  tf.wasm.setWasmPaths(`${VENDOR}/tfjs-backend-wasm/dist/`);
  return tf;
}

/** {threads: N}: XNNPACK's thread count on the wasm backend (call before detect(), which initialises it). */
export function configure(opts = {}) {
  if (opts.threads != null) wanted = Math.max(1, Math.floor(Number(opts.threads)) || 1);
}

/** {backend: true | 'why it is unavailable'} */
export async function detect() {
  await ensureRuntime();
  const out = {};
  for (const b of backends) {
    if (b === 'webgpu' && !(await webgpuAdapter())) { out[b] = 'no WebGPU adapter'; continue; }
    try {
      if (b === 'wasm') {
        tf.wasm.setThreadsCount(wanted);
        out[b] = (await withHardwareConcurrency(Math.max(HARDWARE_CONCURRENCY, 2 * wanted), () => tf.setBackend(b)))
          ? true : 'failed to initialise';
        wasmBuild = { simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
          threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') };
      } else out[b] = (await tf.setBackend(b)) ? true : 'failed to initialise';
    } catch (e) { out[b] = errText(e); }
  }
  await tf.setBackend('cpu');
  return out;
}

/** The setup a model on `backend` gets: {threads, build}; throws when the configured thread count was not had. */
export function setup(backend) {
  if (backend === 'wasm') {
    if (!wasmBuild) throw new Error('the tfjs wasm backend is not initialised');
    const got = tf.wasm.getThreadsCount();
    const file = wasmBuild.simd ? (wasmBuild.threads ? 'tfjs-backend-wasm-threaded-simd' : 'tfjs-backend-wasm-simd') : 'tfjs-backend-wasm';
    const build = `${wasmBuild.simd ? 'simd' : 'no simd'}${wasmBuild.simd && wasmBuild.threads ? ' threaded' : ''} (${file})`;
    if (got !== wanted) throw new Error(`${wanted} threads asked for, XNNPACK got ${got} (${build})`);
    return { threads: got, build };
  }
  if (backend === 'cpu') return { threads: 1, build: 'plain JS kernels', fallback: true };
  if (backend === 'webgl') {
    const r = webglRenderer() || 'unknown renderer';
    const soft = !!softwareGl(r);
    return { threads: null, fallback: soft, build: soft ? `software GL (${/swiftshader/i.test(r) ? 'SwiftShader' : r})` : `GL: ${r}` };
  }
  return { threads: null, build: backend };
}

async function use(backend) {
  if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
}

export async function load(m, backend) {
  await ensureRuntime();
  await use(backend);
  const model = await tf.loadGraphModel(m.url);
  return { m, backend, model, inputs: m.signature.inputs, outputs: m.signature.outputs, async: false };
}

// TF.js tensors are float32, int32 or bool: integer inputs (int64 token ids included) travel as int32.
function tensorFor(spec, data) {
  if (spec.dtype === 'float32' || spec.dtype === 'float16') return tf.tensor(Float32Array.from(data), spec.shape, 'float32');
  if (spec.dtype === 'bool') return tf.tensor(data, spec.shape, 'bool');
  return tf.tensor(toInt32(data, spec.name), spec.shape, 'int32');
}

export async function run(h, feeds) {
  await use(h.backend);
  const named = {};
  for (const s of h.inputs) {
    if (!(s.name in feeds)) throw new Error(`missing input ${s.name}`);
    named[s.binding ?? s.name] = tensorFor(s, feeds[s.name]);
  }
  const outNames = h.outputs.map((s) => s.binding ?? s.name);
  let outs;
  try {
    if (!h.async) {
      try { outs = h.model.execute(named, outNames); } catch (e) {
        if (!/executeAsync/.test(String(e.message || e))) throw e;
        h.async = true;  // dynamic ops (control flow): the async executor from now on
      }
    }
    if (h.async) outs = await h.model.executeAsync(named, outNames);
    outs = Array.isArray(outs) ? outs : [outs];
    const result = {};
    for (let i = 0; i < h.outputs.length; i++) result[h.outputs[i].name] = toFloat32(await outs[i].data(), h.outputs[i]);
    return result;
  } finally {
    for (const t of Object.values(named)) t.dispose();
    if (outs) for (const t of outs) t.dispose();
  }
}

/** `n` samples in one call (feeds: {input name: n samples, concatenated}), for the accuracy pass: a graph model's
 * batch dimension is often free even when the manifest says 1. The page checks the answer against one-sample
 * runs and falls back to those when the model refuses a batch. */
export async function runBatch(h, feeds, n) {
  const shaped = { ...h, inputs: h.inputs.map((s) => ({ ...s, shape: [n, ...s.shape.slice(1)] })),
    outputs: h.outputs.map((s) => ({ ...s, shape: [n, ...s.shape.slice(1)] })) };
  return run(shaped, feeds);
}

export function dispose(h) {
  try { h.model.dispose(); } catch (e) { /* already gone */ }
}
