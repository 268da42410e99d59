// TF.js adapter: graph models (model.json) on the cpu, wasm, webgl and webgpu backends.
// Feeds are keyed by the manifest's input names and bound to the model's signature input keys (binding);
// outputs are fetched by their node names (binding) and returned under the manifest's output names.
import { errText, loadScript, toFloat32, toInt32, webgpuAdapter } from '../tensors.js';

const VENDOR = '/vendor/@tensorflow';
export const name = 'tfjs';
export const runtime = 'tfjs';
export const backends = ['cpu', 'wasm', 'webgl', 'webgpu'];
let tf = null;

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

/** {backend: true | 'why it is unavailable'} */
export async function detect() {
  await ensureRuntime();
  const out = {};
  for (const b of backends) {
    if (b === 'webgpu' && !(await webgpuAdapter())) { out[b] = 'no WebGPU adapter'; continue; }
    try { out[b] = (await tf.setBackend(b)) ? true : 'failed to initialise'; } catch (e) { out[b] = errText(e); }
  }
  await tf.setBackend('cpu');
  return out;
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

export function dispose(h) {
  try { h.model.dispose(); } catch (e) { /* already gone */ }
}
