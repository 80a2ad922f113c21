"""The importer's value objects: options in, one outcome per certificate, one report per run."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thingpress_core._config import ConfigModel
from thingpress_core._vocabulary import RegistrationStatus
from thingpress_core.certificates import ThingNaming, TrustStore

__all__ = [
    "OWNER_ATTRIBUTE",
    "FailedStep",
    "ImportInterrupted",
    "ImportOptions",
    "ImportOutcome",
    "ImportReport",
    "OutcomeStatus",
]

#: The thing attribute that names the certificate a thing was created for. CreateThing with it
#: is idempotent for the same certificate and refused (409) for another one, which is how two
#: certificates that map to one thing name are told apart without a read call.
OWNER_ATTRIBUTE = "thingpress_certificate_id"

#: The step an import failed at, in the order they run. ``input`` means the item was not a
#: certificate at all, ``parse`` that the item was a reader's error passed through the stream.
FailedStep = Literal[
    "input",
    "parse",
    "verify",
    "name",
    "register",
    "thing",
    "attach_principal",
    "attach_policy",
    "add_to_group",
]

_MAX_POLICIES = 10  # AWS IoT: at most 10 policies per certificate
_MAX_GROUPS = 10  # AWS IoT: a thing belongs to at most 10 static groups
_MAX_CONCURRENCY = 256


class OutcomeStatus(str, enum.Enum):
    """What happened to one certificate.

    ``imported``: this run registered the certificate (or changed its thing's type);
    ``already_present``: the certificate was registered before; the other calls made sure
    its thing and attachments exist (AWS answers a repeat exactly like a first call);
    ``failed``: see the outcome's ``failed_step`` and ``error``;
    ``skipped``: nothing was sent (a dry run).
    """

    IMPORTED = "imported"
    ALREADY_PRESENT = "already_present"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


class ImportOptions(ConfigModel):
    """How to import: what to attach, how to name things, how hard to push.

    Attributes:
        policies: IoT policies to attach to every certificate (at most 10).
        thing_groups: static thing groups to add every thing to (at most 10).
        thing_type: the thing type every thing is created with, or None.
        naming: how to name things. None (default): the name a `ManifestEntry` brings
            (a Microchip uniqueId, an Espressif MAC), else the common name.
            ``"common_name"``, ``"certificate_id"`` or a function of the `DeviceCertificate`
            (see `thing_name_for`) wins over what the manifest offers.
            Whatever its source, a name that is not a valid AWS IoT thing name goes through
            `thing_name_for`'s mapping (invalid characters replaced, long names shortened).
        thing_name_prefix: prepended to every name, whatever its source.
        status: the certificate status at registration, ``ACTIVE`` (default) or ``INACTIVE``.
        concurrency: worker threads (default 8). The rate limiter, not this number, keeps the
            run under the account's quotas; see the importer docs.
        trust_store: when given, every certificate must verify against it before any call;
            an untrusted certificate is reported failed and never registered.
        dry_run: verify and name every certificate but send nothing; outcomes are
            ``skipped`` (or ``failed`` when verification or naming fails).
        preflight: check that the policies, groups and thing type exist before the first
            certificate (read-only calls, also in a dry run). Default True.
        transient_rounds: how many more times `import_all` sends a certificate whose failure
            was transient (throttled after retries, 5xx, circuit open). Default 3.
        retry_pause: seconds to pause before a retry round, doubled for each attempt the
            waiting certificates already had (at most 30 s), and never shorter than an open
            breaker's ``retry_after``. Default 1.
        retry_deadline: seconds after a certificate's first transient failure during which
            rounds keep sending it; rounds wait for an open breaker's ``retry_after`` (within
            this deadline), and an attempt an open breaker refused before any call does not
            count against ``transient_rounds``. None: no deadline. Default 900 (15 minutes).
        allow_multiple_things: when the certificate is registered already and attached to
            another thing, attach it to this one too (fleets that really share certificates).
            Default False: such a certificate fails with reason
            ``certificate_on_other_thing`` naming the things it is on, and no second thing is
            made.
        allow_expired: import certificates outside their validity period. Default False:
            they fail with reason ``expired`` or ``not_yet_valid`` (and the date) before any
            call.
        recheck: with a ledger, ignore its done marks: make every call of the floor again
            (repairing what AWS lacks) and record the steps. Default False: a device the
            ledger shows done costs no call.

    Invalid values raise `ConfigurationError` naming the option (pydantic's error is its
    ``__cause__``); type checkers see the typed constructor, so a misspelt option is an error
    before anything runs.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    policies: tuple[str, ...] = Field(default=(), max_length=_MAX_POLICIES)
    thing_groups: tuple[str, ...] = Field(default=(), max_length=_MAX_GROUPS)
    thing_type: str | None = Field(default=None, min_length=1, max_length=128)
    naming: ThingNaming | None = None
    thing_name_prefix: str | None = Field(default=None, max_length=127)
    status: RegistrationStatus = "ACTIVE"
    concurrency: int = Field(default=8, ge=1, le=_MAX_CONCURRENCY)
    trust_store: TrustStore | None = None
    dry_run: bool = False
    preflight: bool = True
    transient_rounds: int = Field(default=3, ge=0, le=20)
    retry_pause: float = Field(default=1.0, ge=0.0, le=60.0)
    retry_deadline: float | None = Field(default=900.0, gt=0.0)
    allow_multiple_things: bool = False
    allow_expired: bool = False
    recheck: bool = False

    @field_validator("policies", "thing_groups")
    @classmethod
    def _check_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or len(name) > 128:
                raise ValueError(f"names must be 1 to 128 characters, got {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("each name may appear only once")
        return value

    def summary(self) -> dict[str, object]:
        """The options a run record keeps: what was asked, as JSON values."""
        naming = self.naming if isinstance(self.naming, str) or self.naming is None else "function"
        return {
            "policies": list(self.policies),
            "thing_groups": list(self.thing_groups),
            "thing_type": self.thing_type,
            "status": self.status,
            "naming": naming,
            "thing_name_prefix": self.thing_name_prefix,
            "trust_store": self.trust_store is not None,
            "dry_run": self.dry_run,
            "allow_expired": self.allow_expired,
            "allow_multiple_things": self.allow_multiple_things,
            "recheck": self.recheck,
        }

    def calls_per_certificate(self) -> int:
        """The IoT calls one new certificate costs: 3 plus one per policy and per group."""
        return 3 + len(self.policies) + len(self.thing_groups)


class ImportOutcome(BaseModel):
    """What happened to one certificate (one item of the input).

    ``calls`` counts the IoT calls made for it over all its attempts, ``attempts`` the times
    it was sent (1 unless a transient failure sent it round again; an attempt an open breaker
    refused before any call is not counted). ``index`` is its 0-based position in the input
    of `import_all` (or the manifest entry's index). ``error`` is one English line naming the
    certificate; ``error_type`` the exception's class name; ``transient`` whether that error
    is worth retrying later; ``reason`` a short machine-readable word for a failure:
    ``parse``, ``input``, ``untrusted``, ``expired``, ``not_yet_valid``, ``is_ca``,
    ``invalid_name``, ``name_collision`` (``other_certificate_id`` holds the thing's
    certificate), ``certificate_on_other_thing`` (``other_things`` names them), or for an AWS
    error ``throttled``, ``service_unavailable``, ``circuit_open``, ``not_found``,
    ``access_denied``, ``invalid_request``, ``limit_exceeded``, ``conflict``, ``aws_error``.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    certificate_id: str | None
    thing_name: str | None = None
    status: OutcomeStatus
    failed_step: FailedStep | None = None
    error: str | None = None
    error_type: str | None = None
    transient: bool = False
    reason: str | None = None
    other_certificate_id: str | None = None
    other_things: tuple[str, ...] = ()
    calls: int = Field(default=0, ge=0)
    attempts: int = Field(default=1, ge=0)
    index: int | None = None

    @property
    def ok(self) -> bool:
        """True unless the outcome is ``failed``."""
        return self.status is not OutcomeStatus.FAILED


class ImportReport(BaseModel):
    """The result of one `import_all` run, JSON-serializable with ``model_dump_json()``.

    ``total == imported + already_present + failed + skipped`` always holds (it is checked
    when the report is built). ``calls``, ``call_failures``, ``call_retries`` (botocore's
    extra HTTP attempts) and ``calls_refused`` (by an open breaker or a rate-limit timeout,
    never sent) are per operation (``iot.CreateThing``): the difference of the service's
    counters over the run, preflight included. ``failures`` holds every failed outcome, in
    the order they finished. ``rate_per_second`` is ``total / duration_seconds``.

    An interrupted run (Ctrl-C) has ``interrupted`` True: the counts cover the certificates
    that finished, and ``unfinished`` lists the ids of those that were in flight or waiting
    for a retry round (items not yet read from the input are in neither).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0)
    imported: int = Field(ge=0)
    already_present: int = Field(ge=0)
    failed: int = Field(ge=0)
    skipped: int = Field(ge=0)
    calls: dict[str, int] = Field(default_factory=dict[str, int])
    call_failures: dict[str, int] = Field(default_factory=dict[str, int])
    call_retries: dict[str, int] = Field(default_factory=dict[str, int])
    calls_refused: dict[str, int] = Field(default_factory=dict[str, int])
    failures: list[ImportOutcome] = Field(default_factory=list[ImportOutcome])
    retried: int = Field(default=0, ge=0, description="certificates sent round again at least once")
    rounds: int = Field(default=0, ge=0, description="retry rounds that were needed")
    dry_run: bool = False
    interrupted: bool = False
    unfinished: list[str] = Field(default_factory=list[str])
    run_id: str | None = Field(default=None, description="the run's id in the ledger, if one was used")
    ledger: str | None = Field(default=None, description="where the ledger lives, if one was used")
    started_at: datetime
    duration_seconds: float = Field(ge=0.0)
    rate_per_second: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _check_total(self) -> ImportReport:
        counted = self.imported + self.already_present + self.failed + self.skipped
        if self.total != counted:
            raise ValueError(
                f"total {self.total} != imported {self.imported} + already_present "
                f"{self.already_present} + failed {self.failed} + skipped {self.skipped}"
            )
        if len(self.failures) != self.failed:
            raise ValueError(f"{len(self.failures)} failures listed but failed is {self.failed}")
        return self

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.failed == 0

    @property
    def total_calls(self) -> int:
        """All AWS calls the run made."""
        return sum(self.calls.values())

    def summary(self) -> str:
        """One English line, e.g. for a log or the end of a CLI run."""
        verb = "checked" if self.dry_run else "processed"
        text = (
            f"{self.total} certificates {verb} in {self.duration_seconds:.1f} s "
            f"({self.rate_per_second:.1f}/s): {self.imported} imported, {self.already_present} "
            f"already present, {self.failed} failed, {self.skipped} skipped; {self.total_calls} calls"
        )
        if self.interrupted:
            text += f"; interrupted with {len(self.unfinished)} unfinished"
        return text


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another ``KeyboardInterrupt``) during ``CertificateImporter.import_all``.

    ``report`` is the partial `ImportReport`: the certificates
    that finished, and in ``report.unfinished`` the ids of those in flight or waiting for a
    retry round. A ``KeyboardInterrupt`` on purpose: callers that do not handle it stop as
    they would on any Ctrl-C.
    """

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.summary())
        self.report = report
