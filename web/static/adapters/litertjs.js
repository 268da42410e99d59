// LiteRT.js adapter (@litertjs/core): .tflite models on the wasm (XNNPACK) and webgpu accelerators.
//
// Builds (@litertjs/core 2.5.3 ships four, one per realm: loadLiteRt(dir, {threads}) picks the file):
// litert_wasm_threaded_internal (relaxed SIMD + pthreads; needs cross-origin isolation), litert_wasm_internal
// (relaxed SIMD), litert_wasm_compat_internal (no relaxed SIMD), and a JSPI build (not used here). configure({threads})
// before detect(): with threads available the threaded build is loaded and every model is compiled with
// cpuOptions.numThreads = threads (1 included, so that 1 and N threads compare one build); without, the relaxed-SIMD
// (or compat) build runs at 1 thread and a request for more is refused by setup().
//
// @litertjs/core 2.5.3's JS API only knows float32, int32 and uint8 tensors: CompiledModel's constructor throws
// "Element type INT64 is not supported." for a model with an int64 (or int8, float16, bool) input or output,
// before anything runs. Its wasm runtime has no such limit, so a model whose I/O has other element types runs
// through the same wasm bindings that CompiledModel wraps (loadModel, compileModel, LiteRtTensorBuffer,
// compiledModel.run): host-memory buffers of the model's own element type, filled and read as raw bytes.
import { getGlobalLiteRt, loadAndCompile, loadLiteRt, Tensor } from '@litertjs/core';
import { capabilities, errText, float16ToFloat32, HARDWARE_CONCURRENCY, toDtype, toFloat32, webgpuAdapter,
  withHardwareConcurrency } from '../tensors.js';

const WASM = '/vendor/@litertjs/core/wasm/';
export const name = 'litertjs';
export const runtime = 'litert.js';
export const backends = ['wasm', 'webgpu'];
export const threaded = ['wasm'];  // the backends whose thread count configure() sets
const PUBLIC_DTYPES = ['float32', 'int32', 'uint8'];
// litert::ElementType values -> typed arrays (the subset a .tflite model's I/O uses).
const ELEMENT = { 1: Float32Array, 2: Int32Array, 3: Uint8Array, 4: BigInt64Array, 6: Uint8Array, 7: Int16Array,
  9: Int8Array, 10: Uint16Array, 11: Float64Array, 16: Uint32Array, 17: Uint16Array };
const ELEMENT_DTYPE = { 1: 'float32', 2: 'int32', 3: 'uint8', 4: 'int64', 6: 'bool', 9: 'int8', 10: 'float16' };
let pkgVersion = '';
let loaded = null;
let wanted = 1;  // threads asked for (configure)
let build = null;  // {file, threads: bool, relaxedSimd: bool} of the loaded build

// LiteRT's wasm build prints its INFO/WARNING log lines to stderr, which Emscripten maps to console.error;
// route those to console.info so that real errors stay visible (and testable) as errors.
const consoleError = console.error.bind(console);
console.error = (...a) => (typeof a[0] === 'string' && /^(INFO|WARNING|VERBOSE): /.test(a[0]) ? console.info(...a) : consoleError(...a));

export function version() { return pkgVersion ? `@litertjs/core ${pkgVersion}` : '@litertjs/core'; }

/** {threads: N}: the XNNPACK thread count of every wasm model compiled from now on (call before detect()). */
export function configure(opts = {}) {
  if (opts.threads != null) wanted = Math.max(1, Math.floor(Number(opts.threads)) || 1);
}

function ensureRuntime() {
  loaded = loaded || (async () => {
    const c = await capabilities();
    const threads = c.threads && c.relaxedSimd && c.crossOriginIsolated;
    // The threaded build starts navigator.hardwareConcurrency pthread workers at load and XNNPACK takes N - 1 of
    // them: present at least N - 1 while it loads, so that a thread count above the cores cannot stall on a worker.
    await withHardwareConcurrency(Math.max(HARDWARE_CONCURRENCY, wanted - 1), () => loadLiteRt(WASM, { threads }));
    build = { threads, relaxedSimd: c.relaxedSimd,
      file: threads ? 'litert_wasm_threaded_internal' : c.relaxedSimd ? 'litert_wasm_internal' : 'litert_wasm_compat_internal' };
    try { pkgVersion = (await (await fetch('/vendor/@litertjs/core/package.json')).json()).version; } catch (e) { /* unnamed */ }
  })();
  return loaded;
}

export async function detect() {
  const out = {};
  try { await ensureRuntime(); out.wasm = true; } catch (e) { out.wasm = errText(e); }
  out.webgpu = out.wasm !== true ? out.wasm : (await webgpuAdapter()) ? true : 'no WebGPU adapter';
  return out;
}

/** The setup a model on `backend` gets: {threads (what XNNPACK is given), build (the wasm file and its
 * features)}; throws when the configured thread count cannot be had here. */
export function setup(backend) {
  if (!build) throw new Error('LiteRT.js is not loaded');
  const what = `${build.relaxedSimd ? 'relaxed-simd' : 'compat'}${build.threads ? ' threaded' : ''} (${build.file})`;
  if (backend !== 'wasm') return { threads: null, build: `${backend}; ${what}` };
  if (wanted > 1 && !build.threads) {
    throw new Error(`${wanted} threads need the threaded build (cross-origin isolation, wasm threads and relaxed SIMD); this browser loaded ${build.file}`);
  }
  return { threads: wanted, build: what };
}

const cpuOptions = () => ({ numThreads: build && build.threads ? wanted : 1 });

const needsRaw = (m) => [...m.signature.inputs, ...m.signature.outputs].some((t) => !PUBLIC_DTYPES.includes(t.dtype));

export async function load(m, backend) {
  await ensureRuntime();
  const h = { m, backend, inputs: m.signature.inputs, outputs: m.signature.outputs };
  if (needsRaw(m)) return Object.assign(h, await loadRaw(m.url, backend));
  const compiled = await loadAndCompile(m.url, { accelerator: backend, cpuOptions: cpuOptions() });
  const sigs = compiled.signatures;
  h.compiled = compiled;
  h.runner = sigs.serving_default || Object.values(sigs)[0];
  return h;
}

export async function run(h, feeds) {
  return h.raw ? runRaw(h, feeds) : runPublic(h, feeds);
}

export function dispose(h) {
  try {
    if (h.raw) { h.raw.compiled.delete(); h.raw.model.delete(); getGlobalLiteRt().liteRtWasm._free(h.raw.ptr); }
    else h.compiled.delete();
  } catch (e) { /* already gone */ }
}

// ------------------------------------------------------------------------------------------ public API path
async function runPublic(h, feeds) {
  const ins = {};
  let outs = null;
  try {
    for (const s of h.inputs) {
      if (!(s.name in feeds)) throw new Error(`missing input ${s.name}`);
      ins[s.binding ?? s.name] = new Tensor(toDtype(feeds[s.name], s), s.shape);
    }
    outs = await h.runner.run(ins);
    const result = {};
    for (const s of h.outputs) {
      const t = outs[s.binding ?? s.name];
      if (!t) throw new Error(`the model has no output ${s.binding} (has: ${Object.keys(outs).join(', ')})`);
      result[s.name] = toFloat32(await t.data(), s);
    }
    return result;
  } finally {
    for (const t of Object.values(ins)) t.delete();
    if (outs) for (const t of Object.values(outs)) t.delete();
  }
}

// ------------------------------------------------------------------------------------------ raw wasm path
function vectorToArray(v) {
  const a = [];
  for (let i = 0; i < v.size(); i++) a.push(v.get(i));
  v.delete();
  return a;
}

function tensorType(rtt) {
  const layout = rtt.layout(), el = rtt.elementType().value, dims = vectorToArray(layout.dimensions());
  layout.delete(); rtt.delete();
  return { element: el, dims };
}

async function loadRaw(url, accelerator) {
  const lrt = getGlobalLiteRt(), w = lrt.liteRtWasm, env = lrt.getDefaultEnvironment();
  if (accelerator === 'webgpu' && !env.webGpuDevice) throw new Error('WebGPU was requested but no WebGPU device is set');
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const ptr = w._malloc(bytes.byteLength);
  w.HEAPU8.set(bytes, ptr);
  let model = null;
  try {
    model = w.loadModel(env.liteRtEnvironment, ptr, bytes.byteLength);
    const compiled = await w.compileModel(env.liteRtEnvironment, model, {
      environment: env, accelerator, cpuOptions: cpuOptions(), gpuOptions: {}, webNNOptions: {} });
    const n = model.getNumSignatures(), keys = [];
    for (let i = 0; i < n; i++) { const s = model.getSignature(i); keys.push(s.key()); s.delete(); }
    const si = Math.max(0, keys.indexOf('serving_default'));
    const sig = model.getSignature(si);
    const inputNames = vectorToArray(sig.inputNames()), outputNames = vectorToArray(sig.outputNames());
    sig.delete();
    const inputTypes = inputNames.map((_, i) => tensorType(model.getInputTensorType(si, i)));
    return { raw: { w, env, model, compiled, ptr, si, inputNames, outputNames, inputTypes } };
  } catch (e) {
    if (model) model.delete();
    w._free(ptr);
    throw e;
  }
}

async function runRaw(h, feeds) {
  const { w, env, compiled, si, inputNames, outputNames, inputTypes } = h.raw;
  const byBinding = new Map(h.inputs.map((s) => [String(s.binding ?? s.name), s]));
  const bufs = [];
  let outBufs = [];
  try {
    for (let i = 0; i < inputNames.length; i++) {
      const s = byBinding.get(inputNames[i]);
      if (!s) throw new Error(`the manifest binds no input to the model's ${inputNames[i]}`);
      if (!(s.name in feeds)) throw new Error(`missing input ${s.name}`);
      const { element, dims } = inputTypes[i], Ctor = ELEMENT[element];
      if (!Ctor) throw new Error(`input ${s.name}: LiteRT element type ${element} is not supported`);
      let data = toDtype(feeds[s.name], { ...s, dtype: ELEMENT_DTYPE[element] || s.dtype });
      if (!(data instanceof Ctor)) data = Ctor.from(data);
      const dv = new w.VectorInt32();
      for (const d of dims) dv.push_back(d);
      const layout = w.LiteRtLayout.create(dv);
      dv.delete();
      const rtt = w.LiteRtRankedTensorType.create({ value: element }, layout);
      layout.delete();
      const nbytes = rtt.bytes();
      if (nbytes !== data.byteLength) { rtt.delete(); throw new Error(`input ${s.name}: ${data.byteLength} bytes given, the model takes ${nbytes}`); }
      const buf = w.LiteRtTensorBuffer.createManaged(env.liteRtEnvironment, w.LiteRtTensorBufferType.HOST_MEMORY, rtt, nbytes);
      rtt.delete();
      bufs.push(buf);
      const p = buf.lock(w.LiteRtTensorBufferLockMode.WRITE);
      try { w.HEAPU8.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), p); } finally { buf.unlock(); }
    }
    outBufs = await compiled.run(si, bufs);
    const raw = {};
    for (let i = 0; i < outputNames.length; i++) {
      const b = outBufs[i], { element } = tensorType(b.tensorType()), Ctor = ELEMENT[element];
      if (!Ctor) throw new Error(`output ${outputNames[i]}: LiteRT element type ${element} is not supported`);
      const p = b.lock(w.LiteRtTensorBufferLockMode.READ);
      let bytes;
      try { bytes = w.HEAPU8.slice(p, p + b.packedSize()); } finally { b.unlock(); }
      const arr = new Ctor(bytes.buffer, 0, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
      raw[outputNames[i]] = element === 10 ? float16ToFloat32(arr) : arr;
    }
    const result = {};
    for (const s of h.outputs) {
      const got = raw[String(s.binding ?? s.name)];
      if (!got) throw new Error(`the model has no output ${s.binding} (has: ${outputNames.join(', ')})`);
      result[s.name] = toFloat32(got, s);
    }
    return result;
  } finally {
    for (const b of bufs) b.delete();
    for (const b of outBufs) b.delete();
  }
}
