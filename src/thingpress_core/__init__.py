"""thingpress-core: bulk-import X.509 device certificates into AWS IoT Core.

The public API is listed in ``__all__``. Every name is loaded on first access, so
``import thingpress_core`` costs almost nothing: pydantic loads with the first model you use,
boto3 when a client is first needed.
"""

from __future__ import annotations

import importlib
import logging as _logging  # not `logging`: that name is our submodule thingpress_core.logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome, ImportReport
    from thingpress_core.services import IoTService, S3Service, SQSService
    from thingpress_core.settings import ThingpressSettings

    __version__: str

__all__ = [
    "CertificateImporter",
    "ClientFactory",
    "ImportOptions",
    "ImportOutcome",
    "ImportReport",
    "IoTService",
    "S3Service",
    "SQSService",
    "ThingpressSettings",
    "__version__",
]

# A library configures no logging output of its own; the application (or our CLI) does.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

_LAZY = {
    "ClientFactory": "thingpress_core.clients",
    "ThingpressSettings": "thingpress_core.settings",
    "IoTService": "thingpress_core.services",
    "S3Service": "thingpress_core.services",
    "SQSService": "thingpress_core.services",
    "CertificateImporter": "thingpress_core.importer",
    "ImportOptions": "thingpress_core.importer",
    "ImportOutcome": "thingpress_core.importer",
    "ImportReport": "thingpress_core.importer",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from thingpress_core._version import version

        return version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thingpress_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
