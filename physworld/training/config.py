"""Typed YAML configs: a YAML mapping becomes a (nested) dataclass, checked on load.

A recipe declares its config as dataclasses and loads a preset with overrides::

    @dataclass
    class Optim:
        lr: float = 3e-4
        betas: tuple[float, float] = (0.9, 0.95)

    @dataclass
    class Config:
        out_dir: str
        schedule: Literal["cosine", "constant"] = "cosine"
        optim: Optim = field(default_factory=Optim)

        def validate(self):                      # optional cross-field checks
            if self.optim.lr <= 0:
                raise ValueError("optim.lr must be positive")

    cfg = load_config("configs/x.yaml", Config, ["optim.lr=1e-3"])
    save_config(cfg, out_dir / "config.yaml")    # every run saves its resolved config

Supported field types: int, float (ints accepted), bool, str, pathlib.Path (from a string), Optional[X] /
X | None, Literal[...], tuple[X, ...], tuple[X, Y], list[X], dict[str, X], nested dataclasses, Any, and
unions of these. Everything the YAML file or an override gets wrong raises ConfigError, whose message
names the file (or the override), the dotted key and what would fix it. Nothing is ever evaluated:
YAML is read with a safe loader, overrides are parsed with the same safe loader.

Two YAML 1.1 quirks are smoothed over: a float field accepts a string such as `1e-3` (which YAML 1.1
reads as a string because it lacks a dot), and a duplicate key in one mapping is an error rather than
silently keeping the last value.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from physworld.fileio import atomic_write_bytes

__all__ = [
    "ConfigError",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "save_config",
    "parse_override",
]


class ConfigError(ValueError):
    """A config file, an override or a config value is wrong; the message says where and how to fix it."""


# ---------------------------------------------------------------- YAML reading


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects duplicate keys in a mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError as e:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from e
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}; keep only one",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_load(text: str):
    return yaml.load(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader: no arbitrary objects


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}"
        )
    return data


# ---------------------------------------------------------------- overrides


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(override: str) -> tuple[str, Any]:
    """`"optim.lr=1e-3"` -> `("optim.lr", "1e-3")`; the value is read with a safe YAML loader (never eval)."""
    if not isinstance(override, str) or "=" not in override:
        raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. optim.lr=0.001")
    key, _, text = override.partition("=")
    key = key.strip()
    if key.startswith("--"):
        key = key[2:]
    if not _KEY_RE.match(key):
        raise ConfigError(
            f"override {override!r}: {key!r} is not a dotted key; write section.key=value, e.g. optim.lr=0.001"
        )
    try:
        value = _yaml_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(
            f"override {override!r}: the value is not valid YAML ({problem}); quote it"
        ) from None
    return key, value


def _apply_override(data: dict, schema: type, override: str) -> str:
    """Set the override's key in `data`, checking the key path against `schema`. Returns the dotted key."""
    key, value = parse_override(override)
    parts = key.split(".")
    node = data
    cls: Any = schema
    for i, part in enumerate(parts):
        dotted = ".".join(parts[: i + 1])
        fields = _init_fields(cls) if cls is not None else None
        if fields is not None and part not in fields:
            raise ConfigError(
                f"override {override!r}: unknown key {dotted!r}; {_valid_keys_hint(part, fields, parts[:i])}"
            )
        if i == len(parts) - 1:
            node[part] = value
            break
        cls = _dataclass_in(fields[part].type_hint) if fields is not None else None
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"override {override!r}: {dotted!r} is not a section (it holds {child!r}); "
                f"set {dotted}=... directly instead"
            )
        node = child
    return key


# ---------------------------------------------------------------- schema introspection


@dataclasses.dataclass
class _Field:
    name: str
    type_hint: Any
    required: bool


_FIELDS_CACHE: dict[type, dict[str, _Field]] = {}


def _init_fields(cls: Any) -> dict[str, _Field] | None:
    """The init fields of dataclass `cls` with resolved type hints, or None if `cls` is not a dataclass."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return None
    if cls not in _FIELDS_CACHE:
        try:
            hints = typing.get_type_hints(cls)
        except Exception as e:  # a forward reference that cannot be resolved: a bug in the schema
            raise TypeError(f"cannot resolve the type hints of config class {cls.__qualname__}: {e}") from e
        out = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            out[f.name] = _Field(f.name, hints.get(f.name, Any), required)
        _FIELDS_CACHE[cls] = out
    return _FIELDS_CACHE[cls]


def _union_args(tp: Any) -> tuple | None:
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return typing.get_args(tp)
    return None


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a field holds (also through Optional), for walking override keys."""
    if _init_fields(tp) is not None:
        return tp
    args = _union_args(tp)
    if args:
        found = [a for a in args if _init_fields(a) is not None]
        if len(found) == 1:
            return found[0]
    return None


def _valid_keys_hint(key: str, fields: Mapping[str, _Field], prefix: Sequence[str]) -> str:
    where = f"under {'.'.join(prefix)!r}" if prefix else "at the top level"
    close = difflib.get_close_matches(key, list(fields), n=1)
    did_you_mean = f"did you mean {close[0]!r}? " if close else ""
    return f"{did_you_mean}valid keys {where}: {', '.join(fields) or '(none)'}"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


# ---------------------------------------------------------------- conversion


class _Ctx:
    def __init__(self, source: str, overridden: Mapping[str, str]):
        self.source = source
        self.overridden = overridden

    def error(self, key: str, message: str) -> ConfigError:
        where = f"{self.source}: {key}" if key else self.source
        for dotted, override in self.overridden.items():
            if key == dotted or key.startswith(dotted + "."):
                where += f" (set by override {override!r})"
                break
        return ConfigError(f"{where}: {message}")


_FLOAT_STR = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value: Any, tp: Any, key: str, ctx: _Ctx) -> Any:
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ctx.error(key, f"expected null, got {_show(value)}")

    args = _union_args(tp)
    if args is not None:
        if value is None:
            if type(None) in args:
                return None
            raise ctx.error(key, f"expected {_type_name(tp)}, got null; give it a value")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, ctx)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ctx.error(key, f"expected {_type_name(tp)}, got {type(value).__name__} {_show(value)}")

    if _init_fields(tp) is not None:
        return _build(value, tp, key, ctx)

    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
        raise ctx.error(key, f"{_show(value)} is not one of the choices: {', '.join(map(repr, choices))}")

    if origin in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ctx.error(
                key, f"expected a list, got {type(value).__name__} {_show(value)}; write [a, b, ...]"
            )
        item_types = typing.get_args(tp)
        if origin is tuple and item_types and not (len(item_types) == 2 and item_types[1] is Ellipsis):
            if len(value) != len(item_types):
                raise ctx.error(key, f"expected a list of exactly {len(item_types)} items, got {len(value)}")
            return tuple(
                _convert(v, t, f"{key}[{i}]", ctx)
                for i, (v, t) in enumerate(zip(value, item_types, strict=True))
            )
        item_type = item_types[0] if item_types else Any
        items = [_convert(v, item_type, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)

    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ctx.error(key, f"expected a mapping, got {type(value).__name__} {_show(value)}")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {
            _convert(k, kt, f"{key}.{k}", ctx): _convert(v, vt, f"{key}.{k}", ctx) for k, v in value.items()
        }

    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ctx.error(key, f"expected true or false, got {type(value).__name__} {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fix = "; write a whole number" if isinstance(value, float) else ""
        raise ctx.error(key, f"expected an integer, got {type(value).__name__} {_show(value)}{fix}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_STR.match(value.strip()):
            return float(value)
        raise ctx.error(
            key, f"expected a number, got {type(value).__name__} {_show(value)}; write e.g. 0.001"
        )
    if tp is str:
        if isinstance(value, str):
            return value
        raise ctx.error(
            key, f'expected a string, got {type(value).__name__} {_show(value)}; quote it: "{value}"'
        )
    if tp is Path or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise ctx.error(key, f"expected a path (string), got {type(value).__name__} {_show(value)}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ctx.error(key, f"expected {tp.__name__}, got {type(value).__name__} {_show(value)}")
    raise TypeError(f"config field {key!r}: unsupported type annotation {tp!r}")


def _build(value: Any, cls: type, key: str, ctx: _Ctx) -> Any:
    fields = _init_fields(cls)
    assert fields is not None
    if isinstance(value, cls):
        value = config_to_dict(value)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ctx.error(
            key,
            f"expected a mapping of keys ({', '.join(fields)}), got {type(value).__name__} {_show(value)}",
        )
    prefix = key.split(".") if key else []
    for k in value:
        if k not in fields:
            dotted = f"{key}.{k}" if key else str(k)
            raise ctx.error(dotted, f"unknown key; {_valid_keys_hint(str(k), fields, prefix)}")
    kwargs = {}
    for name, f in fields.items():
        dotted = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = _convert(value[name], f.type_hint, dotted, ctx)
        elif f.required:
            raise ctx.error(dotted, f"missing required key; add `{name}: <{_type_name(f.type_hint)}>`")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ctx.error(key, str(e)) from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as e:
            raise ctx.error(key, str(e)) from None
    return obj


# ---------------------------------------------------------------- public API


def config_from_dict(
    data: Mapping | None, schema: type, overrides: Iterable[str] = (), source: str = "<dict>"
):
    """Like load_config, for a mapping already in memory; `source` names it in error messages."""
    if _init_fields(schema) is None:
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    data = _deep_copy(dict(data or {}))
    overridden: dict[str, str] = {}
    for override in overrides:
        overridden[_apply_override(data, schema, override)] = override
    return _build(data, schema, "", _Ctx(source, overridden))


def load_config(path: str | os.PathLike, schema: type, overrides: Iterable[str] = ()):
    """Read YAML file `path` into an instance of dataclass `schema`, applying `key.sub=value` overrides.

    Raises ConfigError naming the file, the dotted key and the fix for unknown keys, wrong types,
    missing required fields, bad overrides and failed `validate()` checks.
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'key=value' strings, not one string")
    path = Path(path)
    return config_from_dict(_read_yaml(path), schema, overrides, source=str(path))


def config_to_dict(cfg: Any) -> Any:
    """A config dataclass (or any nesting of dataclasses, tuples, lists, dicts, paths) as plain YAML/JSON data."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, Mapping):
        return {config_to_dict(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, os.PathLike):
        return os.fspath(cfg)
    return cfg


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically); load_config(path, type(cfg)) reads it back equal."""
    path = Path(path)
    header = ""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        header = f"# resolved config: {type(cfg).__module__}.{type(cfg).__qualname__}\n"
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)
    atomic_write_bytes(path, (header + text).encode("utf-8"))
    return path


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj
