"""How devices reach an operation: `DeviceRef`, manifest entries, certificates, or a reader's
errors in their place; and the devices of a ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ThingpressError
from thingpress_core.manifests import ManifestEntry
from thingpress_core.operations._models import DeviceRef
from thingpress_core.operations._runner import one_line

if TYPE_CHECKING:
    from thingpress_core.certificates import ThingNaming
    from thingpress_core.ledger import Ledger, Target

__all__ = ["DeviceInput", "ledger_devices", "prepare"]

#: What an operation accepts for a device: a `DeviceRef`; a manifest entry or certificate
#: (named as the importer names it); or the exception a manifest reader yielded in place of an
#: entry it could not read (``read_manifest(..., on_error="yield")``), reported as a failure at
#: step ``input``.
DeviceInput: TypeAlias = DeviceRef | ManifestEntry | DeviceCertificate | Exception


def ledger_devices(ledger: Ledger, *, target: Target | str, run_id: str | None = None) -> Iterator[DeviceRef]:
    """The devices a ledger knows in ``target`` (those a run touched, with ``run_id``), streamed
    in certificate-id order: memory does not grow with their number."""
    key = target if isinstance(target, str) else target.key
    for record in ledger.devices(target=key, run_id=run_id):
        yield DeviceRef.from_record(record)


def prepare(
    item: object, position: int, *, naming: ThingNaming | None = None, prefix: str | None = None
) -> DeviceRef | dict[str, Any]:
    """The `DeviceRef` of an input item, or the fields of its failed outcome (an item that is
    no device: step ``input``; a thing name that cannot be made: step ``name``)."""
    if isinstance(item, DeviceRef):
        return item
    if isinstance(item, ManifestEntry | DeviceCertificate):
        try:
            return DeviceRef.from_entry(item, naming=naming, prefix=prefix)
        except ThingpressError as exc:
            certificate = item if isinstance(item, DeviceCertificate) else item.certificate
            index = position if isinstance(item, DeviceCertificate) else item.index
            return _failed(
                certificate.certificate_id,
                index,
                "name",
                f"certificate {certificate.certificate_id}: choosing its thing name failed: {exc}",
                type(exc).__name__,
                "invalid_name",
            )
    if isinstance(item, BaseException):
        found = getattr(item, "index", None)
        index = found if isinstance(found, int) else position
        certificate_id = getattr(item, "certificate_id", None)
        certificate_id = certificate_id if isinstance(certificate_id, str) else None
        where = f"certificate {certificate_id}" if certificate_id else f"item {index + 1}"
        return _failed(
            certificate_id,
            index,
            "input",
            f"{where}: could not be read: {item}",
            type(item).__name__,
            "parse",
        )
    return _failed(
        None,
        position,
        "input",
        f"item {position + 1}: expected a DeviceRef, ManifestEntry or DeviceCertificate, "
        f"got {type(item).__name__}",
        "TypeError",
        "input",
    )


def _failed(
    certificate_id: str | None, index: int, step: str, error: str, error_type: str, reason: str
) -> dict[str, Any]:
    return {
        "certificate_id": certificate_id,
        "status": "failed",
        "failed_step": step,
        "error": one_line(error),
        "error_type": error_type,
        "reason": reason,
        "attempts": 0,
        "index": index,
    }
