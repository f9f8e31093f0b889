"""The import closure of each stage script inside ``csad/``: the code a DVC stage must list in its ``deps``.

Static (``ast``): every ``import csad...`` / ``from csad... import ...`` in the script and, transitively, in the
modules it reaches, including imports inside functions (a backend loaded lazily is still code the stage can run).
A package's ``__init__.py`` counts as imported with any of its modules (Python runs it first).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str, root: Path = REPO_ROOT) -> Path | None:
    """Return the file of module ``name`` (``csad.x.y``) under ``root``, or None when there is none."""
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_modules(path: Path, root: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root).with_suffix("")
    package = list(rel.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{alias.name}" for alias in node.names)  # `from csad.x import y` may be a module
    return {n for n in names if n == "csad" or n.startswith("csad.")}


def import_closure(script: Path, root: Path = REPO_ROOT) -> set[Path]:
    """Return the ``csad/`` files (relative to ``root``) that ``script`` imports, directly or not."""
    seen: set[Path] = set()
    todo = [(root / script).resolve() if not script.is_absolute() else script]
    while todo:
        path = todo.pop()
        for name in _imported_modules(path, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the packages' __init__ run first
                found = module_file(".".join(parts[:i]), root)
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return {p.relative_to(root) for p in seen}


#: Modules a stage imports by name at run time (``importlib``), per stage, as globs under the repository root
#: (``{item}`` is the foreach category). The
#: synth stage's registry may load any renderer (the photographic categories import their base renderers), so
#: every synth stage depends on every renderer module: one template for all categories, and an edit to a renderer
#: reruns the (cheap, deterministic) synth stages, whose unchanged outputs then rerun nothing downstream.
DYNAMIC_IMPORTS: dict[str, tuple[str, ...]] = {"synth": ("csad/data/synth/*.py",)}


def stage_code(stage: str, item: str | None = None, root: Path = REPO_ROOT) -> set[str]:
    """Return the code files (POSIX, relative to ``root``) that DVC stage ``stage`` runs: its script and closure."""
    script = root / "stages" / f"{stage}.py"
    files = {Path("stages") / f"{stage}.py", *import_closure(script, root)}
    for pattern in DYNAMIC_IMPORTS.get(stage, ()):
        for found in sorted(root.glob(pattern.format(item=item))):
            entry = found.relative_to(root)
            files.add(entry)
            files |= import_closure(root / entry, root)
    return {p.as_posix() for p in files}


def templated_code(stage: str, items: list[str], root: Path = REPO_ROOT) -> list[str]:
    """Return the code deps of foreach stage ``stage`` as dvc.yaml writes them (``${item}`` for per-item files).

    Raises:
        ValueError: the items need different lists that one template cannot express.
    """
    lists = []
    for item in items or [None]:
        files = stage_code(stage, item, root)
        if item is not None and any("{item}" in p for p in DYNAMIC_IMPORTS.get(stage, ())):
            files = {f.replace(f"/{item}.py", "/${item}.py") for f in files}
        lists.append(sorted(files))
    if any(lst != lists[0] for lst in lists):
        raise ValueError(f"stage {stage}: the categories import different code")
    return lists[0]


def foreach_items(stage: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """Return the items of a dvc.yaml stage's ``foreach: ${a.b}`` (a list in ``params``), or [] without foreach."""
    if "foreach" not in stage:
        return []
    expr = str(stage["foreach"]).strip()
    tree: Any = params
    for key in expr.removeprefix("${").removesuffix("}").split("."):
        tree = tree[key]
    return list(tree)


def fix_dvc_yaml(path: Path = REPO_ROOT / "dvc.yaml") -> None:
    """Rewrite the code deps (``stages/`` and ``csad/``) of every stage in ``path`` to their import closure.

    Other deps (data, models) keep their place; comments are kept (ruamel.yaml round trip).
    """
    from ruamel.yaml import YAML

    yml = YAML()
    yml.preserve_quotes = True
    yml.width = 120
    doc = yml.load(path.read_text(encoding="utf-8"))
    params = yml.load((path.parent / "params.yaml").read_text(encoding="utf-8"))
    for name, stage in doc["stages"].items():
        body = stage.get("do", stage)
        items = foreach_items(stage, params)
        deps = body.get("deps", [])
        others = [d for d in deps if not str(d).startswith(("stages/", "csad/"))]
        code = templated_code(name, items, path.parent)
        deps.clear()
        deps.extend([*code, *others])
        body["deps"] = deps
    with path.open("w", encoding="utf-8") as fh:
        yml.dump(doc, fh)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--fix"]:
        fix_dvc_yaml()
    else:
        print("usage: python -m tests.stage_imports --fix   (rewrite dvc.yaml's code deps to the import closures)")
