"""The `IoTService` methods the fleet operations call, as a structural type.

`IoTService` satisfies it; so does a test double with the same methods. It extends the
importer's `IoTOperations` because `verify_devices` repairs with the importer's own steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from thingpress_core.importer import IoTOperations

if TYPE_CHECKING:
    from thingpress_core._vocabulary import CertificateStatus

__all__ = ["CertificateState", "FleetOperations"]


class CertificateState(Protocol):
    """What `describe_certificate` answers (`CertificateDescription`): the parts read here."""

    @property
    def certificate_arn(self) -> str: ...
    @property
    def status(self) -> str: ...


class FleetOperations(IoTOperations, Protocol):
    """The `IoTService` methods `verify_devices`, `set_status` and `rollback_run` use."""

    def describe_certificate(self, certificate_id: str, /) -> CertificateState:
        """The certificate's ARN and status; `ResourceNotFoundError` when AWS does not know it."""
        ...

    def update_certificate_status(self, certificate_id: str, status: CertificateStatus, /) -> object: ...

    def list_attached_policies(self, target_arn: str, /) -> Sequence[str]:
        """The names of the policies attached to a certificate ARN."""
        ...

    def list_thing_groups_for_thing(self, thing_name: str, /) -> Sequence[str]:
        """The names of the groups a thing is in."""
        ...

    def detach_policy(self, policy_name: str, target_arn: str, /) -> object: ...

    def detach_thing_principal(self, thing_name: str, principal_arn: str, /) -> object: ...

    def remove_thing_from_group(self, thing_name: str, group_name: str, /) -> object: ...

    def delete_thing(self, thing_name: str, /) -> object: ...

    def delete_certificate(self, certificate_id: str, /) -> object: ...

    def certificate_arn(self, certificate_id: str, /) -> str:
        """The ARN of a certificate, built locally."""
        ...
