"""`set_status`: activate or deactivate a fleet's certificates, e.g. staged INACTIVE, activated
on shipment.

One call per device: UpdateCertificate (10 requests a second by default: it binds, so a fleet
changes status at 10 devices a second per account). With a ledger, a device whose record
already shows the status costs no call at all, and the record's ``certificate_status`` is
saved once AWS confirmed the change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from thingpress_core.operations._devices import DeviceInput, prepare
from thingpress_core.operations._models import DeviceRef, RetryRounds
from thingpress_core.operations._reports import (
    DeviceOutcome,
    OperationInterrupted,
    OperationStep,
    StatusReport,
)
from thingpress_core.operations._runner import Done, Runner, Task
from thingpress_core.operations._session import Session, resolve_target

if TYPE_CHECKING:
    from thingpress_core._vocabulary import RegistrationStatus
    from thingpress_core.ledger import DeviceRecord, Ledger, Target
    from thingpress_core.operations._protocol import FleetOperations

__all__ = ["set_status"]

logger = logging.getLogger("thingpress_core.operations")


class _SetStatus(Task[DeviceOutcome]):
    """One certificate's status: the ledger's word first, then UpdateCertificate, then the
    record. A retry resumes after the last step done."""

    def __init__(
        self,
        ref: DeviceRef,
        iot: FleetOperations,
        status: RegistrationStatus,
        ledger: Ledger | None,
        target: str | None,
        run_id: str | None,
    ) -> None:
        super().__init__(certificate_id=ref.certificate_id, thing_name=ref.thing_name, index=ref.index)
        self._ref = ref
        self._iot = iot
        self._status: RegistrationStatus = status
        self._ledger = ledger
        self._target = target
        self._run_id = run_id
        self._consulted = self._updated = False
        self._record: DeviceRecord | None = None

    def attempt(self) -> DeviceOutcome:
        step: OperationStep = "ledger"
        doing = "reading its ledger record"
        ledger, status = self._ledger, self._status
        try:
            if ledger is not None and not self._consulted:
                assert self._target is not None
                self._record = ledger.device(self._target, self._ref.certificate_id)
                self._consulted = True
                if self._record is not None and self._record.certificate_status == status:
                    return DeviceOutcome(**self.fields(), status="unchanged")
            if not self._updated:
                step, doing = "update_certificate", f"setting it {status} (UpdateCertificate)"
                self.call(self._iot.update_certificate_status, self._ref.certificate_id, status)
                self._updated = True
            record = self._record
            if ledger is not None and record is not None and self._run_id is not None:
                step, doing = "ledger", "recording its status in the ledger"
                ledger.save(
                    record.model_copy(
                        update={
                            "certificate_status": status,
                            "run_id": self._run_id,
                            "updated_at": datetime.now(timezone.utc),
                        }
                    )
                )
        except Exception as exc:
            return DeviceOutcome(**self.failure(step, doing, exc))
        return DeviceOutcome(**self.fields(), status="changed")


def set_status(
    iot: FleetOperations,
    devices: Iterable[DeviceInput],
    status: RegistrationStatus,
    *,
    ledger: Ledger | None = None,
    target: Target | str | None = None,
    concurrency: int = 8,
    progress: Callable[[DeviceOutcome], object] | None = None,
    retry: RetryRounds | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StatusReport:
    """Set every device's certificate to ``status`` (``ACTIVE`` or ``INACTIVE``).

    Args:
        iot: the IoT service (`IoTService`, or anything with its methods).
        devices: `DeviceRef`s (e.g. `ledger_devices`), manifest entries or certificates, read
            lazily.
        status: ``"ACTIVE"`` (activate) or ``"INACTIVE"`` (deactivate).
        ledger: with one, a device whose record already shows ``status`` is ``unchanged``
            with no call; after AWS confirmed the change the record's ``certificate_status``
            is saved; the operation is one run of kind ``activate`` or ``deactivate``. A device
            the ledger does not know is updated and gets no record.
        target: the account, region and endpoint the ledger keys records by (default: read
            from ``iot``).

    ``concurrency``, ``progress``, ``retry``, ``sleep`` and ``clock`` are as for
    `verify_devices`.

    Costs one UpdateCertificate per device not already shown with ``status`` and no read; at
    its default quota of 10 a second, 10 devices a second. Idempotent: AWS accepts a status
    a certificate already has, so without a ledger every device is ``changed`` (updated),
    whether or not it had the status before.
    A certificate AWS does not know fails with reason ``not_found``; one whose state forbids
    the change (REVOKED, PENDING_TRANSFER) fails too, not transient.

    Returns a `StatusReport`; Ctrl-C raises `OperationInterrupted` carrying the partial one.
    """
    if status not in ("ACTIVE", "INACTIVE"):
        from thingpress_core.errors import ConfigurationError

        raise ConfigurationError(
            f"status must be ACTIVE or INACTIVE, got {status!r}", variable="status", value=status
        )
    where = resolve_target(iot, target) if ledger is not None else None
    key = where.key if where is not None else None
    run_id: list[str | None] = [None]

    def make(item: object, position: int) -> Task[DeviceOutcome]:
        ref = prepare(item, position)
        if isinstance(ref, dict):
            return Done(DeviceOutcome(**ref))
        return _SetStatus(ref, iot, status, ledger, key, run_id[0])

    runner = Runner(
        make=make,
        concurrency=concurrency,
        retry=retry or RetryRounds(),
        observers=(progress,),
        sleep=sleep,
        clock=clock,
        name="thingpress-status",
    )
    session = Session(
        iot,
        ledger=ledger,
        target=where,
        kind="activate" if status == "ACTIVE" else "deactivate",
        options={"status": status},
        clock=clock,
    )
    session.begin()
    run_id[0] = session.run_id
    interrupted = session.drive(runner, devices, runner.counts)
    report = StatusReport(**session.report_fields(runner, interrupted=interrupted), status=status)
    if interrupted:
        logger.warning(report.summary(), extra={"operation": "set_status"})
        raise OperationInterrupted(report)
    logger.info(report.summary(), extra={"operation": "set_status"})
    return report
