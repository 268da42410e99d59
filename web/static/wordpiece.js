// BERT WordPiece tokenizer, matching Hugging Face `tokenizers` for BERT-style tokenizer.json files (e.g. the one of
// sentence-transformers/all-MiniLM-L6-v2): added/special tokens matched in the raw text, BertNormalizer (clean text,
// Chinese characters, accents, lowercase), BertPreTokenizer (whitespace, then punctuation isolated), WordPiece
// (greedy longest match, `##` continuation, [UNK] for words over max_input_chars_per_word characters or with no
// match), the [CLS] ... [SEP] post-processor, truncation and padding to a fixed length.
// Plain ES module, no dependencies; runs in Chromium and Node >= 18.
//
// Unicode notes. `tokenizers` takes "control" (Cc, Cf, Co), "nonspacing mark" (Mn) and "punctuation" (P*) from the
// Rust crate unicode_categories, whose tables predate the JS engines' Unicode versions (its Cf and Mn sets are old;
// unassigned code points are NOT deleted), and decomposes with its own, older, NFD tables. So these sets are listed
// here explicitly, as ranges of code points, rather than taken from \p{...}: they were derived by running the Python
// `tokenizers` 0.23 BertNormalizer and BertPreTokenizer on every code point (U+0000..U+10FFFF) and comparing with
// this file in Node 20, which then agreed on every code point for all four lowercase/strip_accents settings.
// Whitespace is Rust's `char::is_whitespace` (Unicode White_Space: not JS's \s, which adds U+FEFF and lacks U+0085).
// Lowercasing (per character, as Rust's char::to_lowercase) and NFD otherwise come from the JS engine.

// ---------------------------------------------------------------------------------------------- Unicode tables
function parseRanges(text) {
  return text.split(',').map((r) => { const [a, b = a] = r.split('-'); return [parseInt(a, 16), parseInt(b, 16)]; });
}
// Deleted by clean_text: U+0000, U+FFFD and tokenizers' control characters (\t \n \r excepted).
const CONTROL = parseRanges(
  '0-8,b-c,e-1f,7f-9f,ad,600-605,61c,6dd,70f,180e,200b-200f,202a-202e,2060-2064,2066-206f,e000-f8ff,feff,' +
  'fff9-fffb,fffd,110bd,1bca0-1bca3,1d173-1d17a,e0001,e0020-e007f,f0000-ffffd,100000-10fffd');
// Isolated by the pre-tokenizer: ASCII punctuation and tokenizers' Unicode punctuation.
const PUNCTUATION = parseRanges(
  '21-2f,3a-40,5b-60,7b-7e,a1,a7,ab,b6-b7,bb,bf,37e,387,55a-55f,589-58a,5be,5c0,5c3,5c6,5f3-5f4,609-60a,60c-60d,' +
  '61b,61e-61f,66a-66d,6d4,700-70d,7f7-7f9,830-83e,85e,964-965,970,af0,df4,e4f,e5a-e5b,f04-f12,f14,f3a-f3d,f85,' +
  'fd0-fd4,fd9-fda,104a-104f,10fb,1360-1368,1400,166d-166e,169b-169c,16eb-16ed,1735-1736,17d4-17d6,17d8-17da,' +
  '1800-180a,1944-1945,1a1e-1a1f,1aa0-1aa6,1aa8-1aad,1b5a-1b60,1bfc-1bff,1c3b-1c3f,1c7e-1c7f,1cc0-1cc7,1cd3,' +
  '2010-2027,2030-2043,2045-2051,2053-205e,207d-207e,208d-208e,2308-230b,2329-232a,2768-2775,27c5-27c6,27e6-27ef,' +
  '2983-2998,29d8-29db,29fc-29fd,2cf9-2cfc,2cfe-2cff,2d70,2e00-2e2e,2e30-2e42,3001-3003,3008-3011,3014-301f,3030,' +
  '303d,30a0,30fb,a4fe-a4ff,a60d-a60f,a673,a67e,a6f2-a6f7,a874-a877,a8ce-a8cf,a8f8-a8fa,a8fc,a92e-a92f,a95f,' +
  'a9c1-a9cd,a9de-a9df,aa5c-aa5f,aade-aadf,aaf0-aaf1,abeb,fd3e-fd3f,fe10-fe19,fe30-fe52,fe54-fe61,fe63,fe68,' +
  'fe6a-fe6b,ff01-ff03,ff05-ff0a,ff0c-ff0f,ff1a-ff1b,ff1f-ff20,ff3b-ff3d,ff3f,ff5b,ff5d,ff5f-ff65,10100-10102,' +
  '1039f,103d0,1056f,10857,1091f,1093f,10a50-10a58,10a7f,10af0-10af6,10b39-10b3f,10b99-10b9c,11047-1104d,' +
  '110bb-110bc,110be-110c1,11140-11143,11174-11175,111c5-111c9,111cd,111db,111dd-111df,11238-1123d,112a9,114c6,' +
  '115c1-115d7,11641-11643,1173c-1173e,12470-12474,16a6e-16a6f,16af5,16b37-16b3b,16b44,1bc9f,1da87-1da8b');
// Removed by strip_accents after NFD.
const NONSPACING_MARK = parseRanges(
  '300-36f,483-487,591-5bd,5bf,5c1-5c2,5c4-5c5,5c7,610-61a,64b-65f,670,6d6-6dc,6df-6e4,6e7-6e8,6ea-6ed,711,' +
  '730-74a,7a6-7b0,7eb-7f3,816-819,81b-823,825-827,829-82d,859-85b,8e3-902,93a,93c,941-948,94d,951-957,962-963,' +
  '981,9bc,9c1-9c4,9cd,9e2-9e3,a01-a02,a3c,a41-a42,a47-a48,a4b-a4d,a51,a70-a71,a75,a81-a82,abc,ac1-ac5,ac7-ac8,' +
  'acd,ae2-ae3,b01,b3c,b3f,b41-b44,b4d,b56,b62-b63,b82,bc0,bcd,c00,c3e-c40,c46-c48,c4a-c4d,c55-c56,c62-c63,c81,' +
  'cbc,cbf,cc6,ccc-ccd,ce2-ce3,d01,d41-d44,d4d,d62-d63,dca,dd2-dd4,dd6,e31,e34-e3a,e47-e4e,eb1,eb4-eb9,ebb-ebc,' +
  'ec8-ecd,f18-f19,f35,f37,f39,f71-f7e,f80-f84,f86-f87,f8d-f97,f99-fbc,fc6,102d-1030,1032-1037,1039-103a,' +
  '103d-103e,1058-1059,105e-1060,1071-1074,1082,1085-1086,108d,109d,135d-135f,1712-1714,1732-1734,1752-1753,' +
  '1772-1773,17b4-17b5,17b7-17bd,17c6,17c9-17d3,17dd,180b-180d,18a9,1920-1922,1927-1928,1932,1939-193b,1a17-1a18,' +
  '1a1b,1a56,1a58-1a5e,1a60,1a62,1a65-1a6c,1a73-1a7c,1a7f,1ab0-1abd,1b00-1b03,1b34,1b36-1b3a,1b3c,1b42,1b6b-1b73,' +
  '1b80-1b81,1ba2-1ba5,1ba8-1ba9,1bab-1bad,1be6,1be8-1be9,1bed,1bef-1bf1,1c2c-1c33,1c36-1c37,1cd0-1cd2,1cd4-1ce0,' +
  '1ce2-1ce8,1ced,1cf4,1cf8-1cf9,1dc0-1df5,1dfc-1dff,20d0-20dc,20e1,20e5-20f0,2cef-2cf1,2d7f,2de0-2dff,302a-302d,' +
  '3099-309a,a66f,a674-a67d,a69e-a69f,a6f0-a6f1,a802,a806,a80b,a825-a826,a8c4,a8e0-a8f1,a926-a92d,a947-a951,' +
  'a980-a982,a9b3,a9b6-a9b9,a9bc,a9e5,aa29-aa2e,aa31-aa32,aa35-aa36,aa43,aa4c,aa7c,aab0,aab2-aab4,aab7-aab8,' +
  'aabe-aabf,aac1,aaec-aaed,aaf6,abe5,abe8,abed,fb1e,fe00-fe0f,fe20-fe2f,101fd,102e0,10376-1037a,10a01-10a03,' +
  '10a05-10a06,10a0c-10a0f,10a38-10a3a,10a3f,10ae5-10ae6,11001,11038-11046,1107f-11081,110b3-110b6,110b9-110ba,' +
  '11100-11102,11127-1112b,1112d-11134,11173,11180-11181,111b6-111be,111ca-111cc,1122f-11231,11234,11236-11237,' +
  '112df,112e3-112ea,11300-11301,1133c,11340,11366-1136c,11370-11374,114b3-114b8,114ba,114bf-114c0,114c2-114c3,' +
  '115b2-115b5,115bc-115bd,115bf-115c0,115dc-115dd,11633-1163a,1163d,1163f-11640,116ab,116ad,116b0-116b5,116b7,' +
  '1171d-1171f,11722-11725,11727-1172b,16af0-16af4,16b30-16b36,16f8f-16f92,1bc9d-1bc9e,1d167-1d169,1d17b-1d182,' +
  '1d185-1d18b,1d1aa-1d1ad,1d242-1d244,1da00-1da36,1da3b-1da6c,1da75,1da84,1da9b-1da9f,1daa1-1daaf,1e8d0-1e8d6,' +
  'e0100-e01ef');
// Left undecomposed by tokenizers' NFD although newer Unicode (and so the JS engine) decomposes them.
const NO_DECOMPOSITION = parseRanges(
  '105c9,105e4,11383,11385,1138e,11391,113c5,113c7-113c8,11938,16121-16128,16d68-16d6a');

const WHITE_SPACE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);

function inRanges(ranges, cp) {
  let lo = 0, hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[mid][0]) hi = mid - 1;
    else if (cp > ranges[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const isWhitespace = (cp) => WHITE_SPACE.has(cp);
const isControl = (cp) => inRanges(CONTROL, cp);
const isPunctuation = (cp) => inRanges(PUNCTUATION, cp);
function isChineseChar(cp) {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}
const isWordChar = (ch) => ch !== undefined && /^[\p{Alphabetic}\p{Nd}\p{Nl}\p{No}_]$/u.test(ch);

// ---------------------------------------------------------------------------------------------- normalizer
export class BertNormalizer {
  constructor({ cleanText = true, handleChineseChars = true, stripAccents = null, lowercase = true } = {}) {
    this.cleanText = cleanText;
    this.handleChineseChars = handleChineseChars;
    this.lowercase = lowercase;
    this.stripAccents = stripAccents == null ? lowercase : stripAccents;  // tokenizers: strip_accents follows lowercase
  }

  normalize(text) {
    let out = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0);
      if (this.cleanText) {
        if (cp === 0 || cp === 0xfffd || isControl(cp)) continue;
        if (isWhitespace(cp)) { out += ' '; continue; }
      }
      out += this.handleChineseChars && isChineseChar(cp) ? ` ${ch} ` : ch;
    }
    if (this.stripAccents) out = stripAccents(out);
    if (this.lowercase) {
      // Character by character, as Rust's char::to_lowercase (no final-sigma rule).
      let s = '';
      for (const ch of out) s += ch.toLowerCase();
      out = s;
    }
    return out;
  }
}

// NFD, then nonspacing marks removed; code points that tokenizers does not decompose are kept whole.
function stripAccents(text) {
  let out = '', run = '';
  const flush = () => {
    if (!run) return;
    for (const ch of run.normalize('NFD')) if (!inRanges(NONSPACING_MARK, ch.codePointAt(0))) out += ch;
    run = '';
  };
  for (const ch of text) {
    if (inRanges(NO_DECOMPOSITION, ch.codePointAt(0))) { flush(); out += ch; } else run += ch;
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------------------- pre-tokenizer
export function bertPreTokenize(text) {
  const words = [];
  let cur = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (isWhitespace(cp)) {
      if (cur) { words.push(cur); cur = ''; }
    } else if (isPunctuation(cp)) {
      if (cur) { words.push(cur); cur = ''; }
      words.push(ch);
    } else cur += ch;
  }
  if (cur) words.push(cur);
  return words;
}

// ---------------------------------------------------------------------------------------------- tokenizer
export class WordPieceTokenizer {
  /**
   * @param {Map<string, number>} vocab token -> id
   * @param {object} options normalizer flags, special tokens, added tokens, post-processor template
   */
  constructor(vocab, {
    normalizer = { lowercase: true, stripAccents: true, cleanText: true, handleChineseChars: true },
    unkToken = '[UNK]', continuingSubwordPrefix = '##', maxInputCharsPerWord = 100,
    addedTokens = null, prefix = null, suffix = null, padToken = '[PAD]', padId = null, padTypeId = 0,
  } = {}) {
    this.vocab = vocab;
    this.idToToken = [];
    for (const [tok, id] of vocab) this.idToToken[id] = tok;
    this.normalizer = normalizer ? new BertNormalizer(normalizer) : null;
    this.unkToken = unkToken;
    this.prefix = continuingSubwordPrefix;
    this.maxInputCharsPerWord = maxInputCharsPerWord;
    const need = (tok) => {
      if (!vocab.has(tok)) throw new Error(`wordpiece: token ${tok} is not in the vocabulary`);
      return { token: tok, id: vocab.get(tok), typeId: 0 };
    };
    this.unkId = need(unkToken).id;
    // Post-processor: tokens before and after the sequence ([CLS] ... [SEP] by default).
    this.prefixTokens = prefix || [need('[CLS]')];
    this.suffixTokens = suffix || [need('[SEP]')];
    this.padToken = padToken;
    this.padId = padId ?? (vocab.has(padToken) ? vocab.get(padToken) : 0);
    this.padTypeId = padTypeId;
    // Added tokens recognised in the input text: by default BERT's special tokens that exist in the vocabulary.
    if (!addedTokens) {
      addedTokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((t) => vocab.has(t))
        .map((t) => ({ content: t, id: vocab.get(t), normalized: false }));
    }
    const norm = (t) => (this.normalizer ? this.normalizer.normalize(t) : t);
    this.rawAdded = addedTokens.filter((t) => !t.normalized && t.content).map((t) => ({ ...t }));
    this.normAdded = addedTokens.filter((t) => t.normalized && t.content).map((t) => ({ ...t, content: norm(t.content) }))
      .filter((t) => t.content);
    for (const list of [this.rawAdded, this.normAdded]) list.sort((a, b) => b.content.length - a.content.length);
  }

  /** From a BERT vocab.txt (one token a line, id = line number). */
  static fromVocab(vocabText, { lowercase = true, stripAccents = true } = {}) {
    const vocab = new Map();
    const lines = vocabText.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    lines.forEach((line, i) => { vocab.set(line.trimEnd(), i); });
    return new WordPieceTokenizer(vocab, { normalizer: { lowercase, stripAccents, cleanText: true, handleChineseChars: true } });
  }

  // Splits text on added tokens (leftmost, longest first): [{text, token?}] where token marks an added token.
  _splitAdded(text, tokens) {
    if (!tokens.length || !text) return [{ text }];
    const out = [];
    let i = 0, last = 0;
    while (i < text.length) {
      let hit = null;
      for (const t of tokens) {
        if (!text.startsWith(t.content, i)) continue;
        let start = i, stop = i + t.content.length;
        if (t.single_word && (isWordChar(lastChar(text.slice(0, start))) || isWordChar(firstChar(text.slice(stop))))) continue;
        if (t.lstrip) while (start > last && isWhitespace(text.codePointAt(start - 1))) start--;
        if (t.rstrip) while (stop < text.length && isWhitespace(text.codePointAt(stop))) stop++;
        hit = { t, start, stop };
        break;
      }
      if (!hit) { i += text.codePointAt(i) > 0xffff ? 2 : 1; continue; }
      if (hit.start > last) out.push({ text: text.slice(last, hit.start) });
      out.push({ text: hit.t.content, token: hit.t });
      last = i = hit.stop;
    }
    if (last < text.length) out.push({ text: text.slice(last) });
    return out;
  }

  _wordPiece(word, tokens) {
    const chars = Array.from(word);
    if (chars.length > this.maxInputCharsPerWord) { tokens.push(this.unkToken); return; }
    const pieces = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length, found = null;
      while (start < end) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = this.prefix + sub;
        if (this.vocab.has(sub)) { found = sub; break; }
        end--;
      }
      if (found === null) { tokens.push(this.unkToken); return; }
      pieces.push(found);
      start = end;
    }
    for (const p of pieces) tokens.push(p);
  }

  /** Tokens of the text, without the post-processor's special tokens. */
  tokenize(text) {
    const tokens = [];
    for (const part of this._splitAdded(String(text ?? ''), this.rawAdded)) {
      if (part.token) { tokens.push(part.token.content); continue; }
      const normalized = this.normalizer ? this.normalizer.normalize(part.text) : part.text;
      for (const sub of this._splitAdded(normalized, this.normAdded)) {
        if (sub.token) { tokens.push(sub.token.content); continue; }
        for (const word of bertPreTokenize(sub.text)) this._wordPiece(word, tokens);
      }
    }
    return tokens;
  }

  /**
   * Encodes one sequence: [CLS] tokens [SEP], truncated (right) and padded (right) to maxLength when it is given.
   * @returns {{inputIds: Int32Array, attentionMask: Int32Array, tokenTypeIds: Int32Array, tokens: string[]}}
   */
  encode(text, maxLength) {
    let body = this.tokenize(text);
    const nSpecial = this.prefixTokens.length + this.suffixTokens.length;
    if (maxLength != null) {
      if (!Number.isInteger(maxLength) || maxLength < nSpecial) throw new Error(`wordpiece: maxLength must be an integer >= ${nSpecial}`);
      if (body.length > maxLength - nSpecial) body = body.slice(0, maxLength - nSpecial);
    }
    const tokens = [], ids = [], types = [];
    for (const s of this.prefixTokens) { tokens.push(s.token); ids.push(s.id); types.push(s.typeId); }
    for (const t of body) { tokens.push(t); ids.push(this.vocab.has(t) ? this.vocab.get(t) : this.unkId); types.push(0); }
    for (const s of this.suffixTokens) { tokens.push(s.token); ids.push(s.id); types.push(s.typeId); }
    const n = maxLength == null ? tokens.length : maxLength;
    const inputIds = new Int32Array(n), attentionMask = new Int32Array(n), tokenTypeIds = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      if (i < ids.length) { inputIds[i] = ids[i]; attentionMask[i] = 1; tokenTypeIds[i] = types[i]; }
      else { inputIds[i] = this.padId; tokenTypeIds[i] = this.padTypeId; tokens.push(this.padToken); }
    }
    return { inputIds, attentionMask, tokenTypeIds, tokens };
  }
}

function lastChar(s) { const a = Array.from(s.slice(-2)); return a[a.length - 1]; }
function firstChar(s) { return s ? String.fromCodePoint(s.codePointAt(0)) : undefined; }

// ---------------------------------------------------------------------------------------------- tokenizer.json
/** A WordPieceTokenizer from a parsed Hugging Face tokenizer.json (WordPiece model, BertNormalizer, BERT processor). */
export function tokenizerFromJson(tokenizerJson) {
  const j = tokenizerJson || {};
  const model = j.model || {};
  if (model.type && model.type !== 'WordPiece') throw new Error(`wordpiece: model type ${model.type} is not WordPiece`);
  if (!model.vocab || typeof model.vocab !== 'object') throw new Error('wordpiece: tokenizer.json has no model.vocab');
  const vocab = new Map(Object.entries(model.vocab));
  const addedTokens = Array.isArray(j.added_tokens) ? j.added_tokens : [];
  for (const t of addedTokens) if (!vocab.has(t.content)) vocab.set(t.content, t.id);

  let normalizer = null;
  const n = j.normalizer;
  if (n) {
    if (n.type !== 'BertNormalizer') throw new Error(`wordpiece: normalizer ${n.type} is not supported (BertNormalizer only)`);
    normalizer = {
      cleanText: n.clean_text ?? true, handleChineseChars: n.handle_chinese_chars ?? true,
      stripAccents: n.strip_accents ?? null, lowercase: n.lowercase ?? true,
    };
  }
  const pre = j.pre_tokenizer;
  if (pre && pre.type !== 'BertPreTokenizer') throw new Error(`wordpiece: pre-tokenizer ${pre.type} is not supported (BertPreTokenizer only)`);

  // Post-processor: TemplateProcessing (single template) or BertProcessing; default [CLS] $A [SEP].
  let prefix = null, suffix = null;
  const pp = j.post_processor;
  if (pp && pp.type === 'TemplateProcessing') {
    prefix = []; suffix = [];
    let seen = false;
    for (const piece of pp.single || []) {
      if (piece.Sequence) { seen = true; continue; }
      const sp = piece.SpecialToken;
      const def = pp.special_tokens?.[sp.id];
      (seen ? suffix : prefix).push(...(def ? def.ids : [vocab.get(sp.id)]).map((id, k) => ({
        token: def ? def.tokens[k] : sp.id, id, typeId: sp.type_id ?? 0 })));
    }
  } else if (pp && pp.type === 'BertProcessing') {
    prefix = [{ token: pp.cls[0], id: pp.cls[1], typeId: 0 }];
    suffix = [{ token: pp.sep[0], id: pp.sep[1], typeId: 0 }];
  } else if (pp) throw new Error(`wordpiece: post-processor ${pp.type} is not supported`);

  const pad = j.padding || {};
  return new WordPieceTokenizer(vocab, {
    normalizer,
    unkToken: model.unk_token ?? '[UNK]',
    continuingSubwordPrefix: model.continuing_subword_prefix ?? '##',
    maxInputCharsPerWord: model.max_input_chars_per_word ?? 100,
    addedTokens: addedTokens.map((t) => ({ content: t.content, id: t.id, normalized: !!t.normalized,
      lstrip: !!t.lstrip, rstrip: !!t.rstrip, single_word: !!t.single_word })),
    prefix, suffix,
    padToken: pad.pad_token ?? '[PAD]', padId: pad.pad_id ?? null, padTypeId: pad.pad_type_id ?? 0,
  });
}
