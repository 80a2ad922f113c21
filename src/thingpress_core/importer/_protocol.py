"""The few `IoTService` methods the importer calls, as a structural type.

`IoTService` satisfies it; so does any test double with the same methods, which is how the
importer is tested without AWS and how the memory benchmark runs 100,000 certificates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import datetime

    from thingpress_core._vocabulary import RegistrationStatus
    from thingpress_core.certificates import DeviceCertificate

__all__ = ["CallCounts", "CertificateState", "IoTOperations", "RegistrationResult", "ThingState"]


class RegistrationResult(Protocol):
    """What `register_certificate` answers (`CertificateRegistration`)."""

    @property
    def certificate_id(self) -> str: ...
    @property
    def certificate_arn(self) -> str: ...
    @property
    def created(self) -> bool: ...


class ThingState(Protocol):
    """What `describe_thing` answers (`ThingDescription`): the parts the importer reads."""

    @property
    def thing_type(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def billing_group(self) -> str | None: ...


class CertificateState(Protocol):
    """What `describe_certificate` and `describe_ca_certificate` answer
    (`CertificateDescription`): the parts the importer reads."""

    @property
    def status(self) -> str: ...


class CallCounts(Protocol):
    """What `stats` answers (`CallStats`): calls and failures per ``service.Operation``."""

    @property
    def calls(self) -> Mapping[str, int]:
        """Calls made, per operation."""
        ...

    @property
    def failures(self) -> Mapping[str, int]:
        """Calls that failed, per operation."""
        ...


class IoTOperations(Protocol):
    """The `IoTService` methods `CertificateImporter` uses."""

    def stats(self) -> CallCounts:
        """Calls and failures so far, per operation."""
        ...

    def register_certificate(
        self,
        cert: DeviceCertificate,
        /,
        *,
        status: RegistrationStatus,
        created_after: datetime.datetime | None,
        ca_certificate: DeviceCertificate | None = None,
    ) -> RegistrationResult:
        """Register (with the CA's PEM when one is given; the importer passes
        ``ca_certificate`` only then); ``created`` False when it existed before
        ``created_after`` (or the call)."""
        ...

    def create_thing(
        self,
        name: str,
        /,
        *,
        thing_type: str | None,
        attributes: Mapping[str, str] | None,
        billing_group: str | None = None,
    ) -> object:
        """Create (in the billing group when one is given; the importer passes
        ``billing_group`` only then); raise `ResourceConflictError` when it exists with
        another configuration."""
        ...

    def add_thing_to_billing_group(self, thing_name: str, billing_group: str, /) -> object:
        """Move a thing to a billing group (only for a thing that exists in another one)."""
        ...

    def describe_certificate(self, certificate_id: str, /) -> CertificateState:
        """A registered certificate's status (only with ``recheck``)."""
        ...

    def update_certificate_status(self, certificate_id: str, status: RegistrationStatus, /) -> object:
        """Set a certificate's status (only with ``recheck``, when AWS holds another)."""
        ...

    def describe_thing(self, name: str, /) -> ThingState:
        """The thing's type and attributes."""
        ...

    def update_thing(
        self,
        name: str,
        /,
        *,
        thing_type: str | None,
        attributes: Mapping[str, str] | None,
        expected_version: int | None = None,
    ) -> object:
        """Set the type and merge the attributes (refused with `ResourceConflictError`,
        VersionConflictException, when ``expected_version`` is not the thing's version)."""
        ...

    def list_thing_principals(self, thing_name: str, /) -> Sequence[str]:
        """The principal ARNs on a thing."""
        ...

    def list_principal_things(self, certificate_arn: str, /) -> Sequence[str]:
        """The names of the things a certificate is on."""
        ...

    def attach_thing_principal(
        self, thing_name: str, certificate_arn: str, /, *, exclusive: bool = False
    ) -> object:
        """Attach the certificate to the thing (``exclusive``: as its only thing,
        ``EXCLUSIVE_THING``; the importer passes it only then)."""
        ...

    def attach_policy(self, policy_name: str, certificate_arn: str, /) -> object:
        """Attach a policy to a certificate or a thing group's ARN (AttachPolicy)."""
        ...

    def add_thing_to_group(self, thing_name: str, group_name: str, /) -> object:
        """Add the thing to a static thing group (AddThingToThingGroup)."""
        ...

    def get_policy(self, name: str, /) -> object:
        """Pre-flight: the policy exists (raises `ResourceNotFoundError`)."""
        ...

    def describe_thing_group(self, name: str, /) -> object:
        """Pre-flight: the thing group exists (raises `ResourceNotFoundError`)."""
        ...

    def describe_thing_type(self, name: str, /) -> object:
        """Pre-flight: the thing type exists (raises `ResourceNotFoundError`)."""
        ...

    def describe_billing_group(self, name: str, /) -> object:
        """Pre-flight: the billing group exists (raises `ResourceNotFoundError`)."""
        ...

    def describe_ca_certificate(self, certificate_id: str, /) -> CertificateState:
        """The CA certificate's status (registration with a CA)."""
        ...
