"""Load ``params.yaml`` and check it against the schema of every known key.

Unknown keys are reported (with the closest known key), never silently ignored, so a typo such as
``synth.image_sise`` fails at once instead of running with a default.

Two kinds of section: the ones written out in :data:`SCHEMA` (the dataset, the renderer, the runtime, the backend
choices), and the ones that are one typed config each (a dataclass of the algorithm package), marked :data:`CONFIG`
in :data:`SCHEMA`. The schema of a :data:`CONFIG` section is not repeated here: :func:`schema_of` derives it from the
dataclass's fields and type hints (keys may be left out: the field's default is used). This module does not import
the algorithm packages (every stage loads params, and would then depend on all of them); the ``settings`` stage, the
first stage of every category, checks the :data:`CONFIG` sections against their dataclasses
(:mod:`csad.pipeline.settings`), and every stage builds its own config again with :func:`build_with_kwargs`.

>>> check({"synth": {"image_size": 64}}, {"synth": {"image_size": int}})
>>> check({"synth": {"image_sise": 64}}, {"synth": {"image_size": int}})
Traceback (most recent call last):
...
csad.errors.ParamsError: params.yaml: unknown key synth.image_sise (did you mean synth.image_size?)
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import re
import types
import typing
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

#: Marks a :data:`SCHEMA` section (or sub-section) that is one config dataclass: the settings stage checks it against
#: the schema :func:`schema_of` derives from that dataclass (``csad.pipeline.settings.SECTION_CONFIGS``);
#: :func:`check` only requires a mapping there.
CONFIG = "config"

#: ``dataclasses.field(metadata=NOT_A_PARAM)``: a config field that is not a params key (the device comes from
#: ``runtime``; a backbone's ``param`` is the key named in its errors). :func:`schema_of` leaves it out.
NOT_A_PARAM: dict[str, bool] = {"params": False}


class ConfigSchema(dict):  # type: ignore[type-arg]
    """The schema of a config dataclass (:func:`schema_of`): like a :data:`Schema`, but any key may be left out."""


SCHEMA: Schema = {
    "categories": list,
    "dataset": {"root": str},
    "synth": {
        "categories": list,
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
    "runtime": {"device": str, "num_threads": int, "deterministic": bool},
    "tag": {
        "backend": str,
        "tags": dict,
        "ram": {"checkpoint": OptStr, "image_size": int, "min_frequency": float, "exclude": list, "extra": list},
    },
    "parts": CONFIG,
    "ground": {"backend": str, "pretrained": dict, "classical": dict, "grounded_sam": dict, OVERRIDES: OVERRIDES},
    "propose": {"backend": str, "classical": dict, "sam": dict, OVERRIDES: OVERRIDES},
    "refine": CONFIG,
    "features": CONFIG,
    "cluster": CONFIG,
    "segment": {
        "backbone": {"name": str, "weights": str},
        "train": CONFIG,
        "patch_hist": {"grids": list, "lower": float, "upper": float, "count_min_fraction": float},
        OVERRIDES: OVERRIDES,
    },
    "lgst": CONFIG,
    "detector": CONFIG,
    "score": CONFIG,
    "filter": CONFIG,
}


class ParamsLoader(yaml.SafeLoader):
    r"""PyYAML's safe loader with YAML 1.2 floats: ``1e-05``, ``1E5``, ``+.5`` load as floats, not strings.

    PyYAML implements YAML 1.1, whose float pattern requires a dot and a signed exponent, so ``1e-05`` (which
    ``dvc exp run -S lgst.weight_decay=0.00001`` writes through ruamel.yaml, a YAML 1.2 writer) would come back as
    the string ``"1e-05"``. The YAML 1.2 core schema's float pattern is added as a further implicit resolver; values
    that PyYAML already typed keep their types (a quoted ``'1e-05'`` stays a string).

    >>> load_yaml("a: 1e-05\nb: 1E5\nc: 3\nd: '1e-05'")
    {'a': 1e-05, 'b': 100000.0, 'c': 3, 'd': '1e-05'}
    """


_YAML12_FLOAT = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"  # 1e-05, 1E5, .5, 2.
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """Parse ``text`` with :class:`ParamsLoader` (YAML 1.2 floats). Raises ``yaml.YAMLError`` on bad YAML."""
    return yaml.load(text, Loader=ParamsLoader)


def load_params(path: Path | str = "params.yaml", schema: Schema | None = None) -> dict[str, Any]:
    """Return the parsed and checked params file at ``path``.

    Raises:
        ParamsError: the file is missing, not YAML, or does not match the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the repository root or pass --params")
    try:
        tree = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from err
    if not isinstance(tree, dict):
        raise ParamsError(f"{path} must be a YAML mapping of sections")
    check(tree, SCHEMA if schema is None else schema, source=path.name)
    return tree


def check(
    tree: dict[str, Any], schema: Schema, source: str = "params.yaml", prefix: str = "", partial: bool = False
) -> None:
    """Raise :class:`ParamsError` for the first unknown key, missing key (unless ``partial`` or ``schema`` is a
    :class:`ConfigSchema`) or mistyped value."""
    partial = partial or isinstance(schema, ConfigSchema)
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
        if expected is CONFIG:
            if not isinstance(value, dict):
                raise ParamsError(f"{source}: {name} must be a mapping, got {value!r}")
        elif key == OVERRIDES and expected is OVERRIDES:
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
    if object in types:
        return True
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


def schema_of(config: type, overrides: bool = False, **extra: type) -> ConfigSchema:
    """Return the params schema of the config dataclass ``config``, derived from its fields and type hints.

    Each field that is a params key (not marked :data:`NOT_A_PARAM`) becomes a key: a scalar hint (int, float, bool,
    str, None, or a union of them) its types; a nested dataclass its own :class:`ConfigSchema`; a list, tuple or
    sequence ``list``; a dict or mapping ``dict``; any other hint ``object`` (left to the dataclass to check). Keys
    may be left out (the field's default is used). ``overrides`` adds the per-category :data:`OVERRIDES` key;
    ``extra`` adds keys that are not fields (``name=dataclass``: that dataclass's schema), e.g. the ``backbone`` that
    a section reads beside its config.

    Raises:
        TypeError: ``config`` (or a value of ``extra``) is not a dataclass.

    >>> @dataclasses.dataclass
    ... class Section:
    ...     ratio: float = 0.5
    ...     mode: str | None = None
    ...     sizes: list[int] = dataclasses.field(default_factory=list)
    ...     device: str = dataclasses.field(default="cpu", metadata=NOT_A_PARAM)
    >>> schema_of(Section)
    {'ratio': <class 'float'>, 'mode': (<class 'str'>, <class 'NoneType'>), 'sizes': <class 'list'>}
    >>> check({"ratio": 1, "mdoe": "a"}, schema_of(Section), prefix="refine.")
    Traceback (most recent call last):
    ...
    csad.errors.ParamsError: params.yaml: unknown key refine.mdoe (did you mean refine.mode?)
    """
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise TypeError(f"schema_of needs a dataclass, got {config!r}")
    hints = typing.get_type_hints(config)
    schema = ConfigSchema()
    for f in dataclasses.fields(config):
        if f.metadata.get("params", True):
            schema[f.name] = _schema_of_hint(hints[f.name])
    for key, nested in extra.items():
        schema[key] = schema_of(nested)
    if overrides:
        schema[OVERRIDES] = OVERRIDES
    return schema


def _schema_of_hint(hint: Any) -> Any:
    """Return the schema node of one field's type hint (:func:`schema_of`)."""
    nested = _dataclass_of(hint)
    if nested is not None:
        return schema_of(nested)
    scalars = _scalar_types(hint)
    if scalars:
        return scalars[0] if len(scalars) == 1 else scalars
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, type):
        if issubclass(origin, (list, tuple, collections.abc.Sequence)) and not issubclass(origin, str):
            return list
        if issubclass(origin, (dict, collections.abc.Mapping)):
            return dict
    return object


def build_with_kwargs(factory: Any, kwargs: dict[str, Any], param: str) -> Any:
    """Return ``factory(**kwargs)``; an argument the factory does not take is reported as an unknown param key.

    Raises:
        ParamsError: ``kwargs`` has a key that is not a parameter of ``factory`` (names ``param.<key>``), a value
            of the wrong type, or ``factory`` refuses a value (``TypeError``/``ValueError``; a message that starts
            with a parameter's name is reported as ``param.<message>``).

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Section:
    ...     ratio: float = 0.5
    ...     def __post_init__(self):
    ...         if not 0 < self.ratio <= 1:
    ...             raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
    >>> build_with_kwargs(Section, {"ratio": 2.0}, "filter")
    Traceback (most recent call last):
    ...
    csad.errors.ParamsError: params.yaml: filter.ratio must be in (0, 1], got 2.0
    """
    import inspect

    accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {param}.{close[0]}?)" if close else f"; known: {', '.join(accepted)}"
            raise ParamsError(f"params.yaml: unknown key {param}.{key}{hint}")
    check_types(factory, kwargs, param)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as err:
        message = str(err)
        named = message.split(" ", 1)[0] in accepted
        raise ParamsError(f"params.yaml: {param}{'.' if named else ': '}{message}") from err


def check_types(factory: Any, kwargs: dict[str, Any], param: str) -> None:
    """Raise :class:`ParamsError` when a value of ``kwargs`` does not have the type that ``factory`` declares.

    The declared types are the type hints of ``factory`` (a dataclass's fields, or the parameters of a class's
    ``__init__`` or of a function). Scalars are checked (``float`` accepts an int, never a bool or a string; ``int``
    and ``bool`` are exact), and a mapping given for a nested dataclass field is checked against that dataclass, at
    any depth. Hints that are not plain scalars or dataclasses (lists, unions of other types) are left to
    ``factory``. This turns a number that arrives as a string (``"1e-05"``) into one line naming the key instead
    of a traceback from deep inside an optimizer.

    >>> from csad.seg.config import SegTrainConfig
    >>> check_types(SegTrainConfig, {"lr": "1e-05"}, "segment.train")
    Traceback (most recent call last):
    ...
    csad.errors.ParamsError: params.yaml: segment.train.lr must be a number (float), got '1e-05' (a str)
    """
    hints = _type_hints(factory)
    for key, value in kwargs.items():
        hint = hints.get(key)
        if hint is None:
            continue
        name = f"{param}.{key}"
        nested = _dataclass_of(hint)
        if nested is not None and isinstance(value, dict):
            check_types(nested, value, name)
            continue
        scalars = _scalar_types(hint)
        if scalars and not _is_instance(value, scalars):
            what = "a number (float)" if float in scalars else _type_name(scalars)
            raise ParamsError(f"params.yaml: {name} must be {what}, got {value!r} (a {type(value).__name__})")


def _type_hints(factory: Any) -> dict[str, Any]:
    target = factory if dataclasses.is_dataclass(factory) else getattr(factory, "__init__", factory)
    if isinstance(factory, type) and not dataclasses.is_dataclass(factory):
        target = factory.__init__
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


def _union_args(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _dataclass_of(hint: Any) -> type | None:
    for arg in _union_args(hint):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return None


def _scalar_types(hint: Any) -> tuple[type, ...]:
    """Return the scalar types of ``hint`` when it is made of int/float/bool/str/None only, else ``()``."""
    args = _union_args(hint)
    allowed = (int, float, bool, str, type(None))
    if all(isinstance(a, type) and a in allowed for a in args):
        return tuple(args)
    return ()
