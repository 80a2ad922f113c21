"""The thing step: create a certificate's thing, adopt one nobody owns, refuse another's.

AWS answers a repeated CreateThing with the same configuration like a creation and one with
another configuration (another owner attribute among them) with a conflict (409): only then is
the thing read. A thing made outside thingpress-core (no owner attribute) is adopted when no
other certificate is on it, and only if it is still as read (UpdateThing with its version), so
two importers adopting it at once cannot both win.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from thingpress_core.errors import ResourceConflictError, ResourceNotFoundError
from thingpress_core.importer._models import OWNER_ATTRIBUTE, ImportOptions, attribute_problem
from thingpress_core.importer._refusal import Refusal, collision
from thingpress_core.importer._work import Work, counted

if TYPE_CHECKING:
    from thingpress_core.importer._protocol import IoTOperations, ThingState

__all__ = ["check_claimed", "claim_thing"]

logger = logging.getLogger("thingpress_core.importer")

# How many times a thing nobody owns is read again when it changed between read and adoption.
_ADOPT_TRIES = 3


def claim_thing(client: IoTOperations, work: Work, name: str, options: ImportOptions) -> bool:
    """Create the thing for this certificate, or adopt it, or refuse a name collision.

    The thing is created with its type, attributes (`OWNER_ATTRIBUTE` among them) and billing
    group in one CreateThing. A thing that exists with another configuration (409) is read:
    another certificate's thing is a collision; a thing of this certificate or of none is
    brought in line (UpdateThing for its type and attributes, merged; AddThingToBillingGroup
    for its billing group), each call only when something differs.

    True when a thing made elsewhere was adopted (so the run did not make it)."""
    certificate_id = work.certificate_id
    assert certificate_id is not None
    wanted = options.thing_attributes(certificate_id, work.vendor_id)
    for key, value in wanted.items():
        problem = attribute_problem(key, value)
        if problem is not None:
            raise Refusal(
                f"{problem} (from the manifest; manifest_attributes=False, or "
                "--no-manifest-attributes, leaves it out)",
                reason="invalid_attribute",
            )
    extra: dict[str, object] = {}
    if options.billing_group is not None:
        extra["billing_group"] = options.billing_group
    try:
        counted(work, client.create_thing, name, thing_type=options.thing_type, attributes=wanted, **extra)
        return False
    except ResourceConflictError:
        pass  # the thing exists with another configuration: find out whose it is
    found = counted(work, client.describe_thing, name)
    claimed: str | None = None
    retyped, missing = False, dict[str, str]()
    for tries_left in range(_ADOPT_TRIES - 1, -1, -1):
        claimed = _owner_checked(client, work, name, found)
        retyped = options.thing_type is not None and found.thing_type != options.thing_type
        missing = {k: v for k, v in wanted.items() if found.attributes.get(k) != v}
        if not (retyped or missing):
            break
        # Adopting a thing nobody owns: only if it is still as read, so two importers (two
        # processes, two Lambda consumers) adopting it at once cannot both win.
        version = getattr(found, "version", None) if claimed is None else None
        guard: dict[str, object] = {"expected_version": version} if isinstance(version, int) else {}
        try:
            counted(
                work,
                client.update_thing,
                name,
                thing_type=options.thing_type if retyped else None,
                attributes=missing or None,
                **guard,
            )
        except ResourceConflictError as exc:
            if not guard or exc.code != "VersionConflictException" or not tries_left:
                raise
            found = counted(work, client.describe_thing, name)  # changed meanwhile: judge again
            continue
        logger.info(
            "thing %s existed %s; updated",
            name,
            "with another thing type" if retyped else "with other attributes",
            extra={"operation": "iot.UpdateThing", "certificate_id": certificate_id, "thing_name": name},
        )
        break
    billing = options.billing_group
    rebilled = billing is not None and getattr(found, "billing_group", None) != billing
    if rebilled:
        assert billing is not None
        counted(work, client.add_thing_to_billing_group, name, billing)
    if retyped or rebilled or set(missing) - {OWNER_ATTRIBUTE}:
        work.created = True  # a changed type, attribute or billing group is news this run made
    return claimed is None  # a thing made elsewhere was adopted


def check_claimed(client: IoTOperations, work: Work, name: str) -> None:
    """Raise a name collision when thing ``name`` exists and belongs to another certificate
    (one DescribeThing; made only for a name this run saw claimed, never on the common path)."""
    try:
        found = counted(work, client.describe_thing, name)
    except ResourceNotFoundError:
        return
    _owner_checked(client, work, name, found)


def _owner_checked(client: IoTOperations, work: Work, name: str, found: ThingState) -> str | None:
    """The certificate the existing thing ``found`` names as its owner (None: none named);
    raises a name collision when that, or a certificate attached to a thing without an owner,
    is another certificate."""
    certificate_id = work.certificate_id
    assert certificate_id is not None
    claimed = found.attributes.get(OWNER_ATTRIBUTE)
    if claimed is not None and claimed != certificate_id:
        raise collision(name, claimed)
    if claimed is None:
        # made outside thingpress-core (or by 0.1.0): whose certificates are on it?
        principals = counted(work, client.list_thing_principals, name)
        own = {certificate_id}
        if work.certificate_arn is not None:  # AWS's id for it (a stand-in's may differ)
            own.add(work.certificate_arn.rpartition("/")[2])
        others = sorted({p.rpartition("/")[2] for p in principals} - own)
        if others:
            raise collision(name, others[0])
    return claimed
