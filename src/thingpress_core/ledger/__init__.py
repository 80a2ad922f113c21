"""The import ledger: every device's import recorded durably, per target.

```python
from thingpress_core import CertificateImporter, ImportOptions, IoTService
from thingpress_core.ledger import open_ledger
from thingpress_core.manifests import read_manifest

options = ImportOptions(policies=("DevicePolicy",))
with open_ledger("imports.ledger") as ledger:  # or "dynamodb://my-table"
    importer = CertificateImporter(IoTService(), options=options, ledger=ledger)
    importer.import_all(read_manifest("devices.txt"))
    again = importer.import_all(read_manifest("devices.txt"))
    assert again.imported == 0  # a re-run skips what is done
```

See the [import ledger guide][the-import-ledger].
"""

from __future__ import annotations

from thingpress_core._public import publish
from thingpress_core.ledger._dynamodb import DynamoDBLedger
from thingpress_core.ledger._export import export_devices
from thingpress_core.ledger._models import (
    SCHEMA_VERSION,
    DeviceRecord,
    RunKind,
    RunRecord,
    RunStatus,
    StepMark,
    Target,
    new_run_id,
    step_key,
)
from thingpress_core.ledger._open import open_ledger
from thingpress_core.ledger._protocol import Ledger
from thingpress_core.ledger._sqlite import SqliteLedger

__all__ = [
    "SCHEMA_VERSION",
    "DeviceRecord",
    "DynamoDBLedger",
    "Ledger",
    "RunKind",
    "RunRecord",
    "RunStatus",
    "SqliteLedger",
    "StepMark",
    "Target",
    "export_devices",
    "new_run_id",
    "open_ledger",
    "step_key",
]

publish(__name__, globals())
