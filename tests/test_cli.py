import shutil
import subprocess
import sys

from edgeport.app.cli import main
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


def test_package_installs_only_edgeport(tmp_path):
    """Build the wheel (what `pip install .` installs) and read its file list: one top-level package, `edgeport`,
    holding the design card's folders as subpackages; no generic top-level names (converters, edge, web ...).
    (An editable install would pass an import-based check whatever the layout, so this inspects a real wheel.)"""
    import tomllib
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(root / f, src / f)
    for d in set(cfg["tool"]["setuptools"]["package-dir"].values()):  # copy the sources only (not node_modules)
        shutil.copytree(root / d, src / d, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc", ".*"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("edgeport-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"edgeport"}, sorted(top)
    for f in ("edgeport/app/cli.py", "edgeport/app/pytest_plugin.py", "edgeport/app/demo.py", "edgeport/pool.py",
              "edgeport/converters/tflite/from_torch.py", "edgeport/converters/pte/runner.py",
              "edgeport/quantization/pt2e.py", "edgeport/worker.py", "edgeport/web/server.py",
              "edgeport/web/static/index.html", "edgeport/demo/models.py"):
        assert f in names, f
    assert not [n for n in names if "node_modules" in n or "/tests/" in n or n.startswith("tests/")]
    eps = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "edgeport = edgeport.app.cli:main" in eps and "tflite = edgeport.converters.tflite" in eps
