"""Fleet operations after an import: verify the wiring, set the status, roll back one run.

```python
from thingpress_core import CertificateImporter, ImportOptions
from thingpress_core.ledger import open_ledger
from thingpress_core.manifests import read_manifest
from thingpress_core.operations import (
    ExpectedState,
    last_run,
    ledger_devices,
    rollback_run,
    set_status,
    verify_devices,
)
from thingpress_core.services import IoTService

iot = IoTService()
with open_ledger("thingpress-ledger.db") as ledger:
    options = ImportOptions(policies=("DevicePolicy",), status="INACTIVE")
    importer = CertificateImporter(iot, options=options, ledger=ledger)
    importer.import_all(read_manifest("devices.txt"))  # the run to look at

    run = last_run(ledger)
    devices = ledger_devices(ledger, target=run.target, run_id=run.run_id)
    expected = ExpectedState.from_run(run)
    report = verify_devices(iot, devices, expected=expected, ledger=ledger)
    print(report.summary())  # drift per device in report.drifted_devices
    devices = ledger_devices(ledger, target=run.target)
    set_status(iot, devices, "ACTIVE", ledger=ledger)
    plan = rollback_run(iot, ledger, run.run_id, dry_run=True).plan
    print(plan)  # what a rollback would undo
```

Each operation reads its devices lazily, works at the quota on a thread pool, retries transient
failures in rounds, and reports like an import. They need no CLI and run in a Lambda function
as well.
"""

from thingpress_core._public import publish
from thingpress_core.operations._devices import DeviceInput, ledger_devices
from thingpress_core.operations._models import DeviceRef, Drift, ExpectedState, ProblemCode, RetryRounds
from thingpress_core.operations._plan import (
    UNDO_OPERATIONS,
    RollbackPlan,
    RollbackStep,
    last_run,
    plan_rollback,
)
from thingpress_core.operations._protocol import CertificateState, FleetOperations
from thingpress_core.operations._reports import (
    DeviceOutcome,
    DeviceStatus,
    OperationInterrupted,
    OperationReport,
    OperationStep,
    RollbackOutcome,
    RollbackReport,
    StatusReport,
    VerifyOutcome,
    VerifyReport,
)
from thingpress_core.operations._rollback import rollback_run
from thingpress_core.operations._status import set_status
from thingpress_core.operations._verify import verify_devices

__all__ = [
    "UNDO_OPERATIONS",
    "CertificateState",
    "DeviceInput",
    "DeviceOutcome",
    "DeviceRef",
    "DeviceStatus",
    "Drift",
    "ExpectedState",
    "FleetOperations",
    "OperationInterrupted",
    "OperationReport",
    "OperationStep",
    "ProblemCode",
    "RetryRounds",
    "RollbackOutcome",
    "RollbackPlan",
    "RollbackReport",
    "RollbackStep",
    "StatusReport",
    "VerifyOutcome",
    "VerifyReport",
    "last_run",
    "ledger_devices",
    "plan_rollback",
    "rollback_run",
    "set_status",
    "verify_devices",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
