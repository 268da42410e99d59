// Typed-array helpers shared by the page and the runtime adapters: the manifest's dtypes as JS typed arrays,
// int8/uint8 I/O quantization with the manifest's scale and zero point, the packed tensor format of /api/data and
// /api/probe, and the WebGPU check. No runtime code here: each runtime lives in adapters/<name>.js.

// Manifest dtype -> the typed array that holds it (float16 as raw IEEE half bits, bool as one byte).
export const TYPED = {
  float32: Float32Array, float16: Uint16Array, int32: Int32Array, int64: BigInt64Array,
  uint8: Uint8Array, int8: Int8Array, bool: Uint8Array,
};

export const errText = (e) => String((e && e.message) || e).split('\n')[0];
export const numel = (shape) => shape.reduce((a, b) => a * b, 1);

// numpy's np.round (half to even), so that int8 inputs quantized here match the native runners bit for bit.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const LIMITS = { int8: [-128, 127], uint8: [0, 255], int32: [-2147483648, 2147483647] };

/** Data (float values, or integers) -> the typed array of the tensor's dtype; float data into an integer tensor
 * with quantization is quantized (clip(round(x / scale + zero_point))), as edgeport.runtime.quantize_input does. */
export function toDtype(data, spec) {
  const Ctor = TYPED[spec.dtype];
  if (!Ctor) throw new Error(`${spec.name}: dtype ${spec.dtype} is not supported in the page`);
  if (data instanceof Ctor && spec.dtype !== 'float16') return data;
  const q = spec.quantization, floatIn = data instanceof Float32Array || data instanceof Float64Array;
  if (spec.dtype === 'int64') return BigInt64Array.from(data, (v) => BigInt(Math.round(Number(v))));
  if (spec.dtype === 'float16') return float32ToFloat16(Float32Array.from(data, Number));
  const out = new Ctor(data.length);
  const [lo, hi] = LIMITS[spec.dtype] || [-Infinity, Infinity];
  for (let i = 0; i < data.length; i++) {
    let v = Number(data[i]);
    if (q && floatIn && spec.dtype !== 'float32') v = roundHalfEven(v / q.scale + q.zero_point);
    out[i] = Math.min(hi, Math.max(lo, v));
  }
  return out;
}

/** Integer ids (BigInt64Array or any integer array) -> Int32Array, refusing values that do not fit. */
export function toInt32(data, what) {
  if (data instanceof Int32Array) return data;
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]);
    if (v < -2147483648 || v > 2147483647) throw new Error(`${what}: value ${data[i]} does not fit in int32`);
    out[i] = v;
  }
  return out;
}

/** Runtime output -> float32 values (int8/uint8 outputs dequantized with the manifest's scale / zero point). */
export function toFloat32(data, spec) {
  const q = spec && spec.quantization;
  if (data instanceof Float32Array) return data;
  if (spec && spec.dtype === 'float16' && data instanceof Uint16Array) return float16ToFloat32(data);
  if (q && q.scale) return Float32Array.from(data, (v) => (Number(v) - q.zero_point) * q.scale);
  return Float32Array.from(data, Number);
}

export function float16ToFloat32(h) {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i], s = x & 0x8000 ? -1 : 1, e = (x >> 10) & 0x1f, f = x & 0x3ff;
    out[i] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return out;
}

export function float32ToFloat16(f) {
  const out = new Uint16Array(f.length), fv = new Float32Array(1), iv = new Uint32Array(fv.buffer);
  for (let i = 0; i < f.length; i++) {
    fv[0] = f[i];
    const x = iv[0], sign = (x >> 16) & 0x8000, e = ((x >> 23) & 0xff) - 112, m = x & 0x7fffff;
    if (e <= 0) out[i] = sign | (e < -10 ? 0 : ((m | 0x800000) >> (1 - e) + 13));
    else if (e >= 31) out[i] = sign | 0x7c00 | (((x >> 23) & 0xff) === 255 && m ? 0x200 : 0);
    else out[i] = sign | (e << 10) | (m >> 13);
  }
  return out;
}

/** The packed form of /api/data and /api/probe -> {name, n, tensors: {name: {data, shape, dtype}}, labels}. */
export function unpack(buf) {
  const hlen = new DataView(buf).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)));
  const tensors = {};
  for (const t of head.tensors) {
    const Ctor = TYPED[t.dtype];
    if (!Ctor) throw new Error(`packed data: dtype ${t.dtype} of ${t.name} is not supported in the page`);
    tensors[t.name] = { data: new Ctor(buf, t.offset, t.bytes / Ctor.BYTES_PER_ELEMENT), shape: t.shape, dtype: t.dtype };
  }
  let labels = null;
  if (head.labels) labels = new (TYPED[head.labels.dtype])(buf, head.labels.offset, head.labels.bytes / TYPED[head.labels.dtype].BYTES_PER_ELEMENT);
  return { name: head.name, n: head.n, tensors, labels };
}

/** Samples [i, j) of every tensor (views, no copy): {name: TypedArray of (j - i) samples, concatenated}. */
export function samples(packed, i, j) {
  const out = {};
  for (const [k, t] of Object.entries(packed.tensors)) {
    const per = t.data.length / packed.n;
    out[k] = t.data.subarray(i * per, j * per);
  }
  return out;
}

/** Sample i of every tensor (a view, no copy): {name: TypedArray}. */
export const sample = (packed, i) => samples(packed, i, i + 1);

export function toBase64(f32) {
  const bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

let gpuAdapter;
/** A WebGPU adapter, or null when this browser has none (cached). Never throws. */
export function webgpuAdapter() {
  if (gpuAdapter === undefined) {
    gpuAdapter = (async () => {
      try { return navigator.gpu ? await navigator.gpu.requestAdapter() : null; } catch (e) { return null; }
    })();
  }
  return gpuAdapter;
}

/** Load a classic <script> once (runtimes that ship as UMD bundles). */
const scripts = new Map();
export function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(src, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src; s.onload = resolve;
      s.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.appendChild(s);
    }));
  }
  return scripts.get(src);
}

// ------------------------------------------------------------------------------------------ threads and builds
// The machine's logical cores as the browser reports them, read once at load, before any adapter may present a
// different value to a runtime's initialisation (withHardwareConcurrency).
export const HARDWARE_CONCURRENCY = navigator.hardwareConcurrency || 1;

/** Run `fn` (async) while navigator.hardwareConcurrency reads `n` in this realm, then restore the real value.
 * For runtimes that size their thread pool from it at initialisation: TF.js wasm caps XNNPACK's threads at
 * hardwareConcurrency / 2 whatever setThreadsCount says (tfjs#8513), and LiteRT.js's threaded build starts
 * hardwareConcurrency pthread workers. The override is an own property of `navigator` that shadows the prototype
 * getter and is deleted afterwards; nothing else in the page reads hardwareConcurrency meanwhile. */
export async function withHardwareConcurrency(n, fn) {
  if (n === navigator.hardwareConcurrency) return fn();
  Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => n });
  try { return await fn(); } finally { delete navigator.hardwareConcurrency; }
}

// Tiny wasm modules that validate only where the feature exists (the checks of wasm-feature-detect).
const WASM_SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11];
const WASM_RELAXED_SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11];
const WASM_THREADS = [0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11];
const validates = (bytes) => { try { return WebAssembly.validate(new Uint8Array(bytes)); } catch (e) { return false; } };

let caps;
/** What this browser offers the runtimes, once per page: {crossOriginIsolated, sharedArrayBuffer, simd,
 * relaxedSimd, threads, jspi, webgpu, webgl, webnn, hardwareConcurrency, userAgent} (booleans, or strings saying
 * what the device is). `threads`: wasm shared memory and atomics with a SharedArrayBuffer that can be posted to a
 * worker (needs cross-origin isolation). */
export function capabilities() {
  caps = caps || (async () => {
    let sab = false;
    try { if (typeof SharedArrayBuffer === 'function') { new MessageChannel().port1.postMessage(new SharedArrayBuffer(1)); sab = true; } } catch (e) { sab = false; }
    const gpu = await webgpuAdapter();
    let gpuName = null;
    if (gpu) {
      const info = gpu.info || (gpu.requestAdapterInfo ? await gpu.requestAdapterInfo().catch(() => null) : null);
      gpuName = info ? [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'yes' : 'yes';
      if (gpu.isFallbackAdapter || (info && info.isFallbackAdapter)) gpuName += ' (fallback adapter)';
    }
    return {
      crossOriginIsolated: globalThis.crossOriginIsolated === true, sharedArrayBuffer: sab,
      simd: validates(WASM_SIMD), relaxedSimd: validates(WASM_RELAXED_SIMD), threads: sab && validates(WASM_THREADS),
      jspi: typeof WebAssembly.Suspending === 'function', webgpu: gpuName || false, webgl: webglRenderer() || false,
      webnn: !!(navigator.ml && navigator.ml.createContext), hardwareConcurrency: HARDWARE_CONCURRENCY,
      userAgent: navigator.userAgent,
    };
  })();
  return caps;
}

/** The WebGL renderer string ("... SwiftShader ..." is a software rasterizer), or null without WebGL. */
export function webglRenderer() {
  try {
    const gl = document.createElement('canvas').getContext('webgl2') || document.createElement('canvas').getContext('webgl');
    if (!gl) return null;
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const r = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return r;
  } catch (e) { return null; }
}

/** "software" for renderers that draw on the CPU (SwiftShader, llvmpipe), else null. */
export const softwareGl = (renderer) => (/swiftshader|llvmpipe|software/i.test(renderer || '') ? 'software' : null);
