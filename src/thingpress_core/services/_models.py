"""The results the facades return: frozen pydantic models with snake_case fields."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import BatchSendError, InvalidRequestError
from thingpress_core.services._failed import FailedMessage

__all__ = [
    "BatchSendReport",
    "CallStats",
    "CertificateDescription",
    "CertificateRegistration",
    "FailedMessage",
    "PolicyInfo",
    "QueueDepth",
    "ReceivedMessage",
    "S3Object",
    "S3ObjectRef",
    "Thing",
    "ThingDescription",
    "ThingGroupInfo",
    "ThingTypeInfo",
]


class _Frozen(BaseModel):
    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")


class CallStats(_Frozen):
    """AWS calls a facade made, per ``service.Operation`` key.

    ``calls`` counts calls that reached botocore (one per facade-level call, however many
    HTTP attempts botocore's retries took; those are in ``retries``). ``failures`` counts calls
    that ended in an error, except the answers a facade expects and turns into a result (a
    409 on RegisterCertificateWithoutCA). ``refused`` counts calls refused before reaching
    AWS by an open circuit breaker or a rate-limit timeout (not included in ``calls``).
    """

    calls: dict[str, int] = Field(default_factory=dict)
    failures: dict[str, int] = Field(default_factory=dict)
    refused: dict[str, int] = Field(default_factory=dict)
    retries: dict[str, int] = Field(default_factory=dict)

    @property
    def total_calls(self) -> int:
        """All calls that reached botocore."""
        return sum(self.calls.values())

    @property
    def total_failures(self) -> int:
        """All calls that ended in an unexpected error."""
        return sum(self.failures.values())

    def __add__(self, other: CallStats) -> CallStats:
        def merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            out = dict(a)
            for key, value in b.items():
                out[key] = out.get(key, 0) + value
            return dict(sorted(out.items()))

        return CallStats(
            calls=merge(self.calls, other.calls),
            failures=merge(self.failures, other.failures),
            refused=merge(self.refused, other.refused),
            retries=merge(self.retries, other.retries),
        )


# ------------------------------------------------------------------------------------ IoT


class CertificateRegistration(_Frozen):
    """A certificate registered with AWS IoT. ``created`` is False when it was there already."""

    certificate_id: str
    certificate_arn: str
    created: bool


class Thing(_Frozen):
    """An IoT thing after `IoTService.ensure_thing`.

    ``created`` is True when CreateThing accepted the request: AWS answers a repeat with the
    same configuration the same way, so it does not prove the thing is new. ``created`` False
    with ``updated`` True means the thing existed with another configuration and was updated;
    with ``updated`` False, it existed with another configuration and the call asked for no
    thing type or attributes, so nothing was changed.
    """

    name: str
    arn: str
    thing_type: str | None = None
    created: bool
    updated: bool = False


class ThingDescription(_Frozen):
    """What DescribeThing says about a thing: its type, attributes and billing group."""

    name: str
    arn: str
    thing_id: str | None = None
    thing_type: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    billing_group: str | None = None
    version: int | None = None


class CertificateDescription(_Frozen):
    """What DescribeCertificate says about a certificate (never its PEM body)."""

    certificate_id: str
    certificate_arn: str
    status: str
    ca_certificate_id: str | None = None
    owned_by: str | None = None
    creation_date: _dt.datetime | None = None
    last_modified_date: _dt.datetime | None = None
    not_before: _dt.datetime | None = None
    not_after: _dt.datetime | None = None
    mode: str | None = None


class PolicyInfo(_Frozen):
    """An IoT policy (GetPolicy)."""

    name: str
    arn: str
    document: str
    default_version_id: str | None = None


class ThingGroupInfo(_Frozen):
    """An IoT thing group (DescribeThingGroup)."""

    name: str
    arn: str
    group_id: str | None = None
    description: str | None = None
    parent_group_name: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class ThingTypeInfo(_Frozen):
    """An IoT thing type (DescribeThingType). New things cannot use a deprecated type."""

    name: str
    arn: str
    type_id: str | None = None
    description: str | None = None
    searchable_attributes: tuple[str, ...] = ()
    deprecated: bool = False


# ------------------------------------------------------------------------------------- S3


class S3Object(_Frozen):
    """An object read whole by `S3Service.get_object`."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64")

    bucket: str
    key: str
    size: int
    etag: str | None = None
    body: bytes = Field(repr=False)


class S3ObjectRef(_Frozen):
    """A pointer to an S3 object: from a listing, an upload or an event."""

    bucket: str
    key: str
    size: int | None = None
    version_id: str | None = None
    etag: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> list[S3ObjectRef]:
        """The objects an event announces as created, keys URL-decoded.

        Reads S3 event notifications (``Records[].s3``; also when each record arrived through
        SQS as a JSON ``body``, through SNS as a JSON ``Sns.Message``, or through SNS then SQS
        as an SNS envelope in the ``body``) and EventBridge
        ``Object Created`` events (``detail.bucket.name``, ``detail.object.key``). Records for
        other event types (removals, ``s3:TestEvent``) are skipped. A record without a bucket
        name or key raises `InvalidRequestError` naming the record.
        """
        checked: object = event
        if not isinstance(checked, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise _event_error(f"an S3 event must be a JSON object, got {type(checked).__name__}")
        refs: list[S3ObjectRef] = []
        if "detail" in event and event.get("source") == "aws.s3":
            if event.get("detail-type") == "Object Created":
                refs.append(cls._from_detail(event.get("detail"), "EventBridge event"))
            return refs
        records = event.get("Records")
        if records is None:
            return refs  # s3:TestEvent and other bodies without records
        if not isinstance(records, list):
            raise _event_error("'Records' must be a list")
        for number, record in enumerate(records):
            refs.extend(cls._from_record(record, f"record {number}"))
        return refs

    @classmethod
    def _from_record(cls, record: object, where: str) -> list[S3ObjectRef]:
        if not isinstance(record, Mapping):
            raise _event_error(f"{where} is not a JSON object")
        if "s3" in record:
            name = str(record.get("eventName") or "")
            if name and not name.startswith("ObjectCreated:"):
                return []
            return [cls._ref(record["s3"], where, "s3", version_field="versionId", etag_field="eTag")]
        nested: object = None
        if "body" in record:  # an S3 notification delivered through SQS
            nested = record["body"]
        elif isinstance(record.get("Sns"), Mapping):  # ... or through SNS
            nested = record["Sns"].get("Message")
        if isinstance(nested, str):
            try:
                inner = json.loads(nested)
            except ValueError as exc:
                raise _event_error(f"{where}: the message body is not JSON") from exc
            # S3 -> SNS -> SQS without raw message delivery: the SQS body is the SNS envelope.
            if isinstance(inner, Mapping) and inner.get("Type") == "Notification":
                inner = inner.get("Message")
                if isinstance(inner, str):
                    try:
                        inner = json.loads(inner)
                    except ValueError as exc:
                        raise _event_error(f"{where}: the SNS message is not JSON") from exc
            if isinstance(inner, Mapping):
                return cls.from_event(inner)
        return []

    @classmethod
    def _from_detail(cls, detail: object, where: str) -> S3ObjectRef:
        return cls._ref(detail, where, "detail", version_field="version-id", etag_field="etag")

    @classmethod
    def _ref(
        cls, container: object, where: str, path: str, *, version_field: str, etag_field: str
    ) -> S3ObjectRef:
        """The object in ``container`` (``s3`` of a notification, ``detail`` of EventBridge):
        both hold ``bucket.name`` and ``object.key``; they differ in the other field names."""
        if not isinstance(container, Mapping):
            raise _event_error(f"{where}: {path!r} is not a JSON object")
        bucket = container.get("bucket")
        obj = container.get("object")
        name = bucket.get("name") if isinstance(bucket, Mapping) else None
        if not isinstance(obj, Mapping):
            obj = {}
        key = obj.get("key")
        if not isinstance(name, str) or not isinstance(key, str) or not name or not key:
            raise _event_error(f"{where}: missing {path}.bucket.name or {path}.object.key")
        return cls(
            bucket=name,
            key=unquote_plus(key),
            size=_opt_int(obj.get("size")),
            version_id=_opt_str(obj.get(version_field)),
            etag=_opt_str(obj.get(etag_field)),
        )


def _event_error(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"not a readable S3 event: {message}", service="s3", operation="Event")


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _opt_str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


# ------------------------------------------------------------------------------------ SQS


class BatchSendReport(_Frozen):
    """What `SQSService.send_messages` did.

    ``sent`` messages were accepted; ``failed`` lists the rest in input order. ``batches``
    counts SendMessageBatch calls (retries included) and ``resent`` the entries sent again
    after a retryable failure.
    """

    sent: int
    failed: tuple[FailedMessage, ...] = ()
    batches: int = 0
    resent: int = 0

    @property
    def ok(self) -> bool:
        """True when every message was sent."""
        return not self.failed

    def raise_for_failures(self) -> None:
        """Raise `BatchSendError` listing every failed message; do nothing when all were sent."""
        if not self.failed:
            return
        shown = "; ".join(
            f"#{f.index} {f.code}{' (sender fault)' if f.sender_fault else ''}: {f.message}"
            for f in self.failed
        )
        total = self.sent + len(self.failed)
        raise BatchSendError(
            f"{len(self.failed)} of {total} messages were not sent: {shown}",
            failures=self.failed,
            sent=self.sent,
        )


class QueueDepth(_Frozen):
    """Approximate message counts of a queue."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        """Messages in the queue in any state."""
        return self.visible + self.in_flight + self.delayed


class ReceivedMessage(_Frozen):
    """One message from `SQSService.receive`."""

    message_id: str
    receipt_handle: str = Field(repr=False)
    body: str = Field(repr=False)  # import requests carry certificates: keep them out of logs
    attributes: dict[str, str] = Field(default_factory=dict)
    message_attributes: dict[str, Any] = Field(default_factory=dict)


def description_from(response: Mapping[str, Any], certificate_id: str, arn: str) -> CertificateDescription:
    """A DescribeCertificate or DescribeCACertificate answer (the same shape) as a model."""
    desc: Mapping[str, Any] = response.get("certificateDescription") or {}
    validity: Mapping[str, Any] = desc.get("validity") or {}
    return CertificateDescription(
        certificate_id=str(desc.get("certificateId") or certificate_id),
        certificate_arn=str(desc.get("certificateArn") or arn),
        status=str(desc.get("status") or "UNKNOWN"),
        ca_certificate_id=desc.get("caCertificateId") or None,
        owned_by=desc.get("ownedBy") or None,
        creation_date=desc.get("creationDate"),
        last_modified_date=desc.get("lastModifiedDate"),
        not_before=validity.get("notBefore"),
        not_after=validity.get("notAfter"),
        mode=desc.get("certificateMode") or None,
    )
