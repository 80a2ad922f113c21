"""The installed distribution's version, read once from package metadata."""

from __future__ import annotations

import functools

__all__ = ["version"]


@functools.cache
def version() -> str:
    """``thingpress-core``'s version, or ``0.0.0+unknown`` in an uninstalled source tree."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _metadata_version

    try:
        return _metadata_version("thingpress-core")
    except PackageNotFoundError:
        return "0.0.0+unknown"
