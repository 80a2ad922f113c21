"""What the fleet operations take: devices, the wiring a device should have, the drift words.

A device reaches an operation as a `DeviceRef`: a certificate id and the thing it belongs to,
from a manifest (named as the importer names it) or from a ledger record. `ExpectedState`
says what `verify_devices` compares AWS with; `Drift` is one difference it found, in a small
vocabulary (`ProblemCode`) with an English line for people. `RetryRounds` bounds how many
times an operation sends a device again after a transient failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thingpress_core._config import ConfigModel
from thingpress_core._vocabulary import RegistrationStatus
from thingpress_core.certificates import DeviceCertificate, ThingNaming, thing_name_for
from thingpress_core.certificates._naming import check_prefix

if TYPE_CHECKING:
    from thingpress_core.importer import ImportOptions
    from thingpress_core.ledger import DeviceRecord, RunRecord
    from thingpress_core.manifests import ManifestEntry

__all__ = [
    "DeviceRef",
    "Drift",
    "ExpectedState",
    "ProblemCode",
    "RetryRounds",
]

#: One kind of drift `verify_devices` reports:
#:
#: - ``certificate_missing``: AWS IoT does not know the certificate;
#: - ``certificate_status``: it has another status than expected (e.g. INACTIVE);
#: - ``thing_missing``: the thing does not exist (its attachment and groups cannot either,
#:   so those are not reported again);
#: - ``thing_type``: the thing has another thing type, or none;
#: - ``principal_not_attached``: the certificate is not attached to its thing;
#: - ``other_things``: the certificate is attached to other things too;
#: - ``policy_missing``: an expected policy is not attached to the certificate (in
#:   group-policy mode: to the device's thing group);
#: - ``group_missing``: the thing is not in an expected thing group.
ProblemCode: TypeAlias = Literal[
    "certificate_missing",
    "certificate_status",
    "thing_missing",
    "thing_type",
    "principal_not_attached",
    "other_things",
    "policy_missing",
    "group_missing",
]

_CERTIFICATE_ID = r"^[0-9a-f]{64}$"


class Drift(BaseModel):
    """One difference between what AWS holds for a device and what was expected.

    ``code`` is the machine word (`ProblemCode`), ``detail`` one English line naming the
    certificate or thing; ``subject`` the policy, group or thing it is about (when there is
    one); ``expected`` and ``found`` the two values compared (a status, a thing type, the other
    things' names), when there are values to show.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    code: ProblemCode
    detail: str
    subject: str | None = None
    expected: str | None = None
    found: str | None = None

    def __str__(self) -> str:
        return self.detail


class DeviceRef(ConfigModel):
    """A device an operation works on: its certificate and the thing it belongs to.

    Build one from a manifest entry or certificate (`from_entry`, named exactly as the
    importer names it) or from a ledger record (`from_record`), or directly. ``certificate``
    is the certificate itself when the device came from a manifest: `verify_devices` needs it
    to repair a device (registering a certificate takes its body); it is never shown in a
    repr or dumped. ``status`` is the certificate status the ledger recorded, which
    `verify_devices` expects when `ExpectedState.status` is None.

    Invalid values (a certificate id that is not 64 hex digits) raise `ConfigurationError`.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    certificate_id: str = Field(pattern=_CERTIFICATE_ID)
    thing_name: str | None = Field(default=None, min_length=1, max_length=128)
    certificate_arn: str | None = None
    source: str | None = None
    index: int | None = None
    status: str | None = None
    certificate: DeviceCertificate | None = Field(default=None, repr=False, exclude=True)

    @field_validator("certificate_id", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def from_record(cls, record: DeviceRecord) -> DeviceRef:
        """The device a ledger record describes (no certificate body: a ledger keeps none)."""
        return cls(
            certificate_id=record.certificate_id,
            thing_name=record.thing_name,
            certificate_arn=record.certificate_arn,
            source=record.source,
            index=record.entry_index,
            status=record.certificate_status,
        )

    @classmethod
    def from_entry(
        cls,
        item: ManifestEntry | DeviceCertificate,
        *,
        naming: ThingNaming | None = None,
        prefix: str | None = None,
    ) -> DeviceRef:
        """The device of a manifest entry (or a bare certificate), its thing named as the
        importer names it with the same ``naming`` and ``prefix`` (`thing_name_for`)."""
        if isinstance(item, DeviceCertificate):
            certificate, offered, source, index = item, None, None, None
        else:
            certificate, offered, source, index = item.certificate, item.thing_name, item.source, item.index
        name = thing_name_for(certificate, naming=naming, prefix=prefix, offered=offered)
        return cls(
            certificate_id=certificate.certificate_id,
            thing_name=name,
            source=source,
            index=index,
            certificate=certificate,
        )


class ExpectedState(ConfigModel):
    """How every device should be wired: what `verify_devices` compares AWS with.

    Attributes:
        policies: policies that must be attached to each certificate (more may be).
        thing_groups: groups each thing must be in (it may be in more).
        thing_type: the thing type each thing must have; None: any (not checked).
        status: the certificate status each device must have; None: the status its
            `DeviceRef` carries (what the ledger recorded), else not checked.
        allow_multiple_things: a certificate attached to other things too is not drift.
        naming: how a manifest entry's thing is named (as the import named it; see
            `ImportOptions`).
        thing_name_prefix: prepended to that name, as the import did.
        policy_target: where the import attached the policies: ``"certificate"`` (each
            certificate must hold them) or ``"thing_group"`` (the one thing group must hold
            them, checked once per verify, and each thing must be in the group; a policy the
            group lacks is drift of every device).

    `from_options` takes these from the `ImportOptions` of an import, `from_run` from the
    options a ledger's run record kept.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    policies: tuple[str, ...] = Field(default=(), max_length=10)
    thing_groups: tuple[str, ...] = Field(default=(), max_length=10)
    thing_type: str | None = Field(default=None, min_length=1, max_length=128)
    status: RegistrationStatus | None = None
    allow_multiple_things: bool = False
    naming: ThingNaming | None = None
    thing_name_prefix: str | None = Field(default=None, max_length=127)
    policy_target: Literal["certificate", "thing_group"] = "certificate"

    @field_validator("thing_name_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        # refused here, once, rather than at the naming step of every certificate
        return check_prefix(value) or None

    @model_validator(mode="after")
    def _check_policy_target(self) -> ExpectedState:
        if self.policy_target == "thing_group" and (len(self.thing_groups) != 1 or not self.policies):
            raise ValueError(
                "policy_target='thing_group' needs exactly one thing group and at least one policy"
            )
        return self

    @property
    def certificate_policies(self) -> tuple[str, ...]:
        """The policies each certificate must hold (none when they are on the thing group)."""
        return self.policies if self.policy_target == "certificate" else ()

    @classmethod
    def from_options(cls, options: ImportOptions) -> ExpectedState:
        """What an import with ``options`` wires up (status included)."""
        return cls(
            policies=options.policies,
            thing_groups=options.thing_groups,
            thing_type=options.thing_type,
            status=options.status,
            allow_multiple_things=options.allow_multiple_things,
            naming=options.naming,
            thing_name_prefix=options.thing_name_prefix,
            policy_target=options.policy_target,
        )

    @classmethod
    def from_run(cls, run: RunRecord) -> ExpectedState:
        """What the import ``run`` was asked to wire up, from the options its record kept.

        The status is left to each device's record (a later activate or deactivate changes
        it); a naming function is not kept by a ledger, so devices should come from the ledger
        (`DeviceRef.from_record`), which knows each thing's name.
        """
        options = run.options

        def names(key: str) -> tuple[str, ...]:
            value = options.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        thing_type = options.get("thing_type")
        naming = options.get("naming")
        prefix = options.get("thing_name_prefix")
        groups = names("thing_groups")
        grouped = options.get("policy_target") == "thing_group" and len(groups) == 1
        return cls(
            policies=names("policies"),
            thing_groups=names("thing_groups"),
            thing_type=thing_type if isinstance(thing_type, str) else None,
            allow_multiple_things=options.get("allow_multiple_things") is True,
            naming=naming if naming in ("common_name", "certificate_id") else None,
            thing_name_prefix=prefix if isinstance(prefix, str) else None,
            policy_target="thing_group" if grouped and names("policies") else "certificate",
        )

    def summary(self) -> dict[str, object]:
        """The expectation as JSON values, for a run record."""
        naming = self.naming if isinstance(self.naming, str) or self.naming is None else "function"
        return {
            "policies": list(self.policies),
            "thing_groups": list(self.thing_groups),
            "thing_type": self.thing_type,
            "status": self.status,
            "allow_multiple_things": self.allow_multiple_things,
            "naming": naming,
            "thing_name_prefix": self.thing_name_prefix,
            "policy_target": self.policy_target,
        }


class RetryRounds(ConfigModel):
    """How an operation retries devices whose failure was transient (throttled after
    botocore's retries, 5xx, an open circuit breaker).

    Such a device waits until the devices in flight are done (or until
    ``max(256, 32 * concurrency)`` wait) and is sent again after a pause, resuming at the
    step that failed, up to ``rounds`` more times. The pause is ``pause`` seconds doubled for
    each attempt the waiting devices already had (at most 30 s), and never shorter than an
    open breaker's ``retry_after``. An attempt an open breaker or the rate limiter refused
    before any call does not count against ``rounds``; ``deadline`` (seconds after a device's
    first transient failure, by the clock or by the pauses asked for, whichever is more) ends
    its rounds anyway. None: no deadline.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(default=3, ge=0, le=20)
    pause: float = Field(default=1.0, ge=0.0, le=60.0)
    deadline: float | None = Field(default=900.0, gt=0.0)
