// Checks web/static/wordpiece.js against reference encodings made by Hugging Face `tokenizers`.
// usage: node tests/js/wordpiece_check.mjs cases.json tokenizer.json
// cases.json: {"max_length": 128, "cases": [{"text": str, "ids": [int], "attention_mask"?: [int],
//              "type_ids"?: [int], "tokens"?: [str]}, ...]} (or a bare list of cases, max_length 128).
// Prints "ok N/N" (or each mismatch and "mismatch K/N"); exits 1 on any mismatch, 2 on bad usage.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
// web/package.json has no "type": "module", so Node warns when it loads the ES module wordpiece.js (browsers do not
// care); that one warning is muted here.
const warningListeners = process.listeners('warning');
process.removeAllListeners('warning');
const { tokenizerFromJson } = await import(path.join(here, '..', '..', 'web', 'static', 'wordpiece.js'));
await new Promise((r) => setImmediate(r));
for (const l of warningListeners) process.on('warning', l);

const [casesPath, tokenizerPath] = process.argv.slice(2);
if (!casesPath || !tokenizerPath) {
  console.error('usage: node wordpiece_check.mjs cases.json tokenizer.json');
  process.exit(2);
}
const raw = JSON.parse(readFileSync(casesPath, 'utf8'));
const cases = Array.isArray(raw) ? raw : raw.cases;
const maxLength = (Array.isArray(raw) ? null : raw.max_length) ?? 128;
const tok = tokenizerFromJson(JSON.parse(readFileSync(tokenizerPath, 'utf8')));

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
let bad = 0;
cases.forEach((c, i) => {
  const got = tok.encode(c.text, maxLength);
  const fields = [['ids', Array.from(got.inputIds)], ['attention_mask', Array.from(got.attentionMask)],
    ['type_ids', Array.from(got.tokenTypeIds)], ['tokens', got.tokens]];
  const wrong = fields.filter(([k, v]) => c[k] !== undefined && !same(v, c[k])).map(([k]) => k);
  if (wrong.length) {
    bad++;
    if (bad <= 20) {
      const n = c.ids.findIndex((v, k) => v !== got.inputIds[k]);
      console.log(`case ${i} ${JSON.stringify(c.text.slice(0, 80))}: ${wrong.join(', ')} differ` +
        (n >= 0 ? ` (ids from ${n}: want ${JSON.stringify(c.ids.slice(n, n + 6))} got ${JSON.stringify(Array.from(got.inputIds.slice(n, n + 6)))}` +
          ` tokens want ${JSON.stringify((c.tokens || []).slice(n, n + 6))} got ${JSON.stringify(got.tokens.slice(n, n + 6))})` : '') +
        (c.ids.length !== got.inputIds.length ? ` (length: want ${c.ids.length} got ${got.inputIds.length})` : ''));
    }
  }
});
console.log(bad ? `mismatch ${bad}/${cases.length}` : `ok ${cases.length}/${cases.length}`);
process.exit(bad ? 1 : 0);
