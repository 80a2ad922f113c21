"""`Work`: one input item and how far its import got, resumed where it stopped on a retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from thingpress_core.certificates import DeviceCertificate, thing_name_for
from thingpress_core.errors import AwsServiceError
from thingpress_core.importer._models import FailedStep, ImportOptions, ImportOutcome, OutcomeStatus
from thingpress_core.manifests import ManifestEntry

if TYPE_CHECKING:
    import datetime as _dt

    from thingpress_core.ledger import DeviceRecord

__all__ = ["StepTarget", "Work", "counted", "one_line", "where"]

_T = TypeVar("_T")

_MAX_ERROR_CHARS = 600

#: A step and its target (a thing name, a policy), as a failure there is reported.
StepTarget: TypeAlias = tuple[FailedStep, str | None]


class Work:
    """One input item and how far its import got; resumed where it stopped on a retry."""

    __slots__ = (
        "attempts",
        "calls",
        "certificate",
        "certificate_arn",
        "certificate_id",
        "chain",
        "claimed_by",
        "created",
        "first_failure",
        "given_name",
        "groups_done",
        "index",
        "ours",
        "outcome",
        "policies_done",
        "prepared",
        "principal_done",
        "record",
        "register_sent",
        "registered",
        "retry_after",
        "rounds",
        "source",
        "suspect_name",
        "thing_done",
        "thing_name",
        "vendor_id",
        "verified",
    )

    def __init__(
        self,
        *,
        index: int | None,
        certificate: DeviceCertificate | None = None,
        given_name: str | None = None,
        chain: tuple[DeviceCertificate, ...] = (),
        outcome: ImportOutcome | None = None,
    ) -> None:
        self.index = index
        self.certificate = certificate
        self.certificate_id = certificate.certificate_id if certificate is not None else None
        self.given_name = given_name
        self.chain = chain
        self.outcome = outcome  # set up front when the item is not importable at all
        self.thing_name: str | None = None
        self.verified = False
        self.certificate_arn: str | None = None
        self.created = False
        self.thing_done = False
        self.principal_done = False
        self.policies_done: set[str] = set()
        self.groups_done: set[str] = set()
        # another certificate of this run holds the thing name (decided locally, no call)
        self.claimed_by: str | None = None
        # a certificate of this run may hold the thing name: read the thing before registering
        self.suspect_name = False
        self.record: DeviceRecord | None = None  # the ledger's record, once read
        self.ours = False  # an earlier run of the ledger registered the certificate
        self.registered = False  # this run's registration created the certificate
        self.source: str | None = None
        self.vendor_id: str | None = None
        self.calls = 0
        self.attempts = 0
        # set when `prepare` ran this attempt's part before any call: where its first call is
        self.prepared: StepTarget | None = None
        self.rounds = 0  # retry rounds it was queued for
        self.retry_after: float | None = None
        # when a registration request went out whose answer may have been lost (UTC)
        self.register_sent: _dt.datetime | None = None
        # (clock, seconds paused so far) when it first failed transiently: for the deadline
        self.first_failure: tuple[float, float] | None = None

    @classmethod
    def of(cls, item: object, position: int | None) -> Work:
        if isinstance(item, DeviceCertificate):
            return cls(index=position, certificate=item)
        if isinstance(item, ManifestEntry):
            work = cls(
                index=item.index,
                certificate=item.certificate,
                given_name=item.thing_name,
                chain=item.chain,
            )
            work.source, work.vendor_id = item.source, item.vendor_id
            return work
        if isinstance(item, BaseException):
            index = getattr(item, "index", None)
            index = index if isinstance(index, int) else position
            certificate_id = getattr(item, "certificate_id", None)
            certificate_id = certificate_id if isinstance(certificate_id, str) else None
            return cls(
                index=index,
                outcome=ImportOutcome(
                    certificate_id=certificate_id,
                    status=OutcomeStatus.FAILED,
                    failed_step="parse",
                    error=one_line(f"{where(certificate_id, index)}: could not be read: {item}"),
                    error_type=type(item).__name__,
                    reason="parse",
                    attempts=0,
                    index=index,
                ),
            )
        return cls(
            index=position,
            outcome=ImportOutcome(
                certificate_id=None,
                status=OutcomeStatus.FAILED,
                failed_step="input",
                error=f"{where(None, position)}: expected a DeviceCertificate or ManifestEntry, "
                f"got {type(item).__name__}",
                error_type="TypeError",
                reason="input",
                attempts=0,
                index=position,
            ),
        )

    def name(self, options: ImportOptions) -> str:
        """The thing name, chosen once: always valid, whatever the manifest offered.

        Raises a `ThingpressError` when no name can be made (e.g. a naming function that
        returns something other than text).
        """
        if self.thing_name is None:
            certificate = self.certificate
            assert certificate is not None
            self.thing_name = thing_name_for(
                certificate,
                naming=options.naming,
                prefix=options.thing_name_prefix,
                offered=self.given_name,
            )
        return self.thing_name


def counted(work: Work, method: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """Call ``method`` and count it as one IoT call of ``work`` when it reached AWS."""
    try:
        result = method(*args, **kwargs)
    except AwsServiceError:
        work.calls += 1
        raise
    work.calls += 1
    return result


def where(certificate_id: str | None, index: int | None) -> str:
    """How messages name an item: its certificate id, else its 1-based position."""
    if certificate_id:
        return f"certificate {certificate_id}"
    if index is not None:
        return f"item {index + 1}"
    return "item"


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."
