// edgeport demo page: every web artifact listed by the manifests answers a drawn digit, and benchmark mode
// measures accuracy and latency in this browser, writing rows in the report.json schema into #report.
import { loadLiteRt, loadAndCompile, Tensor } from '@litertjs/core';

// LiteRT's wasm build prints its INFO/WARNING log lines to stderr, which Emscripten maps to console.error;
// route those to console.info so that real errors stay visible (and testable) as errors.
const consoleError = console.error.bind(console);
console.error = (...a) => (typeof a[0] === 'string' && /^(INFO|WARNING|VERBOSE): /.test(a[0]) ? console.info(...a) : consoleError(...a));

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const TFJS_BACKENDS = ['cpu', 'wasm', 'webgl', 'webgpu'];
const LITERT_ACCELERATORS = ['wasm', 'webgpu'];
// .tflite recipes offered through LiteRT.js (the others stay native-only).
const LITERT_RECIPES = ['fp32', 'int8'];

const state = { manifests: [], available: { tfjs: {}, litert: {} }, loaded: new Map(), heldout: null, predictions: {} };
window.edgeport = state;

function setStatus(s, text) { const el = $('#status'); el.dataset.state = s; el.textContent = text || s; }
const fmtBytes = (n) => n == null ? '-' : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(2)} MiB`;

// ------------------------------------------------------------------------------------------ backends
async function detectBackends() {
  const hasGpu = !!(navigator.gpu && await navigator.gpu.requestAdapter().catch(() => null));
  tf.wasm.setWasmPaths('/vendor/@tensorflow/tfjs-backend-wasm/dist/');
  for (const b of TFJS_BACKENDS) {
    if (b === 'webgpu' && !hasGpu) { state.available.tfjs[b] = 'no WebGPU adapter'; continue; }
    try { state.available.tfjs[b] = (await tf.setBackend(b)) ? true : 'failed to initialise'; }
    catch (e) { state.available.tfjs[b] = String(e.message || e); }
  }
  await tf.setBackend('cpu');
  try { await loadLiteRt('/vendor/@litertjs/core/wasm/'); state.available.litert.wasm = true; }
  catch (e) { state.available.litert.wasm = String(e.message || e); }
  state.available.litert.webgpu = hasGpu && state.available.litert.wasm === true ? true : 'no WebGPU adapter';
  fillSelect('#tfjs-backend', state.available.tfjs, params.get('tfjs') || 'wasm');
  fillSelect('#litert-backend', state.available.litert, 'wasm');
  const off = [...Object.entries(state.available.tfjs).map(([k, v]) => v !== true ? `TF.js ${k}: ${v}` : null),
               ...Object.entries(state.available.litert).map(([k, v]) => v !== true ? `LiteRT.js ${k}: ${v}` : null)].filter(Boolean);
  $('#backend-note').textContent = off.length ? 'Unavailable here: ' + off.join('; ') + '.' : 'All backends available.';
}

function fillSelect(sel, avail, preferred) {
  const el = $(sel); el.innerHTML = '';
  for (const [name, ok] of Object.entries(avail)) {
    const o = document.createElement('option');
    o.value = name; o.textContent = ok === true ? name : `${name} (unavailable)`; o.disabled = ok !== true;
    el.appendChild(o);
  }
  const first = Object.keys(avail).find((k) => avail[k] === true);
  el.value = avail[preferred] === true ? preferred : first;
}

// ------------------------------------------------------------------------------------------ models
// LiteRT.js tensors are float32, int32 or uint8: an artifact with int8 I/O cannot be fed in the browser.
const int8IO = (m) => [...m.signature.inputs, ...m.signature.outputs].some((t) => t.dtype === 'int8');
function webArtifacts(manifests) {
  return manifests.filter((m) => m.target === 'tfjs' || (m.target === 'tflite' && LITERT_RECIPES.includes(m.recipe) && !int8IO(m)));
}
function notOffered(manifests) {
  return manifests.filter((m) => m.target === 'tflite' && LITERT_RECIPES.includes(m.recipe) && int8IO(m));
}
const runtimeOf = (m) => m.target === 'tfjs' ? 'tfjs' : 'litert.js';

// Raw pixels (uint8, HxW) -> the input tensor data, exactly as the manifest's preprocessing says.
function toInput(m, pixels) {
  const pre = m.preprocessing, inp = m.signature.inputs[0];
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) x[i] = pixels[i] * pre.scale + pre.offset;
  // Single-channel images have the same memory order in NCHW and NHWC; only the shape differs.
  const q = inp.quantization;
  if (q && inp.dtype === 'int8') {
    const xi = new Int8Array(x.length);
    for (let i = 0; i < x.length; i++) xi[i] = Math.max(-128, Math.min(127, Math.round(x[i] / q.scale + q.zero_point)));
    return xi;
  }
  return x;
}
function fromOutput(m, arr) {
  const q = m.signature.outputs[0].quantization;
  if (q && !(arr instanceof Float32Array)) return Float32Array.from(arr, (v) => (v - q.zero_point) * q.scale);
  return Float32Array.from(arr);
}

async function loadModel(m, backend) {
  const t0 = performance.now();
  let model;
  if (m.target === 'tfjs') {
    if (tf.getBackend() !== backend) await tf.setBackend(backend);
    model = await tf.loadGraphModel(m.url);
  } else {
    model = await loadAndCompile(m.url, { accelerator: backend });
  }
  return { m, backend, model, loadMs: performance.now() - t0 };
}

// One inference on prepared input data (typed array). The data's trip into the runtime is part of the timing,
// as set_tensor is natively; the pixel preprocessing is not (the native harness times prepared inputs too).
async function run(h, data) {
  const { m, model } = h, shape = m.signature.inputs[0].shape;
  if (m.target === 'tfjs') {
    const t = tf.tensor(data, shape, 'float32');
    const out = model.predict(t);
    const logits = await out.data();
    t.dispose(); out.dispose();
    return Float32Array.from(logits);
  }
  const t = new Tensor(data, shape);
  const outs = await model.run(t);
  const arr = fromOutput(m, outs[0].toTypedArray());
  t.delete(); for (const o of outs) o.delete();
  return arr;
}
const predict = (h, pixels) => run(h, toInput(h.m, pixels));

function disposeModel(h) {
  try { if (h.m.target === 'tfjs') h.model.dispose(); else h.model.delete(); } catch (e) { /* already gone */ }
}

const softmax = (z) => { const mx = Math.max(...z), e = z.map((v) => Math.exp(v - mx)), s = e.reduce((a, b) => a + b, 0); return e.map((v) => v / s); };
const argmax = (z) => z.reduce((bi, v, i, a) => (v > a[bi] ? i : bi), 0);

// ------------------------------------------------------------------------------------------ drawing
const pad = $('#pad'), pctx = pad.getContext('2d', { willReadFrequently: true });
function clearPad() { pctx.fillStyle = '#000'; pctx.fillRect(0, 0, pad.width, pad.height); $('#preview').getContext('2d').clearRect(0, 0, 28, 28); }
clearPad();
let drawing = false, last = null;
function padPoint(ev) { const r = pad.getBoundingClientRect(); return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height]; }
pad.addEventListener('pointerdown', (ev) => { drawing = true; last = padPoint(ev); pad.setPointerCapture?.(ev.pointerId); stroke(last, last); });
pad.addEventListener('pointermove', (ev) => { if (!drawing) return; const p = padPoint(ev); stroke(last, p); last = p; });
for (const t of ['pointerup', 'pointercancel', 'pointerleave']) pad.addEventListener(t, () => { if (drawing) { drawing = false; classify(); } });
function stroke(a, b) {
  pctx.strokeStyle = '#fff'; pctx.lineWidth = 22; pctx.lineCap = 'round'; pctx.lineJoin = 'round';
  pctx.beginPath(); pctx.moveTo(a[0], a[1]); pctx.lineTo(b[0], b[1]); pctx.stroke();
}
$('#clear').addEventListener('click', () => { clearPad(); state.predictions = {}; renderCards(); });

// Canvas -> 28x28 uint8 pixels shaped like builtin:digits: crop to the ink, square it, average into 8x8 cells
// quantized to 17 levels (as the 8x8 originals are), then bilinear-upsample to 28x28 the way
// scipy.ndimage.zoom(order=1, grid_mode=True, mode='nearest') did for the training data.
function canvasToPixels() {
  const W = pad.width, H = pad.height, img = pctx.getImageData(0, 0, W, H).data;
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (img[4 * (y * W + x)] > 25) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1) * 1.08, cx = (x0 + x1 + 1) / 2, cy = (y0 + y1 + 1) / 2;
  const cells = new Float32Array(64), S = 8;
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
    let acc = 0;
    for (let sy = 0; sy < S; sy++) for (let sx = 0; sx < S; sx++) {
      const px = Math.floor(cx - side / 2 + (c + (sx + 0.5) / S) * side / 8), py = Math.floor(cy - side / 2 + (r + (sy + 0.5) / S) * side / 8);
      if (px >= 0 && py >= 0 && px < W && py < H) acc += img[4 * (py * W + px)] / 255;
    }
    cells[r * 8 + c] = acc / (S * S);
  }
  const mx = Math.max(...cells) || 1;
  for (let i = 0; i < 64; i++) cells[i] = Math.round(Math.min(1, cells[i] / mx) * 16) / 16;
  const out = new Uint8Array(28 * 28), f = 8 / 28;
  const idx = (o) => { const s = Math.min(7, Math.max(0, (o + 0.5) * f - 0.5)); const i0 = Math.floor(s); return [i0, Math.min(7, i0 + 1), s - i0]; };
  for (let y = 0; y < 28; y++) { const [a0, a1, ay] = idx(y);
    for (let x = 0; x < 28; x++) { const [b0, b1, bx] = idx(x);
      const v = (1 - ay) * ((1 - bx) * cells[a0 * 8 + b0] + bx * cells[a0 * 8 + b1]) + ay * ((1 - bx) * cells[a1 * 8 + b0] + bx * cells[a1 * 8 + b1]);
      out[y * 28 + x] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    } }
  return out;
}

function showPreview(pixels) {
  const ctx = $('#preview').getContext('2d'), im = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) { im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = pixels[i]; im.data[4 * i + 3] = 255; }
  ctx.putImageData(im, 0, 0);
}

// ------------------------------------------------------------------------------------------ draw mode
async function ensureDrawModels() {
  const tb = $('#tfjs-backend').value, lb = $('#litert-backend').value;
  for (const m of webArtifacts(state.manifests)) {
    const want = m.target === 'tfjs' ? tb : lb, cur = state.loaded.get(m.name);
    if (cur && cur.backend === want) continue;
    if (cur) disposeModel(cur);
    try { state.loaded.set(m.name, await loadModel(m, want)); }
    catch (e) { state.loaded.set(m.name, { m, backend: want, error: String(e.message || e) }); }
  }
}

async function classify() {
  const pixels = canvasToPixels();
  if (!pixels) return;
  showPreview(pixels);
  setStatus('predicting');
  await ensureDrawModels();
  for (const [name, h] of state.loaded) {
    if (h.error) { state.predictions[name] = { error: h.error, backend: h.backend }; continue; }
    if (h.m.target === 'tfjs' && tf.getBackend() !== h.backend) await tf.setBackend(h.backend);
    try {
      const t0 = performance.now();
      const logits = await predict(h, pixels);
      const ms = performance.now() - t0, p = softmax(Array.from(logits));
      const top = p.map((v, i) => [i, v]).sort((a, b) => b[1] - a[1]).slice(0, 3);
      const labels = h.m.signature.outputs[0].labels || p.map((_, i) => String(i));
      state.predictions[name] = { top1: labels[top[0][0]], top3: top.map(([i, v]) => ({ label: labels[i], p: v })), ms, backend: h.backend };
    } catch (e) { state.predictions[name] = { error: String(e.message || e), backend: h.backend }; }
  }
  renderCards();
  $('#predictions').textContent = JSON.stringify(state.predictions);
  setStatus('ready', `ready · ${Object.keys(state.predictions).length} answered`);
}

function renderCards() {
  const box = $('#cards'); box.innerHTML = '';
  for (const m of webArtifacts(state.manifests)) {
    const pr = state.predictions[m.name], card = document.createElement('div');
    card.className = 'card'; card.dataset.artifact = m.name;
    if (pr && pr.top1 != null) card.dataset.top1 = pr.top1;
    const bars = pr && pr.top3 ? pr.top3.map((t) => `<div class="bar"><b>${t.label}</b><span class="fill" style="width:${Math.max(2, t.p * 100)}px"></span>${(100 * t.p).toFixed(1)}%</div>`).join('') : '';
    card.innerHTML = `<div class="name">${m.name}</div>
      <div class="meta">${runtimeOf(m)} · ${pr ? pr.backend : '-'} · ${fmtBytes(m.bytes)} download</div>
      ${pr && pr.error ? `<div class="err">${pr.error}</div>` : `<div class="top1">${pr ? pr.top1 : '·'}</div>${bars}`}
      <div class="meta">${pr && pr.ms != null ? pr.ms.toFixed(2) + ' ms' : 'draw a digit'}</div>`;
    box.appendChild(card);
  }
}

// ------------------------------------------------------------------------------------------ benchmark
async function getHeldout() {
  if (state.heldout) return state.heldout;
  const d = await (await fetch('/api/heldout')).json();
  const raw = Uint8Array.from(atob(d.pixels_b64), (c) => c.charCodeAt(0)), per = d.shape[0] * d.shape[1];
  d.images = Array.from({ length: d.n }, (_, i) => raw.subarray(i * per, (i + 1) * per));
  return (state.heldout = d);
}

function pct(a, p) { const s = [...a].sort((x, y) => x - y); const k = (s.length - 1) * p / 100, f = Math.floor(k), c = Math.min(s.length - 1, f + 1); return s[f] + (s[c] - s[f]) * (k - f); }

async function benchOne(m, backend, data, opts) {
  const row = { artifact: m.name, target: m.target, recipe: m.recipe, source: m.source.model, runtime: runtimeOf(m),
    runtime_version: m.target === 'tfjs' ? tf.version.tfjs : '@litertjs/core', backend, threads: null, device: 'chromium',
    manifest: m.name + '.manifest.json', bytes: m.bytes, error: null };
  let h;
  try {
    h = await loadModel(m, backend);
    row.load_ms = h.loadMs;
    const preds = new Array(data.n), probeSet = new Map((m.probe.indices || []).map((ix, j) => [ix, j]));
    let correct = 0, maxAbs = 0, agree = 0;
    for (let i = 0; i < data.n; i++) {
      const z = await predict(h, data.images[i]);
      preds[i] = argmax(z);
      if (preds[i] === data.y[i]) correct++;
      if (probeSet.has(i) && m.probe.float_logits) {
        const ref = m.probe.float_logits[probeSet.get(i)];
        for (let k = 0; k < ref.length; k++) maxAbs = Math.max(maxAbs, Math.abs(ref[k] - z[k]));
        if (argmax(ref) === preds[i]) agree++;
      }
    }
    row.accuracy = correct / data.n; row.samples = data.n; row.predictions = preds;
    row.probe = { max_abs_diff: maxAbs, top1_agreement: probeSet.size ? agree / probeSet.size : null, samples: probeSet.size };
    const x1 = toInput(m, data.images[0]);
    for (let i = 0; i < opts.warmup; i++) await run(h, x1);
    const times = [], start = performance.now();
    while (times.length < opts.minRuns || (performance.now() - start < opts.minMs && times.length < opts.maxRuns)) {
      const t0 = performance.now(); await run(h, x1); times.push(performance.now() - t0);
    }
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    row.latency_ms = { p50: pct(times, 50), p90: pct(times, 90), p99: pct(times, 99), mean,
      std: Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / times.length) };
    row.runs = times.length;
  } catch (e) { row.error = `${row.runtime}/${backend}: ${String(e.message || e).split('\n')[0]}`; }
  if (h && h.model) disposeModel(h);
  return row;
}

async function runBenchmark() {
  const quick = params.has('quick');
  const opts = { warmup: 10, minRuns: quick ? 20 : 100, minMs: quick ? 200 : 2000, maxRuns: 1000 };
  const only = params.get('backends') ? params.get('backends').split(',') : null;
  const t0 = performance.now();
  setStatus('benchmarking');
  for (const h of state.loaded.values()) if (h.model) disposeModel(h);
  state.loaded.clear();
  const data = await getHeldout(), rows = [], tbody = $('#bench-table tbody');
  tbody.innerHTML = '';
  const jobs = [];
  for (const m of webArtifacts(state.manifests)) {
    const avail = m.target === 'tfjs' ? state.available.tfjs : state.available.litert;
    for (const [b, ok] of Object.entries(avail)) {
      if (only && !only.includes(b)) continue;
      jobs.push([m, b, ok]);
    }
  }
  for (const [i, [m, b, ok]] of jobs.entries()) {
    $('#bench-progress').textContent = `${i + 1}/${jobs.length}: ${m.name} on ${b}`;
    const row = ok === true ? await benchOne(m, b, data, opts)
      : { artifact: m.name, target: m.target, recipe: m.recipe, source: m.source.model, runtime: runtimeOf(m), backend: b,
          threads: null, device: 'chromium', bytes: m.bytes, unavailable: true, error: `backend unavailable: ${ok}` };
    rows.push(row);
    const tr = document.createElement('tr');
    const lat = row.latency_ms || {};
    tr.innerHTML = `<td>${row.artifact}</td><td>${row.runtime}</td><td>${b}</td><td>${fmtBytes(row.bytes)}</td>
      <td>${row.accuracy != null ? (100 * row.accuracy).toFixed(2) + '%' : '-'}</td>
      <td>${row.probe ? row.probe.max_abs_diff.toExponential(1) : '-'}</td>
      <td>${lat.p50 != null ? lat.p50.toFixed(3) : '-'}</td><td>${lat.p90 != null ? lat.p90.toFixed(3) : '-'}</td>
      <td>${row.load_ms != null ? row.load_ms.toFixed(1) : '-'}</td><td>${row.error || ''}</td>`;
    tbody.appendChild(tr);
  }
  const report = { schema: 1, created: new Date().toISOString(), data: data.name, host: { userAgent: navigator.userAgent },
    float_baseline: {}, extra: { wall_ms: performance.now() - t0, first_prediction_ms: state.firstPredictionMs }, rows };
  $('#report').textContent = JSON.stringify(report);
  $('#bench-progress').textContent = `${rows.length} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  setStatus('bench-done', 'benchmark done');
  return report;
}
$('#run-bench').addEventListener('click', () => runBenchmark().catch((e) => { setStatus('error', String(e)); }));

// ------------------------------------------------------------------------------------------ start
async function main() {
  await detectBackends();
  state.manifests = await (await fetch('/api/manifests')).json();
  renderCards();
  const skipped = notOffered(state.manifests).map((m) => m.name);
  if (skipped.length) $('#backend-note').textContent += ` Not offered: ${skipped.join(', ')} (int8 input/output; LiteRT.js tensors are float32, int32 or uint8 only).`;
  if (!webArtifacts(state.manifests).length) { setStatus('ready', 'ready · no web artifacts found'); return; }
  // Time from page start to the first prediction of the first artifact (a blank input warms every model).
  await ensureDrawModels();
  const first = [...state.loaded.values()].find((h) => !h.error);
  if (first) { await predict(first, new Uint8Array(784)); }
  state.firstPredictionMs = performance.now();  // since navigation start
  setStatus('ready');
  if (params.has('bench')) await runBenchmark();
}
$('#tfjs-backend').addEventListener('change', () => classify());
$('#litert-backend').addEventListener('change', () => classify());
main().catch((e) => { console.error(e); setStatus('error', 'error: ' + (e.message || e)); });
