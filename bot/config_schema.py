"""Every key the golive TOML accepts, generated from the pydantic models (`golive config schema`).

The walk starts at ``bot.team_config.GoliveConfig`` and goes into every table below it: nested
models, optional ones, lists of tables (``[[preflight.team_scripts]]``), tables of tables
(``[canary.roles.<name>]``) and each kind of a tagged union (``[target.maintenance]`` with
``kind = "http"``, ``"command"``, ...). A field's description is its ``Field(description=...)``
or, failing that, the docstring written under it. ``tests/unit/test_config_docs.py`` holds every
key to a description and to a mention in ``golive.example.toml``.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class Key:
    """One key of the TOML: where it is, what it takes, its default and what it means."""

    path: str
    """Dotted TOML path; ``*`` stands for a name the team chooses, ``[]`` for each entry of
    an array of tables."""
    type: str
    default: str
    description: str
    owner: builtins.type[BaseModel]  # ``type`` here is the field above
    """The model class that declares the field (shared models are documented once)."""
    name: str
    variant: str = ""
    """For a tagged union's field: ``kind = "http"`` and the like."""
    required: bool = False


@cache
def _docstrings(cls: type) -> dict[str, str]:
    """The docstrings written under a class's annotated attributes."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    body = ast.parse(source).body[0]
    if not isinstance(body, ast.ClassDef):
        return {}
    prev: str | None = None
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            prev = node.target.id
            continue
        if (prev and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            out[prev] = inspect.cleandoc(node.value.value)
        prev = None
    return out


def description(cls: type[BaseModel], name: str) -> str:
    """The field's ``description``, else the docstring under it in the class that declares it
    (a tagged union's ``kind`` says which kind of table it makes)."""
    field = cls.model_fields[name]
    if field.description:
        return " ".join(field.description.split())
    lit = typing.get_args(_strip(field.annotation))
    if name == "kind" and typing.get_origin(_strip(field.annotation)) is Literal and len(lit) == 1:
        return f'"{lit[0]}": {(cls.__doc__ or cls.__name__).strip().splitlines()[0]}'

    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            doc = _docstrings(klass).get(name)
            if doc:
                return " ".join(doc.split())
    return ""


def owner(cls: type[BaseModel], name: str) -> type[BaseModel]:
    """The class in ``cls``'s MRO that declares ``name`` (where it is documented)."""
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, BaseModel) and name in getattr(
                klass, "__annotations__", {}):
            return klass
    return cls


def _strip(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_args(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(tp)]
    return None


def type_name(tp: Any) -> str:
    """A short, TOML-minded name for a field's type."""
    tp = _strip(tp)
    args = _union_args(tp)
    if args is not None:
        names = [type_name(a) for a in args if a is not type(None)]
        out = " | ".join(dict.fromkeys(names))
        return out + (" (optional)" if type(None) in args else "")
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a).replace("'", '"') for a in typing.get_args(tp))
    if origin in (list, tuple, set, frozenset):
        inner = typing.get_args(tp)
        return f"array of {type_name(inner[0])}" if inner else "array"
    if origin is dict:
        _k, v = (typing.get_args(tp) + (Any, Any))[:2]
        return f"table of {type_name(v)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "table"
    scalars = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in scalars:
        return scalars[tp]
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp)).replace("SecretStr", "string (secret)").replace(
        "PosixPath", "path").replace("Path", "path").replace("Decimal", "decimal string")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(table defaults)"
    if hasattr(value, "get_secret_value"):
        return '""' if not value.get_secret_value() else "(secret)"
    import json
    from decimal import Decimal
    from pathlib import PurePath

    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str | Decimal | PurePath):
        text = f'"{value}"'
    elif isinstance(value, list | tuple | dict):
        text = json.dumps(value, default=str).replace('": ', '" = ') if isinstance(
            value, dict) else json.dumps(list(value), default=str)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _models_in(tp: Any) -> list[tuple[str, type[BaseModel], str]]:
    """The tables a field's type opens: ``(path suffix, model, variant label)``."""
    tp = _strip(tp)
    args = _union_args(tp)
    if args is not None:
        found = [m for a in args if a is not type(None) for m in _models_in(a)]
        models = [m for m in found if m[0] == ""]
        if len(models) > 1:  # a tagged union: label each variant by its kind
            out = []
            for _, m, _ in models:
                kind = m.model_fields.get("kind")
                lit = typing.get_args(_strip(kind.annotation)) if kind is not None else ()
                out.append(("", m, f'kind = "{lit[0]}"' if lit else m.__name__))
            return out + [m for m in found if m[0] != ""]
        return found
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        inner = typing.get_args(tp)
        return [("[]", m, v) for s, m, v in _models_in(inner[0]) if s == ""] if inner else []
    if origin is dict:
        args2 = typing.get_args(tp)
        if len(args2) == 2:
            return [(".*", m, v) for s, m, v in _models_in(args2[1]) if s == ""]
        return []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [("", tp, "")]
    return []


def walk(model: type[BaseModel] | None = None, prefix: str = "", variant: str = "",
         seen: tuple[type, ...] = ()) -> list[Key]:
    """Every key under ``model`` (default: the whole config), tables before their keys."""
    if model is None:
        from bot.team_config import GoliveConfig

        model = GoliveConfig
    keys: list[Key] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        keys.append(Key(path=path, type=type_name(field.annotation),
                        default=default_text(field), description=description(model, name),
                        owner=owner(model, name), name=key, variant=variant,
                        required=field.is_required()))
        for suffix, sub, label in _models_in(field.annotation):
            if sub in seen:
                continue
            keys += walk(sub, f"{path}{suffix}.", label, seen + (sub,))
    return keys


def render(keys: list[Key] | None = None) -> str:
    """`golive config schema`: one block per key, grouped by table."""
    keys = walk() if keys is None else keys
    lines = ["# Every key of the golive TOML (GOLIVE_CONFIG), from the schema itself.",
             "# `*` is a name you choose; `[]` is each entry of an array of tables.",
             "# golive.example.toml shows them in use; `golive config check` tries them."]
    groups: dict[str, list[Key]] = {}
    for k in keys:
        parent = k.path.rpartition(".")[0]
        where = f"[{parent}]" if parent else "(top level)"
        groups.setdefault(where + (f"  ({k.variant})" if k.variant else ""), []).append(k)
    for where, members in groups.items():
        lines += ["", where]
        for k in members:
            lines.append(f"  {k.name} : {k.type} = {k.default}")
            lines += [f"      {line}" for line in textwrap.wrap(k.description, 90,
                                                              break_on_hyphens=False)]
    return "\n".join(lines) + "\n"
