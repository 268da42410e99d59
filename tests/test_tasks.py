"""The task registry (edgeport.tasks): one object per task, read by the report, the budget search, the pytest
assertion, the CLI and the page; budget flags that do not fit are one line; recipes declare what they need; an
explicit --quant list applies each recipe to the targets that have it."""

from __future__ import annotations

import http.client
import inspect
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from edgeport.app.cli import build_parser, main
from edgeport.errors import InputError, UnsupportedError
from edgeport.report import Report, Row
from edgeport.tasks import TASKS, Budget, get_task


def row(task="classification", **kw) -> Row:
    return Row(artifact="m.int8.tflite", target="tflite", recipe="int8", source="src", runtime="ai-edge-litert",
               backend="xnnpack", threads=1, device="local", task=task, **kw)


def cli(capsys, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("edgeport:")]


# ------------------------------------------------------------------------------------------------ the registry
def test_unknown_task_lists_the_known_ones():
    with pytest.raises(InputError, match=r"^unknown task 'ranking'; known: classification, embedding, regression$"):
        get_task("ranking")


def test_one_flag_name_in_convert_evaluate_and_the_assertion():
    from edgeport.testing import assert_quantized_close

    parser = build_parser()
    keywords = inspect.signature(assert_quantized_close).parameters
    assert len({t.flag for t in TASKS.values()}) == len(TASKS) == 3
    for t in TASKS.values():
        for cmd in (["convert", "--model", "m", "--to", "tflite"], ["evaluate", "art"]):
            a = parser.parse_args([*cmd, t.flag, "0.25"])
            assert getattr(a, t.keyword) == 0.25, (cmd[0], t.flag)
        assert t.flag == "--" + t.keyword.replace("_", "-")  # --max-drop <-> max_drop=
        assert t.keyword in keywords
        assert t.budget_field in Budget.__dataclass_fields__


def test_evaluate_keeps_budget_as_a_hidden_alias(capsys):
    parser = build_parser()
    assert parser.parse_args(["evaluate", "art", "--budget", "0.3"]).max_drop == 0.3
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--help"])
    helptext = capsys.readouterr().out
    assert "--max-drop PP" in helptext and "--budget" not in helptext


def test_within_rules_per_task():
    cls, emb, reg = (get_task(n) for n in ("classification", "embedding", "regression"))
    assert cls.within(row(accuracy_drop_pp=0.5), 0.5) and not cls.within(row(accuracy_drop_pp=0.51), 0.5)
    # without labels, the top-1 disagreement with float bounds the drop (0.995 agreement: 0.5 pp, not 0.50000001)
    assert cls.within(row(agreement=0.995), 0.5) and not cls.within(row(agreement=0.99), 0.5)
    assert not cls.within(row(), 0.5)  # nothing measured is not within
    assert emb.within(row("embedding", cosine_mean=0.991), 0.99) and not emb.within(row("embedding", cosine_mean=0.98), 0.99)
    assert reg.value(row("regression", max_abs_diff=0.0)) == math.inf  # identical outputs: no finite SNR
    assert reg.within(row("regression", max_abs_diff=0.0), 200.0)
    assert not reg.within(row("regression", snr_db=None, max_abs_diff=0.1), 0.0)
    assert reg.within(row("regression", snr_db=31.0, max_abs_diff=0.1), 30.0)
    # the report's Row.within is the task's rule at the report budget's threshold (defaults for tasks not given)
    assert row(accuracy_drop_pp=0.4).within(Budget()) and not row(accuracy_drop_pp=0.4).within(0.3)
    assert row("embedding", cosine_mean=0.985).within(Budget(min_cosine=0.98))
    assert not row("embedding", cosine_mean=0.985).within(Budget(max_drop_pp=5.0))  # cosine keeps its 0.99 default


def test_texts_read_from_the_task():
    assert Budget().describe() == "classification: drop <= 0.5 pp; embedding: cosine >= 0.99; regression: SNR >= 30 dB"
    assert Budget(min_snr_db=20).describe("regression") == "SNR >= 20 dB"
    assert get_task("classification").describe(0.3, long=True) == "accuracy drop <= 0.3 pp"
    assert [c[0] for c in get_task("classification").columns] == ["acc %", "drop pp", "agree %"]
    r = row(accuracy=0.9812)
    assert r.quality() == pytest.approx(98.12)
    assert [c[1](r) for c in get_task("classification").columns] == ["98.12", "-", "-"]


def test_report_json_records_every_threshold():
    """report.json's "budget" keeps its three keys and the defaults, however few thresholds were given."""
    assert Report().to_dict()["budget"] == {"max_drop_pp": 0.5, "min_cosine": 0.99, "min_snr_db": 30.0}
    rep = Report(budget=Budget(max_drop_pp=0.3))
    assert rep.to_dict()["budget"] == {"max_drop_pp": 0.3, "min_cosine": 0.99, "min_snr_db": 30.0}


def test_budget_values_are_checked_and_matched_to_the_task():
    with pytest.raises(InputError, match=r"^--max-drop -1 is out of range: give PP >= 0$"):
        Budget(max_drop_pp=-1)
    with pytest.raises(InputError, match=r"^--min-cosine 1.5 is out of range: give C within \[-1, 1\]$"):
        Budget(min_cosine=1.5)
    with pytest.raises(InputError, match=r"^--min-snr is for regression models; m is a classification model: use"
                                         r" --max-drop PP$"):
        Budget(min_snr_db=30).for_task("classification", "m")
    assert Budget(min_snr_db=30).for_task("regression", "m") == 30.0
    assert Budget().for_task("embedding", "m") == 0.99  # nothing given: the task's default


def test_page_gets_the_task_facts_from_the_server(tmp_path):
    from edgeport.web.server import BENCH_QUICK, start_background

    srv, _ = start_background(tmp_path, bench=BENCH_QUICK)
    try:
        c = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
        c.request("GET", "/api/config")
        tasks = json.loads(c.getresponse().read())["tasks"]
    finally:
        srv.shutdown()
        srv.server_close()
    assert set(tasks) == set(TASKS)
    assert tasks["classification"]["labels"] and not tasks["embedding"]["labels"]
    assert tasks["embedding"]["similarity"] and tasks["embedding"]["flag"] == "--min-cosine"
    app = (Path(__file__).resolve().parents[1] / "web" / "static" / "app.js").read_text()
    assert not [n for n in TASKS if f"'{n}'" in app or f'"{n}"' in app], "the page names a task instead of asking"


# ------------------------------------------------------------------------------------------------ recipes
def test_recipes_declare_calibration_and_budget():
    from edgeport.recipes import RECIPES
    from edgeport.registry import matrix

    assert [r.name for r in RECIPES.values() if r.budget] == ["int8"]
    assert [r.name for r in RECIPES.values() if r.needs_calibration] == ["int8"]
    held = set()
    for t, c in matrix():
        for r in c.budget:  # a converter holds a budget only for a recipe of its own that can hold one
            assert r in c.recipes and RECIPES[r].budget, (t.name, c.framework, r)
            held.add((t.name, c.framework, r))
    assert held == {("tflite", "keras", "int8"), ("tflite", "torch", "int8"), ("pte", "torch", "int8"),
                    ("onnx", "keras", "int8"), ("onnx", "torch", "int8")}


# ------------------------------------------------------------------------------------------------ mixed lists
def test_plan_applies_each_recipe_to_the_targets_that_have_it():
    from edgeport.convert import plan

    p = plan("keras", ["tflite", "tfjs"], ["fp32", "uint8"])
    assert p.pairs == (("tflite", "fp32"), ("tfjs", "fp32"), ("tfjs", "uint8"))
    assert p.skipped_line() == "skipped tflite uint8: no such recipe for keras -> tflite"
    assert plan("keras", ["tflite", "tfjs"], ["all"]).skipped == ()  # 'all' is each target's own recipes
    with pytest.raises(UnsupportedError, match=r"^recipe 'uint16' does not exist for torch -> tflite, pte; supported:"
                                               r" tflite: fp32, fp16, dynamic-int8, int8; pte: fp32, dynamic-int8, int8$"):
        plan("torch", ["tflite", "pte"], ["fp32", "uint16"])
    with pytest.raises(UnsupportedError, match=r"^recipe 'fp16' does not exist for torch -> pte; supported:"):
        plan("torch", ["pte"], ["fp16"])  # one target: the message it always had


# ------------------------------------------------------------------------------------------------ refusals
def test_budget_on_a_target_without_a_search_fails_before_loading(capsys, tmp_path):
    out = tmp_path / "out"
    code, err = cli(capsys, "convert", "--model", "builtin:simplecnn-keras", "--to", "tfjs", "--quant", "uint8",
                    "--max-drop", "0.5", "--out", out)
    assert code == 2 and err == ["edgeport: error: --max-drop: tfjs uint8 cannot hold an accuracy budget (no budget"
                                 " search there); these can: onnx int8, pte int8, tflite int8"]
    assert not out.exists()


def test_wrong_task_flag_with_explicit_task_fails_before_loading(capsys, tmp_path):
    # The model file does not exist: the budget check must come first to be the error seen.
    code, err = cli(capsys, "convert", "--model", tmp_path / "missing.keras", "--task", "embedding", "--to", "tflite",
                    "--quant", "int8", "--max-drop", "1", "--out", tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert err[0].endswith("--max-drop is for classification models; "
                           f"{tmp_path / 'missing.keras'} is an embedding model: use --min-cosine C")


def test_wrong_task_flag_after_loading(capsys, tmp_path):
    """The issue's case: a classifier with --min-cosine used to write plain int8 and say nothing."""
    out = tmp_path / "out"
    code, err = cli(capsys, "convert", "--model", "builtin:simplecnn-torch", "--to", "pte", "--quant", "int8",
                    "--min-cosine", "0.99", "--out", out)
    assert code == 2
    assert err == ["edgeport: error: --min-cosine is for embedding models; builtin:simplecnn-torch is a classification"
                   " model: use --max-drop PP"]
    assert not out.exists() or not list(out.glob("*.manifest.json"))


def test_evaluate_refuses_a_budget_for_a_task_it_has_no_artifact_of(capsys, tmp_path):
    from edgeport.manifest import Manifest, file_entries

    (tmp_path / "m.fp32.tflite").write_bytes(b"not run")
    sig = {"inputs": [{"name": "x", "dtype": "float32", "shape": [1, 4], "role": "tensor", "binding": "x"}],
           "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 3], "role": "logits", "binding": "y"}]}
    Manifest(name="m.fp32.tflite", source={"framework": "keras", "model": "m"}, target="tflite", recipe="fp32",
             entry="m.fp32.tflite", files=file_entries(tmp_path, ["m.fp32.tflite"]), signature=sig,
             preprocessing={"kind": "tensor"}, parity={"status": "pending"}, probe={}).write(tmp_path)
    report = tmp_path / "report"
    code, err = cli(capsys, "evaluate", tmp_path, "--min-snr", "20", "--out", report)
    assert code == 2 and err == [f"edgeport: error: --min-snr is for regression models; {tmp_path} holds"
                                 " classification models: use --max-drop PP"]
    assert not report.exists()


@pytest.mark.slow
def test_mixed_recipe_list_writes_what_exists_and_names_what_it_skipped(tmp_path):
    """`convert --to tflite,tfjs --quant fp32,uint8`: three artifacts (uint8 is TF.js only) and one line for the
    fourth combination (~30-60 s: a real Keras conversion to both formats)."""
    out = tmp_path / "mixed"
    p = subprocess.run([sys.executable, "-m", "edgeport", "convert", "--model", "builtin:simplecnn-keras", "--to",
                        "tflite,tfjs", "--quant", "fp32,uint8", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    names = sorted(m.name.removesuffix(".manifest.json") for m in out.glob("*.manifest.json"))
    assert names == ["simplecnn-keras.fp32.tfjs", "simplecnn-keras.fp32.tflite", "simplecnn-keras.uint8.tfjs"]
    skipped = [ln for ln in p.stderr.splitlines() if "skipped" in ln]
    assert skipped == ["[edgeport] skipped tflite uint8: no such recipe for keras -> tflite"]
