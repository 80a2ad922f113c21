"""`publish`: a package's ``__init__`` names itself as the home of what it exports.

The code lives in private modules (``_iot.py``, ``_model.py``); users import from the package.
Setting ``__module__`` to the package makes tracebacks, reprs and the API docs show
``thingpress_core.services.IoTService`` rather than ``thingpress_core.services._iot.IoTService``,
so the private modules can move without anyone noticing.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["publish"]


def publish(package: str, namespace: Mapping[str, object]) -> None:
    """Set ``__module__`` to ``package`` on each class and function in ``namespace["__all__"]``
    that a private module defines. Objects from public modules (an error from
    `thingpress_core.errors`, say) keep their home; type aliases and constants are left alone."""
    names = namespace.get("__all__", ())
    if not isinstance(names, (list, tuple)):
        return
    for name in names:
        obj = namespace.get(name)
        home = getattr(obj, "__module__", None)
        if not isinstance(home, str) or not _private(home) or not callable(obj):
            continue
        try:
            setattr(obj, "__module__", package)  # noqa: B010 - obj is typed as object
        except (AttributeError, TypeError):  # a typing construct that cannot be renamed
            continue


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])
