"""``edgeport bundle --for android``: what an Android app needs to use a converted artifact as is.

For each artifact (everything is checked before anything is written, so a refused request writes nothing):

- ``.tflite``: a copy with TFLite Model Metadata (MediaPipe's own writers): name, description, version, the input
  (an image with normalisation and colour space, or BERT text with its WordPiece vocabulary), the output (a
  classifier's labels), so that MediaPipe Tasks take it;
- ``.pte``: a copy and ``<name>.preprocessing.json`` (layout, dtype, shape, mean/std, tokenizer) for the app;
- labels and tokenizer files, Kotlin call sites (LiteRT ``CompiledModel``, ExecuTorch ``Module``, MediaPipe Tasks),
  pre-flight checks for the phone, and a README generated from the manifest;
- checks (``verify``): the bundled ``.tflite`` under LiteRT's Python ``CompiledModel`` and under MediaPipe Tasks, the
  ``.pte`` fed by its preprocessing file, each against edgeport's own runner.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.errors import InputError, UnsupportedError, one_line
from edgeport.manifest import Manifest

from . import BundleOptions, kotlin
from . import metadata as md
from . import preflight as pf

MEDIAPIPE_TASKS = ("image-classifier", "text-embedder", "text-classifier")
VERIFY_ROWS = 32  # probe rows / sentences each check runs (the probe holds at most 64)


@dataclass
class Item:
    m: Manifest
    stem: str  # the model's name without recipe and target (file names of labels and vocabulary)
    kind: str  # image | text | tensor
    labels: list[str] | None = None
    mean: tuple | None = None  # image normalisation the app (or MediaPipe) applies, 0-255 units; None: inside the model
    std: tuple | None = None
    mediapipe: str | None = None  # the MediaPipe task it is written for
    mediapipe_why_not: str | None = None  # one line when none
    vocab: list[str] | None = None
    strip_accents: bool = False  # the model's tokenizer strips accents (uncased BERT); MediaPipe's does not
    files: dict = field(default_factory=dict)  # role -> bundled file name


def bundle(manifests: list[Manifest], options: BundleOptions, out: Path) -> dict:
    items = [_plan(m, options) for m in manifests]  # every refusal happens here, before a file is written
    for it in items:
        _write(it, out)
    pre = {it.m.name: pf.preflight(it.m, out / it.files["model"]) for it in items}
    checks = {it.m.name: _verify(it, out) for it in items} if options.verify else {}
    rows = _report_rows(options.report, items)
    (out / "README.md").write_text(_readme(items, pre, checks, rows))
    return {"artifacts": [{"name": it.m.name, "target": it.m.target, "kind": it.kind, "files": it.files,
                           "mediapipe": it.mediapipe, "mediapipe_why_not": it.mediapipe_why_not} for it in items],
            "preflight": pre, "checks": checks, "host": _cpu()}


# ------------------------------------------------------------------------------------------------ planning
def _plan(m: Manifest, o: BundleOptions) -> Item:
    if m.target not in ("tflite", "pte"):
        raise UnsupportedError(f"{m.name}: the Android bundle takes .tflite and .pte artifacts; this one is {m.target}"
                               " (convert with --to tflite,pte)")
    sig, pre = m.sig, m.preprocessing or {}
    for t in (*sig.inputs, *sig.outputs):
        if t.dtype == "int8" and not (t.quantization and t.quantization.get("scale")):
            raise InputError(f"{m.name}: {t.name} is int8 but the manifest has no scale/zero point for it, so neither"
                             " the metadata nor the app could map it to real values; re-convert with `edgeport convert`")
    stem = m.name.rsplit(".", 2)[0]
    roles = {t.role for t in sig.inputs}
    img = sig.single_image
    if img is not None:
        it = Item(m, stem, "image")
        if pre.get("front"):
            if o.mean is not None or o.std is not None:
                raise InputError(f"{m.name}: the model normalises inside ({pre['front']['format']} front, mean"
                                 f" {pre['front']['mean']} std {pre['front']['std']}); drop --mean/--std")
        else:
            from edgeport.fronts import normalisation

            it.mean, it.std = normalisation(pre, o.mean, o.std, m.name)
    elif "token_ids" in roles:
        if o.mean is not None or o.std is not None:
            raise InputError(f"{m.name}: --mean/--std describe image normalisation, but this model takes token ids"
                             f" ({sig.describe_inputs()}); drop them")
        it = Item(m, stem, "text")
        it.vocab, it.strip_accents = _vocab(m)
    else:
        if o.mean is not None or o.std is not None:
            raise InputError(f"{m.name}: --mean/--std describe image normalisation, but this model takes"
                             f" {sig.describe_inputs()}; drop them")
        it = Item(m, stem, "tensor")
    it.labels = _labels(m, o)
    fit, why = _mediapipe_fit(it)
    if o.mediapipe == "none":
        it.mediapipe_why_not = "not asked for (--mediapipe none)"
    elif o.mediapipe == "auto":
        it.mediapipe, it.mediapipe_why_not = fit, why
    elif o.mediapipe not in MEDIAPIPE_TASKS:
        raise InputError(f"unknown --mediapipe {o.mediapipe!r}; known: auto, none, {', '.join(MEDIAPIPE_TASKS)}")
    elif fit != o.mediapipe:
        raise UnsupportedError(f"{m.name}: MediaPipe {o.mediapipe} does not fit this model: "
                               f"{why or f'it is a {fit} model'}")
    else:
        it.mediapipe = fit
    return it


def _labels(m: Manifest, o: BundleOptions) -> list[str] | None:
    out0 = m.signature["outputs"][0]
    if o.labels:
        p = Path(o.labels)
        if not p.is_file():
            raise InputError(f"--labels {p} not found; pass a text file with one label a line")
        labels = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        n = int(np.prod(out0["shape"][1:]))
        if m.task != "classification":
            raise InputError(f"{m.name}: --labels names classes, but this model's task is {m.task}; drop --labels")
        if len(labels) != n:
            raise InputError(f"--labels {p} has {len(labels)} labels but {m.name}'s output {out0['name']} has {n}"
                             " scores; give one label a line, in output order")
        return labels
    return list(out0["labels"]) if out0.get("labels") else None


def _mediapipe_fit(it: Item) -> tuple[str | None, str | None]:
    """(the MediaPipe task this model fits, None) or (None, one line saying why none does)."""
    m, sig = it.m, it.m.sig
    if m.target != "tflite":
        return None, "MediaPipe Tasks run .tflite models; use the .tflite artifact for MediaPipe"
    if it.kind == "image":
        img = sig.single_image
        c = img.shape[3] if img.layout == "NHWC" else img.shape[1]
        if m.task != "classification":
            return None, f"MediaPipe's image tasks here are classifiers; this model's task is {m.task}"
        if img.layout != "NHWC" or c != 3 or img.dtype not in ("uint8", "float32"):
            return None, (f"MediaPipe ImageClassifier needs an RGB NHWC input (uint8 or float32, depth 3); this one is"
                          f" {img.name}:{img.dtype}{list(img.shape)} {img.layout}; convert with --input-format"
                          " rgb-uint8-nhwc")
        out0 = sig.outputs[0]
        if out0.dtype not in ("float32", "uint8"):
            return None, (f"MediaPipe ImageClassifier reads float32 or uint8 scores; {out0.name} is {out0.dtype}"
                          " (int8 I/O); bundle the fp32 or dynamic-int8 artifact for MediaPipe")
        return "image-classifier", None
    if it.kind == "text":
        roles = [t.role for t in sig.inputs]
        if sorted(roles) != ["attention_mask", "token_ids", "token_type_ids"] or any(t.dtype != "int32" for t in sig.inputs):
            return None, (f"MediaPipe's BERT preprocessor feeds three int32 tensors (ids, mask, segment ids); this model"
                          f" takes {sig.describe_inputs()}; convert with --input-format bert-ids-mask-segments")
        if it.vocab is None:
            return None, "MediaPipe's BERT preprocessor needs a WordPiece vocabulary; the manifest's tokenizer has none"
        if m.task == "embedding":
            return "text-embedder", None
        if m.task == "classification":
            return "text-classifier", None
        return None, f"MediaPipe's text tasks embed or classify; this model's task is {m.task}"
    return None, f"MediaPipe Tasks take images or text; this model takes {sig.describe_inputs()}"


def _vocab(m: Manifest) -> tuple[list[str] | None, bool]:
    """The WordPiece vocabulary (one token a line, by id) from the manifest's tokenizer.json, and whether its
    normaliser strips accents (BertNormalizer: strip_accents, or lowercase when strip_accents is unset)."""
    tok = (m.preprocessing.get("tokenizer") or {}).get("file")
    if not tok:
        return None, False
    d = json.loads(m.file_path(tok, "tokenizer file").read_text())
    model = d.get("model") or {}
    norm = d.get("normalizer") or {}
    strip = norm.get("type") == "BertNormalizer" and (norm.get("strip_accents") if norm.get("strip_accents")
                                                      is not None else bool(norm.get("lowercase")))
    if model.get("type") != "WordPiece":
        return None, strip
    vocab = model["vocab"]
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])], bool(strip)


def strip_accents(text: str) -> str:
    """What the Kotlin snippet does before MediaPipe (java.text.Normalizer NFD, then drop \\p{Mn}): uncased BERT
    tokenizers strip accents, MediaPipe's BERT tokenizer does not ('café' would be an unknown word)."""
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


# ------------------------------------------------------------------------------------------------ writing
def _write(it: Item, out: Path) -> None:
    m = it.m
    src = m.entry_path
    if it.labels:
        it.files["labels"] = f"{it.stem}.labels.txt"
        (out / it.files["labels"]).write_text("\n".join(it.labels) + "\n")
    if it.kind == "text":
        tok = m.file_path(m.preprocessing["tokenizer"]["file"])
        it.files["tokenizer"] = f"{it.stem}.tokenizer.json"
        shutil.copyfile(tok, out / it.files["tokenizer"])
        if it.vocab:
            it.files["vocab"] = f"{it.stem}.vocab.txt"
            (out / it.files["vocab"]).write_text("\n".join(it.vocab) + "\n")
    it.files["model"] = m.name
    if m.target == "tflite":
        model, js = _with_metadata(it, src.read_bytes(), out)
        (out / m.name).write_bytes(model)
        it.files["metadata"] = f"{m.name}.metadata.json"
        (out / it.files["metadata"]).write_text(js)
    else:
        shutil.copyfile(src, out / m.name)
        it.files["preprocessing"] = f"{m.name}.preprocessing.json"
        (out / it.files["preprocessing"]).write_text(json.dumps(preprocessing_file(it), indent=1) + "\n")
    kt = out / "kotlin"
    kt.mkdir(exist_ok=True)
    cls = kotlin.class_name(m)
    if m.target == "tflite":
        it.files["kotlin"] = f"kotlin/{cls}LiteRt.kt"
        (out / it.files["kotlin"]).write_text(kotlin.litert(m, m.name, it.files.get("labels")))
        if it.mediapipe:
            it.files["kotlin_mediapipe"] = f"kotlin/{cls}MediaPipe.kt"
            (out / it.files["kotlin_mediapipe"]).write_text(kotlin.mediapipe(m, m.name, it.mediapipe, it.strip_accents))
    else:
        it.files["kotlin"] = f"kotlin/{cls}ExecuTorch.kt"
        (out / it.files["kotlin"]).write_text(kotlin.executorch(m, m.name, it.files.get("labels"),
                                                                it.files["preprocessing"]))


def _with_metadata(it: Item, model: bytes, out: Path) -> tuple[bytes, str]:
    m = it.m
    desc = (f"{m.source.get('model')} converted by edgeport ({m.target} {m.recipe}); task {m.task};"
            f" inputs {m.sig.describe_inputs()}")
    version = f"{m.source.get('sha256', '')[:12]}-{m.recipe}"
    if it.kind == "image":
        img = m.sig.single_image
        c = img.shape[3] if img.layout == "NHWC" else img.shape[1]
        if m.preprocessing.get("front"):  # raw pixels in: MediaPipe copies them, the model normalises
            mean, std, gray = [0.0], [1.0], False
        else:
            mean, std, gray = list(it.mean), list(it.std), c == 1
        return md.image_classifier_metadata(model, name=it.stem, description=desc, version=version, mean=mean, std=std,
                                            gray=gray, labels_file=str(out / it.files["labels"]) if it.labels else None)
    if it.kind == "text" and it.mediapipe:
        names = md.signature_tensor_names(model)
        by_role = {t.role: names[str(t.binding)] for t in m.sig.inputs}
        return md.bert_embedder_metadata(model, name=it.stem, description=desc, version=version,
                                         vocab_file=str(out / it.files["vocab"]), ids=by_role["token_ids"],
                                         mask=by_role["attention_mask"], segments=by_role["token_type_ids"])
    return md.plain_metadata(model, name=it.stem, description=desc, version=version,
                             inputs=[t.name for t in m.sig.inputs], outputs=[t.name for t in m.sig.outputs],
                             labels_file=str(out / it.files["labels"]) if it.labels else None)


def preprocessing_file(it: Item) -> dict:
    """What the app does before ExecuTorch's ``Module.forward``: one entry per input, in forward() order."""
    m, pre = it.m, it.m.preprocessing or {}
    inputs = []
    for t in m.signature["inputs"]:
        e = {"name": t["name"], "dtype": t["dtype"], "shape": t["shape"], "role": t["role"]}
        if t.get("layout"):
            e["layout"] = t["layout"]
        if t.get("quantization"):
            e["quantization"] = t["quantization"]
        if t["role"] == "image":
            h, w = (t["shape"][1], t["shape"][2]) if t.get("layout") == "NHWC" else (t["shape"][2], t["shape"][3])
            c = t["shape"][3] if t.get("layout") == "NHWC" else t["shape"][1]
            e["size"] = {"height": h, "width": w}
            if pre.get("front"):
                e["pixels"] = pre.get("pixels")
                e["normalisation"] = f"inside the model ({pre['front']['format']})"
            else:
                e["pixels"] = pre.get("pixels", f"uint8, {c} channel(s)")
                e["colour"] = "grayscale" if c == 1 else "RGB"
                e["mean"], e["std"] = list(it.mean), list(it.std)
                e["formula"] = "x = (pixel - mean) / std, pixel in 0..255, then the layout"
        inputs.append(e)
    out = {"artifact": m.name, "inputs": inputs, "outputs": [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"],
                                                              "labels": it.files.get("labels") if i == 0 else None}
                                                             for i, t in enumerate(m.signature["outputs"])]}
    if it.kind == "text":
        out["tokenizer"] = {"file": it.files["tokenizer"], "vocab": it.files.get("vocab"),
                            **{k: pre.get(k) for k in ("max_length", "padding", "truncation", "pad_id", "inputs")}}
    return out


# ------------------------------------------------------------------------------------------------ checks
def _runner(m: Manifest):
    from edgeport.registry import get_target

    r = get_target(m.target).runner(m, threads=1)
    r.load()
    return r


def _verify(it: Item, out: Path) -> dict:
    """Each bundled file under the runtime an app uses (its Python mirror), against edgeport's runner."""
    m = it.m
    probe = m.probe_arrays()
    res: dict = {}
    ref_runner = _runner(m)
    if probe is not None:
        feeds = {k: v[:VERIFY_ROWS] for k, v in probe[0].items()}
        ref = ref_runner.run(feeds)
        res["edgeport"] = {"runtime": f"{ref_runner.runtime} {ref_runner.runtime_version}", "rows": len(next(iter(feeds.values()))),
                           "speed": _speed(ref_runner, feeds)}
        if m.target == "tflite":
            got = litert_compiled_model(out / m.name, m, feeds)
            res["litert_compiled_model"] = _compare(m, ref, got)
        else:
            res["executorch_preprocessing_file"] = _check_pte_preprocessing(it, out, ref_runner)
    try:
        if it.mediapipe == "image-classifier":
            res["mediapipe"] = _check_image_classifier(it, out, ref_runner, probe)
        elif it.mediapipe in ("text-embedder", "text-classifier"):
            res["mediapipe"] = _check_text(it, out, ref_runner)
    except (ValueError, RuntimeError) as e:  # MediaPipe refused the model: the bundle says so, as a failed check
        res["mediapipe"] = {"task": it.mediapipe, "mediapipe": _mp_version(), "failed": one_line(e, 300)}
    return res


def _primary(m: Manifest, outs: dict) -> np.ndarray:
    return np.asarray(outs[m.primary_output], np.float32).reshape(len(next(iter(outs.values()))), -1)


def _compare(m: Manifest, ref: dict, got: dict) -> dict:
    a, b = _primary(m, ref), _primary(m, got)
    r = {"rows": len(a), "max_abs_diff": float(np.max(np.abs(a - b)))}
    if m.task == "classification":
        r["top1_agreement"] = float(np.mean(a.argmax(1) == b.argmax(1)))
    else:
        r["cosine_min"] = float(np.min(_cos(a, b)))
    return r


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def litert_compiled_model(path: Path, m: Manifest, feeds: dict) -> dict:
    """The Kotlin ``CompiledModel`` calls through LiteRT's Python mirror: create buffers, write, run, read."""
    from ai_edge_litert.compiled_model import CompiledModel

    sig = m.sig
    model = CompiledModel.from_file(str(path))
    order = model.get_signature_by_index(0)
    in_keys, out_keys = list(order["inputs"]), list(order["outputs"])
    by_binding = {str(t.binding): t for t in sig.inputs}
    out_spec = {str(t.binding): t for t in sig.outputs}
    n = len(next(iter(feeds.values())))
    got: dict = {t.name: [] for t in sig.outputs}
    ins, outs = model.create_input_buffers(0), model.create_output_buffers(0)
    for i in range(n):
        for buf, key in zip(ins, in_keys):
            t = by_binding[key]
            x = np.asarray(feeds[t.name][i : i + 1])
            if t.quantization:
                from edgeport.runtime import quantize_input

                x = quantize_input(t, x)
            buf.write(x.astype(np.dtype(t.dtype)))
        model.run_by_index(0, ins, outs)
        for buf, key in zip(outs, out_keys):
            t = out_spec[key]
            y = buf.read(int(np.prod(t.shape)), np.dtype(t.dtype)).reshape(t.shape)
            if t.quantization:
                from edgeport.runtime import dequantize_output

                y = dequantize_output(t, y)
            got[t.name].append(np.asarray(y, np.float32))
    for b in (*ins, *outs):
        b.destroy()
    model.close()
    del model, ins, outs
    import gc

    gc.collect()  # LiteRT's environment goes now, not at exit (where its INFO lines would reach the terminal)
    return {k: np.concatenate(v) for k, v in got.items()}


def _speed(r, feeds: dict) -> dict:
    one = {k: v[:1] for k, v in feeds.items()}
    r.run(one)
    ts = []
    t_end = time.perf_counter() + 1.0
    while len(ts) < 10 or (time.perf_counter() < t_end and len(ts) < 200):
        t0 = time.perf_counter()
        r.run(one)
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.median(ts)), 3), "runs": len(ts), "threads": 1}


def _raw_pixels(it: Item, probe) -> np.ndarray | None:
    """uint8 NHWC RGB pixels for the image checks: the probe itself for a uint8 front, else the float probe mapped
    back through the normalisation (pixel = x * std + mean, rounded)."""
    img = it.m.sig.single_image
    x = np.asarray(probe[0][img.name][:VERIFY_ROWS])
    if img.dtype == "uint8":
        return x
    if img.layout == "NCHW":
        x = np.transpose(x, (0, 2, 3, 1))
    std = np.asarray(it.std, np.float32)
    mean = np.asarray(it.mean, np.float32)
    return np.clip(np.round(x * std + mean), 0, 255).astype(np.uint8)


def _check_image_classifier(it: Item, out: Path, r, probe) -> dict:
    import mediapipe as mp
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.vision import image_classifier as ic

    m, img = it.m, it.m.sig.single_image
    pixels = _raw_pixels(it, probe)
    feeds = {img.name: pixels if img.dtype == "uint8" else
             ((pixels.astype(np.float32) - np.asarray(it.mean, np.float32)) / np.asarray(it.std, np.float32))}
    ref = _primary(m, r.run(feeds)).argmax(1)
    opts = ic.ImageClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=str(out / m.name)),
                                     max_results=1)
    with ic.ImageClassifier.create_from_options(opts) as clf:
        top = []
        for p in pixels:
            res = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(p)))
            top.append(res.classifications[0].categories[0].index)
    return {"task": "ImageClassifier", "mediapipe": _mp_version(), "rows": len(top),
            "top1_agreement": float(np.mean(np.asarray(top) == ref)),
            "input": "uint8 RGB pixels" + (" (the float probe mapped back to pixels)" if img.dtype != "uint8" else "")}


def _sentences(m: Manifest) -> list[str]:
    from edgeport.data import load_dataset

    spec = (m.source or {}).get("default_data")
    if not spec:
        return []
    ds = load_dataset(spec, "heldout")
    return list(ds.texts or ())[:VERIFY_ROWS]


def _check_text(it: Item, out: Path, r) -> dict:
    from mediapipe.tasks.python.core import base_options

    from edgeport.data import model_inputs, tokenize

    m = it.m
    texts = _sentences(m)
    if not texts:
        return {"skipped": "no sentences: the manifest names no default text set"}
    feeds = tokenize(texts, m.preprocessing, root=m.folder)
    feeds = model_inputs(_tensors(feeds), m.sig, {"kind": "tensor"})
    ref = _primary(m, r.run(feeds))
    base = base_options.BaseOptions(model_asset_path=str(out / m.name))
    prep = strip_accents if it.strip_accents else (lambda t: t)
    if it.mediapipe == "text-embedder":
        from mediapipe.tasks.python.text import text_embedder as te

        with te.TextEmbedder.create_from_options(te.TextEmbedderOptions(base_options=base)) as emb:
            got = np.stack([np.asarray(emb.embed(prep(t)).embeddings[0].embedding, np.float32) for t in texts])
            raw = np.stack([np.asarray(emb.embed(t).embeddings[0].embedding, np.float32) for t in texts])
        cos, cos_raw = _cos(ref, got), _cos(ref, raw)
        return {"task": "TextEmbedder", "mediapipe": _mp_version(), "rows": len(texts), "cosine_min": float(cos.min()),
                "cosine_mean": float(cos.mean()), "input": f"sentences (strings) of {m.source.get('default_data')}"
                + (", accents stripped as the Kotlin snippet does" if it.strip_accents else ""),
                **({"cosine_min_without_accent_stripping": float(cos_raw.min())} if it.strip_accents else {})}
    from mediapipe.tasks.python.text import text_classifier as tc

    with tc.TextClassifier.create_from_options(tc.TextClassifierOptions(base_options=base)) as clf:
        top = [clf.classify(prep(t)).classifications[0].categories[0].index for t in texts]
    return {"task": "TextClassifier", "mediapipe": _mp_version(), "rows": len(texts),
            "top1_agreement": float(np.mean(np.asarray(top) == ref.argmax(1)))}


def _tensors(feeds: dict):
    from edgeport.data import Dataset

    return Dataset("sentences", "tensors", tensors=feeds)


def _check_pte_preprocessing(it: Item, out: Path, r) -> dict:
    """The app's side of a .pte: raw data made into inputs by reading only the bundled preprocessing file (what the
    Kotlin does), run with executorch.runtime, against edgeport's own preprocessing and runner."""
    m = it.m
    spec = json.loads((out / it.files["preprocessing"]).read_text())
    data = (m.source or {}).get("default_data")
    if it.kind != "image" or not data:
        return {"skipped": "only image inputs with a default data set are replayed from the preprocessing file"}
    from edgeport.data import load_dataset, model_inputs

    ds = load_dataset(data, "heldout").take(np.arange(VERIFY_ROWS))
    if ds.kind != "pixels":
        return {"skipped": f"{data} holds {ds.kind}, not pixels"}
    ref = r.run(model_inputs(ds, m.sig, m.preprocessing, root=m.folder))
    e = spec["inputs"][0]
    px = ds.pixels.astype(np.float32)
    px = px[..., None] if px.ndim == 3 else px
    if "mean" in e:
        x = (px - np.asarray(e["mean"], np.float32)) / np.asarray(e["std"], np.float32)
    else:  # a front: the pixels themselves, as RGB(A)
        c = e["shape"][3]
        x = np.repeat(px, 3, axis=-1) if px.shape[-1] == 1 else px[..., :3]
        if c == 4:
            x = np.concatenate([x, np.full(x.shape[:-1] + (1,), 255.0, np.float32)], axis=-1)
    if e.get("layout") == "NCHW":
        x = np.transpose(x, (0, 3, 1, 2))
    got = r.run({e["name"]: np.ascontiguousarray(x.astype(np.dtype(e["dtype"])))})
    return {"by": "executorch.runtime", "rows": VERIFY_ROWS, **_compare(m, ref, got)}


def _mp_version() -> str:
    from importlib.metadata import version

    return f"mediapipe {version('mediapipe')}"


def _report_rows(path: str | None, items: list[Item]) -> dict:
    if not path:
        return {}
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    if not p.is_file():
        raise InputError(f"--report {p} not found; pass the report.json written by `edgeport evaluate`")
    rows = json.loads(p.read_text()).get("rows", [])
    names = {it.m.name for it in items}
    return {n: [r for r in rows if r.get("artifact") == n and not r.get("error") and not r.get("skipped")] for n in names}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------ README
def _readme(items: list[Item], pre: dict, checks: dict, rows: dict) -> str:
    from .readme import render

    return render(items, pre, checks, rows, _cpu())
