"""`IoTService`: the AWS IoT Core calls a certificate import and fleet work need, one call each.

The happy path for one certificate with a policy, a group and a thing type is five calls:
`register_certificate`, `ensure_thing`, `attach_thing_principal`, `attach_policy`,
`add_thing_to_group`. The fleet operations read a device back (`list_attached_policies`,
`list_thing_groups_for_thing`, ...) and take it apart again (`detach_policy`,
`detach_thing_principal`, `remove_thing_from_group`, `delete_thing`, `delete_certificate`).
Everything goes through the one call path (rate limit, circuit breaker, error mapping,
counters) and raises from the [`errors`][thingpress_core.errors] tree; listings read every page.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from thingpress_core._vocabulary import CertificateStatus
from thingpress_core.errors import ResourceConflictError
from thingpress_core.services._call import ServiceFacade
from thingpress_core.services._iot_checks import (
    certificate_id_of,
    check_certificate_id,
    check_status,
    check_thing_name,
)
from thingpress_core.services._models import (
    CertificateDescription,
    CertificateRegistration,
    PolicyInfo,
    Thing,
    ThingDescription,
    ThingGroupInfo,
    ThingTypeInfo,
    description_from,
)
from thingpress_core.services._paging import pages

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

    from thingpress_core.certificates import DeviceCertificate

__all__ = ["CertificateStatus", "IoTService"]


# How far this machine's clock may run ahead of AWS's when a creation time is compared with
# the time a request was sent (an NTP-synchronised host is well within it).
_CLOCK_SKEW = _dt.timedelta(seconds=2)
_PAGE_SIZE = 250


class IoTService(ServiceFacade):
    """Typed AWS IoT Core facade.

    Args:
        factory: where the boto3 client comes from; built from ``settings`` when omitted.
        settings: defaults to the factory's settings, else `ThingpressSettings()`.
        registry: circuit breakers (one per ``iot.Operation``); built from the settings.
        limiter: per-operation rate limits (the AWS IoT quotas × quota share by default).

    Examples:
        ```python
        from pathlib import Path

        from thingpress_core import ClientFactory, IoTService, ThingpressSettings
        from thingpress_core.certificates import load_certificates

        cert, *_ = load_certificates(Path("devices.pem").read_bytes())
        iot = IoTService(ClientFactory(ThingpressSettings(region="eu-west-1")))
        reg = iot.register_certificate(cert)
        thing = iot.ensure_thing("device-000001")
        iot.attach_thing_principal(thing.name, reg.certificate_arn)
        ```
    """

    _service = "iot"
    _logger_name = "thingpress_core.services.iot"

    def _iot(self) -> IoTClient:
        client: IoTClient = self._service_client()
        return client

    # ------------------------------------------------------------------------ identity

    def certificate_arn(self, certificate_id: str) -> str:
        """The ARN of ``certificate_id``, built locally (no call beyond a cached account id)."""
        check_certificate_id(certificate_id, "certificate_arn")
        return self._arn(f"cert/{certificate_id}")

    def thing_arn(self, thing_name: str) -> str:
        """The ARN of thing ``thing_name``, built locally."""
        check_thing_name(thing_name, "thing_arn")
        return self._arn(f"thing/{thing_name}")

    def _arn(self, resource: str) -> str:
        factory = self.factory
        return f"arn:{factory.partition}:iot:{factory.region}:{factory.account_id()}:{resource}"

    # -------------------------------------------------------------------- registration

    def register_certificate(
        self,
        cert: DeviceCertificate,
        *,
        status: CertificateStatus = "ACTIVE",
        created_after: _dt.datetime | None = None,
        ca_certificate: DeviceCertificate | None = None,
    ) -> CertificateRegistration:
        """Register ``cert``: one ``RegisterCertificateWithoutCA`` call, or with
        ``ca_certificate`` (a CA registered in the account) one ``RegisterCertificate`` call
        with the CA's PEM, so AWS records the certificate as issued by that CA.

        A certificate that is registered already (HTTP 409) is not an error: the result has
        ``created=False`` and the id and ARN from the error (or computed from the DER). Only
        ResourceAlreadyExistsException means that: another conflict (CertificateStateException,
        the certificate's state forbids it) is raised as `ResourceConflictError`.

        A lost answer is told apart from an earlier registration: when an earlier attempt of
        this call may have been carried out by AWS with its answer lost (a dropped connection
        after the send, a 5xx; botocore then retried), or when ``created_after`` says an
        earlier request of the caller may have, one ``DescribeCertificate`` call reads the
        certificate's creation time, and a certificate created at or after that request is
        reported ``created=True``. That extra call is made only on that path. The comparison
        trusts this machine's clock to within 2 seconds of AWS's (NTP); a clock further ahead
        reports such a certificate ``created=False``, never the other way round.
        """
        cert_id = cert.certificate_id
        operation = "RegisterCertificateWithoutCA" if ca_certificate is None else "RegisterCertificate"
        check_status(status, operation, cert_id)
        sent_at = _dt.datetime.now(_dt.timezone.utc)
        try:
            if ca_certificate is None:
                response = self._call_path().call(
                    operation,
                    self._iot().register_certificate_without_ca,
                    {"certificatePem": cert.pem, "status": status},
                    certificate_id=cert_id,
                    expected=(ResourceConflictError,),
                )
            else:
                response = self._call_path().call(
                    operation,
                    self._iot().register_certificate,
                    {"certificatePem": cert.pem, "caCertificatePem": ca_certificate.pem, "status": status},
                    certificate_id=cert_id,
                    expected=(ResourceConflictError,),
                )
        except ResourceConflictError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                raise  # e.g. CertificateStateException: the certificate's state forbids it
            found_id = exc.resource_id or cert_id
            arn = exc.resource_arn or self.certificate_arn(found_id)
            since = (
                created_after if created_after is not None else sent_at if exc.uncertain_attempts else None
            )
            created = since is not None and self._created_since(found_id, since)
            self._log.info(
                "certificate %s %s",
                found_id,
                "was registered by an earlier attempt whose answer was lost"
                if created
                else "is registered already",
                extra={
                    "operation": f"iot.{operation}",
                    "certificate_id": found_id,
                    "thing_name": None,
                },
            )
            return CertificateRegistration(certificate_id=found_id, certificate_arn=arn, created=created)
        found_id = response.get("certificateId") or cert_id
        if found_id != cert_id:
            self._log.warning(
                "AWS IoT gave certificate id %s, the DER digest is %s",
                found_id,
                cert_id,
                extra={
                    "operation": f"iot.{operation}",
                    "certificate_id": cert_id,
                    "thing_name": None,
                },
            )
        arn = response.get("certificateArn") or self.certificate_arn(found_id)
        return CertificateRegistration(certificate_id=found_id, certificate_arn=arn, created=True)

    def _created_since(self, certificate_id: str, since: _dt.datetime) -> bool:
        """True when AWS created ``certificate_id`` at or after ``since`` (minus clock skew)."""
        created = self.describe_certificate(certificate_id).creation_date
        if created is None:
            return False
        if created.tzinfo is None:
            created = created.replace(tzinfo=_dt.timezone.utc)
        return created >= since - _CLOCK_SKEW

    def update_certificate_status(self, certificate_id: str, status: CertificateStatus) -> None:
        """Set a certificate's status (``UpdateCertificate``)."""
        check_certificate_id(certificate_id, "UpdateCertificate")
        check_status(status, "UpdateCertificate", certificate_id)
        self._call_path().call(
            "UpdateCertificate",
            self._iot().update_certificate,
            {"certificateId": certificate_id, "newStatus": status},
            certificate_id=certificate_id,
        )

    def describe_certificate(self, certificate_id: str) -> CertificateDescription:
        """What AWS IoT knows about ``certificate_id``; `ResourceNotFoundError` when unknown.

        A throttle or outage is raised as such, never read as "missing".
        """
        check_certificate_id(certificate_id, "DescribeCertificate")
        response = self._call_path().call(
            "DescribeCertificate",
            self._iot().describe_certificate,
            {"certificateId": certificate_id},
            certificate_id=certificate_id,
        )
        return description_from(response, certificate_id, self.certificate_arn(certificate_id))

    def describe_ca_certificate(self, certificate_id: str) -> CertificateDescription:
        """CA certificate ``certificate_id`` as AWS IoT holds it (``DescribeCACertificate``):
        its status (``ACTIVE``, ``INACTIVE``) and mode (``DEFAULT``, ``SNI_ONLY``) matter to an
        import with it; `ResourceNotFoundError` when it is not registered in the account."""
        check_certificate_id(certificate_id, "DescribeCACertificate")
        response = self._call_path().call(
            "DescribeCACertificate",
            self._iot().describe_ca_certificate,
            {"certificateId": certificate_id},
            certificate_id=certificate_id,
        )
        return description_from(response, certificate_id, self._arn(f"cacert/{certificate_id}"))

    # -------------------------------------------------------------------------- things

    def ensure_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Thing:
        """Make sure thing ``name`` exists with this type and attributes.

        One ``CreateThing`` call when the thing is new or already has this configuration.
        When it exists with another one (HTTP 409), one ``UpdateThing`` call brings it in line
        (attributes are merged) and the result says ``created=False, updated=True``. With
        neither ``thing_type`` nor ``attributes`` there is nothing to bring in line: a 409
        then gives ``created=False, updated=False`` and no UpdateThing call.
        """
        check_thing_name(name, "CreateThing")
        params: dict[str, Any] = {"thingName": name}
        if thing_type is not None:
            params["thingTypeName"] = thing_type
        if attributes:
            params["attributePayload"] = {"attributes": dict(attributes)}
        path = self._call_path()
        try:
            response = path.call(
                "CreateThing",
                self._iot().create_thing,
                params,
                thing_name=name,
                expected=(ResourceConflictError,),
            )
        except ResourceConflictError:
            if thing_type is None and not attributes:
                return Thing(name=name, arn=self.thing_arn(name), thing_type=None, created=False)
            update: dict[str, Any] = {"thingName": name}
            if thing_type is not None:
                update["thingTypeName"] = thing_type
            if attributes:
                update["attributePayload"] = {"attributes": dict(attributes), "merge": True}
            path.call("UpdateThing", self._iot().update_thing, update, thing_name=name)
            self._log.info(
                "thing %s existed with another configuration; updated",
                name,
                extra={"operation": "iot.UpdateThing", "certificate_id": None, "thing_name": name},
            )
            return Thing(
                name=name, arn=self.thing_arn(name), thing_type=thing_type, created=False, updated=True
            )
        arn = response.get("thingArn") or self.thing_arn(name)
        return Thing(name=name, arn=arn, thing_type=thing_type, created=True, updated=False)

    def create_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
        billing_group: str | None = None,
    ) -> Thing:
        """One ``CreateThing`` call; a thing that exists with another configuration raises.

        AWS answers a repeat with the same configuration like a creation (``created=True``),
        and a thing that exists with another type or attributes with
        [`ResourceConflictError`][thingpress_core.errors.ResourceConflictError] (expected:
        logged at DEBUG, not counted as a failure). `ensure_thing` is the variant that updates instead.
        ``billing_group`` puts the thing in that billing group in the same call.
        """
        check_thing_name(name, "CreateThing")
        params: dict[str, Any] = {"thingName": name}
        if thing_type is not None:
            params["thingTypeName"] = thing_type
        if attributes:
            params["attributePayload"] = {"attributes": dict(attributes)}
        if billing_group is not None:
            params["billingGroupName"] = billing_group
        response = self._call_path().call(
            "CreateThing",
            self._iot().create_thing,
            params,
            thing_name=name,
            expected=(ResourceConflictError,),
        )
        arn = response.get("thingArn") or self.thing_arn(name)
        return Thing(name=name, arn=arn, thing_type=thing_type, created=True, updated=False)

    def update_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
        expected_version: int | None = None,
    ) -> None:
        """One ``UpdateThing`` call: set the thing type and merge ``attributes`` in.

        With ``expected_version`` (a `ThingDescription.version`) AWS refuses the update when the
        thing changed since it was read: `ResourceConflictError`, code VersionConflictException.
        """
        check_thing_name(name, "UpdateThing")
        update: dict[str, Any] = {"thingName": name}
        if expected_version is not None:
            update["expectedVersion"] = expected_version
        if thing_type is not None:
            update["thingTypeName"] = thing_type
        if attributes:
            update["attributePayload"] = {"attributes": dict(attributes), "merge": True}
        self._call_path().call("UpdateThing", self._iot().update_thing, update, thing_name=name)

    def describe_thing(self, name: str) -> ThingDescription:
        """Thing ``name`` (``DescribeThing``); `ResourceNotFoundError` when it does not exist."""
        check_thing_name(name, "DescribeThing")
        response = self._call_path().call(
            "DescribeThing", self._iot().describe_thing, {"thingName": name}, thing_name=name
        )
        attributes: Mapping[str, Any] = response.get("attributes") or {}
        return ThingDescription(
            name=str(response.get("thingName") or name),
            arn=str(response.get("thingArn") or self.thing_arn(name)),
            thing_id=response.get("thingId") or None,
            thing_type=response.get("thingTypeName") or None,
            attributes={str(k): str(v) for k, v in attributes.items()},
            billing_group=response.get("billingGroupName") or None,
            version=response.get("version"),
        )

    def list_thing_principals(self, thing_name: str) -> tuple[str, ...]:
        """The principal ARNs (certificates) attached to a thing, every page
        (``ListThingPrincipals``, one call per page of 250)."""
        check_thing_name(thing_name, "ListThingPrincipals")
        listing = pages(
            self._call_path(),
            "ListThingPrincipals",
            self._iot().list_thing_principals,
            {"thingName": thing_name, "maxResults": _PAGE_SIZE},
            thing_name=thing_name,
        )
        return tuple(str(p) for page in listing for p in page.get("principals") or ())

    def list_principal_things(self, certificate_arn: str) -> tuple[str, ...]:
        """The names of the things a certificate is attached to, every page
        (``ListPrincipalThings``, one call per page of 250)."""
        listing = pages(
            self._call_path(),
            "ListPrincipalThings",
            self._iot().list_principal_things,
            {"principal": certificate_arn, "maxResults": _PAGE_SIZE},
            certificate_id=certificate_id_of(certificate_arn),
        )
        return tuple(str(t) for page in listing for t in page.get("things") or ())

    def attach_thing_principal(
        self, thing_name: str, certificate_arn: str, *, exclusive: bool = False
    ) -> None:
        """Attach a certificate to a thing (repeating it is harmless).

        ``exclusive=True`` asks AWS to make it the thing's only principal
        (``thingPrincipalType=EXCLUSIVE_THING``).
        """
        check_thing_name(thing_name, "AttachThingPrincipal")
        params: dict[str, Any] = {"thingName": thing_name, "principal": certificate_arn}
        if exclusive:
            params["thingPrincipalType"] = "EXCLUSIVE_THING"
        self._call_path().call(
            "AttachThingPrincipal",
            self._iot().attach_thing_principal,
            params,
            thing_name=thing_name,
            certificate_id=certificate_id_of(certificate_arn),
        )

    def attach_policy(self, policy_name: str, certificate_arn: str) -> None:
        """Attach IoT policy ``policy_name`` to a certificate (repeating it is harmless)."""
        self._call_path().call(
            "AttachPolicy",
            self._iot().attach_policy,
            {"policyName": policy_name, "target": certificate_arn},
            certificate_id=certificate_id_of(certificate_arn),
        )

    def add_thing_to_billing_group(self, thing_name: str, billing_group: str) -> None:
        """Put a thing in a billing group, both by name (``AddThingToBillingGroup``); a thing
        is in at most one billing group, so this moves it from another one."""
        check_thing_name(thing_name, "AddThingToBillingGroup")
        self._call_path().call(
            "AddThingToBillingGroup",
            self._iot().add_thing_to_billing_group,
            {"billingGroupName": billing_group, "thingName": thing_name},
            thing_name=thing_name,
        )

    def add_thing_to_group(self, thing_name: str, group_name: str) -> None:
        """Add a thing to a thing group, both by name (no ARN lookup)."""
        check_thing_name(thing_name, "AddThingToThingGroup")
        self._call_path().call(
            "AddThingToThingGroup",
            self._iot().add_thing_to_thing_group,
            {"thingGroupName": group_name, "thingName": thing_name},
            thing_name=thing_name,
        )

    # ------------------------------------------------------------ reading a device back

    def list_attached_policies(self, target_arn: str) -> tuple[str, ...]:
        """The names of the IoT policies attached to a certificate (or other target) ARN,
        every page (``ListAttachedPolicies`` with ``recursive=False``, one call per page of 250).

        Only the policies attached to the target itself: a thing group's policies that reach a
        device through its groups are not listed.
        """
        return tuple(self.iter_attached_policies(target_arn))

    def iter_attached_policies(self, target_arn: str) -> Iterator[str]:
        """`list_attached_policies`, lazily: a page is fetched when the iteration reaches it."""
        listing = pages(
            self._call_path(),
            "ListAttachedPolicies",
            self._iot().list_attached_policies,
            {"target": target_arn, "recursive": False, "pageSize": _PAGE_SIZE},
            token=("marker", "nextMarker"),
            certificate_id=certificate_id_of(target_arn),
        )
        names = (p.get("policyName") for page in listing for p in page.get("policies") or ())
        return (str(name) for name in names if name)

    def list_thing_groups_for_thing(self, thing_name: str) -> tuple[str, ...]:
        """The names of the thing groups, static and dynamic, that a thing is in, every page
        (``ListThingGroupsForThing``, one call per page of 250)."""
        return tuple(self.iter_thing_groups_for_thing(thing_name))

    def iter_thing_groups_for_thing(self, thing_name: str) -> Iterator[str]:
        """`list_thing_groups_for_thing`, lazily: a page is fetched when the iteration reaches it."""
        check_thing_name(thing_name, "ListThingGroupsForThing")
        listing = pages(
            self._call_path(),
            "ListThingGroupsForThing",
            self._iot().list_thing_groups_for_thing,
            {"thingName": thing_name, "maxResults": _PAGE_SIZE},
            thing_name=thing_name,
        )
        names = (g.get("groupName") for page in listing for g in page.get("thingGroups") or ())
        return (str(name) for name in names if name)

    # ------------------------------------------------------------------------ teardown

    def detach_policy(self, policy_name: str, target_arn: str) -> None:
        """Detach IoT policy ``policy_name`` from a certificate (or other target) ARN
        (``DetachPolicy``). On moto, a policy that is not attached is `ResourceNotFoundError`."""
        self._call_path().call(
            "DetachPolicy",
            self._iot().detach_policy,
            {"policyName": policy_name, "target": target_arn},
            certificate_id=certificate_id_of(target_arn),
        )

    def detach_thing_principal(self, thing_name: str, principal_arn: str) -> None:
        """Detach a certificate from a thing (``DetachThingPrincipal``).

        AWS completes the detachment asynchronously: a listing right after it may still show
        the certificate for a few seconds.
        """
        check_thing_name(thing_name, "DetachThingPrincipal")
        self._call_path().call(
            "DetachThingPrincipal",
            self._iot().detach_thing_principal,
            {"thingName": thing_name, "principal": principal_arn},
            thing_name=thing_name,
            certificate_id=certificate_id_of(principal_arn),
        )

    def remove_thing_from_group(self, thing_name: str, group_name: str) -> None:
        """Take a thing out of a static thing group, both by name (``RemoveThingFromThingGroup``).

        AWS answers success when the thing is not in the group.
        """
        check_thing_name(thing_name, "RemoveThingFromThingGroup")
        self._call_path().call(
            "RemoveThingFromThingGroup",
            self._iot().remove_thing_from_thing_group,
            {"thingGroupName": group_name, "thingName": thing_name},
            thing_name=thing_name,
        )

    def delete_thing(self, thing_name: str, *, expected_version: int | None = None) -> None:
        """Delete a thing (``DeleteThing``).

        ``expected_version`` makes AWS refuse (`ResourceConflictError`, VersionConflictException)
        when the thing changed since it was read. A thing that still has a certificate attached
        is `InvalidRequestError`: detach it first. AWS answers success for a thing that does not
        exist (moto answers `ResourceNotFoundError`; both mean it is gone).
        """
        check_thing_name(thing_name, "DeleteThing")
        params: dict[str, Any] = {"thingName": thing_name}
        if expected_version is not None:
            params["expectedVersion"] = expected_version
        self._call_path().call("DeleteThing", self._iot().delete_thing, params, thing_name=thing_name)

    def delete_certificate(self, certificate_id: str, *, force_delete: bool = False) -> None:
        """Delete a certificate from AWS IoT (``DeleteCertificate``).

        AWS deletes only an INACTIVE (or REVOKED) certificate that no thing and, unless
        ``force_delete``, no policy is attached to; otherwise it raises
        `ResourceConflictError` (code CertificateStateException for an ACTIVE one,
        DeleteConflictException for an attached one). An unknown id is `ResourceNotFoundError`.
        """
        check_certificate_id(certificate_id, "DeleteCertificate")
        params: dict[str, Any] = {"certificateId": certificate_id}
        if force_delete:
            params["forceDelete"] = True
        self._call_path().call(
            "DeleteCertificate", self._iot().delete_certificate, params, certificate_id=certificate_id
        )

    # ----------------------------------------------------------------- pre-flight reads

    def get_policy(self, name: str) -> PolicyInfo:
        """IoT policy ``name``; `ResourceNotFoundError` when it does not exist."""
        response = self._call_path().call("GetPolicy", self._iot().get_policy, {"policyName": name})
        return PolicyInfo(
            name=str(response.get("policyName") or name),
            arn=str(response.get("policyArn") or ""),
            document=str(response.get("policyDocument") or ""),
            default_version_id=response.get("defaultVersionId") or None,
        )

    def describe_thing_group(self, name: str) -> ThingGroupInfo:
        """Thing group ``name``; `ResourceNotFoundError` when it does not exist."""
        response = self._call_path().call(
            "DescribeThingGroup", self._iot().describe_thing_group, {"thingGroupName": name}
        )
        props: Mapping[str, Any] = response.get("thingGroupProperties") or {}
        payload: Mapping[str, Any] = props.get("attributePayload") or {}
        meta: Mapping[str, Any] = response.get("thingGroupMetadata") or {}
        return ThingGroupInfo(
            name=str(response.get("thingGroupName") or name),
            arn=str(response.get("thingGroupArn") or ""),
            group_id=response.get("thingGroupId") or None,
            description=props.get("thingGroupDescription") or None,
            parent_group_name=meta.get("parentGroupName") or None,
            attributes=dict(payload.get("attributes") or {}),
        )

    def describe_billing_group(self, name: str) -> str:
        """The ARN of billing group ``name`` (``DescribeBillingGroup``); `ResourceNotFoundError`
        when it does not exist."""
        response = self._call_path().call(
            "DescribeBillingGroup", self._iot().describe_billing_group, {"billingGroupName": name}
        )
        return str(response.get("billingGroupArn") or "")

    def describe_thing_type(self, name: str) -> ThingTypeInfo:
        """Thing type ``name``; `ResourceNotFoundError` when it does not exist."""
        response = self._call_path().call(
            "DescribeThingType", self._iot().describe_thing_type, {"thingTypeName": name}
        )
        props: Mapping[str, Any] = response.get("thingTypeProperties") or {}
        meta: Mapping[str, Any] = response.get("thingTypeMetadata") or {}
        return ThingTypeInfo(
            name=str(response.get("thingTypeName") or name),
            arn=str(response.get("thingTypeArn") or ""),
            type_id=response.get("thingTypeId") or None,
            description=props.get("thingTypeDescription") or None,
            searchable_attributes=tuple(props.get("searchableAttributes") or ()),
            deprecated=bool(meta.get("deprecated", False)),
        )
