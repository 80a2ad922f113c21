"""A griffe extension for the documentation build: pydantic models get their real signature.

Our models and settings define ``__init__(self, /, **values)`` (hidden from type checkers, which
build the typed constructor from the fields; see ``thingpress_core._config``), so mkdocstrings
would show every model as ``Model(**values: Any)``. Type checkers and users see one keyword
argument per field; this extension gives the rendered page the same: a keyword-only parameter
per pydantic field, with its annotation and default. It runs after griffe-pydantic, which labels
the fields (``pydantic-field``) and sets each one's value to its default.

Used only by mkdocs.yml; not part of the package.
"""

from __future__ import annotations

from typing import Any

import griffe

_FIELD = "pydantic-field"
_MODEL = "pydantic-model"


def _fields(cls: griffe.Class) -> dict[str, griffe.Attribute]:
    # base classes first, so a subclass's redefinition wins and keeps the base's order
    fields: dict[str, griffe.Attribute] = {}
    for klass in [*reversed(cls.mro()), cls]:
        for name, member in klass.members.items():
            if not member.is_alias and member.is_attribute and _FIELD in member.labels:
                fields[name] = member  # type: ignore[assignment]
    return fields


def _default(attr: griffe.Attribute) -> str | griffe.Expr | None:
    if attr.value is not None:
        return attr.value
    constraints = attr.extra.get("griffe_pydantic", {}).get("constraints", {})
    factory = constraints.get("default_factory")
    return f"{factory}()" if factory is not None else None


def _signature(cls: griffe.Class) -> griffe.Function:
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for name, attr in _fields(cls).items():
        parameters.append(
            griffe.Parameter(
                name,
                annotation=attr.annotation,
                kind=griffe.ParameterKind.keyword_only,
                default=_default(attr),
            )
        )
    init = griffe.Function("__init__", parameters=griffe.Parameters(*parameters), returns="None")
    init.labels.add("synthesized")
    return init


class PydanticSignatures(griffe.Extension):
    """Replace each pydantic model's ``__init__`` with one keyword-only parameter per field."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for cls in _classes(pkg):
            if _MODEL in cls.labels:
                init = _signature(cls)
                init.parent = cls
                cls.set_member("__init__", init)


def _classes(obj: griffe.Object) -> list[griffe.Class]:
    found: list[griffe.Class] = []
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_class:
            found.append(member)  # type: ignore[arg-type]
        if member.is_module or member.is_class:
            found.extend(_classes(member))  # type: ignore[arg-type]
    return found
