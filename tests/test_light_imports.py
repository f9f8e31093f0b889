"""The ``settings`` stage stays cheap: it checks params against the typed configs without importing torch or the
image libraries (it runs first for every category of every ``dvc repro``), and the packages whose ``__init__`` exports
names lazily (so that their config modules import alone) export exactly what they list."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Libraries that take seconds to import and that checking params never needs.
HEAVY = ("torch", "torchvision", "timm", "sklearn", "skimage", "cv2")
#: Packages whose ``__init__`` imports its exports on first use (PEP 562).
LAZY_PACKAGES = ("csad.lgst", "csad.detector")


def _heavy_modules_loaded(code: str, cwd: Path) -> list[str]:
    """Return the :data:`HEAVY` libraries that a clean interpreter has imported after running ``code`` in ``cwd``
    (this checkout's ``csad`` first on the path)."""
    report = f"\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", code + report], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_importing_the_settings_code_loads_no_heavy_library(tmp_path: Path) -> None:
    assert _heavy_modules_loaded("import csad.pipeline.settings", tmp_path) == []


def test_a_settings_stage_run_loads_no_heavy_library(tmp_path: Path) -> None:
    # the whole stage: parse the params, check and build every typed config, write the settings files
    stage, params = REPO_ROOT / "stages" / "settings.py", REPO_ROOT / "params.yaml"
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['settings.py', '--category', 'pushpins', '--params', {str(params)!r}]\n"
        f"runpy.run_path({str(stage)!r}, run_name='__main__')\n"
    )
    assert _heavy_modules_loaded(code, tmp_path) == []
    assert (tmp_path / "data" / "settings" / "pushpins" / "cluster.json").is_file()


def _type_checking_imports(path: Path) -> dict[str, str]:
    """Return name -> module of the ``from m import name`` statements under ``if TYPE_CHECKING:`` in ``path``."""
    out: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    out.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    return out


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_a_lazy_package_exports_what_it_lists(name: str) -> None:
    package = importlib.import_module(name)
    exports = package._EXPORTS
    assert sorted(package.__all__) == sorted(exports)
    # the static import list is what tests/stage_imports.py reads for the DVC code deps: it must name every export
    assert _type_checking_imports(Path(package.__file__)) == exports
    for export, module in exports.items():
        assert getattr(package, export) is getattr(importlib.import_module(module), export)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = package.nothing
