// ONNX Runtime Web adapter (onnxruntime-web): .onnx models on the wasm and webgpu execution providers.
// Feeds are keyed by the manifest's input names and bound to the graph's input names (binding); outputs are fetched
// by their graph names (binding) and returned under the manifest's output names, as float32.
//
// wasm: onnxruntime-web ships SIMD builds only; it runs multi-threaded when the page is cross-origin isolated
// (SharedArrayBuffer), else on one thread. webgpu: offered only when navigator.gpu gives an adapter. Each backend is
// reported available only after a real session on it ran a tiny Identity model (PROBE_MODEL).
import { errText, toDtype, toFloat32, webgpuAdapter } from '../tensors.js';

const VENDOR = '/vendor/onnxruntime-web/dist/';
export const name = 'ort';
export const runtime = 'onnxruntime-web';
export const backends = ['wasm', 'webgpu'];
export const threaded = ['wasm'];  // the backends whose thread count configure() sets
// ONNX Identity model, float32[1] x -> y, opset 13 (79 bytes), to prove a backend works before it is offered.
const PROBE_MODEL = 'CAcSCGVkZ2Vwb3J0OjsKEAoBeBIBeSIISWRlbnRpdHkSBXByb2JlWg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQDQ==';
let ort = null;
let loading = null;
let wanted = null;  // threads asked for (configure); null: onnxruntime-web's own choice

/** {threads: N}: env.wasm.numThreads, read once when the wasm runtime initialises (call before detect()). */
export function configure(opts = {}) {
  if (opts.threads != null) wanted = Math.max(1, Math.floor(Number(opts.threads)) || 1);
}

/** The setup a model on `backend` gets: {threads, build}; throws when the configured thread count was not had
 * (onnxruntime-web drops to 1 thread without cross-origin isolation). */
export function setup(backend) {
  if (!ort) throw new Error('onnxruntime-web is not loaded');
  const got = ort.env.wasm.numThreads;
  const build = `simd threaded (ort-wasm-simd-threaded, ${ort.env.versions.web})`;
  if (backend !== 'wasm') return { threads: null, build: `${backend}; wasm ${build}` };
  if (wanted != null && got !== wanted) throw new Error(`${wanted} threads asked for, onnxruntime-web runs ${got}`);
  return { threads: got, build };
}

export function version() {
  if (!ort) return 'onnxruntime-web';
  return `onnxruntime-web ${ort.env.versions.web} (wasm threads ${ort.env.wasm.numThreads})`;
}

function ensureRuntime() {
  loading = loading || (async () => {
    // The wasm + webgpu build; its .wasm and worker .mjs are fetched from the same vendored folder.
    const mod = await import(`${VENDOR}ort.webgpu.min.mjs`);
    mod.env.wasm.wasmPaths = VENDOR;
    mod.env.wasm.numThreads = wanted ?? (globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    mod.env.wasm.proxy = false;
    mod.env.logLevel = 'error';
    ort = mod;
    return ort;
  })();
  return loading;
}

const options = (backend) => ({ executionProviders: [backend], graphOptimizationLevel: 'all' });

/** {backend: true | 'why it is unavailable'} */
export async function detect() {
  const out = {};
  try { await ensureRuntime(); } catch (e) {
    for (const b of backends) out[b] = `onnxruntime-web failed to load: ${errText(e)}`;
    return out;
  }
  const bytes = Uint8Array.from(atob(PROBE_MODEL), (c) => c.charCodeAt(0));
  for (const b of backends) {
    if (b === 'webgpu' && !(await webgpuAdapter())) { out[b] = 'no WebGPU adapter'; continue; }
    let s = null;
    try {
      s = await ort.InferenceSession.create(bytes, options(b));
      const r = await s.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
      out[b] = r.y && r.y.data[0] === 1 ? true : 'the probe model returned a wrong value';
    } catch (e) { out[b] = errText(e); } finally { if (s) await s.release().catch(() => {}); }
  }
  return out;
}

export async function load(m, backend) {
  await ensureRuntime();
  const res = await fetch(m.url);
  if (!res.ok) throw new Error(`${m.url}: HTTP ${res.status}`);
  const session = await ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()), options(backend));
  const inputs = m.signature.inputs, outputs = m.signature.outputs;
  for (const s of inputs) {
    if (!session.inputNames.includes(String(s.binding ?? s.name))) {
      await session.release();
      throw new Error(`the model has no input ${s.binding ?? s.name} (has: ${session.inputNames.join(', ')})`);
    }
  }
  return { m, backend, session, inputs, outputs, fetches: outputs.map((s) => String(s.binding ?? s.name)) };
}

// The manifest's dtypes are ONNX Runtime Web's tensor types (float16 travels as raw IEEE half bits in a
// Uint16Array, int64 as BigInt64Array, bool as one byte per value).
export async function run(h, feeds) {
  const named = {};
  for (const s of h.inputs) {
    if (!(s.name in feeds)) throw new Error(`missing input ${s.name}`);
    named[s.binding ?? s.name] = new ort.Tensor(s.dtype, toDtype(feeds[s.name], s), s.shape);
  }
  const outs = await h.session.run(named, h.fetches);
  try {
    const result = {};
    for (let i = 0; i < h.outputs.length; i++) {
      const t = outs[h.fetches[i]];
      if (!t) throw new Error(`the model has no output ${h.fetches[i]} (has: ${Object.keys(outs).join(', ')})`);
      result[h.outputs[i].name] = toFloat32(t.location === 'cpu' ? t.data : await t.getData(), h.outputs[i]);
    }
    return result;
  } finally {
    for (const t of Object.values(outs)) if (t.location !== 'cpu') t.dispose();
  }
}

export function dispose(h) {
  h.session.release().catch(() => { /* already gone */ });
}
