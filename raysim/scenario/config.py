"""Typed, frozen dataclasses from TOML tables: validated once, errors name the key.

The loader walks a dataclass's type hints and converts a parsed TOML table into it. It rejects
unknown keys (listing the allowed ones), wrong types and values outside a ``Literal``; range and
cross-field checks live in each dataclass's ``__post_init__`` and raise ``ValueError``, which the
loader re-raises as :class:`ConfigError` prefixed with the key's dotted path.

A field whose metadata carries ``{"registry": {name: cls}}`` is a tagged union: its table names
the variant in ``kind`` (a bare string is shorthand for ``{kind = "..."}``); partitions and round
policies use this, so each variant validates its own parameters. A field whose metadata carries
``{"written_when_set": True}`` (a key added after runs existed: ``run.save_model_every``) is left
out of :func:`to_table` at its default, so a scenario that does not set it serialises, and hashes
for its checkpoints, as before the key existed.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
from typing import Any, Iterable, Literal, Mapping, Union, get_args, get_origin, get_type_hints

from raysim.inputs import FLOAT_LIMIT, ConfigError, check_method, import_object


def build(cls: type, table: Mapping[str, Any], path: str = "") -> Any:
    """Builds dataclass ``cls`` from ``table``; ``path`` is the dotted key prefix for messages."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path or 'scenario'} must be a table, got {_describe(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        key = _join(path, unknown[0])
        raise ConfigError(f"unknown key '{key}'; allowed keys in {path or 'the scenario'}: {sorted(fields)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in table.items():
        field = fields[name]
        registry = field.metadata.get("registry")
        if registry is not None:
            kwargs[name] = build_variant(registry, _default_kind(field, value), _join(path, name),
                                         user=field.metadata.get("user", False))
        else:
            kwargs[name] = convert(hints[name], value, _join(path, name))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path or 'scenario'}: {exc}") from exc


def build_variant(registry: Mapping[str, type], value: Any, path: str, *, user: bool = False) -> Any:
    """Builds the registry entry named by ``kind`` from its table (or from a bare name); with
    ``user``, ``kind`` may also name a user's dataclass as ``package.module:Name``
    (:func:`user_variant`)."""
    table = {"kind": value} if isinstance(value, str) else value
    if not isinstance(table, Mapping) or "kind" not in table:
        raise ConfigError(f"{path} must be a name or a table with 'kind'; kinds: {sorted(registry)}")
    kind = table["kind"]
    rest = {k: v for k, v in table.items() if k != "kind"}
    if user and isinstance(kind, str) and ":" in kind:
        return build(user_variant(kind, f"{path}.kind"), rest, path)
    if not isinstance(kind, str) or kind not in registry:
        more = " or 'package.module:Name'" if user else ""
        raise ConfigError(f"{path}.kind = {kind!r} is unknown; allowed: {sorted(registry)}{more}")
    return build(registry[kind], rest, path)


def user_variant(spec: str, what: str) -> type:
    """A user's variant class: a dataclass (its fields are the table's keys, checked like
    raysim's own) with a ``build(self)`` method, imported and checked before anything is called."""
    cls = import_object(spec, what=what, choices=[])
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"{what} '{spec}' is not a dataclass: write the settings as a frozen dataclass with a "
                          "build(self) method (docs/architecture.md, 'Write your own')")
    check_method(cls, "build", ("self",), what=f"{what} '{spec}'")
    return cls


def _default_kind(field: dataclasses.Field, value: Any) -> Any:
    """A tagged union's table without ``kind`` is of the field's default kind: ``--set
    policy.over_selection=1.3`` on a scenario without [policy] sets it on the default (sync)."""
    if not isinstance(value, Mapping) or "kind" in value:
        return value
    default = _default(field)
    kind = getattr(type(default), "kind", None)
    return {"kind": kind, **value} if isinstance(kind, str) else value


def convert(hint: Any, value: Any, path: str) -> Any:
    """Converts one TOML value to the field's type, or raises ConfigError naming ``path``."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{path} = {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(get_args(hint), value, path)
    if origin in (tuple, list):
        args = get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path} must be a list, got {_describe(value)}")
        item = args[0] if args else Any
        return tuple(convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a table, got {_describe(value)}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number, got {_describe(value)}")
        if abs(value) > FLOAT_LIMIT or not math.isfinite(value):
            raise ConfigError(f"{path} = {value!r} must be a finite number of magnitude <= {FLOAT_LIMIT:g}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported field type {hint!r} at {path}")


def _convert_union(options: tuple, value: Any, path: str) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return convert(option, value, path)
        except ConfigError as exc:
            errors.append(str(exc).removeprefix(f"{path} "))
    raise ConfigError(f"{path} = {value!r}: " + "; or ".join(errors))


def to_table(obj: Any) -> Any:
    """The inverse of :func:`build`: a dataclass tree back to plain TOML-ready values."""
    if dataclasses.is_dataclass(obj):
        table = {}
        cls = type(obj)
        kind = getattr(cls, "kind", None)
        if cls.__module__.partition(".")[0] != "raysim":  # a user's variant is named by its class
            kind = f"{cls.__module__}:{cls.__qualname__}"
        if isinstance(kind, str):
            table["kind"] = kind
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("written_when_set") and value == _default(f):
                continue  # a key added later: absent at its default, so older files' hashes still match
            if f.init and value is not None:
                table[f.name] = to_table(value)
        return table
    if isinstance(obj, tuple | list):
        return [to_table(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_table(v) for k, v in obj.items()}
    return obj


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def with_overrides(table: Any, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> dict:
    """A copy of ``table`` (the caller's dict is never changed) with ``overrides`` applied: a dict
    ``{"run.rounds": 5}`` of Python values, or a list ``["run.rounds=5"]`` read as ``--set`` reads
    them. A value no TOML file could hold (an object, a numpy array) is refused here, naming its
    key: the run folder records the scenario as TOML, and would otherwise fail only once the run
    has started."""
    table = toml_value(table, "")
    if not isinstance(table, dict):
        raise ConfigError(f"a scenario must be a table (a dict of sections), got {_describe(table)}")
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            if not isinstance(key, str):
                raise ConfigError(f"an override's key must be a dotted name such as 'run.rounds', got {key!r}")
            set_value(table, key, toml_value(value, key))
    elif isinstance(overrides, str):
        raise ConfigError(f"overrides must be a dict {{'run.rounds': 5}} or a list ['run.rounds=5'], "
                          f"got the string {overrides!r}")
    else:
        for assignment in overrides or ():
            if not isinstance(assignment, str):
                raise ConfigError(f"each override of a list is a string 'section.key=value', "
                                  f"got {_describe(assignment)}")
            apply_override(table, assignment)
    return table


def toml_value(value: Any, path: str) -> Any:
    """``value`` copied as a TOML file holds it (tables as dicts, tuples as lists), or ConfigError
    naming ``path`` for what no file could hold."""
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{path or 'the scenario'} has the key {key!r}: a table's keys are strings")
        return {key: toml_value(v, _join(path, key)) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [toml_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | bool | int | float | datetime.date | datetime.time):
        return value
    raise ConfigError(f"{path} = {_describe(value)} is not a value a scenario file can hold: use a string, "
                      "number, boolean, list or table")


def apply_override(table: dict, assignment: str) -> None:
    """Applies one ``section.key=value`` override (value parsed as TOML, else a string)."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    try:
        value = parse_value(raw)
    except ConfigError as exc:
        raise ConfigError(f"--set {key}: {exc}") from exc
    set_value(table, key, value)


def parse_value(raw: str):
    """A command-line value: read as TOML (``0.1``, ``true``, ``[1, 2]``), else as a plain string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()
    except RecursionError as exc:
        raise ConfigError(f"the value {raw.strip()[:40]!r}... nests arrays or tables too deeply") from exc


def set_value(table: dict, key: str, value: Any) -> None:
    """Sets the dotted ``key`` (``section.key``) of a scenario table to ``value``, in place."""
    *parents, leaf = key.split(".")
    node = table
    for part in parents:
        child = node.setdefault(part, {})
        if isinstance(child, str):  # a tagged union given by bare name: "iid" is {kind = "iid"}
            child = node[part] = {"kind": child}
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: '{part}' is a value, not a section")
        node = child
    node[leaf] = value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
