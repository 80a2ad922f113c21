"""The bulk import pipeline: certificates in, things registered and wired up, one report out.

```python
from thingpress_core.importer import CertificateImporter, ImportOptions

importer = CertificateImporter(options=ImportOptions(policies=("DevicePolicy",), thing_type="Sensor"))
report = importer.import_all(certificates)
```

See `docs/importer.md` for options, outcomes, retry rounds, preflight and memory.
"""

from thingpress_core.importer._importer import CertificateImporter, ImportItem, ProgressCallback
from thingpress_core.importer._models import (
    OWNER_ATTRIBUTE,
    FailedStep,
    ImportInterrupted,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    OutcomeStatus,
)
from thingpress_core.importer._protocol import CallCounts, IoTOperations, RegistrationResult, ThingState

# Tracebacks, reprs and the API docs name the package, so the private modules can move.
for _public in (
    CallCounts,
    CertificateImporter,
    ImportInterrupted,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    IoTOperations,
    OutcomeStatus,
    RegistrationResult,
    ThingState,
):
    _public.__module__ = __name__
del _public

__all__ = [
    "OWNER_ATTRIBUTE",
    "CallCounts",
    "CertificateImporter",
    "FailedStep",
    "ImportInterrupted",
    "ImportItem",
    "ImportOptions",
    "ImportOutcome",
    "ImportReport",
    "IoTOperations",
    "OutcomeStatus",
    "ProgressCallback",
    "RegistrationResult",
    "ThingState",
]
