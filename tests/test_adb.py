"""Android over adb: output parsing against the tools' documented formats, and setup errors without a device."""

import pytest

from edgeport.edge.adb import check_setup, parse_benchmark_model, parse_executor_runner
from edgeport.errors import InputError

BENCHMARK_MODEL = """\
STARTING!
Log parameter values verbosely: [0]
Graph: [/data/local/tmp/edgeport/simplecnn-keras.int8.tflite]
Use xnnpack: [1]
Loaded model /data/local/tmp/edgeport/simplecnn-keras.int8.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 0.058128
Initialized session in 4.312ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1190 first=540 curr=410 min=395 max=780 avg=418.4 std=36

Running benchmark for at least 100 iterations and at least 2 seconds but terminate if exceeding 150 seconds.
count=4790 first=420 curr=410 min=392 max=812 avg=421.6 std=38 p5=398 median=412 p95=470

Inference timings in us: Init: 4312, First inference: 540, Warmup (avg): 418.4, Inference (avg): 421.6
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your one discretion.
Memory footprint delta from the start of the tool (MB): init=2.14062 overall=5.32812
"""

EXECUTOR_RUNNER = """\
I 00:00:00.000541 executorch:executor_runner.cpp:82] Model file /data/local/tmp/edgeport/simplecnn-torch.int8.pte is loaded.
I 00:00:00.000573 executorch:executor_runner.cpp:91] Using method forward
I 00:00:00.000581 executorch:executor_runner.cpp:138] Setting up planned buffer 0, size 32192.
I 00:00:00.004112 executorch:executor_runner.cpp:161] Method loaded.
I 00:00:00.004301 executorch:executor_runner.cpp:171] Inputs prepared.
I 00:00:00.061822 executorch:executor_runner.cpp:180] Model executed successfully 100 time(s) in 57.412000 ms.
I 00:00:00.061841 executorch:executor_runner.cpp:184] 1 outputs:
"""


def test_parse_benchmark_model():
    r = parse_benchmark_model(BENCHMARK_MODEL)
    assert r["load_ms"] == pytest.approx(4.312)
    assert r["runs"] == 4790  # the timed run, not the warm-up
    assert r["latency_ms"]["mean"] == pytest.approx(0.4216)
    assert r["latency_ms"]["p50"] == pytest.approx(0.412) and r["latency_ms"]["p95"] == pytest.approx(0.470)
    assert r["latency_ms"]["std"] == pytest.approx(0.038)
    assert r["peak_rss_delta_bytes"] == int(5.32812 * 1024 * 1024)


def test_parse_executor_runner():
    r = parse_executor_runner(EXECUTOR_RUNNER)
    assert r == {"runs": 100, "latency_ms": {"mean": pytest.approx(0.57412)}}


def test_garbage_output_is_a_clear_error():
    with pytest.raises(InputError, match="benchmark_model"):
        parse_benchmark_model("segmentation fault")
    with pytest.raises(InputError, match="executor_runner"):
        parse_executor_runner("")


def test_no_adb_on_path(monkeypatch, capsys, tmp_path):
    from edgeport.app.cli import main

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InputError, match="adb not found on PATH; install Android platform-tools"):
        check_setup("adb", [], None, None)
    code = main(["evaluate", str(tmp_path), "--device", "adb"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "adb not found" in err
