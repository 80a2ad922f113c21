"""Repair: a drifted device goes through the importer's own steps again, nothing else.

`verify_devices(..., repair=True)` hands each drifted device that has its certificate (from a
manifest) to `CertificateImporter.import_certificate` with ``recheck=True``: every call of
the import floor is made again (RegisterCertificateWithoutCA, CreateThing, AttachThingPrincipal,
AttachPolicy, AddThingToThingGroup; each idempotent), so whatever AWS lacks is made, with the
importer's own safety checks (a certificate on another thing is refused, a thing name another
certificate owns is refused). What those steps cannot fix is left and said so: a certificate in
another status (`set_status` sets it), a certificate on other things (detach it by hand), and
any device without its certificate body (a ledger keeps none: verify from the manifest to
repair a missing certificate or anything else).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from thingpress_core.operations._models import DeviceRef, ExpectedState, ProblemCode

if TYPE_CHECKING:
    from thingpress_core._vocabulary import RegistrationStatus
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome
    from thingpress_core.ledger import Ledger, Target
    from thingpress_core.operations._protocol import FleetOperations

__all__ = ["REPAIRABLE", "Repairer", "left_unrepaired", "repair_note"]

#: The drift the importer's steps make good.
REPAIRABLE: frozenset[ProblemCode] = frozenset(
    {
        "certificate_missing",
        "thing_missing",
        "thing_type",
        "principal_not_attached",
        "policy_missing",
        "group_missing",
    }
)


def repair_note(ref: DeviceRef, codes: set[ProblemCode]) -> str | None:
    """Why a device with drift ``codes`` is not repaired (None: it can be)."""
    fixable = codes & REPAIRABLE
    if not fixable:
        return "nothing here is the importer's to fix: " + _left_text(codes)
    if ref.certificate is None or ref.thing_name is None:
        return (
            "repair needs the certificate itself (a ledger keeps no certificate body): "
            "verify from the manifest to repair this device"
        )
    return None


def left_unrepaired(codes: set[ProblemCode]) -> str | None:
    """What a repair leaves of drift ``codes``, in English (None: nothing)."""
    return _left_text(codes) if codes - REPAIRABLE else None


def _left_text(codes: set[ProblemCode]) -> str:
    parts = []
    if "certificate_status" in codes:
        parts.append("a status is set with set_status (activate / deactivate)")
    if "other_things" in codes:
        parts.append("a certificate on other things must be detached from them by hand")
    return "; ".join(parts)


class Repairer:
    """Runs the importer's steps for one drifted device at a time, from any thread.

    The importer is made on first use (with the ledger, so the steps it confirms are recorded
    under ``run_id``), so a verify that repairs nothing never loads it.
    """

    def __init__(
        self,
        iot: FleetOperations,
        expected: ExpectedState,
        *,
        ledger: Ledger | None,
        target: Target | None,
        run_id: str | None,
    ) -> None:
        self._iot = iot
        self._expected = expected
        self._ledger = ledger
        self._target = target
        self._run_id = run_id
        self._lock = threading.Lock()
        self._importer: CertificateImporter | None = None
        self._options: ImportOptions | None = None

    def _get(self) -> tuple[CertificateImporter, ImportOptions]:
        with self._lock:
            if self._importer is None or self._options is None:
                from thingpress_core.importer import CertificateImporter, ImportOptions

                expected = self._expected
                self._options = ImportOptions(
                    policies=expected.policies,
                    thing_groups=expected.thing_groups,
                    thing_type=expected.thing_type,
                    allow_multiple_things=expected.allow_multiple_things,
                    # group-policy mode: the certificate goes on its thing exclusively, as imported
                    exclusive=expected.policy_target == "thing_group",
                    recheck=True,
                    preflight=False,
                )
                self._importer = CertificateImporter(
                    self._iot, options=self._options, ledger=self._ledger, target=self._target
                )
            return self._importer, self._options

    def __call__(self, ref: DeviceRef) -> ImportOutcome:
        """Import ``ref``'s certificate onto its thing again; the importer's outcome."""
        certificate, name = ref.certificate, ref.thing_name
        assert certificate is not None
        assert name is not None
        importer, options = self._get()

        def same_name(_: DeviceCertificate) -> str:
            return name  # the thing the device is verified against, whatever named it

        status: RegistrationStatus = self._expected.status or (
            "INACTIVE" if ref.status == "INACTIVE" else "ACTIVE"
        )
        device_options = options.model_copy(update={"naming": same_name, "status": status})
        return importer.import_certificate(certificate, options=device_options, run_id=self._run_id)
