"""SQS fan-out for imports beyond one machine: a producer, a Lambda consumer, an S3 trigger.

```
S3 upload ──handle_s3_event───┐
manifest ───enqueue_manifest──┴─▶ SQS queue ──handle_sqs_event (Lambda)──▶ AWS IoT Core
                                      └── after maxReceiveCount ──▶ dead-letter queue
```

Each SQS message carries one `ImportRequest` (JSON, ``schema_version`` 1) or, when the
producer packs several per message, an `ImportBatch` of them. `parse_message` reads both and
also the legacy Thingpress message (``thing``, ``certificate`` as ``"b'<base64>'"``,
``policies``/``thing_groups`` as lists of objects, ``thing_type_name``).

The consumer returns a partial batch response (``{"batchItemFailures": [...]}``; the event
source mapping must enable ``ReportBatchItemFailures``). A record is an item failure, so SQS
delivers it again, when its failure is transient (throttled after retries, 5xx, circuit
open), when it does not parse, when the resources it names do not exist (yet), when the
function lacks an IAM permission, or when the Lambda runs out of time before reaching it.
A permanent failure (a corrupt or rejected certificate, an invalid thing name) is logged
with the certificate id and reason and is not an item failure: sending it again cannot
succeed. Records that keep failing reach the queue's dead-letter queue after its
``maxReceiveCount``. See ``docs/deployment.md``.

boto3 and the rest of the SDK load on first use; importing this module costs only pydantic
and pydantic-settings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from thingpress_core.errors import (
    CertificateError,
    ConfigurationError,
    PreflightError,
    ThingpressError,
)

if TYPE_CHECKING:
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome
    from thingpress_core.manifests import ManifestEntry
    from thingpress_core.resilience import CircuitBreakerRegistry
    from thingpress_core.services import S3Service, SQSService
    from thingpress_core.settings import ThingpressSettings

__all__ = [
    "DEFAULT_SAFETY_MARGIN",
    "MAX_MANIFEST_BYTES",
    "MAX_MESSAGE_BYTES",
    "BatchResult",
    "EnqueueError",
    "EnqueueFailure",
    "EnqueueProgress",
    "EnqueueReport",
    "ImportBatch",
    "ImportRequest",
    "ImportSource",
    "LambdaContext",
    "LambdaSettings",
    "MessageParseError",
    "RecordDisposition",
    "RecordResult",
    "S3EventReport",
    "S3ObjectReport",
    "SQSConsumer",
    "build_importer",
    "enqueue_manifest",
    "handle_s3_event",
    "handle_sqs_event",
    "parse_message",
    "s3_handler",
]

logger = logging.getLogger(__name__)

#: SQS's limit for one message and for one ``SendMessageBatch`` (1 MiB).
MAX_MESSAGE_BYTES: Final = 1_048_576
#: Default bound on a manifest object `handle_s3_event` reads from S3 (256 MiB).
MAX_MANIFEST_BYTES: Final = 256 * 1_048_576
#: Seconds of Lambda time the consumer keeps in hand to answer (see `SQSConsumer`).
DEFAULT_SAFETY_MARGIN: Final = 10.0

_MAX_NAMES = 10  # AWS IoT: at most 10 policies per certificate, 10 static groups per thing
_SEND_CHUNK = 100  # messages handed to SQSService.send_messages at a time (10 batch calls)
_SCHEMA_VERSION: Final = 1


class MessageParseError(ThingpressError, ValueError):
    """An SQS message body that is neither an `ImportRequest` nor a legacy Thingpress message.

    ``message_id`` names the SQS message when known; ``reason`` is a short word:
    ``too_large``, ``encoding``, ``json``, ``not_an_object``, ``unknown_format``,
    ``unsupported_version``, ``invalid`` (fields fail validation), ``legacy`` (a legacy
    message that cannot be converted), ``count`` (several requests where one was expected).
    """

    def __init__(self, message: str, *, message_id: str | None = None, reason: str = "invalid") -> None:
        super().__init__(message)
        self.message_id = message_id
        self.reason = reason


class EnqueueError(ThingpressError):
    """Sending to SQS failed as a whole (queue missing, access denied, SQS unwell).

    ``report`` says what was sent before the failure; the SQS error is ``__cause__``.
    """

    def __init__(self, message: str, *, report: EnqueueReport) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- messages


class ImportSource(BaseModel):
    """Where a request came from: the manifest's vendor format, S3 object and entry index."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: str | None = Field(default=None, max_length=64)
    bucket: str | None = Field(default=None, max_length=255)
    key: str | None = Field(default=None, max_length=1024)
    index: int | None = Field(default=None, ge=0)

    def label(self) -> str:
        """A short description for logs and errors, e.g. ``s3://b/k.json entry 4``."""
        where = ""
        if self.bucket is not None:
            where = f"s3://{self.bucket}/{self.key or ''}"
        elif self.key is not None:
            where = self.key
        if self.index is not None:
            where = f"{where} entry {self.index + 1}".strip()
        return where or "<unknown source>"


def _names(value: Sequence[str], what: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in value:
        if not name or len(name) > 128:
            raise ValueError(f"{what} names must be 1 to 128 characters, got {name[:40]!r}")
        seen.setdefault(name, None)
    if len(seen) > _MAX_NAMES:
        raise ValueError(f"at most {_MAX_NAMES} {what} per certificate, got {len(seen)}")
    return tuple(seen)


class ImportRequest(BaseModel):
    """One certificate to import, as it travels through SQS (``schema_version`` 1).

    ``certificate`` (and ``chain``) use the transport encoding of
    `~thingpress_core.certificates.encode_for_transport` (base64 of PEM text). ``thing_name``
    None lets the consumer's naming strategy decide. ``policies``, ``thing_groups``,
    ``thing_type`` and (when set) ``status`` replace the consumer's own options for this
    certificate. Unknown fields are rejected: an incompatible change means a new
    ``schema_version``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    thing_name: str | None = Field(default=None, max_length=256)
    certificate: str = Field(min_length=1, max_length=MAX_MESSAGE_BYTES)
    chain: str | None = Field(default=None, max_length=MAX_MESSAGE_BYTES)
    policies: tuple[str, ...] = ()
    thing_groups: tuple[str, ...] = ()
    thing_type: str | None = Field(default=None, min_length=1, max_length=128)
    status: Literal["ACTIVE", "INACTIVE"] | None = None
    source: ImportSource | None = None

    @field_validator("policies")
    @classmethod
    def _check_policies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _names(value, "policy")

    @field_validator("thing_groups")
    @classmethod
    def _check_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _names(value, "thing group")

    def to_body(self) -> str:
        """The SQS message body: compact JSON, unset optional fields left out."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def parse(cls, body: str | bytes, *, message_id: str | None = None) -> ImportRequest:
        """Read one request from a message body: the current form or a legacy message.

        Raises `MessageParseError` for anything else, and for a body carrying several
        requests (read those with `parse_message`).
        """
        requests = parse_message(body, message_id=message_id)
        if len(requests) != 1:
            raise MessageParseError(
                f"{_message_label(message_id)} carries {len(requests)} requests; use parse_message",
                message_id=message_id,
                reason="count",
            )
        return requests[0]

    @classmethod
    def from_certificate(
        cls,
        item: ManifestEntry | DeviceCertificate,
        *,
        options: ImportOptions | None = None,
        source: ImportSource | None = None,
        index: int | None = None,
    ) -> ImportRequest:
        """Build the request for a manifest entry or certificate, with ``options`` attached.

        The thing name is resolved here (the entry's own name, else ``options.thing_name``
        with ``options.thing_name_prefix``), so every consumer names the thing the same way;
        a naming failure raises its `ThingpressError`. ``source`` gets ``index`` (default: a
        manifest entry's own index).
        """
        from thingpress_core.certificates import DeviceCertificate, encode_for_transport, thing_name_for

        chain: tuple[DeviceCertificate, ...] = ()
        name: str | None = None
        if isinstance(item, DeviceCertificate):
            cert = item
        else:
            cert, chain, name = item.certificate, item.chain, item.thing_name
            index = item.index if index is None else index
        if name is None and options is not None:
            name = thing_name_for(cert, strategy=options.thing_name, prefix=options.thing_name_prefix)
        elif name is None:
            name = thing_name_for(cert)
        if index is not None:
            source = (source or ImportSource()).model_copy(update={"index": index})
        return cls(
            thing_name=name,
            certificate=encode_for_transport(cert),
            chain=encode_for_transport(chain) if chain else None,
            policies=options.policies if options is not None else (),
            thing_groups=options.thing_groups if options is not None else (),
            thing_type=options.thing_type if options is not None else None,
            status=options.status if options is not None else None,
            source=source,
        )

    def to_entry(self) -> ManifestEntry:
        """Decode the certificate (and chain) into a `ManifestEntry` for the importer.

        Raises `~thingpress_core.errors.CertificateError` when the text is not exactly one
        certificate (plus an optional chain).
        """
        from thingpress_core.certificates import decode_transport
        from thingpress_core.manifests import ManifestEntry

        label = self.source.label() if self.source is not None else None
        certs = decode_transport(self.certificate)
        if len(certs) != 1:
            raise CertificateError(
                f"an import request must carry exactly one certificate, found {len(certs)}"
                + (f" ({label})" if label else ""),
                source=label,
                reason="count",
            )
        chain = tuple(decode_transport(self.chain)) if self.chain else ()
        index = self.source.index if self.source is not None and self.source.index is not None else 0
        return ManifestEntry(
            thing_name=self.thing_name, certificate=certs[0], chain=chain, index=index, source=label
        )

    def options_for(self, base: ImportOptions) -> ImportOptions:
        """``base`` with this request's policies, groups, thing type and status."""
        update: dict[str, Any] = {
            "policies": self.policies,
            "thing_groups": self.thing_groups,
            "thing_type": self.thing_type,
        }
        if self.status is not None:
            update["status"] = self.status
        return base.model_copy(update=update)


class ImportBatch(BaseModel):
    """Several `ImportRequest` in one SQS message (``enqueue_manifest(per_message=N)``).

    The consumer imports them one by one; if any fails transiently the whole message is
    delivered again and the others repeat as idempotent no-ops (``already_present``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    requests: tuple[ImportRequest, ...] = Field(min_length=1)

    def to_body(self) -> str:
        """The SQS message body (compact JSON)."""
        return _batch_body([r.to_body() for r in self.requests])


def _batch_body(request_bodies: Sequence[str]) -> str:
    return '{"schema_version":1,"requests":[' + ",".join(request_bodies) + "]}"


def _message_label(message_id: str | None) -> str:
    return f"SQS message {message_id}" if message_id else "message body"


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for item in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse_message(
    body: str | bytes, *, message_id: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[ImportRequest, ...]:
    """Read the requests in one SQS message body.

    Accepts an `ImportRequest`, an `ImportBatch` and the legacy Thingpress message. Bodies
    over ``max_bytes`` (default the SQS limit) are refused before they are decoded. Raises
    `MessageParseError` naming the message and what is wrong; never evaluates anything.
    """
    label = _message_label(message_id)
    value = cast(object, body)
    if isinstance(value, bytes):
        if len(value) > max_bytes:
            raise MessageParseError(
                f"{label} is larger than {max_bytes} bytes", message_id=message_id, reason="too_large"
            )
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageParseError(
                f"{label} is not UTF-8 text", message_id=message_id, reason="encoding"
            ) from None
    elif isinstance(value, str):
        # a str of more than max_bytes characters is more than max_bytes bytes in UTF-8
        if len(value) > max_bytes or len(value.encode("utf-8", "replace")) > max_bytes:
            raise MessageParseError(
                f"{label} is larger than {max_bytes} bytes", message_id=message_id, reason="too_large"
            )
        text = value
    else:
        raise MessageParseError(
            f"{label} is a {type(value).__name__}, not text", message_id=message_id, reason="encoding"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = (
            f": {exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise MessageParseError(
            f"{label} is not JSON{detail}", message_id=message_id, reason="json"
        ) from None
    if not isinstance(data, dict):
        raise MessageParseError(
            f"{label} is a JSON {type(data).__name__}, not an object",
            message_id=message_id,
            reason="not_an_object",
        )
    try:
        if "schema_version" in data:
            version = data["schema_version"]
            if type(version) is not int or version != _SCHEMA_VERSION:
                raise MessageParseError(
                    f"{label} has schema_version {str(version)[:20]!r}; this version reads 1",
                    message_id=message_id,
                    reason="unsupported_version",
                )
            if "requests" in data:
                return ImportBatch.model_validate(data).requests
            return (ImportRequest.model_validate(data),)
        if "thing" in data or "certificate" in data:
            return (_from_legacy(data, label, message_id),)
    except ValidationError as exc:
        raise MessageParseError(
            f"{label} is not a valid import request: {_validation_summary(exc)}", message_id=message_id
        ) from None
    keys = ", ".join(sorted(str(k)[:40] for k in data)[:8]) or "none"
    raise MessageParseError(
        f"{label} is neither an import request nor a legacy Thingpress message (keys: {keys})",
        message_id=message_id,
        reason="unknown_format",
    )


def _legacy_error(label: str, message_id: str | None, what: str) -> MessageParseError:
    return MessageParseError(f"legacy Thingpress {label}: {what}", message_id=message_id, reason="legacy")


def _strip_bytes_repr(text: str) -> str:
    """``"b'QUJD'"`` (how the old providers wrote base64 bytes with ``str()``) to ``"QUJD"``."""
    text = text.strip()
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        return text[2:-1]
    return text


def _legacy_names(
    value: object, *, kind: str, label: str, message_id: str | None, arn_marker: str | None = None
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _legacy_error(label, message_id, f"{kind} must be a list")
    names: list[str] = []
    for item in value:
        if isinstance(item, str):
            name: object = item
        elif isinstance(item, dict):
            name = item.get("name")
            arn = item.get("arn")
            if not name and isinstance(arn, str):
                name = _name_from_arn(arn, arn_marker, label=label, message_id=message_id, kind=kind)
        else:
            raise _legacy_error(label, message_id, f"each of {kind} must be an object with a name")
        if not isinstance(name, str) or not name:
            raise _legacy_error(label, message_id, f"an item of {kind} has no name")
        if isinstance(item, str) and item.startswith("arn:"):
            name = _name_from_arn(item, arn_marker, label=label, message_id=message_id, kind=kind)
        names.append(name)
    return names


def _name_from_arn(arn: str, marker: str | None, *, label: str, message_id: str | None, kind: str) -> str:
    # arn:aws:iot:us-east-1:123456789012:thinggroup/Group1 -> Group1
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    if (
        not arn.startswith("arn:")
        or "/" not in resource
        or (marker and not resource.startswith(marker + "/"))
    ):
        raise _legacy_error(label, message_id, f"{arn[:120]!r} in {kind} is not an IoT {marker or ''} ARN")
    name = resource.rsplit("/", 1)[-1]
    if not name:
        raise _legacy_error(label, message_id, f"{arn[:120]!r} in {kind} names nothing")
    return name


def _from_legacy(data: Mapping[str, Any], label: str, message_id: str | None) -> ImportRequest:
    certificate = data.get("certificate")
    if not isinstance(certificate, str) or not certificate.strip():
        raise _legacy_error(label, message_id, "no certificate text")
    cert_format = data.get("cert_format")
    if cert_format is not None and str(cert_format).upper() != "PEM":
        raise _legacy_error(
            label, message_id, f"cert_format {str(cert_format)[:20]!r} is not supported (PEM only)"
        )
    thing = data.get("thing")
    if thing is not None and not isinstance(thing, str):
        raise _legacy_error(label, message_id, "thing must be a string")
    policies = _legacy_names(data.get("policies"), kind="policies", label=label, message_id=message_id)
    groups = _legacy_names(
        data.get("thing_groups"),
        kind="thing_groups",
        label=label,
        message_id=message_id,
        arn_marker="thinggroup",
    )
    # Older providers sent one policy and one group under singular keys.
    if isinstance(data.get("policy_name"), str) and data["policy_name"]:
        policies.append(data["policy_name"])
    if isinstance(data.get("thing_group_name"), str) and data["thing_group_name"]:
        groups.append(data["thing_group_name"])
    elif isinstance(data.get("thing_group_arn"), str) and data["thing_group_arn"]:
        groups.append(
            _name_from_arn(
                data["thing_group_arn"],
                "thinggroup",
                label=label,
                message_id=message_id,
                kind="thing_group_arn",
            )
        )
    thing_type = data.get("thing_type_name")
    if thing_type is not None and not isinstance(thing_type, str):
        raise _legacy_error(label, message_id, "thing_type_name must be a string")
    status: str | None = None
    active = data.get("cert_active")
    if active is not None:
        status = "ACTIVE" if str(active).strip().upper() in {"TRUE", "1", "YES"} else "INACTIVE"
    try:
        return ImportRequest.model_validate(
            {
                "thing_name": thing or None,
                "certificate": _strip_bytes_repr(certificate),
                "policies": policies,
                "thing_groups": groups,
                "thing_type": thing_type or None,
                "status": status,
            }
        )
    except ValidationError as exc:
        raise _legacy_error(label, message_id, _validation_summary(exc)) from None


# --------------------------------------------------------------------------- producer


class EnqueueFailure(BaseModel):
    """One certificate that was not enqueued, and why.

    ``index`` is a manifest entry's own index, or the 0-based position of a certificate in
    the input.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    certificate_id: str | None = None
    thing_name: str | None = None
    reason: str
    code: str | None = None


class EnqueueProgress(BaseModel):
    """Running totals `enqueue_manifest` hands its ``progress`` callback after each chunk."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0, description="certificates read so far")
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
    messages: int = Field(ge=0, description="SQS messages accepted so far")


class EnqueueReport(BaseModel):
    """What `enqueue_manifest` did. ``total == sent + len(failed)`` always holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_url: str
    total: int = Field(ge=0)
    sent: int = Field(ge=0)
    messages: int = Field(ge=0)
    failed: tuple[EnqueueFailure, ...] = ()
    duration_seconds: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_total(self) -> EnqueueReport:
        if self.total != self.sent + len(self.failed):
            raise ValueError(f"total {self.total} != sent {self.sent} + failed {len(self.failed)}")
        return self

    @property
    def ok(self) -> bool:
        """True when every certificate was enqueued."""
        return not self.failed

    def summary(self) -> str:
        """One English line for a log or the end of a CLI run."""
        return (
            f"{self.total} certificates read, {self.sent} enqueued in {self.messages} messages, "
            f"{len(self.failed)} failed ({self.duration_seconds:.1f} s)"
        )


class _Pending:
    """Messages built but not yet sent, and which input positions each one carries."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.members: list[list[tuple[int, str, str | None]]] = []  # (index, cert id, thing)


class _Producer:
    def __init__(
        self,
        queue_url: str,
        sqs: SQSService,
        *,
        per_message: int,
        max_message_bytes: int,
        chunk_messages: int,
        progress: Callable[[EnqueueProgress], None] | None,
    ) -> None:
        self.queue_url = queue_url
        self.sqs = sqs
        self.per_message = per_message
        self.max_message_bytes = max_message_bytes
        self.chunk_messages = chunk_messages
        self.progress = progress
        self.total = 0
        self.sent = 0
        self.messages = 0
        self.failed: list[EnqueueFailure] = []
        self.pending = _Pending()
        # requests waiting to be packed into one message (per_message > 1)
        self.group: list[tuple[str, tuple[int, str, str | None]]] = []
        self.group_bytes = 0
        self.started = time.monotonic()

    def report(self) -> EnqueueReport:
        return EnqueueReport(
            queue_url=self.queue_url,
            total=self.total,
            sent=self.sent,
            messages=self.messages,
            failed=tuple(sorted(self.failed, key=lambda f: f.index)),
            duration_seconds=max(0.0, time.monotonic() - self.started),
        )

    def fail(
        self, index: int, reason: str, *, cert_id: str | None, thing: str | None, code: str | None
    ) -> None:
        self.failed.append(
            EnqueueFailure(index=index, certificate_id=cert_id, thing_name=thing, reason=reason, code=code)
        )

    def add(self, body: str, member: tuple[int, str, str | None]) -> None:
        size = len(body.encode("utf-8"))
        if size > self.max_message_bytes:
            self.fail(
                member[0],
                f"the request is {size} bytes, over the {self.max_message_bytes}-byte SQS message limit",
                cert_id=member[1],
                thing=member[2],
                code="MessageTooLarge",
            )
            return
        if self.per_message == 1:
            self._queue(body, [member])
            return
        overhead = len(_batch_body([])) + len(self.group)  # commas between requests
        if self.group and (
            len(self.group) >= self.per_message
            or self.group_bytes + size + overhead + 1 > self.max_message_bytes
        ):
            self._close_group()
        self.group.append((body, member))
        self.group_bytes += size

    def _close_group(self) -> None:
        if not self.group:
            return
        bodies = [b for b, _ in self.group]
        members = [m for _, m in self.group]
        self.group, self.group_bytes = [], 0
        self._queue(_batch_body(bodies) if len(bodies) > 1 else bodies[0], members)

    def _queue(self, body: str, members: list[tuple[int, str, str | None]]) -> None:
        self.pending.bodies.append(body)
        self.pending.members.append(members)
        if len(self.pending.bodies) >= self.chunk_messages:
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        if final:
            self._close_group()
        pending, self.pending = self.pending, _Pending()
        if pending.bodies:
            try:
                result = self.sqs.send_messages(self.queue_url, pending.bodies)
            except ThingpressError as exc:
                for members in pending.members:
                    for index, cert_id, thing in members:
                        self.fail(
                            index, f"not sent: {exc}", cert_id=cert_id, thing=thing, code=type(exc).__name__
                        )
                report = self.report()
                raise EnqueueError(
                    f"sending to {self.queue_url} failed after {report.sent} of {report.total} "
                    f"certificates: {exc}",
                    report=report,
                ) from exc
            failed_positions = set()
            for failure in result.failed:
                failed_positions.add(failure.index)
                for index, cert_id, thing in pending.members[failure.index]:
                    self.fail(
                        index,
                        f"SQS refused the message: {failure.message}",
                        cert_id=cert_id,
                        thing=thing,
                        code=failure.code,
                    )
            for position, members in enumerate(pending.members):
                if position not in failed_positions:
                    self.sent += len(members)
                    self.messages += 1
        if self.progress is not None:
            self.progress(
                EnqueueProgress(
                    total=self.total, sent=self.sent, failed=len(self.failed), messages=self.messages
                )
            )


def enqueue_manifest(
    entries: Iterable[ManifestEntry | DeviceCertificate],
    queue_url: str,
    *,
    options: ImportOptions,
    sqs: SQSService | None = None,
    per_message: int = 1,
    source: ImportSource | None = None,
    progress: Callable[[EnqueueProgress], None] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> EnqueueReport:
    """Send one `ImportRequest` per certificate to ``queue_url`` and report what was sent.

    ``entries`` is read lazily and sent in chunks of 100 messages, so a manifest of any size
    streams through in constant memory. ``options`` supplies the policies, groups, thing
    type, status and naming strategy every request carries (names are resolved here).
    ``per_message`` > 1 packs up to that many requests into one message (an `ImportBatch`)
    while it stays within ``max_message_bytes``. ``source`` (vendor, bucket, key) is copied
    into every request with the entry's index. ``progress`` receives running totals after
    every chunk, e.g. to drive a progress bar.

    A certificate that cannot be named, or a message SQS refuses, is listed in
    ``report.failed`` with its index and the reason; the rest carry on. If a send fails as a
    whole (queue missing, access denied, SQS unwell after retries) `EnqueueError` is raised
    with the report so far.
    """
    if per_message < 1:
        raise ConfigurationError(f"per_message must be at least 1, got {per_message}", variable="per_message")
    if not 1024 <= max_message_bytes <= MAX_MESSAGE_BYTES:
        raise ConfigurationError(
            f"max_message_bytes must be between 1024 and {MAX_MESSAGE_BYTES}, got {max_message_bytes}",
            variable="max_message_bytes",
        )
    if sqs is None:
        sqs = _default_sqs()
    producer = _Producer(
        queue_url,
        sqs,
        per_message=per_message,
        max_message_bytes=max_message_bytes,
        chunk_messages=_SEND_CHUNK,
        progress=progress,
    )
    from thingpress_core.certificates import DeviceCertificate

    for position, item in enumerate(entries):
        producer.total += 1
        cert = item if isinstance(item, DeviceCertificate) else item.certificate
        index = position if isinstance(item, DeviceCertificate) else item.index
        try:
            request = ImportRequest.from_certificate(item, options=options, source=source, index=index)
        except (ThingpressError, ValueError) as exc:
            thing = None if isinstance(item, DeviceCertificate) else item.thing_name
            producer.fail(index, str(exc), cert_id=cert.certificate_id, thing=thing, code=type(exc).__name__)
            continue
        producer.add(request.to_body(), (index, cert.certificate_id, request.thing_name))
    producer.flush(final=True)
    report = producer.report()
    logger.info(
        "enqueue to %s: %s",
        queue_url,
        report.summary(),
        extra={
            "operation": "enqueue",
            "queue_url": queue_url,
            "sent": report.sent,
            "failed": len(report.failed),
        },
    )
    return report


# --------------------------------------------------------------------------- consumer


class LambdaContext(Protocol):
    """The part of the Lambda context object the consumer uses."""

    def get_remaining_time_in_millis(self) -> int: ...


#: What became of one SQS record. ``succeeded``: imported or already present (deleted by
#: Lambda). ``failed``: a permanent failure, logged, not redelivered. ``retry``: a transient
#: failure, missing resources or a missing permission (item failure). ``malformed``: the body does not parse
#: (item failure, so the dead-letter queue collects it). ``deferred``: not started, time ran
#: short or the service kept failing (item failure).
RecordDisposition = Literal["succeeded", "failed", "retry", "malformed", "deferred"]

_ITEM_FAILURES: frozenset[str] = frozenset({"retry", "malformed", "deferred"})


class RecordResult(BaseModel):
    """The consumer's verdict on one SQS record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    disposition: RecordDisposition
    certificate_ids: tuple[str, ...] = ()
    imported: int = 0
    already_present: int = 0
    failed: int = 0
    reason: str | None = None
    seconds: float = 0.0

    @property
    def item_failure(self) -> bool:
        """True when SQS should deliver the record again."""
        return self.disposition in _ITEM_FAILURES


class BatchResult(BaseModel):
    """Every record of one SQS event, and the partial batch response to return."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: tuple[RecordResult, ...] = ()

    @property
    def item_failures(self) -> list[str]:
        """Message ids to report in ``batchItemFailures``."""
        return [r.message_id for r in self.records if r.item_failure]

    def count(self, disposition: RecordDisposition) -> int:
        return sum(1 for r in self.records if r.disposition == disposition)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """``{"batchItemFailures": [{"itemIdentifier": message_id}, ...]}``."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.item_failures]}


class _PreflightCache:
    """Which option sets passed preflight in this process; failures are retried after a pause."""

    def __init__(self, retry_after: float, clock: Callable[[], float]) -> None:
        self.retry_after = retry_after
        self.clock = clock
        self.passed: set[tuple[object, ...]] = set()
        self.failed: dict[tuple[object, ...], tuple[float, PreflightError]] = {}
        self.lock = threading.Lock()


def _options_key(options: ImportOptions) -> tuple[object, ...]:
    return (options.policies, options.thing_groups, options.thing_type)


class SQSConsumer:
    """Imports the records of SQS events with one importer, one record at a time.

    Args:
        importer: the `CertificateImporter` (and so the one `IoTService`, rate limiter and
            breakers) every record goes through.
        options: the base options; each request's policies, groups, thing type and status
            replace those fields. Default: the importer's own options.
        safety_margin: seconds of Lambda time kept in hand. A record is started only while
            ``remaining > safety_margin + slowest`` where ``slowest`` is the longest record
            of the last 50 this process handled; the rest become item failures.
        give_up_after: after this many consecutive transient failures in one event, the
            records not yet started are returned as item failures untried (the service is
            throttling or unwell; hammering it further helps nobody). None: never.
        preflight: check each distinct set of policies, groups and thing type once per
            process before its first certificate. A set that fails is checked again after
            ``preflight_retry_after`` seconds; meanwhile its records are item failures.
        registry: the breakers to summarise in the per-event log line. Default: the
            importer's `IoTService` registry, when it has one.
        clock: monotonic seconds, for tests.
    """

    def __init__(
        self,
        importer: CertificateImporter,
        *,
        options: ImportOptions | None = None,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
        give_up_after: int | None = 3,
        preflight: bool = True,
        preflight_retry_after: float = 60.0,
        registry: CircuitBreakerRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if safety_margin < 0:
            raise ConfigurationError(
                f"safety_margin must be >= 0, got {safety_margin}", variable="safety_margin"
            )
        if give_up_after is not None and give_up_after < 1:
            raise ConfigurationError(
                f"give_up_after must be >= 1, got {give_up_after}", variable="give_up_after"
            )
        self.importer = importer
        self.options = options if options is not None else importer.options
        self.safety_margin = safety_margin
        self.give_up_after = give_up_after
        self.preflight = preflight
        if registry is None:
            registry = getattr(importer.iot, "registry", None)
        self.registry = registry if isinstance(registry, _registry_type()) else None
        self._clock = clock
        self._durations: deque[float] = deque(maxlen=50)
        self._preflight = _PreflightCache(preflight_retry_after, clock)

    # -- public

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event; return the partial batch response for Lambda."""
        return self.process(event, context).response()

    def process(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> BatchResult:
        """Process an SQS event and return every record's verdict. Never raises."""
        raw = cast(object, event)  # Lambda hands over whatever JSON arrived
        records = raw.get("Records") if isinstance(raw, Mapping) else None
        if not isinstance(records, list):
            logger.error(
                "event is not an SQS event (no Records list); nothing processed",
                extra={"operation": "sqs.event"},
            )
            return BatchResult()
        results: list[RecordResult] = []
        consecutive_transient = 0
        stop_reason: str | None = None
        for position, record in enumerate(records):
            message_id = _record_id(record, position)
            if stop_reason is None:
                stop_reason = self._time_short(context)
            if (
                stop_reason is None
                and self.give_up_after is not None
                and consecutive_transient >= self.give_up_after
            ):
                stop_reason = f"{consecutive_transient} transient failures in a row"
            if stop_reason is not None:
                results.append(
                    RecordResult(message_id=message_id, disposition="deferred", reason=stop_reason)
                )
                continue
            started = self._clock()
            try:
                result = self._process_record(record, message_id)
            except Exception as exc:  # never let one record crash the batch
                logger.exception(
                    "record %s: unexpected %s; it will be delivered again",
                    message_id,
                    type(exc).__name__,
                    extra={"operation": "sqs.record", "message_id": message_id},
                )
                result = RecordResult(
                    message_id=message_id,
                    disposition="retry",
                    reason=f"unexpected {type(exc).__name__}: {exc}",
                )
            elapsed = max(0.0, self._clock() - started)
            self._durations.append(elapsed)
            result = result.model_copy(update={"seconds": elapsed})
            consecutive_transient = consecutive_transient + 1 if result.disposition == "retry" else 0
            results.append(result)
        batch = BatchResult(records=tuple(results))
        self._log_summary(batch, stop_reason)
        return batch

    # -- internals

    def _time_short(self, context: LambdaContext | None) -> str | None:
        if context is None:
            return None
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return None
        try:
            remaining = float(remaining_ms()) / 1000.0
        except Exception:  # a broken context must not stop the import
            logger.warning("the Lambda context's get_remaining_time_in_millis failed; ignoring it")
            return None
        needed = self.safety_margin + (max(self._durations) if self._durations else 0.0)
        if remaining < needed:
            return f"{remaining:.1f} s of Lambda time left, {needed:.1f} s needed"
        return None

    def _process_record(self, record: Mapping[str, Any], message_id: str) -> RecordResult:
        raw = cast(object, record)
        body = raw.get("body") if isinstance(raw, Mapping) else None
        try:
            if body is None:
                raise MessageParseError(f"SQS message {message_id} has no body", message_id=message_id)
            requests = parse_message(body, message_id=message_id)
        except MessageParseError as exc:
            logger.error(
                "record %s does not parse (%s): %s; reported as an item failure so the "
                "dead-letter queue collects it after maxReceiveCount",
                message_id,
                exc.reason,
                exc,
                extra={"operation": "sqs.parse", "message_id": message_id, "reason": exc.reason},
            )
            return RecordResult(message_id=message_id, disposition="malformed", reason=str(exc))

        ids: list[str] = []
        imported = already = failed = 0
        permanent_reason: str | None = None
        for request in requests:
            options = request.options_for(self.options)
            problem = self._check_preflight(options, message_id)
            if problem is not None:
                return RecordResult(
                    message_id=message_id, disposition="retry", reason=problem, certificate_ids=tuple(ids)
                )
            try:
                entry = request.to_entry()
            except CertificateError as exc:
                failed += 1
                permanent_reason = permanent_reason or str(exc)
                logger.error(
                    "record %s: the certificate cannot be read, dropped: %s",
                    message_id,
                    exc,
                    extra={
                        "operation": "sqs.certificate",
                        "message_id": message_id,
                        "thing_name": request.thing_name,
                        "reason": exc.reason,
                    },
                )
                continue
            outcome = self.importer.import_certificate(entry, options=options)
            ids.append(entry.certificate.certificate_id)
            verdict = _classify(outcome)
            if verdict == "retry":
                logger.warning(
                    "record %s: certificate %s failed at %s (%s, not the certificate's fault); "
                    "it will be delivered again",
                    message_id,
                    outcome.certificate_id,
                    outcome.failed_step,
                    outcome.error_type,
                    extra=_outcome_extra(outcome, message_id),
                )
                return RecordResult(
                    message_id=message_id,
                    disposition="retry",
                    certificate_ids=tuple(ids),
                    imported=imported,
                    already_present=already,
                    failed=failed,
                    reason=outcome.error,
                )
            if verdict == "failed":
                failed += 1
                permanent_reason = permanent_reason or outcome.error
                logger.error(
                    "record %s: certificate %s (thing %s) failed permanently at %s: %s; not redelivered",
                    message_id,
                    outcome.certificate_id,
                    outcome.thing_name,
                    outcome.failed_step,
                    outcome.error,
                    extra=_outcome_extra(outcome, message_id),
                )
            elif verdict == "imported":
                imported += 1
            else:
                already += 1
        return RecordResult(
            message_id=message_id,
            disposition="failed" if failed else "succeeded",
            certificate_ids=tuple(ids),
            imported=imported,
            already_present=already,
            failed=failed,
            reason=permanent_reason,
        )

    def _check_preflight(self, options: ImportOptions, message_id: str) -> str | None:
        """None when the option set's resources exist (checked once per process)."""
        if not self.preflight or options.dry_run:
            return None
        if not (options.policies or options.thing_groups or options.thing_type):
            return None
        key = _options_key(options)
        cache = self._preflight
        with cache.lock:
            if key in cache.passed:
                return None
            recent = cache.failed.get(key)
            if recent is not None and cache.clock() - recent[0] < cache.retry_after:
                return f"preflight failed: {recent[1]}"
        try:
            self._run_preflight(options)
        except PreflightError as exc:
            with cache.lock:
                cache.failed[key] = (cache.clock(), exc)
            logger.error(
                "record %s: %s; records naming them are item failures until the resources exist",
                message_id,
                exc,
                extra={"operation": "preflight", "message_id": message_id, "missing": list(exc.missing)},
            )
            return f"preflight failed: {exc}"
        except ThingpressError as exc:  # throttled, unwell, access denied: try again later
            logger.warning(
                "record %s: preflight could not run (%s); delivered again later",
                message_id,
                exc,
                extra={"operation": "preflight", "message_id": message_id},
            )
            return f"preflight could not run: {exc}"
        with cache.lock:
            cache.passed.add(key)
            cache.failed.pop(key, None)
        return None

    def _run_preflight(self, options: ImportOptions) -> None:
        from thingpress_core.importer import CertificateImporter

        CertificateImporter(self.importer.iot, options=options).preflight()

    def _log_summary(self, batch: BatchResult, stop_reason: str | None) -> None:
        counts = {d: batch.count(d) for d in ("succeeded", "failed", "retry", "malformed", "deferred")}
        extra: dict[str, Any] = {"operation": "sqs.batch", "records": len(batch.records), **counts}
        extra["imported"] = sum(r.imported for r in batch.records)
        extra["already_present"] = sum(r.already_present for r in batch.records)
        text = (
            f"SQS batch of {len(batch.records)}: {counts['succeeded']} succeeded "
            f"({extra['imported']} imported, {extra['already_present']} already present), "
            f"{counts['failed']} failed permanently, {counts['retry']} to retry, "
            f"{counts['malformed']} malformed, {counts['deferred']} deferred"
        )
        if stop_reason:
            text += f" ({stop_reason})"
        if self.registry is not None:
            unwell = {
                name: str(snap.state.value)
                for name, snap in self.registry.snapshot().items()
                if snap.state.value != "closed"
            }
            if unwell:
                extra["breakers"] = unwell
                text += "; breakers not closed: " + ", ".join(f"{n}={s}" for n, s in sorted(unwell.items()))
        logger.info(text, extra=extra)


def _registry_type() -> type[CircuitBreakerRegistry]:
    from thingpress_core.resilience import CircuitBreakerRegistry

    return CircuitBreakerRegistry


def _record_id(record: object, position: int) -> str:
    if isinstance(record, Mapping):
        value = record.get("messageId")
        if isinstance(value, str) and value:
            return value
    return f"record-{position}"


#: Failures that say the deployment, not the certificate, is wrong (missing IAM permission, a
#: policy or group deleted after preflight): the record goes back to SQS so nothing is lost,
#: and the dead-letter queue collects it if nobody fixes the cause.
_REDELIVER_ERRORS = frozenset({"AccessDeniedError", "ResourceNotFoundError"})


def _classify(outcome: ImportOutcome) -> Literal["imported", "already_present", "retry", "failed"]:
    from thingpress_core.importer import OutcomeStatus

    if outcome.status is OutcomeStatus.FAILED:
        return "retry" if outcome.transient or outcome.error_type in _REDELIVER_ERRORS else "failed"
    if outcome.status is OutcomeStatus.IMPORTED:
        return "imported"
    return "already_present"  # already present, or skipped in a dry run


def _outcome_extra(outcome: ImportOutcome, message_id: str) -> dict[str, Any]:
    return {
        "operation": "import",
        "message_id": message_id,
        "certificate_id": outcome.certificate_id,
        "thing_name": outcome.thing_name,
        "failed_step": outcome.failed_step,
        "error_type": outcome.error_type,
    }


# --------------------------------------------------------------------------- settings, defaults


_NameList = Annotated[tuple[str, ...], NoDecode]


class LambdaSettings(BaseSettings):
    """What the Lambda entry points read from ``THINGPRESS_LAMBDA_*`` variables.

    Lists (``POLICIES``, ``THING_GROUPS``) are comma-separated or a JSON array. The AWS
    client, retry, rate-limit and quota-share settings are `ThingpressSettings`'
    (``THINGPRESS_REGION``, ``THINGPRESS_RESILIENCE__QUOTA_SHARE``, ...).
    """

    model_config = SettingsConfigDict(
        env_prefix="THINGPRESS_LAMBDA_", extra="ignore", frozen=True, case_sensitive=False
    )

    queue_url: str | None = Field(default=None, description="The import queue (S3 trigger).")
    policies: _NameList = Field(default=(), description="Policies every certificate gets (producer).")
    thing_groups: _NameList = Field(default=(), description="Thing groups every thing joins (producer).")
    thing_type: str | None = Field(default=None, description="Thing type of every thing (producer).")
    thing_name: Literal["common_name", "certificate_id"] = Field(default="common_name")
    thing_name_prefix: str | None = None
    status: Literal["ACTIVE", "INACTIVE"] = "ACTIVE"
    per_message: int = Field(default=1, ge=1, le=500, description="Requests per SQS message (producer).")
    manifest_format: str | None = Field(default=None, description="Manifest format; None: detect.")
    verifiers: _NameList = Field(
        default=(), description="Microchip manifest signer certificates: paths in the deployment package."
    )
    max_manifest_bytes: int = Field(default=MAX_MANIFEST_BYTES, ge=1, description="Bound on a manifest read.")
    safety_margin: float = Field(
        default=DEFAULT_SAFETY_MARGIN, ge=0.0, le=900.0, description="Seconds (consumer)."
    )
    give_up_after: int = Field(default=3, ge=1, description="Consecutive transient failures (consumer).")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError.from_validation_error(exc, env_prefix="THINGPRESS_LAMBDA_") from None

    @field_validator("policies", "thing_groups", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    def import_options(self) -> ImportOptions:
        """The `ImportOptions` these settings describe."""
        from thingpress_core.importer import ImportOptions

        return ImportOptions(
            policies=self.policies,
            thing_groups=self.thing_groups,
            thing_type=self.thing_type,
            thing_name=self.thing_name,
            thing_name_prefix=self.thing_name_prefix,
            status=self.status,
            concurrency=1,
        )


def build_importer(
    settings: ThingpressSettings | None = None, *, options: ImportOptions | None = None
) -> CertificateImporter:
    """The importer the Lambda consumer uses by default, built from settings.

    ``settings`` defaults to ``ThingpressSettings()`` (the ``THINGPRESS_*`` environment) and
    ``options`` to ``LambdaSettings().import_options()``. The `IoTService` gets its own
    breaker registry and a `RateLimiter` whose rates are
    ``settings.resilience.effective_rate_limits()``: every account quota times
    ``quota_share``. With reserved concurrency 10, set
    ``THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1`` so ten consumers together stay under the quota.
    """
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    settings = settings if settings is not None else ThingpressSettings()
    iot = IoTService(
        ClientFactory(settings),
        settings=settings,
        registry=CircuitBreakerRegistry(settings.resilience),
        limiter=RateLimiter(settings.resilience),
    )
    options = options if options is not None else LambdaSettings().import_options()
    return CertificateImporter(iot, options=options)


_lock = threading.Lock()
_default_consumer: SQSConsumer | None = None
_consumers: weakref.WeakKeyDictionary[Any, SQSConsumer] = weakref.WeakKeyDictionary()
_default_clients: dict[str, Any] = {}


def _consumer() -> SQSConsumer:
    global _default_consumer
    with _lock:
        if _default_consumer is None:
            env = LambdaSettings()
            importer = build_importer(options=env.import_options())
            _default_consumer = SQSConsumer(
                importer, safety_margin=env.safety_margin, give_up_after=env.give_up_after
            )
        return _default_consumer


def _consumer_for(importer: CertificateImporter) -> SQSConsumer:
    with _lock:
        try:
            consumer = _consumers.get(importer)
        except TypeError:  # not weak-referenceable: no cache, preflight runs per call
            return SQSConsumer(importer)
        if consumer is None:
            consumer = SQSConsumer(importer)
            _consumers[importer] = consumer
        return consumer


def _default_service(name: str) -> Any:
    with _lock:
        service = _default_clients.get(name)
        if service is None:
            from thingpress_core.clients import ClientFactory
            from thingpress_core.services import S3Service, SQSService
            from thingpress_core.settings import ThingpressSettings

            settings = ThingpressSettings()
            factory = _default_clients.setdefault("factory", ClientFactory(settings))
            service = (S3Service if name == "s3" else SQSService)(factory, settings=settings)
            _default_clients[name] = service
        return service


def _default_sqs() -> SQSService:
    service: SQSService = _default_service("sqs")
    return service


def _default_s3() -> S3Service:
    service: S3Service = _default_service("s3")
    return service


def handle_sqs_event(
    event: Mapping[str, Any],
    context: LambdaContext | None = None,
    *,
    importer: CertificateImporter | None = None,
) -> dict[str, list[dict[str, str]]]:
    """The Lambda handler for the import queue: import each record, report partial failures.

    Use ``thingpress_core.integrations.aws_lambda.handle_sqs_event`` as the handler of a
    function whose SQS event source mapping has ``ReportBatchItemFailures``. Without
    ``importer`` it builds one per process from ``THINGPRESS_*`` settings (`build_importer`)
    and reuses it across invocations; preflight results are cached per importer. See
    `SQSConsumer` for what becomes an item failure. Never raises.
    """
    try:
        consumer = _consumer() if importer is None else _consumer_for(importer)
    except ThingpressError as exc:
        # Misconfigured: every record stays in the queue (and reaches the DLQ) rather than vanish.
        logger.error("cannot build the importer: %s; every record is an item failure", exc)
        raw = cast(object, event)
        records = raw.get("Records") if isinstance(raw, Mapping) else None
        ids = [_record_id(r, i) for i, r in enumerate(records)] if isinstance(records, list) else []
        return {"batchItemFailures": [{"itemIdentifier": m} for m in ids]}
    return consumer.handle(event, context)


# --------------------------------------------------------------------------- S3 trigger


class S3ObjectReport(BaseModel):
    """One manifest object named by an S3 event: how it was read and what was enqueued."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    key: str
    size: int | None = None
    format: str | None = None
    skipped: int = Field(default=0, ge=0, description="manifest entries the reader skipped")
    skipped_reasons: tuple[str, ...] = Field(default=(), description="the first 20, as 'entry N: reason'")
    enqueue: EnqueueReport | None = None
    error: str | None = None
    error_type: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        """True when the object was read to the end, nothing skipped, everything enqueued."""
        return self.error is None and self.skipped == 0 and (self.enqueue is None or self.enqueue.ok)


class S3EventReport(BaseModel):
    """Every object of one S3 event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objects: tuple[S3ObjectReport, ...] = ()

    @property
    def sent(self) -> int:
        """Certificates enqueued, over every object."""
        return sum(o.enqueue.sent for o in self.objects if o.enqueue is not None)

    @property
    def failed(self) -> int:
        """Certificates read but not enqueued, over every object."""
        return sum(len(o.enqueue.failed) for o in self.objects if o.enqueue is not None)

    @property
    def ok(self) -> bool:
        """True when every object is `S3ObjectReport.ok`."""
        return all(o.ok for o in self.objects)


def handle_s3_event(
    event: Mapping[str, Any],
    context: LambdaContext | None = None,
    *,
    queue_url: str | None = None,
    options: ImportOptions | None = None,
    s3: S3Service | None = None,
    sqs: SQSService | None = None,
    max_bytes: int | None = None,
    format: str | None = None,
    per_message: int | None = None,
    manifest_options: Mapping[str, Any] | None = None,
) -> S3EventReport:
    """Read each manifest an S3 event names and enqueue its certificates.

    Each object (`S3ObjectRef.from_event`, keys URL-decoded) is read with at most
    ``max_bytes`` (default ``THINGPRESS_LAMBDA_MAX_MANIFEST_BYTES``, 256 MiB), its format
    detected from content, then key, unless ``format`` is given, entries that cannot be read
    are skipped (and counted), and the rest are sent with `enqueue_manifest`, each request
    carrying the vendor, bucket, key and entry index. ``queue_url`` and ``options`` default
    to the ``THINGPRESS_LAMBDA_*`` settings. ``manifest_options`` go to `read_manifest`
    (e.g. ``verifiers`` for Microchip). One object's failure is reported in its
    `S3ObjectReport` and does not stop the others.
    """
    from thingpress_core.manifests import ManifestFormat, detect_format, read_manifest
    from thingpress_core.resilience import is_transient
    from thingpress_core.services import S3ObjectRef

    env: LambdaSettings | None = None
    if queue_url is None or options is None or max_bytes is None or per_message is None:
        env = LambdaSettings()
    if queue_url is None:
        assert env is not None
        if env.queue_url is None:
            raise ConfigurationError(
                "no queue URL: pass queue_url or set THINGPRESS_LAMBDA_QUEUE_URL",
                variable="THINGPRESS_LAMBDA_QUEUE_URL",
            )
        queue_url = env.queue_url
    if options is None:
        assert env is not None
        options = env.import_options()
    if max_bytes is None:
        assert env is not None
        max_bytes = env.max_manifest_bytes
    if per_message is None:
        assert env is not None
        per_message = env.per_message
    if format is None and env is not None:
        format = env.manifest_format
    s3 = s3 if s3 is not None else _default_s3()
    sqs = sqs if sqs is not None else _default_sqs()
    verifiers = env.verifiers if env is not None else ()
    fixed_format: ManifestFormat | None = None
    if format is not None:
        try:
            fixed_format = ManifestFormat(str(format).lower())
        except ValueError:
            choices = ", ".join(f.value for f in ManifestFormat)
            raise ConfigurationError(
                f"unknown manifest format {format!r}; one of {choices}", variable="format", value=format
            ) from None

    reports: list[S3ObjectReport] = []
    for ref in S3ObjectRef.from_event(event):
        where = f"s3://{ref.bucket}/{ref.key}"
        size: int | None = None
        fmt: str | None = None
        skipped = 0
        try:
            obj = s3.get_object(ref.bucket, ref.key, max_bytes=max_bytes)
            size = obj.size
            detected = fixed_format or detect_format(obj.body, name=ref.key)
            reader_options: dict[str, Any] = {"on_error": "skip"}
            if detected is ManifestFormat.MICROCHIP and verifiers:
                reader_options["verifiers"] = list(verifiers)
            reader_options.update(manifest_options or {})
            reader = read_manifest(
                obj.body, format=detected, name=ref.key, max_bytes=max_bytes, **reader_options
            )
            fmt = str(reader.format)
            source = ImportSource(vendor=fmt, bucket=ref.bucket, key=ref.key)
            report = enqueue_manifest(
                reader, queue_url, options=options, sqs=sqs, source=source, per_message=per_message
            )
            skipped = len(reader.report.skipped)
            reasons = tuple(f"entry {item.number}: {item.reason}" for item in reader.report.skipped[:20])
        except EnqueueError as exc:
            logger.error(
                "%s: %s", where, exc, extra={"operation": "s3.enqueue", "bucket": ref.bucket, "key": ref.key}
            )
            reports.append(
                S3ObjectReport(
                    bucket=ref.bucket,
                    key=ref.key,
                    size=size,
                    format=fmt,
                    enqueue=exc.report,
                    error=str(exc),
                    error_type=type(exc.__cause__ or exc).__name__,
                    transient=is_transient(exc.__cause__) if exc.__cause__ is not None else False,
                )
            )
            continue
        except ThingpressError as exc:
            logger.error(
                "%s cannot be enqueued: %s",
                where,
                exc,
                extra={"operation": "s3.read", "bucket": ref.bucket, "key": ref.key},
            )
            reports.append(
                S3ObjectReport(
                    bucket=ref.bucket,
                    key=ref.key,
                    size=size,
                    format=fmt,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    transient=is_transient(exc),
                )
            )
            continue
        logger.info(
            "%s (%s): %s; %d entries skipped",
            where,
            fmt,
            report.summary(),
            skipped,
            extra={"operation": "s3.enqueue", "bucket": ref.bucket, "key": ref.key, "sent": report.sent},
        )
        reports.append(
            S3ObjectReport(
                bucket=ref.bucket,
                key=ref.key,
                size=size,
                format=fmt,
                skipped=skipped,
                skipped_reasons=reasons,
                enqueue=report,
            )
        )
    return S3EventReport(objects=tuple(reports))


def s3_handler(event: Mapping[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    """The Lambda handler for manifest uploads: `handle_s3_event` configured from the environment.

    Returns the `S3EventReport` as JSON-ready data. Raises `EnqueueError` when an object
    failed for a transient reason (so Lambda's asynchronous retries run again; requests
    already sent repeat as idempotent no-ops); permanent failures are logged and reported.
    """
    report = handle_s3_event(event, context)
    transient = [o for o in report.objects if o.transient]
    if transient:
        names = ", ".join(f"s3://{o.bucket}/{o.key}" for o in transient)
        raise EnqueueError(
            f"enqueueing failed for a transient reason: {names}",
            report=transient[0].enqueue
            or EnqueueReport(queue_url=LambdaSettings().queue_url or "", total=0, sent=0, messages=0),
        )
    return report.model_dump(mode="json")
