"""thingpress-core: bulk-import X.509 device certificates into AWS IoT Core."""

from __future__ import annotations

from typing import Any

from thingpress_core.settings import ThingpressSettings

__all__ = ["ThingpressSettings", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("thingpress-core")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'thingpress_core' has no attribute {name!r}")
