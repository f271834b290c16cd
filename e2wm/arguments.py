"""Dataclasses as the one declaration of a command's options: command-line flags and recipe sections.

e2wm follows the ``HfArgumentParser``/``TrlParser`` habit: an option is a dataclass field, documented by
``metadata={"help": ...}`` (and ``"choices"``), and the flags are made from the fields, so a new option is
written once. ``add_dataclass_arguments`` adds a dataclass's fields to an ``argparse`` parser (``--num-docs``
and ``--num_docs`` both work; booleans get ``--x``/``--no-x``; lists take several values or commas; nested
dataclasses get a prefix, ``--mcts-simulations``); ``from_namespace`` builds the dataclass back.
``from_mapping`` builds one from a recipe section, refusing unknown keys (with the closest known one) and
values of the wrong type with a message that names the key: a misspelt ``ewc_lamda`` or ``limt`` fails
before the first stage runs, not after an hour.

Pure Python (no transformers import): the world commands stay light.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import operator
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["RecipeError", "add_dataclass_arguments", "check_mapping", "from_mapping", "from_namespace"]


class RecipeError(ValueError):
    """A recipe section or option has an unknown key or a value of the wrong type (the message names it)."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``(inner type, optional)`` for ``X | None``; other unions are returned as they are."""
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else functools.reduce(operator.or_, rest)), True
    return tp, False


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _flag(name: str) -> list[str]:
    dashed = f"--{name.replace('_', '-')}"
    return [dashed] if "_" not in name else [dashed, f"--{name}"]


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    prefix: str = "",
    exclude: Iterable[str] = (),
    positional: Iterable[str] = (),
) -> None:
    """Add a flag for every field of ``cls`` (nested dataclasses recursively, prefixed by the field name)."""
    hints, skip, positional = _hints(cls), set(exclude), set(positional)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, _ = _unwrap(hints[f.name])
        dest = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            add_dataclass_arguments(parser, tp, prefix=f"{dest}_")  # type: ignore[arg-type]
            continue
        default = _default(f)
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": dest}
        if "choices" in f.metadata:
            kwargs["choices"] = list(f.metadata["choices"])
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is list:
            kwargs.update(nargs="+", type=str, metavar=f.name.upper())
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            continue  # a mapping or another structure: a recipe or library option, not a flag
        if default is dataclasses.MISSING:
            if f.name in positional:
                kwargs.pop("dest")
                parser.add_argument(dest, help=help_text, **{k: v for k, v in kwargs.items() if k != "action"})
                continue
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if default not in (None, False, "", []) and tp is not bool:
                help_text += f" (default: {','.join(map(str, default)) if isinstance(default, list) else default})"
        names = _flag(dest) + list(f.metadata.get("aliases", ()))
        parser.add_argument(*names, help=help_text or None, **kwargs)


def from_namespace(cls: type, namespace: argparse.Namespace, *, prefix: str = "", **extra: Any) -> Any:
    """The dataclass ``cls`` from the values ``add_dataclass_arguments`` parsed (lists split at commas)."""
    hints, values = _hints(cls), dict(extra)
    for f in dataclasses.fields(cls):
        if f.name in values or not f.init:
            continue
        tp, _ = _unwrap(hints[f.name])
        dest = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            values[f.name] = from_namespace(tp, namespace, prefix=f"{dest}_")  # type: ignore[arg-type]
        elif hasattr(namespace, dest):
            value = getattr(namespace, dest)
            if typing.get_origin(tp) is list and value is not None:
                value = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
            values[f.name] = value
    return cls(**values)


# ------------------------------------------------------------------------------------------------- recipes
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(key: str, value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to ``tp`` where that is unambiguous, else a ``RecipeError`` naming ``key``."""
    inner, optional = _unwrap(tp)
    if value is None:
        if optional:
            return None
        raise RecipeError(f"{where}: {key} must be a {_type_name(inner)}, got nothing (null)")
    origin = typing.get_origin(inner)
    problem = None
    if inner is bool:
        if not isinstance(value, bool):
            problem = "true or false"
    elif inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problem = "a whole number"
    elif inner is float:
        if isinstance(value, str):  # YAML reads 5e-1 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                problem = "a number"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problem = "a number"
        else:
            return float(value)
    elif inner is str:
        if not isinstance(value, str):
            problem = "a string"
    elif origin is list:
        (item,) = typing.get_args(inner) or (Any,)
        union = typing.get_origin(item) in (typing.Union, types.UnionType)
        items = set(typing.get_args(item)) if union else {item}
        if isinstance(value, str) and str in items:
            return [v.strip() for v in value.split(",") if v.strip()]
        numbers = item is float and isinstance(value, list)
        if numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return [float(v) for v in value]  # YAML writes 1 for 1.0
        checked = items <= {str, int, float}
        if not isinstance(value, list) or (checked and not all(isinstance(v, tuple(items)) for v in value)):
            problem = f"a list of {_type_name(item)}"
    elif origin is dict or inner is dict:
        if not isinstance(value, dict):
            problem = "a mapping (key: value)"
    elif dataclasses.is_dataclass(inner):
        if not isinstance(value, Mapping):
            problem = f"a mapping of {_type_name(inner)} fields"
        else:
            return from_mapping(inner, value, f"{where}: {key}")  # type: ignore[arg-type]
    # unions of other types, enums, Literal: the dataclass's own checks decide
    if problem:
        raise RecipeError(f"{where}: {key} must be {problem}, got {value!r} ({type(value).__name__})")
    return value


def check_mapping(
    cls_or_fields: type | Mapping[str, Any],
    mapping: Mapping[str, Any],
    where: str,
    *,
    owned: Iterable[str] = (),
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Check ``mapping``'s keys and value types against a dataclass (or a ``{name: type}`` mapping).

    Returns the values, converted where unambiguous (``"5e-1"`` → 0.5, ``"a,b"`` → ``["a", "b"]``). Keys in
    ``owned`` are set by the caller and refused here with a message that says so. A value must be one of its
    field's ``choices`` (``choices``, else a dataclass field's ``metadata["choices"]``), as on the command line."""
    if not isinstance(mapping, Mapping):
        raise RecipeError(f"{where} must be a mapping (key: value), got {type(mapping).__name__}")
    known = _hints(cls_or_fields) if isinstance(cls_or_fields, type) else dict(cls_or_fields)
    if isinstance(cls_or_fields, type):
        known = {f.name: known[f.name] for f in dataclasses.fields(cls_or_fields) if f.init}
        choices = {**field_choices(cls_or_fields), **(choices or {})}
    choices = choices or {}
    owned = set(owned)
    values = {}
    for key, value in mapping.items():
        if key in owned:
            raise RecipeError(f"{where}: {key} is set by e2wm here; remove it from the recipe")
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(known))}"
            raise RecipeError(f"{where}: unknown key {key!r}{hint}")
        values[key] = _check_value(str(key), value, known[key], where)
        allowed = choices.get(str(key))
        if allowed is not None and value is not None and values[key] not in allowed:
            close = difflib.get_close_matches(str(value), [str(c) for c in allowed], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise RecipeError(f"{where}: {key} must be one of {', '.join(map(str, allowed))}, got {value!r}{hint}")
    return values


def field_choices(cls: type) -> dict[str, Sequence[Any]]:
    """``{field: choices}`` of a dataclass's fields that declare ``metadata["choices"]`` (the CLI's choices)."""
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(cls) if "choices" in f.metadata}


def from_mapping(cls: type, mapping: Mapping[str, Any], where: str, **extra: Any) -> Any:
    """The dataclass ``cls`` from a recipe section: keys and types checked first (``RecipeError``), then the
    dataclass's own validation (its errors are re-raised as ``RecipeError`` naming ``where``)."""
    values = check_mapping(cls, mapping, where)
    values.update(extra)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        if isinstance(err, RecipeError):
            raise
        raise RecipeError(f"{where}: {err}") from None
