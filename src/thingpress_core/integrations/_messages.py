"""The SQS message format: `ImportRequest`, `ImportBatch`, and the legacy Thingpress message.

`parse_message` reads a body in any of the three forms and never evaluates anything: the
legacy ``"b'<base64>'"`` certificate is unwrapped as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from thingpress_core._vocabulary import RegistrationStatus
from thingpress_core.errors import CertificateError, MessageParseError

if TYPE_CHECKING:
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.importer import ImportOptions
    from thingpress_core.manifests import ManifestEntry

#: SQS's limit for one message and for one ``SendMessageBatch`` (1 MiB).
MAX_MESSAGE_BYTES: Final = 1_048_576

_MAX_NAMES = 10  # AWS IoT: at most 10 policies per certificate, 10 static groups per thing
_SCHEMA_VERSION: Final = 1
# Keys of ImportRequest / ImportBatch that no legacy Thingpress message has.
_CURRENT_ONLY_KEYS = frozenset(
    {"thing_name", "chain", "thing_type", "status", "source", "requests", "run_id"}
)


class ImportSource(BaseModel):
    """Where a request came from: the manifest's vendor format, S3 object and entry index."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

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
    [`encode_for_transport`][thingpress_core.certificates.encode_for_transport] (base64 of PEM
    text). ``thing_name`` None lets the consumer's naming strategy decide. ``policies``,
    ``thing_groups``, ``thing_type`` and (when set) ``status``, ``billing_group``, ``attributes``
    and ``manifest_attributes`` replace the consumer's own options for this certificate;
    ``vendor_id`` is the manifest's id for the chip (a thing attribute unless
    ``manifest_attributes`` is off). ``run_id`` (set by a producer with a ledger) is the ledger run
    the consumer records the device under. Unknown fields are rejected: an incompatible change
    means a new ``schema_version``. The optional fields added later (``billing_group``,
    ``attributes``, ``manifest_attributes``, ``vendor_id``) are left out of a body when unset, so
    messages without them read as before; a consumer older than them refuses a message that carries
    them (update consumers before producers).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    thing_name: str | None = Field(default=None, max_length=256)
    certificate: str = Field(min_length=1, max_length=MAX_MESSAGE_BYTES)
    chain: str | None = Field(default=None, max_length=MAX_MESSAGE_BYTES)
    policies: tuple[str, ...] = ()
    thing_groups: tuple[str, ...] = ()
    thing_type: str | None = Field(default=None, min_length=1, max_length=128)
    status: RegistrationStatus | None = None
    source: ImportSource | None = None
    run_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z._:-]{1,64}$")
    billing_group: str | None = Field(default=None, min_length=1, max_length=128)
    attributes: dict[str, str] | None = Field(default=None, max_length=50)
    manifest_attributes: bool | None = None
    vendor_id: str | None = Field(default=None, max_length=800)

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
                f"{message_label(message_id)} carries {len(requests)} requests; use parse_message",
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
        run_id: str | None = None,
    ) -> ImportRequest:
        """Build the request for a manifest entry or certificate, with ``options`` attached.

        The thing name is resolved here exactly as the importer would resolve it
        (``options.naming`` when set, else the entry's own name, else the common name;
        ``options.thing_name_prefix`` on every name; an invalid name mapped), so every
        consumer names the thing the same way; a naming failure raises its
        `ThingpressError`. ``source`` gets ``index`` (default: a manifest entry's own index).
        ``run_id`` names the ledger run the consumer records the device under.
        """
        from thingpress_core.certificates import DeviceCertificate, encode_for_transport, thing_name_for

        chain: tuple[DeviceCertificate, ...] = ()
        offered: str | None = None
        if isinstance(item, DeviceCertificate):
            cert = item
        else:
            cert, chain, offered = item.certificate, item.chain, item.thing_name
            index = item.index if index is None else index
        name = thing_name_for(
            cert,
            naming=options.naming if options is not None else None,
            prefix=options.thing_name_prefix if options is not None else None,
            offered=offered,
        )
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
            run_id=run_id,
            billing_group=options.billing_group if options is not None else None,
            attributes=dict(options.attributes) if options is not None and options.attributes else None,
            manifest_attributes=False if options is not None and not options.manifest_attributes else None,
            vendor_id=None if isinstance(item, DeviceCertificate) else item.vendor_id,
        )

    def to_entry(self) -> ManifestEntry:
        """Decode the certificate (and chain) into a `ManifestEntry` for the importer.

        Raises [`CertificateError`][thingpress_core.errors.CertificateError] when the text is not
        exactly one certificate (plus an optional chain).
        """
        from thingpress_core.certificates import decode_transport
        from thingpress_core.manifests import ManifestEntry

        label = self.source.label() if self.source is not None else None
        certs = decode_transport(self.certificate, source=label)
        if len(certs) != 1:
            raise CertificateError(
                f"an import request must carry exactly one certificate, found {len(certs)}"
                + (f" ({label})" if label else ""),
                source=label,
                reason="count",
            )
        chain = tuple(decode_transport(self.chain, source=label)) if self.chain else ()
        index = self.source.index if self.source is not None and self.source.index is not None else 0
        return ManifestEntry(
            thing_name=self.thing_name,
            certificate=certs[0],
            chain=chain,
            index=index,
            source=label,
            vendor_id=self.vendor_id,
        )

    def options_for(self, base: ImportOptions) -> ImportOptions:
        """``base`` with this request's policies, groups, thing type and status.

        A request that names its thing was named by the producer: the consumer's naming
        strategy and prefix are dropped for it, so the name is used as sent (the importer
        still maps a name that is not a valid thing name).
        """
        update: dict[str, Any] = {
            "policies": self.policies,
            "thing_groups": self.thing_groups,
            "thing_type": self.thing_type,
        }
        if self.status is not None:
            update["status"] = self.status
        if self.billing_group is not None:
            update["billing_group"] = self.billing_group
        if self.attributes is not None:
            update["attributes"] = dict(self.attributes)
        if self.manifest_attributes is not None:
            update["manifest_attributes"] = self.manifest_attributes
        if self.thing_name is not None:
            update["naming"] = None
            update["thing_name_prefix"] = None
        if {"attributes", "manifest_attributes"} & update.keys() or "thing_type" in update:
            # validated again: the attribute count depends on the thing type
            fields = {name: getattr(base, name) for name in type(base).model_fields}
            return type(base).model_validate({**fields, **update})
        return base.model_copy(update=update)


class ImportBatch(BaseModel):
    """Several `ImportRequest` in one SQS message (``enqueue_manifest(per_message=N)``).

    The consumer imports them one by one; if any fails transiently the whole message is
    delivered again and the others repeat as idempotent no-ops (``already_present``).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    requests: tuple[ImportRequest, ...] = Field(min_length=1)

    def to_body(self) -> str:
        """The SQS message body (compact JSON)."""
        return batch_body([r.to_body() for r in self.requests])


def batch_body(request_bodies: Sequence[str]) -> str:
    return '{"schema_version":1,"requests":[' + ",".join(request_bodies) + "]}"


def message_label(message_id: str | None) -> str:
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
    label = message_label(message_id)
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
        # A body with fields only the current form has is read as the current form even
        # without schema_version (the model's default): read as legacy it would lose them.
        if "schema_version" in data or not _CURRENT_ONLY_KEYS.isdisjoint(data):
            version = data.get("schema_version", _SCHEMA_VERSION)
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
