"""Load ``params.yaml`` and check it against the schema of every known key.

Unknown keys are reported (with the closest known key), never silently ignored, so a typo such as
``synth.image_sise`` fails at once instead of running with a default.

>>> check({"synth": {"image_size": 64}}, {"synth": {"image_size": int}})
>>> check({"synth": {"image_sise": 64}}, {"synth": {"image_size": int}})
Traceback (most recent call last):
...
csad.errors.ParamsError: params.yaml: unknown key synth.image_sise (did you mean synth.image_size?)
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from csad.errors import ParamsError

#: A schema is a nested dict; leaves are Python types (or tuples of types). ``list`` means any list and ``dict`` a
#: free-form mapping (checked later, e.g. against a constructor's signature). A section may have an ``overrides``
#: key (:data:`OVERRIDES`): a mapping category -> partial section, deep-merged over the section by :func:`resolve`.
Schema = dict[str, Any]
OVERRIDES = "overrides"
OptStr = (str, type(None))

SCHEMA: Schema = {
    "categories": list,
    "dataset": {"root": str},
    "synth": {
        "root": str,
        "image_size": int,
        "seed": int,
        "counts": {
            "train": int,
            "validation": int,
            "test_good": int,
            "test_logical": int,
            "test_structural": int,
        },
    },
    "runtime": {"device": str, "num_threads": int},
    "tag": {
        "backend": str,
        "tags": dict,
        "ram": {"checkpoint": OptStr, "image_size": int, "min_frequency": float, "exclude": list, "extra": list},
    },
    "ground": {"backend": str, "classical": dict, "grounded_sam": dict, OVERRIDES: OVERRIDES},
    "propose": {"backend": str, "classical": dict, "sam": dict, OVERRIDES: OVERRIDES},
    "refine": {
        "mode": str,
        "use_grounding_filter": bool,
        "grounding_filter_ratio": float,
        "background_ratio": float,
        "min_fraction": float,
        "combine_overlap": float,
        "max_masks": int,
        OVERRIDES: OVERRIDES,
    },
    "features": {
        "descriptors": list,
        "backbone": str,
        "stride": int,
        "weights": str,
        "seed": int,
        "canvas": int,
        "n_rotations": int,
        "batch_size": int,
        "n_hu": int,
        "color_lightness_weight": float,
        "min_fraction": float,
        "block_weights": dict,
        OVERRIDES: OVERRIDES,
    },
    "cluster": {
        "proj_dim": int,
        "seed": int,
        "bandwidth": float,
        "alpha": float,
        "n_jobs": int,
        OVERRIDES: OVERRIDES,
    },
    "segment": {
        "backbone": {"name": str, "weights": str},
        "train": dict,
        "patch_hist": {"grids": list, "lower": float, "upper": float},
        OVERRIDES: OVERRIDES,
    },
    "lgst": {
        "backbone": {"name": str, "weights": str, "seed": int},
        "image_size": int,
        "feat_size": int,
        "channels": int,
        "student_widths": list,
        "ae_base_dim": int,
        "iterations": int,
        "batch_size": int,
        "lr": float,
        "weight_decay": float,
        "lr_step_fraction": float,
        "lr_gamma": float,
        "hard_quantile": float,
        "quantile_subsample": int,
        "penalty_dir": OptStr,
        "loss_weights": {"st": float, "ae": float, "stae": float},
        "ae_jitter": float,
        "map_qa": float,
        "map_qb": float,
        "feature_batch_size": int,
        "seed": int,
        "num_threads": int,
        OVERRIDES: OVERRIDES,
    },
    "score": {
        "weights": {"patch_hist": float, "lgst": float},
        "lower": float,
        "upper": float,
        "batch_size": int,
    },
    "filter": {
        "min_cluster_fraction": float,
        "top_ratio": float,
        "largest_only": bool,
        "min_class_area": float,
        "prune_over": str,
        OVERRIDES: OVERRIDES,
    },
}


def load_params(path: Path | str = "params.yaml", schema: Schema | None = None) -> dict[str, Any]:
    """Return the parsed and checked params file at ``path``.

    Raises:
        ParamsError: the file is missing, not YAML, or does not match the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the repository root or pass --params")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from err
    if not isinstance(tree, dict):
        raise ParamsError(f"{path} must be a YAML mapping of sections")
    check(tree, SCHEMA if schema is None else schema, source=path.name)
    return tree


def check(
    tree: dict[str, Any], schema: Schema, source: str = "params.yaml", prefix: str = "", partial: bool = False
) -> None:
    """Raise :class:`ParamsError` for the first unknown key, missing key (unless ``partial``) or mistyped value."""
    for key in tree:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f"; known: {', '.join(sorted(schema))}"
            raise ParamsError(f"{source}: unknown key {prefix}{key}{hint}")
    for key, expected in schema.items():
        name = f"{prefix}{key}"
        if key not in tree:
            if partial or key == OVERRIDES:
                continue
            raise ParamsError(f"{source}: missing key {name}")
        value = tree[key]
        if key == OVERRIDES and expected is OVERRIDES:
            if not isinstance(value, dict):
                raise ParamsError(f"{source}: {name} must map category names to settings, got {value!r}")
            base = {k: v for k, v in schema.items() if k != OVERRIDES}
            for category, sub in value.items():
                if not isinstance(sub, dict):
                    raise ParamsError(f"{source}: {name}.{category} must be a mapping, got {sub!r}")
                check(sub, base, source, f"{name}.{category}.", partial=True)
        elif isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ParamsError(f"{source}: {name} must be a mapping, got {value!r}")
            check(value, expected, source, f"{name}.", partial=partial)
        elif not _is_instance(value, expected):
            raise ParamsError(f"{source}: {name} must be {_type_name(expected)}, got {value!r}")


def resolve(section: dict[str, Any], category: str) -> dict[str, Any]:
    """Return ``section`` with its ``overrides[category]`` deep-merged in (and the ``overrides`` key dropped)."""
    base = {k: v for k, v in section.items() if k != OVERRIDES}
    return _deep_merge(base, (section.get(OVERRIDES) or {}).get(category) or {})


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _is_instance(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if dict in types and isinstance(value, dict):
        return True
    if isinstance(value, bool) and bool not in types:
        return False
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, types)


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)


def build_with_kwargs(factory: Any, kwargs: dict[str, Any], param: str) -> Any:
    """Return ``factory(**kwargs)``; an argument the factory does not take is reported as an unknown param key.

    Raises:
        ParamsError: ``kwargs`` has a key that is not a parameter of ``factory`` (names ``param.<key>``).
    """
    import inspect

    accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {param}.{close[0]}?)" if close else f"; known: {', '.join(accepted)}"
            raise ParamsError(f"params.yaml: unknown key {param}.{key}{hint}")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as err:
        raise ParamsError(f"params.yaml: {param}: {err}") from err
