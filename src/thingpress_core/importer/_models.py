"""The importer's value objects: options in, one outcome per certificate, one report per run."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thingpress_core._config import ConfigModel
from thingpress_core._vocabulary import RegistrationStatus
from thingpress_core.certificates import DeviceCertificate, ThingNaming, TrustStore
from thingpress_core.certificates._naming import check_prefix

__all__ = [
    "OWNER_ATTRIBUTE",
    "VENDOR_ID_ATTRIBUTE",
    "FailedStep",
    "ImportInterrupted",
    "ImportOptions",
    "ImportOutcome",
    "ImportReport",
    "OutcomeStatus",
    "PolicyTarget",
]

#: The thing attribute that names the certificate a thing was created for. CreateThing with it
#: is idempotent for the same certificate and refused (409) for another one, which is how two
#: certificates that map to one thing name are told apart without a read call.
OWNER_ATTRIBUTE = "thingpress_certificate_id"

#: The thing attribute that carries the vendor's id for the chip a manifest entry names (a
#: Microchip uniqueId, an Infineon chip id, an Espressif MAC), unless
#: ``ImportOptions(manifest_attributes=False)``.
VENDOR_ID_ATTRIBUTE = "vendor_id"

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

#: Where an import attaches its policies: to each certificate, or once to the thing group.
PolicyTarget = Literal["certificate", "thing_group"]

_MAX_POLICIES = 10  # AWS IoT: at most 10 policies per certificate
_MAX_GROUPS = 10  # AWS IoT: a thing belongs to at most 10 static groups
_MAX_CONCURRENCY = 256
MAX_NOTES = 1000  # outcomes with a note an `ImportReport` lists
# AWS IoT thing attributes (API reference, ThingAttribute / AttributePayload)
_ATTRIBUTE_NAME = re.compile(r"\A[a-zA-Z0-9_.,@/:#-]{1,128}\Z")
_ATTRIBUTE_VALUE = re.compile(r"\A[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}\Z")
_MAX_ATTRIBUTES_UNTYPED = 3  # a thing without a thing type
_MAX_ATTRIBUTES_TYPED = 50  # a thing with one


def attribute_problem(name: str, value: str) -> str | None:
    """What is wrong with thing attribute ``name=value`` for AWS IoT, or None when nothing."""
    if not _ATTRIBUTE_NAME.match(name):
        return f"attribute name {name!r} must be 1 to 128 of a-z A-Z 0-9 _ . , @ / : # -"
    if not _ATTRIBUTE_VALUE.match(value):
        return f"attribute {name!r}: the value must be at most 800 of a-z A-Z 0-9 _ . , @ / : # = [ ] -"
    return None


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
            (repairing what AWS lacks) and record the steps; a certificate registered before
            also has its status read (DescribeCertificate) and set to ``status`` when AWS holds
            another (UpdateCertificate). Default False: a device the ledger shows done costs
            no call.
        billing_group: the billing group every thing is created in (CreateThing's
            ``billingGroupName``: no extra call). The preflight checks that it exists.
        attributes: thing attributes every thing is created with (CreateThing's
            ``attributePayload``: no extra call). Names are 1 to 128 of
            ``a-zA-Z0-9_.,@/:#-``, values at most 800 of ``a-zA-Z0-9_.,@/:#=[]-``. A thing holds
            at most 3 attributes without a thing type and 50 with one, counting the importer's
            own `OWNER_ATTRIBUTE` and, with ``manifest_attributes``, `VENDOR_ID_ATTRIBUTE`;
            a bad name, value or count raises `ConfigurationError` naming the attribute.
        manifest_attributes: give each thing the vendor's id a manifest entry brings, as
            attribute `VENDOR_ID_ATTRIBUTE` (``vendor_id``). Default True.
        ca_certificate: the CA (registered in the account) the device certificates were
            issued by: each is registered with RegisterCertificate and this CA's PEM instead
            of RegisterCertificateWithoutCA, the preflight checks that AWS holds the CA and
            that it is ACTIVE, and unless ``trust_store`` is given each device certificate
            must chain to it (checked locally, before any call). PEM text or bytes, or a
            `DeviceCertificate`.
        exclusive: attach each certificate to its thing exclusively
            (AttachThingPrincipal with ``thingPrincipalType=EXCLUSIVE_THING``): the
            certificate names its thing (lifecycle events carry the thing name, thing policy
            variables need no client-id rule), and AWS refuses to attach it to a second
            thing; such a refusal fails the certificate with reason
            ``certificate_on_other_thing``. Default False; always True with
            ``policy_target="thing_group"``.
        policy_target: where the policies go. ``"certificate"`` (default): attached to
            every certificate (one AttachPolicy per policy per certificate, 15 TPS by
            default). ``"thing_group"``: attached once per run to the one thing group (its
            ARN as the AttachPolicy target, in the preflight); a policy on a thing group
            applies to every thing in it, so each certificate costs 4 calls (register,
            CreateThing, AttachThingPrincipal exclusively, AddThingToThingGroup). Needs
            exactly one thing group and at least one policy, and forces ``exclusive`` on
            (the certificate then names its thing); other combinations raise
            `ConfigurationError`.

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
    billing_group: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9:_-]+$"
    )
    attributes: dict[str, str] = Field(default={})  # pydantic copies it for each instance
    manifest_attributes: bool = True
    ca_certificate: DeviceCertificate | None = None
    exclusive: bool = False
    policy_target: PolicyTarget = "certificate"

    @model_validator(mode="before")
    @classmethod
    def _group_mode_is_exclusive(cls, data: object) -> object:
        # a group policy reaches a device through its thing: the certificate must name it
        if isinstance(data, Mapping) and data.get("policy_target") == "thing_group":  # pyright: ignore[reportUnknownMemberType]
            return {**data, "exclusive": True}  # pyright: ignore[reportUnknownVariableType]
        return data

    @model_validator(mode="after")
    def _check_policy_target(self) -> ImportOptions:
        if self.policy_target != "thing_group":
            return self
        if len(self.thing_groups) != 1 or not self.policies:
            raise ValueError(
                "policy_target='thing_group' (--policy-via-group) needs exactly one thing group and "
                f"at least one policy; got {len(self.thing_groups)} thing group(s) and "
                f"{len(self.policies)} policy(ies)"
            )
        return self

    @property
    def certificate_policies(self) -> tuple[str, ...]:
        """The policies attached to each certificate: ``policies``, or none when they go to
        the thing group (``policy_target="thing_group"``)."""
        return self.policies if self.policy_target == "certificate" else ()

    @property
    def group_policies(self) -> tuple[str, ...]:
        """The policies attached once to the thing group (``policy_target="thing_group"``)."""
        return self.policies if self.policy_target == "thing_group" else ()

    @field_validator("attributes", mode="before")
    @classmethod
    def _read_attributes(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return dict(value)
        return value

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            problem = attribute_problem(name, text)
            if problem is not None:
                raise ValueError(problem)
        if OWNER_ATTRIBUTE in value:
            raise ValueError(
                f"attribute {OWNER_ATTRIBUTE!r} is the importer's own (it names the certificate)"
            )
        return value

    @field_validator("ca_certificate", mode="before")
    @classmethod
    def _read_ca(cls, value: object) -> object:
        if isinstance(value, (str, bytes)):
            return DeviceCertificate.from_pem(value, source="ca_certificate")
        return value

    @field_validator("ca_certificate")
    @classmethod
    def _check_ca(cls, value: DeviceCertificate | None) -> DeviceCertificate | None:
        if value is not None and not value.is_ca:
            raise ValueError(f"certificate {value.certificate_id} is not a CA certificate (basicConstraints)")
        return value

    @model_validator(mode="after")
    def _check_attribute_count(self) -> ImportOptions:
        if self.manifest_attributes and VENDOR_ID_ATTRIBUTE in self.attributes:
            raise ValueError(
                f"attribute {VENDOR_ID_ATTRIBUTE!r} is filled from the manifest; rename it, or pass "
                "manifest_attributes=False (--no-manifest-attributes)"
            )
        limit = _MAX_ATTRIBUTES_TYPED if self.thing_type is not None else _MAX_ATTRIBUTES_UNTYPED
        own = [OWNER_ATTRIBUTE] + ([VENDOR_ID_ATTRIBUTE] if self.manifest_attributes else [])
        count = len(self.attributes) + len(own)
        if count > limit:
            kind = "with a thing type" if self.thing_type is not None else "without a thing type"
            raise ValueError(
                f"a thing {kind} holds at most {limit} attributes; {count} asked: "
                f"{len(self.attributes)} given and the importer's own {', '.join(own)} "
                "(give fewer, a thing type, or manifest_attributes=False / --no-manifest-attributes)"
            )
        return self

    @field_validator("thing_name_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        # refused here, once, rather than at the naming step of every certificate
        return check_prefix(value) or None

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
            "billing_group": self.billing_group,
            "attributes": dict(self.attributes),
            "manifest_attributes": self.manifest_attributes,
            "ca_certificate_id": self.ca_certificate.certificate_id if self.ca_certificate else None,
            "exclusive": self.exclusive,
            "policy_target": self.policy_target,
        }

    def trust(self) -> TrustStore | None:
        """The trust store certificates are checked against: ``trust_store``, else one made of
        ``ca_certificate``, else None."""
        if self.trust_store is not None:
            return self.trust_store
        if self.ca_certificate is not None:
            return _ca_store(self.ca_certificate)
        return None

    def thing_attributes(self, certificate_id: str, vendor_id: str | None = None) -> dict[str, str]:
        """The attributes a thing is created with for ``certificate_id``: `OWNER_ATTRIBUTE`,
        ``attributes`` and, with ``manifest_attributes``, the entry's ``vendor_id``."""
        wanted = {OWNER_ATTRIBUTE: certificate_id, **self.attributes}
        if self.manifest_attributes and vendor_id:
            wanted[VENDOR_ID_ATTRIBUTE] = vendor_id
        return wanted

    def thing_config(self) -> str | None:
        """A short digest of what a thing is asked to carry beyond its type (billing group,
        attributes, whether the manifest's go on it), or None when nothing is: a ledger keeps
        it, so a re-run that asks for other ones is not taken as done."""
        if self.billing_group is None and not self.attributes and self.manifest_attributes:
            return None
        text = json.dumps(
            [self.billing_group, sorted(self.attributes.items()), self.manifest_attributes],
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def calls_per_certificate(self) -> int:
        """The IoT calls one new certificate costs: 3 plus one per policy attached to it and
        one per group (4 with a group policy: the policies go to the group once per run)."""
        return 3 + len(self.certificate_policies) + len(self.thing_groups)

    def calls_by_operation(self) -> dict[str, float]:
        """The IoT calls one new certificate costs, per ``service.Operation`` (what
        `plan_concurrency` takes)."""
        register = "iot.RegisterCertificate" if self.ca_certificate else "iot.RegisterCertificateWithoutCA"
        calls: dict[str, float] = {register: 1.0, "iot.CreateThing": 1.0, "iot.AttachThingPrincipal": 1.0}
        if self.certificate_policies:
            calls["iot.AttachPolicy"] = float(len(self.certificate_policies))
        if self.thing_groups:
            calls["iot.AddThingToThingGroup"] = float(len(self.thing_groups))
        return calls


_CA_STORES: dict[str, TrustStore] = {}


def _ca_store(ca: DeviceCertificate) -> TrustStore:
    """One trust store per CA, built once (its verification store is cached inside)."""
    store = _CA_STORES.get(ca.certificate_id)
    if store is None:
        store = _CA_STORES.setdefault(ca.certificate_id, TrustStore(certificates=(ca,)))
    return store


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
    ``certificate_status`` is the status AWS (or the ledger) holds for a certificate
    registered before when it differs from the one asked, and ``note`` says so in one line
    (with ``recheck`` the status was set, and ``note`` says that instead).
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
    certificate_status: str | None = None
    note: str | None = None

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

    ``noted`` counts the outcomes that carry a ``note`` (a certificate registered before with
    another status than the one asked), and ``notes`` lists the first 1,000 of them.

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
    noted: int = Field(default=0, ge=0)
    notes: list[ImportOutcome] = Field(default_factory=list[ImportOutcome])
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
        if self.noted:
            text += f"; {self.noted} with a note (e.g. another certificate status in AWS)"
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
