"""Helpers for the fleet operations tests: constants, an import run, moto's IoT state read directly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.importer import CertificateImporter, ImportOptions, ImportReport
from thingpress_core.ledger import Ledger, Target
from thingpress_core.manifests import ManifestEntry
from thingpress_core.services import IoTService

ACCOUNT = "123456789012"
REGION = "us-east-1"
TARGET = Target(account_id=ACCOUNT, region=REGION)
POLICY = "DevicePolicy"
EXTRA = "ExtraPolicy"
GROUP = "Fleet"
TYPE = "Sensor"
OPTIONS = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0, concurrency=4
)


def import_run(
    iot: IoTService,
    ledger: Ledger,
    certs: Sequence[DeviceCertificate | ManifestEntry],
    options: ImportOptions = OPTIONS,
) -> ImportReport:
    """One import run of ``certs`` recorded in ``ledger``; every device must import."""
    report = CertificateImporter(iot, options=options, ledger=ledger, target=TARGET).import_all(certs)
    assert report.failed == 0, report.failures[:2]
    return report


def cert_arn(cert: DeviceCertificate) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{cert.certificate_id}"


def backend() -> Any:
    from moto.iot.models import iot_backends

    return iot_backends[ACCOUNT][REGION]


class State:
    """What moto's IoT holds, read directly (not through the code under test)."""

    def __init__(self) -> None:
        b = backend()
        self.certificates = {cid: c.status for cid, c in b.certificates.items()}
        self.things = {
            t.thing_name: (t.thing_type.thing_type_name if t.thing_type else None) for t in b.things.values()
        }
        self.principal_things = {(arn, name) for arn, name in b.principal_things}
        self.principal_policies = {(arn, name) for arn, name in b.principal_policies}
        arns = {t.arn: t.thing_name for t in b.things.values()}
        self.groups = {
            g.thing_group_name: {arns[a] for a in g.things if a in arns} for g in b.thing_groups.values()
        }
        self.policies = set(b.policies)
        self.types = {t.thing_type_name for t in b.thing_types.values()}

    def wired(self, cert: DeviceCertificate, *, policies: Sequence[str] = (POLICY,)) -> bool:
        """The device is whole: active certificate on its thing, typed, policies, group."""
        name = cert.common_name
        arn = cert_arn(cert)
        return (
            self.certificates.get(cert.certificate_id) == "ACTIVE"
            and self.things.get(name or "") == TYPE
            and (arn, name) in self.principal_things
            and all((arn, p) in self.principal_policies for p in policies)
            and name in self.groups.get(GROUP, set())
        )

    def gone(self, cert: DeviceCertificate) -> bool:
        """Nothing of the device is left: no certificate, thing, attachment or membership."""
        name = cert.common_name or ""
        arn = cert_arn(cert)
        return (
            cert.certificate_id not in self.certificates
            and name not in self.things
            and not any(a == arn or n == name for a, n in self.principal_things)
            and not any(a == arn for a, _ in self.principal_policies)
            and all(name not in members for members in self.groups.values())
        )
