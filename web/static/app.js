// edgeport demo page. Every web artifact listed by /api/manifests runs through its runtime's adapter
// (/static/adapters/<manifest.adapter>.js: {name, runtime, backends, version(), detect(), load(m, backend),
// run(handle, {inputName: TypedArray}) -> {outputName: Float32Array}, dispose(handle)}); this file knows no runtime.
//   - draw mode: single-image classifiers answer a drawing;
//   - sentence similarity: text-embedding artifacts compare two sentences (tokenized here with wordpiece.js);
//   - benchmark mode (?bench=1 or the button): every artifact x available backend x thread count on the server's
//     evaluation data (/api/data/<name>) and parity probe (/api/probe/<name>); rows in the report.json schema go into
//     #report. Each output of all samples stays in the page as float32 and Python takes it one row at a time
//     (window.edgeportRowOutputs(i): base64), so that large outputs (feature maps, masks) never meet in one string;
//     Python computes every metric. ?artifact=NAME (repeatable) limits a run to those artifacts.
// Threads: a wasm runtime fixes its thread count (and TF.js / onnxruntime-web their whole wasm module) when it
// initialises, once per realm. So the benchmark runs one pass per thread count of /api/config's bench.threads, each
// in a fresh same-origin iframe (?pass=1&threads=N): adapters get configure({threads: N}) before detect(), and each
// row says the thread count and the build (SIMD, relaxed SIMD, threaded) it really got (adapter.setup(backend)).
// Backends without a thread count (cpu, webgl, webgpu) are measured in the first pass only. The interactive page
// itself runs the fastest setup available: the wasm backend, at every core, on the best build the browser takes.
// Strings from manifests reach the DOM only as text (textContent), never as HTML.
import { capabilities, errText, HARDWARE_CONCURRENCY, numel, sample, samples, toBase64, toDtype, unpack } from './tensors.js';
import { tokenizerFromJson } from './wordpiece.js';

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const PASS = params.get('pass') === '1';
const ARTIFACTS = params.getAll('artifact');  // a benchmark limited to these manifests (empty: all)  // this realm is one benchmark pass, run by the page that framed it
const THREADS = PASS ? Math.max(1, Number(params.get('threads')) || 1) : HARDWARE_CONCURRENCY;
// The preferred backend order of the interactive page: wasm (XNNPACK, every core) is the fastest CPU setup; a GPU
// backend next; TF.js cpu (plain JS) last.
const PREFERENCE = ['wasm', 'webgpu', 'webgl', 'cpu'];
const state = {
  config: { data: null, bench: { warmup: 10, minRuns: 100, minMs: 2000, maxRuns: 1000, threads: [1, 'all'], fallbacks: true },
    tasks: {} },
  manifests: [], adapters: new Map(), loaded: new Map(), predictions: {}, tokenizers: new Map(), busy: false, benchRows: [],
  firstPredictionMs: null,
};

function setStatus(s, text) { const el = $('#status'); el.dataset.state = s; el.textContent = text || s; }
const fmtBytes = (n) => n == null ? '-' : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(2)} MiB`;
const fmt = (v, d = 3) => (v == null || Number.isNaN(v) ? '-' : v.toFixed(d));

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(e.dataset, v); else if (k === 'text') e.textContent = v; else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error((await r.text()).trim() || `${url}: HTTP ${r.status}`);
  return r;
}

// ------------------------------------------------------------------------------------------ adapters
async function loadAdapters() {
  for (const name of new Set(state.manifests.map((m) => m.adapter))) {
    if (!/^[a-z0-9_-]+$/i.test(name)) { state.adapters.set(name, { error: `invalid adapter name ${name}` }); continue; }
    try {
      const mod = await import(`/static/adapters/${name}.js`);
      if (mod.configure) mod.configure({ threads: THREADS });
      state.adapters.set(name, { mod, avail: await mod.detect() });
    } catch (e) {
      state.adapters.set(name, { error: `adapter ${name} failed to load: ${errText(e)}` });
    }
  }
  const box = $('#backends'), off = [];
  box.replaceChildren();
  for (const [name, a] of state.adapters) {
    if (a.error) { off.push(a.error); continue; }
    const sel = el('select', { id: `backend-${name}` });
    for (const b of a.mod.backends) {
      const ok = a.avail[b] === true;
      sel.append(el('option', { value: b, disabled: !ok, text: ok ? b : `${b} (unavailable)` }));
      if (!ok) off.push(`${a.mod.runtime} ${b}: ${a.avail[b]}`);
    }
    const pref = [...PREFERENCE, ...a.mod.backends].find((b) => a.avail[b] === true);
    if (pref) sel.value = pref;
    sel.addEventListener('change', () => { showSetup(); refreshInteractive(); });
    box.append(el('label', { text: `${a.mod.runtime} backend ` }, sel));
  }
  $('#backend-note').textContent = off.length ? `Unavailable here: ${off.join('; ')}.` : 'All backends available.';
  showSetup();
}

/** {threads, build} of an adapter's backend, or {error}. */
function setupOf(a, backend) {
  if (!a || !a.mod || !a.mod.setup) return { threads: null, build: null };
  try { return a.mod.setup(backend); } catch (e) { return { threads: null, build: null, error: errText(e) }; }
}
const describeSetup = (a, b) => { const s = setupOf(a, b); return s.error ? `${b} (${s.error})` : `${b}${s.threads ? ` · ${s.threads} thread${s.threads > 1 ? 's' : ''}` : ''}${s.build ? ` · ${s.build}` : ''}`; };

/** The setup the interactive page runs, per runtime (#setup; data-setup holds it as JSON for tests and tools). */
function showSetup() {
  const list = {}, text = [];
  for (const [name, a] of state.adapters) {
    const b = a.error ? null : document.getElementById(`backend-${name}`)?.value;
    if (!b || a.avail[b] !== true) continue;
    list[a.mod.runtime] = { backend: b, ...setupOf(a, b) };
    text.push(`${a.mod.runtime} ${describeSetup(a, b)}`);
  }
  $('#setup').dataset.setup = JSON.stringify(list);
  $('#setup').textContent = text.length ? `Running: ${text.join('; ')}.` : 'No runtime available.';
}

const adapterOf = (m) => state.adapters.get(m.adapter);
const selectedBackend = (m) => { const s = document.getElementById(`backend-${m.adapter}`); return s ? s.value : null; };

/** A loaded model for interactive use on the adapter's selected backend (cached; reloaded when it changes). */
async function ensureLoaded(m) {
  const a = adapterOf(m);
  if (!a || a.error) throw new Error(a ? a.error : `no adapter ${m.adapter}`);
  const backend = selectedBackend(m);
  if (!backend || a.avail[backend] !== true) throw new Error(`no available ${a.mod.runtime} backend`);
  const cur = state.loaded.get(m.name);
  if (cur && cur.backend === backend) return cur;
  if (cur && cur.handle) a.mod.dispose(cur.handle);
  const entry = { backend, handle: await a.mod.load(m, backend) };
  state.loaded.set(m.name, entry);
  return entry;
}

function disposeAll() {
  for (const [name, e] of state.loaded) {
    const m = state.manifests.find((x) => x.name === name);
    if (m && e.handle) adapterOf(m).mod.dispose(e.handle);
  }
  state.loaded.clear();
}

function writePredictions() {
  const p = $('#predictions');
  p.textContent = JSON.stringify(state.predictions);
  p.dataset.seq = String(Number(p.dataset.seq || 0) + 1);
}

const primary = (m) => m.signature.outputs[0];
// What the manifest's task means, from the server's task registry (/api/config tasks): labels (its outputs score
// classes, top-1 against labels) or similarity (its outputs are vectors compared by cosine).
const taskOf = (m) => state.config.tasks[m.task] || {};

// ------------------------------------------------------------------------------------------ draw mode
// Single-image classifiers: one input with role "image", a task whose outputs score classes.
const drawTargets = () => state.manifests.filter((m) => taskOf(m).labels
  && m.signature.inputs.length === 1 && m.signature.inputs[0].role === 'image');

/** {h, w, c, layout} of an image input (layout from the tensor, else the preprocessing, else NHWC). */
function imageGeometry(m) {
  const s = m.signature.inputs[0], layout = s.layout || m.preprocessing.layout || 'NHWC';
  const [, a, b, c] = s.shape;
  return layout === 'NCHW' ? { c: a, h: b, w: c, layout } : { h: a, w: b, c, layout };
}

const pad = $('#pad'), pctx = pad.getContext('2d', { willReadFrequently: true });
let drawing = false, last = null, drawn = false;
function clearPad() {
  pctx.fillStyle = '#000'; pctx.fillRect(0, 0, pad.width, pad.height); drawn = false;
  const pv = $('#preview'); pv.getContext('2d').clearRect(0, 0, pv.width, pv.height);
}
function padPoint(ev) { const r = pad.getBoundingClientRect(); return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height]; }
function stroke(a, b) {
  pctx.strokeStyle = '#fff'; pctx.lineWidth = 22; pctx.lineCap = 'round'; pctx.lineJoin = 'round';
  pctx.beginPath(); pctx.moveTo(a[0], a[1]); pctx.lineTo(b[0], b[1]); pctx.stroke(); drawn = true;
}
pad.addEventListener('pointerdown', (ev) => { drawing = true; last = padPoint(ev); pad.setPointerCapture?.(ev.pointerId); stroke(last, last); });
pad.addEventListener('pointermove', (ev) => { if (!drawing) return; const p = padPoint(ev); stroke(last, p); last = p; });
for (const t of ['pointerup', 'pointercancel', 'pointerleave']) pad.addEventListener(t, () => { if (drawing) { drawing = false; classify(); } });
$('#clear').addEventListener('click', () => {
  clearPad();
  for (const m of drawTargets()) delete state.predictions[m.name];
  renderCards(); writePredictions();
});

// 28x28x1 inputs: the canvas shaped like builtin:digits. Crop to the ink, square it, average into 8x8 cells
// quantized to 17 levels (as the 8x8 originals are), then bilinear-upsample to 28x28 the way
// scipy.ndimage.zoom(order=1, grid_mode=True, mode='nearest') did for the training data.
function digitsPixels() {
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

/** A model that sees one grey level: a 1-channel input, or an input front (uint8 RGB(A) pixels in, `channels`) that
 * turns RGB into the grey model's luma inside the model. */
const grayModel = (m, g) => g.c === 1 || /gray/.test((m.preprocessing.front || {}).color || '');

/** The digits pixels with the input's channels, as edgeport.data.pixels_to_input gives a front: the grey level
 * repeated into R, G and B (its luma is the same grey), alpha opaque. */
function digitsPixelsAs(c) {
  const gray = digitsPixels();
  if (!gray || c === 1) return gray;
  const out = new Uint8Array(gray.length * c);
  for (let i = 0; i < gray.length; i++) for (let k = 0; k < c; k++) out[i * c + k] = k === 3 ? 255 : gray[i];
  return out;
}

// Any other size: the whole pad resized to H x W (the browser's smoothing), channels taken as they are
// (1: the grey level, 3: RGB, 4: RGBA). Pixels come back H x W x C, uint8.
function resizedPixels(h, w, c) {
  const off = document.createElement('canvas');
  off.width = w; off.height = h;
  const ctx = off.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true; ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(pad, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data, out = new Uint8Array(h * w * c);
  for (let i = 0; i < h * w; i++) for (let k = 0; k < c; k++) out[i * c + k] = rgba[4 * i + (c === 1 ? 0 : k)];
  return out;
}

/** Uint8 pixels (H x W x C) -> the model input, as edgeport.data.pixels_to_input does: float32(p) * scale + offset,
 * then the layout, then the tensor's dtype (int8 inputs quantized with the manifest's scale / zero point). */
function pixelsToInput(m, pixels, g) {
  const pre = m.preprocessing, scale = pre.scale ?? 1, offset = pre.offset ?? 0, x = new Float32Array(pixels.length);
  const hw = g.h * g.w;
  for (let i = 0; i < hw; i++) for (let k = 0; k < g.c; k++) {
    const v = Math.fround(Math.fround(pixels[i * g.c + k]) * Math.fround(scale)) + Math.fround(offset);
    x[g.layout === 'NCHW' ? k * hw + i : i * g.c + k] = v;
  }
  return toDtype(x, m.signature.inputs[0]);
}

function showPreview(pixels, g) {
  const pv = $('#preview');
  pv.width = g.w; pv.height = g.h;
  const ctx = pv.getContext('2d'), im = ctx.createImageData(g.w, g.h);
  for (let i = 0; i < g.w * g.h; i++) {
    for (let k = 0; k < 3; k++) im.data[4 * i + k] = pixels[i * g.c + (g.c >= 3 ? k : 0)];
    im.data[4 * i + 3] = 255;
  }
  ctx.putImageData(im, 0, 0);
  $('#preview-caption').textContent = `model input ${g.h}×${g.w}×${g.c}`;
}

const softmax = (z) => { const mx = Math.max(...z), e = z.map((v) => Math.exp(v - mx)), s = e.reduce((a, b) => a + b, 0); return e.map((v) => v / s); };

async function classify() {
  if (!drawn || state.busy) return;
  const targets = drawTargets();
  const pixelsBySize = new Map();
  for (const m of targets) {
    const g = imageGeometry(m), key = `${g.h}x${g.w}x${g.c}`;
    if (!pixelsBySize.has(key)) pixelsBySize.set(key, g.h === 28 && g.w === 28 && grayModel(m, g) ? digitsPixelsAs(g.c) : resizedPixels(g.h, g.w, g.c));
    const pixels = pixelsBySize.get(key);
    if (!pixels) return;
    if (m === targets[0]) showPreview(pixels, g);
    const backend = selectedBackend(m);
    try {
      const { handle } = await ensureLoaded(m), a = adapterOf(m);
      const feeds = { [m.signature.inputs[0].name]: pixelsToInput(m, pixels, g) };
      const t0 = performance.now();
      const out = await a.mod.run(handle, feeds);
      const ms = performance.now() - t0, out0 = primary(m);
      const p = softmax(Array.from(out[out0.name]));
      const labels = out0.labels || p.map((_, i) => String(i));
      const top = p.map((v, i) => [i, v]).sort((x, y) => y[1] - x[1]).slice(0, 3);
      state.predictions[m.name] = { top1: labels[top[0][0]], top3: top.map(([i, v]) => ({ label: labels[i], p: v })), ms, backend };
    } catch (e) {
      state.predictions[m.name] = { error: errText(e), backend };
    }
  }
  renderCards();
  writePredictions();
}

function renderCards() {
  const box = $('#cards');
  box.replaceChildren();
  for (const m of drawTargets()) {
    const pr = state.predictions[m.name], a = adapterOf(m);
    const card = el('div', { className: 'card', dataset: { artifact: m.name } });
    if (pr && pr.top1 != null) card.dataset.top1 = pr.top1;
    card.append(el('div', { className: 'name', text: m.name }),
      el('div', { className: 'meta setup', text: `${a && a.mod ? a.mod.runtime : m.adapter} · ${pr ? describeSetup(a, pr.backend) : '-'} · ${fmtBytes(m.bytes)} download` }));
    if (pr && pr.error) card.append(el('div', { className: 'err', text: pr.error }));
    else {
      card.append(el('div', { className: 'top1', text: pr ? pr.top1 : '·' }));
      for (const t of (pr && pr.top3) || []) {
        const fill = el('span', { className: 'fill' });
        fill.style.width = `${Math.max(2, t.p * 100)}px`;
        card.append(el('div', { className: 'bar' }, el('b', { text: t.label }), fill, `${(100 * t.p).toFixed(1)}%`));
      }
    }
    card.append(el('div', { className: 'meta', text: pr && pr.ms != null ? `${pr.ms.toFixed(2)} ms` : 'draw something' }));
    box.append(card);
  }
}

// ------------------------------------------------------------------------------------------ sentences
// Text-embedding artifacts: a task whose outputs are compared by cosine, preprocessing kind text.
const textTargets = () => state.manifests.filter((m) => taskOf(m).similarity && m.preprocessing && m.preprocessing.kind === 'text');

async function tokenizerFor(m) {
  const file = m.preprocessing.tokenizer && m.preprocessing.tokenizer.file;
  if (!file || /^([a-z]+:|\/)/i.test(file)) throw new Error(`tokenizer file ${file} must be a path relative to the manifest`);
  const url = '/artifacts/' + file.split('/').map(encodeURIComponent).join('/');
  if (!state.tokenizers.has(url)) {
    state.tokenizers.set(url, (async () => tokenizerFromJson(await (await fetchOk(url)).json()))());
  }
  try { return await state.tokenizers.get(url); } catch (e) { state.tokenizers.delete(url); throw e; }
}

/** One sentence -> {input name: TypedArray} by the manifest's text preprocessing (roles -> input names). */
function encodeText(m, tok, text) {
  const pre = m.preprocessing, n = Number(pre.max_length);
  if (pre.pad_id != null) tok.padId = Number(pre.pad_id);
  const enc = tok.encode(text, n), byRole = { token_ids: enc.inputIds, attention_mask: enc.attentionMask, token_type_ids: enc.tokenTypeIds };
  const feeds = {};
  for (const s of m.signature.inputs) {
    const role = Object.keys(pre.inputs || {}).find((r) => pre.inputs[r] === s.name) || s.role;
    if (!byRole[role]) throw new Error(`input ${s.name}: the text preprocessing does not say what it holds`);
    feeds[s.name] = toDtype(byRole[role], s);
  }
  return feeds;
}

function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return aa === 0 || bb === 0 ? (aa === bb ? 1 : 0) : ab / Math.sqrt(aa * bb);
}

async function compareSentences() {
  if (state.busy) return;
  const a = $('#sentence-a').value, b = $('#sentence-b').value;
  for (const m of textTargets()) {
    const backend = selectedBackend(m);
    try {
      const { handle } = await ensureLoaded(m), tok = await tokenizerFor(m), mod = adapterOf(m).mod, out = primary(m).name;
      const fa = encodeText(m, tok, a), fb = encodeText(m, tok, b);
      const t0 = performance.now();
      const ea = (await mod.run(handle, fa))[out], eb = (await mod.run(handle, fb))[out];
      const ms = (performance.now() - t0) / 2;
      state.predictions[m.name] = { cosine: cosine(ea, eb), ms, backend };
    } catch (e) {
      state.predictions[m.name] = { error: errText(e), backend };
    }
  }
  renderSimilarity();
  writePredictions();
}

function renderSimilarity() {
  const tbody = $('#similarity-table tbody');
  tbody.replaceChildren();
  for (const m of textTargets()) {
    const p = state.predictions[m.name] || {}, a = adapterOf(m);
    tbody.append(el('tr', { dataset: { artifact: m.name } }, el('td', { text: m.name }),
      el('td', { text: a && a.mod ? a.mod.runtime : m.adapter }), el('td', { text: p.backend || '-' }),
      el('td', { className: 'cosine', text: fmt(p.cosine, 4) }), el('td', { text: fmt(p.ms, 2) }),
      el('td', { className: 'err', text: p.error || '' })));
  }
}
$('#compare').addEventListener('click', () => compareSentences());

function refreshInteractive() {
  if (drawn) classify();
  if (textTargets().length && Object.keys(state.predictions).some((k) => textTargets().some((m) => m.name === k))) compareSentences();
}

// ------------------------------------------------------------------------------------------ benchmark
// numpy.percentile's default (linear interpolation between closest ranks).
function pct(sorted, p) { const k = (sorted.length - 1) * p / 100, f = Math.floor(k), c = Math.min(sorted.length - 1, f + 1); return sorted[f] + (sorted[c] - sorted[f]) * (k - f); }
function stats(times) {
  const s = [...times].sort((x, y) => x - y), mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), mean, std: Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / times.length) };
}

/** Every sample through the model -> {output name: Float32Array of all N samples, concatenated}. */
async function runAll(mod, h, m, data) {
  const missing = m.signature.inputs.filter((s) => !data.tensors[s.name]).map((s) => s.name);
  if (missing.length) throw new Error(`the data lacks input(s) ${missing.join(', ')}`);
  const outs = {};
  for (const s of m.signature.outputs) outs[s.name] = new Float32Array(data.n * numel(s.shape));
  const start = await runBatched(mod, h, m, data, outs);
  for (let i = start; i < data.n; i++) {
    const got = await mod.run(h, sample(data, i));
    for (const s of m.signature.outputs) {
      const per = numel(s.shape), z = got[s.name];
      if (!z || z.length !== per) throw new Error(`output ${s.name}: ${z ? z.length : 'no'} values, the manifest says ${per}`);
      outs[s.name].set(z, i * per);
    }
    if (state.firstPredictionMs == null) state.firstPredictionMs = performance.now();  // since navigation start
  }
  return outs;
}

const BATCH = 64;

/** The accuracy pass in batches of BATCH where the adapter can (runBatch) and the model takes a batch: the first
 * batch's sample 0 must match a one-sample run of it (within 1e-4 relative), else every sample runs alone.
 * Fills `outs`; returns how many samples it did (0 or data.n). Timing never uses this: latency is batch 1. */
async function runBatched(mod, h, m, data, outs) {
  if (!mod.runBatch || h.noBatch || data.n < 2) return 0;
  try {
    const one = await mod.run(h, sample(data, 0));
    for (let i = 0; i < data.n; i += BATCH) {
      const j = Math.min(data.n, i + BATCH), got = await mod.runBatch(h, samples(data, i, j), j - i);
      for (const s of m.signature.outputs) {
        const per = numel(s.shape), z = got[s.name];
        if (!z || z.length !== per * (j - i)) throw new Error(`output ${s.name}: ${z ? z.length : 'no'} values for ${j - i} samples`);
        if (i === 0) {
          const ref = one[s.name];
          let scale = 1e-6, diff = 0;
          for (let k = 0; k < per; k++) { scale = Math.max(scale, Math.abs(ref[k])); diff = Math.max(diff, Math.abs(z[k] - ref[k])); }
          if (diff > 1e-4 * scale) throw new Error(`batched output ${s.name} differs from one sample's by ${diff}`);
        }
        outs[s.name].set(z, i * per);
      }
      if (state.firstPredictionMs == null) state.firstPredictionMs = performance.now();
    }
    return data.n;
  } catch (e) {
    h.noBatch = true;  // this model takes one sample at a time
    return 0;
  }
}

const b64Outputs = (outs) => Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, toBase64(v)]));

function accuracy(m, outs, labels, n) {
  if (!labels || !taskOf(m).labels) return null;
  const z = outs[primary(m).name], per = z.length / n;
  let ok = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < per; k++) if (z[i * per + k] > z[i * per + best]) best = k;
    if (best === Number(labels[i])) ok++;
  }
  return ok / n;
}

function baseRow(m, a, backend, threads = null) {
  return { artifact: m.name, target: m.target, recipe: m.recipe, source: m.source && m.source.model, task: m.task,
    runtime: a && a.mod ? a.mod.runtime : m.adapter, runtime_version: a && a.mod ? a.mod.version() : '', backend,
    threads, build: null, device: 'chromium', bytes: m.bytes, load_ms: null, latency_ms: null, runs: null,
    samples: null, error: null, skipped: null, outputs: null, probe_outputs: null };
}

async function benchOne(m, a, backend, data, probe, opts, setup) {
  const row = { ...baseRow(m, a, backend, setup.threads), build: setup.build };
  let h = null;
  try {
    const t0 = performance.now();
    h = await a.mod.load(m, backend);
    row.load_ms = performance.now() - t0;
    const outs = await runAll(a.mod, h, m, data);
    row.samples = data.n;
    row.outputs = outs;
    row.accuracy_in_page = accuracy(m, outs, data.labels, data.n);  // for the table only; Python scores the outputs
    if (probe) row.probe_outputs = await runAll(a.mod, h, m, probe);
    // Steady state on one prepared sample: its trip into the runtime and the outputs' trip back are timed,
    // as set_tensor / get_tensor are natively.
    const feeds = sample(data, 0);
    for (let i = 0; i < opts.warmup; i++) await a.mod.run(h, feeds);
    const times = [], start = performance.now();
    while (times.length < opts.minRuns || (performance.now() - start < opts.minMs && times.length < opts.maxRuns)) {
      const t1 = performance.now(); await a.mod.run(h, feeds); times.push(performance.now() - t1);
    }
    row.latency_ms = stats(times);
    row.runs = times.length;
  } catch (e) {
    row.error = `${row.runtime}/${backend}: ${errText(e)}`;
  } finally {
    if (h) { try { a.mod.dispose(h); } catch (e) { /* already gone */ } }
  }
  return row;
}

async function packed(url) {
  const r = await fetch(url);
  if (r.status === 404 && url.startsWith('/api/probe/')) return null;  // no probe sidecar: nothing to compare
  if (!r.ok) throw new Error((await r.text()).trim() || `HTTP ${r.status}`);
  return unpack(await r.arrayBuffer());
}

function tableRow(row) {
  const lat = row.latency_ms || {}, note = row.error || (row.skipped ? `skipped: ${row.skipped}` : '');
  const tr = el('tr', { dataset: { artifact: row.artifact, backend: row.backend, threads: String(row.threads ?? '') } },
    el('td', { text: row.artifact }), el('td', { text: row.runtime }), el('td', { text: row.backend }),
    el('td', { text: row.threads != null ? String(row.threads) : '-' }), el('td', { className: 'note', text: row.build || '-' }),
    el('td', { text: fmtBytes(row.bytes) }),
    el('td', { text: row.accuracy_in_page != null ? `${(100 * row.accuracy_in_page).toFixed(2)}%` : '-' }),
    el('td', { text: row.samples != null ? String(row.samples) : '-' }),
    el('td', { text: fmt(lat.p50) }), el('td', { text: fmt(lat.p90) }), el('td', { text: fmt(row.load_ms, 1) }),
    el('td', { className: row.error ? 'err' : 'note', text: note }));
  $('#bench-table tbody').append(tr);
}

/** One benchmark pass, in this realm, at THREADS threads: every artifact x backend (backends without a thread
 * count only when `first`). Progress and rows go to `post` ({type: 'progress' | 'row', ...}). */
async function runPass(opts, only, first, post) {
  const jobs = [];
  for (const m of state.manifests) {
    const a = adapterOf(m), bs = a && a.mod ? a.mod.backends : ['-'];
    const threaded = (a && a.mod && a.mod.threaded) || [];
    jobs.push([m, a, bs.filter((b) => (!only || only.includes(b)) && (first || threaded.includes(b)))]);
  }
  const total = jobs.reduce((s, j) => s + j[2].length, 0), rows = [];
  let done = 0;
  for (const [m, a, bs] of jobs) {
    let data = null, probe = null, dataError = null;
    const runnable = a && a.mod && bs.some((b) => a.avail[b] === true);
    if (runnable) {
      try {
        data = await packed(`/api/data/${encodeURIComponent(m.name)}`);
        probe = await packed(`/api/probe/${encodeURIComponent(m.name)}`);
      } catch (e) { dataError = errText(e); }
    }
    for (const b of bs) {
      post({ type: 'progress', text: `${THREADS} thread(s), ${++done}/${total}: ${m.name} on ${b}` });
      const threads = a && a.mod && (a.mod.threaded || []).includes(b) ? THREADS : null;
      let row;
      if (!a || a.error) row = { ...baseRow(m, a, b, threads), error: a ? a.error : `no adapter ${m.adapter}` };
      else if (a.avail[b] !== true) row = { ...baseRow(m, a, b, threads), skipped: `${b} unavailable: ${a.avail[b]}` };
      else if (dataError) row = { ...baseRow(m, a, b, threads), error: dataError };
      else {
        const setup = setupOf(a, b);
        if (setup.error) row = { ...baseRow(m, a, b, threads), skipped: `${THREADS} thread(s) unavailable here: ${setup.error}` };
        else if (setup.fallback && opts.fallbacks === false) {
          row = { ...baseRow(m, a, b, threads), build: setup.build,
            skipped: `${b} is ${setup.build} here, a fallback, not a deployment target; edgeport evaluate --browser chromium measures it` };
        } else row = await benchOne(m, a, b, data, probe, opts, setup);
      }
      rows.push(row);
      post({ type: 'row', row });
    }
  }
  return rows;
}

/** Thread counts of the bench settings: positive integers, 'all' = every core the browser reports; unique, sorted. */
function threadCounts(list) {
  const out = (list && list.length ? list : [1]).map((t) => (t === 'all' ? HARDWARE_CONCURRENCY : Math.floor(Number(t))));
  if (out.some((t) => !(t >= 1))) throw new Error(`bench threads ${JSON.stringify(list)}: positive integers or "all"`);
  return [...new Set(out)].sort((x, y) => x - y);
}

/** One pass in a fresh same-origin iframe (a fresh realm: each runtime initialises at `threads`). */
function passInFrame(threads, first, only, onRow) {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ pass: '1', threads: String(threads), first: first ? '1' : '0' });
    if (only) q.set('backends', only.join(','));
    for (const a of ARTIFACTS) q.append('artifact', a);
    const frame = el('iframe', { src: `/?${q}`, title: `benchmark pass, ${threads} thread(s)` });
    frame.className = 'pass';
    const finish = (fn, v) => { window.removeEventListener('message', onMsg); frame.remove(); fn(v); };
    function onMsg(ev) {
      if (ev.source !== frame.contentWindow || ev.origin !== location.origin) return;
      const d = ev.data || {};
      if (d.type === 'progress') $('#bench-progress').textContent = d.text;
      else if (d.type === 'row') onRow(d.row);
      else if (d.type === 'done') finish(resolve, d);
      else if (d.type === 'error') finish(reject, new Error(`pass at ${threads} thread(s): ${d.error}`));
    }
    window.addEventListener('message', onMsg);
    $('#passes').append(frame);
  });
}

async function runBenchmark() {
  if (state.busy) return null;
  state.busy = true;
  $('#run-bench').disabled = true;
  const opts = state.config.bench, only = params.get('backends') ? params.get('backends').split(',') : null;
  const t0 = performance.now(), rows = [];
  setStatus('benchmarking');
  $('#bench-table tbody').replaceChildren();
  try {
    const caps = await capabilities(), threads = threadCounts(opts.threads);
    let first = null;
    for (let i = 0; i < threads.length; i++) {
      const res = await passInFrame(threads[i], i === 0, only, (row) => { rows.push(row); tableRow(row); });
      if (first == null) first = res.firstPredictionMs;
    }
    state.benchRows = rows;
    const pending = (v) => (v ? 'pending' : null);  // taken one row at a time: window.edgeportRowOutputs(i)
    const report = { rows: rows.map((r) => ({ ...r, outputs: pending(r.outputs), probe_outputs: pending(r.probe_outputs) })),
      capabilities: caps,
      extra: { wall_ms: performance.now() - t0, first_prediction_ms: first, data: state.config.data, bench: opts, threads },
      host: { userAgent: navigator.userAgent, hardwareConcurrency: HARDWARE_CONCURRENCY, crossOriginIsolated } };
    $('#report').textContent = JSON.stringify(report);
    $('#bench-progress').textContent = `${rows.length} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    setStatus('bench-done', 'benchmark done');
    return report;
  } finally {
    state.busy = false;
    $('#run-bench').disabled = false;
  }
}
/** Row i's outputs (every sample) and parity-probe outputs as base64 float32 ({name: base64}), as JSON. */
window.edgeportRowOutputs = (i) => {
  const r = state.benchRows[i], b64 = (o) => (o ? b64Outputs(o) : null);
  const json = JSON.stringify({ outputs: b64(r.outputs), probe_outputs: b64(r.probe_outputs) });
  r.outputs = r.probe_outputs = null;  // handed over: free them before the next row is encoded
  return json;
};
$('#run-bench').addEventListener('click', () => runBenchmark().catch((e) => { console.error(e); setStatus('error', `error: ${errText(e)}`); }));

// ------------------------------------------------------------------------------------------ start
async function loadConfig() {
  const [config, listing] = await Promise.all([(await fetchOk('/api/config')).json(), (await fetchOk('/api/manifests')).json()]);
  state.config = config;
  state.manifests = ARTIFACTS.length ? listing.manifests.filter((m) => ARTIFACTS.includes(m.name)) : listing.manifests;
  return listing;
}

/** A benchmark pass (?pass=1): configure, detect, measure, and hand the rows to the page that framed this one. */
async function passMain() {
  const post = (msg) => parent.postMessage(msg, location.origin);
  try {
    await loadConfig();
    await loadAdapters();
    const only = params.get('backends') ? params.get('backends').split(',') : null;
    const rows = await runPass(state.config.bench, only, params.get('first') === '1', post);
    post({ type: 'done', rows: rows.length, firstPredictionMs: state.firstPredictionMs });
  } catch (e) {
    console.error(e);
    post({ type: 'error', error: errText(e) });
  }
}

async function main() {
  const listing = await loadConfig();
  const probs = $('#problems');
  for (const p of listing.problems) probs.append(el('li', { text: `${p.file}: ${p.error}` }));
  const caps = await capabilities();
  $('#capabilities').dataset.capabilities = JSON.stringify(caps);
  $('#capabilities').textContent = `This browser: ${Object.entries(caps).filter(([k]) => k !== 'userAgent')
    .map(([k, v]) => `${k} ${v === true ? 'yes' : v === false ? 'no' : v}`).join(' · ')}`;
  // Benchmark mode measures in fresh frames; the runtimes are initialised here only for interactive use.
  if (!params.has('bench')) await loadAdapters();
  $('#draw-panel').hidden = $('#results-panel').hidden = drawTargets().length === 0;
  $('#sentence-panel').hidden = textTargets().length === 0;
  clearPad();
  renderCards();
  renderSimilarity();
  setStatus('ready', state.manifests.length ? 'ready' : 'ready · no web artifacts found');
  if (params.has('bench')) await runBenchmark();
}
if (PASS) passMain();
else main().catch((e) => { console.error(e); setStatus('error', `error: ${errText(e)}`); });
