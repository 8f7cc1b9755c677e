"""Typed configuration from plain dicts/YAML: nested dataclasses, unknown keys rejected by name.

Every config class validates itself in __post_init__; this module only maps dicts onto the classes, so a
typo in a YAML file is an error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Keys renamed to American spelling in 0.1.x; the old spelling is still read, with a FutureWarning, until 0.2.
RENAMED_KEYS = {"organised": "organized"}


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Builds dataclass ``cls`` from ``data``; nested dataclass fields take nested dicts."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = _renamed(data, set(fields), where)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        target = _dataclass_member(hints[name])
        path = f"{where}.{name}" if where else name
        if target is not None and isinstance(value, dict):
            kwargs[name] = from_dict(target, value, path)
        elif typing.get_origin(hints[name]) is tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where or cls.__name__}: {exc}") from exc


def _renamed(data: dict[str, Any], fields: set[str], where: str) -> dict[str, Any]:
    """``data`` with deprecated spellings of ``fields`` replaced by the current ones (a warning names each)."""
    old = [k for k in data if RENAMED_KEYS.get(k) in fields]
    if not old:
        return data
    for key in old:
        new = RENAMED_KEYS[key]
        if new in data:
            raise ValueError(f"{where or 'config'}: both {key!r} and {new!r} given; keep only {new!r}")
        path = f"{where}.{key}" if where else key
        message = f"config key {path!r} is deprecated, use {new!r} (the old spelling goes in 0.2)"
        warnings.warn(message, FutureWarning, stacklevel=3)
    return {RENAMED_KEYS.get(k, k) if k in old else k: v for k, v in data.items()}


def _dataclass_member(hint: Any) -> type | None:
    """The dataclass a field holds: ``C`` for ``C`` or ``C | None``; None for any other type."""
    if dataclasses.is_dataclass(hint):
        return hint
    members = [m for m in typing.get_args(hint) if dataclasses.is_dataclass(m)]
    return members[0] if len(members) == 1 else None


def to_dict(config: Any) -> dict[str, Any]:
    """The inverse of from_dict (tuples become lists so that YAML/JSON round-trips)."""
    return _plain(dataclasses.asdict(config))


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"config {path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a mapping at the top level, got {type(data).__name__}")
    return data or {}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
