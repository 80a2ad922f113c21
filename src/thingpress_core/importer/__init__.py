"""The bulk import pipeline: certificates in, things registered and wired up, one report out.

```python
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.manifests import read_manifest

options = ImportOptions(policies=("DevicePolicy",), thing_type="Sensor")
importer = CertificateImporter(options=options)
report = importer.import_all(read_manifest("devices.txt"))
```

See the [importer guide][the-importer-api] for options, outcomes, retry rounds, preflight and
memory.
"""

from thingpress_core._public import publish
from thingpress_core.importer._estimate import DEFAULT_LATENCY, ImportEstimate, estimate_import
from thingpress_core.importer._importer import CertificateImporter, ImportItem, ProgressCallback
from thingpress_core.importer._models import (
    OWNER_ATTRIBUTE,
    VENDOR_ID_ATTRIBUTE,
    FailedStep,
    ImportInterrupted,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    OutcomeStatus,
    PolicyTarget,
)
from thingpress_core.importer._protocol import (
    CallCounts,
    CertificateState,
    IoTOperations,
    RegistrationResult,
    ThingState,
)

__all__ = [
    "DEFAULT_LATENCY",
    "OWNER_ATTRIBUTE",
    "VENDOR_ID_ATTRIBUTE",
    "CallCounts",
    "CertificateState",
    "CertificateImporter",
    "FailedStep",
    "ImportEstimate",
    "ImportInterrupted",
    "ImportItem",
    "ImportOptions",
    "ImportOutcome",
    "ImportReport",
    "IoTOperations",
    "OutcomeStatus",
    "PolicyTarget",
    "ProgressCallback",
    "RegistrationResult",
    "ThingState",
    "estimate_import",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
