import subprocess
import sys

from edgeport.cli import main
from edgeport.registry import matrix, matrix_table


def test_targets_prints_the_registry_table(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(matrix_table())
    for t, c in matrix():
        assert any(line.split()[:3] == [c.framework, t.name, ",".join(c.recipes)] for line in out.splitlines()), (c.framework, t.name)


def test_module_entry_point_and_console_script():
    p = subprocess.run([sys.executable, "-m", "edgeport", "targets"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "litert-torch" in p.stdout
    exe = __import__("shutil").which("edgeport") or str(__import__("pathlib").Path(sys.executable).with_name("edgeport"))
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "convert" in p.stdout and "evaluate" in p.stdout and "demo" in p.stdout


def test_package_installs_only_edgeport():
    """The design card's folders are subpackages of edgeport; no generic top-level names leak out."""
    import importlib.util

    import edgeport.converters
    import edgeport.edge
    import edgeport.web

    assert edgeport.converters.__name__ == "edgeport.converters"
    for generic in ("converters", "quantization", "edge", "web", "demo"):
        spec = importlib.util.find_spec(generic)
        assert spec is None or "site-packages" not in (spec.origin or ""), generic
