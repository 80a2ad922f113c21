"""ImportRequest: the current message form, the legacy Thingpress message, and what is refused."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import DeviceCertificate, encode_for_transport
from thingpress_core.certificates.generate import generate_ca, generate_device_certificates
from thingpress_core.errors import CertificateError, ThingpressError
from thingpress_core.importer import ImportOptions
from thingpress_core.integrations.aws_lambda import (
    MAX_MESSAGE_BYTES,
    ImportBatch,
    ImportRequest,
    ImportSource,
    MessageParseError,
    parse_message,
)
from thingpress_core.manifests import ManifestEntry


@pytest.fixture(scope="module")
def cert() -> DeviceCertificate:
    return next(generate_device_certificates(1, cn_prefix="msg-"))


def legacy_message(pem: bytes, thing: str, **extra: object) -> str:
    """A message exactly as the old Thingpress providers built theirs."""
    message = {
        "certificate": str(base64.b64encode(pem)),  # yields "b'...'"
        "thing": thing,
        "policies": [{"name": "DevicePolicy"}],
        "thing_groups": [{"arn": "arn:aws:iot:us-east-1:123456789012:thinggroup/Group1"}],
        "thing_type_name": "Sensor",
    }
    message.update(extra)
    return json.dumps(message)


def test_round_trip_keeps_every_field(cert: DeviceCertificate) -> None:
    request = ImportRequest(
        thing_name="thing-1",
        certificate=encode_for_transport(cert),
        policies=("P1", "P2"),
        thing_groups=("G1",),
        thing_type="Sensor",
        status="INACTIVE",
        source=ImportSource(vendor="microchip", bucket="b", key="k.json", index=4),
    )
    body = request.to_body()
    assert json.loads(body)["schema_version"] == 1
    assert ImportRequest.parse(body) == request
    assert ImportRequest.parse(body.encode()) == request


def test_to_entry_decodes_the_certificate_and_chain(cert: DeviceCertificate) -> None:
    ca = generate_ca()
    request = ImportRequest(
        thing_name="t",
        certificate=encode_for_transport(cert),
        chain=encode_for_transport(ca.cert),
        source=ImportSource(bucket="b", key="m.csv", index=7),
    )
    entry = request.to_entry()
    assert entry.certificate == cert
    assert entry.chain == (ca.cert,)
    assert entry.index == 7
    assert entry.thing_name == "t"
    assert entry.source == "s3://b/m.csv entry 8"


def test_from_certificate_resolves_the_name_and_carries_options(cert: DeviceCertificate) -> None:
    options = ImportOptions(policies=("P",), thing_groups=("G",), thing_type="T", thing_name_prefix="x-")
    request = ImportRequest.from_certificate(
        cert, options=options, source=ImportSource(vendor="pem"), index=3
    )
    assert request.thing_name == "x-msg-000000"
    assert (request.policies, request.thing_groups, request.thing_type) == (("P",), ("G",), "T")
    assert request.source == ImportSource(vendor="pem", index=3)
    entry = ManifestEntry(thing_name="given", certificate=cert, index=9)
    # named exactly as the importer names it: the prefix on every name (issue 11)
    assert ImportRequest.from_certificate(entry, options=options).thing_name == "x-given"
    by_id = options.model_copy(update={"naming": "certificate_id", "thing_name_prefix": None})
    assert ImportRequest.from_certificate(entry, options=by_id).thing_name == cert.certificate_id
    assert ImportRequest.from_certificate(entry, options=options).source == ImportSource(index=9)


def test_options_for_replaces_what_the_request_names(cert: DeviceCertificate) -> None:
    base = ImportOptions(policies=("Base",), status="ACTIVE", concurrency=3)
    request = ImportRequest(certificate=encode_for_transport(cert), policies=("P",), status="INACTIVE")
    options = request.options_for(base)
    assert options.policies == ("P",)
    assert options.thing_groups == ()
    assert options.status == "INACTIVE"
    assert options.concurrency == 3


def test_legacy_message_as_the_providers_built_it(cert: DeviceCertificate) -> None:
    body = legacy_message(cert.pem.encode(), "legacy-thing")
    assert json.loads(body)["certificate"].startswith("b'")
    request = ImportRequest.parse(body, message_id="m-1")
    assert request.thing_name == "legacy-thing"
    assert request.policies == ("DevicePolicy",)
    assert request.thing_groups == ("Group1",)
    assert request.thing_type == "Sensor"
    assert request.to_entry().certificate == cert


def test_legacy_variants(cert: DeviceCertificate) -> None:
    body = legacy_message(
        cert.pem.encode(),
        "t",
        thing_groups=[{"name": "Named", "arn": "arn:aws:iot:us-east-1:1:thinggroup/Other"}],
        policies=[],
        cert_active="FALSE",
        thing_deferred="FALSE",
        batch_id="b-1",
    )
    request = ImportRequest.parse(body)
    assert request.thing_groups == ("Named",)
    assert request.policies == ()
    assert request.status == "INACTIVE"
    # the older single-valued keys
    old = json.dumps(
        {
            "certificate": str(base64.b64encode(cert.pem.encode())),
            "thing": "t",
            "policy_name": "P",
            "thing_group_arn": "arn:aws:iot:eu-west-1:123456789012:thinggroup/Fleet",
        }
    )
    request = ImportRequest.parse(old)
    assert (request.policies, request.thing_groups, request.thing_type) == (("P",), ("Fleet",), None)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"cert_format": "FINGERPRINT"}, "cert_format"),
        ({"thing_groups": [{"arn": "arn:aws:iot:us-east-1:1:thing/NotAGroup"}]}, "thinggroup"),
        ({"thing_groups": "Group1"}, "must be a list"),
        ({"policies": [{"nom": "x"}]}, "no name"),
        ({"thing": 5}, "thing must be a string"),
        ({"policies": [{"name": f"P{i}"} for i in range(11)]}, "at most 10"),
    ],
)
def test_bad_legacy_messages_are_refused(
    cert: DeviceCertificate, change: dict[str, object], fragment: str
) -> None:
    body = json.loads(legacy_message(cert.pem.encode(), "t"))
    body.update(change)
    with pytest.raises(MessageParseError, match=fragment) as info:
        ImportRequest.parse(json.dumps(body), message_id="m-9")
    assert info.value.message_id == "m-9"
    assert "m-9" in str(info.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "json"),
        ("[1, 2]", "not_an_object"),
        ('{"hello": "world"}', "unknown_format"),
        ('{"schema_version": 2, "certificate": "x"}', "unsupported_version"),
        ('{"schema_version": true, "certificate": "x"}', "unsupported_version"),
        ('{"schema_version": 1}', "invalid"),
        ('{"schema_version": 1, "certificate": "x", "surprise": 1}', "invalid"),
        ('{"schema_version": 1, "certificate": ""}', "invalid"),
        (b"\xff\xfe", "encoding"),
        ("[" * 100_000, "json"),
    ],
)
def test_malformed_bodies_raise_message_parse_error(body: str | bytes, reason: str) -> None:
    with pytest.raises(MessageParseError) as info:
        parse_message(body, message_id="abc")
    assert info.value.reason == reason
    assert isinstance(info.value, ThingpressError)
    assert isinstance(info.value, ValueError)


def test_body_size_is_bounded_before_decoding() -> None:
    huge = '{"schema_version": 1, "certificate": "' + "A" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(MessageParseError) as info:
        parse_message(huge)
    assert info.value.reason == "too_large"
    with pytest.raises(MessageParseError, match="larger than 100 bytes"):
        parse_message(b"x" * 101, max_bytes=100)
    # multi-byte characters count as bytes, not characters
    with pytest.raises(MessageParseError, match="larger than"):
        parse_message("é" * 60, max_bytes=100)


def test_validation_errors_do_not_echo_the_certificate(cert: DeviceCertificate) -> None:
    # The failing fields hold the certificate text itself, so an error that quoted its input
    # would carry it.
    text = encode_for_transport(cert)
    body = json.dumps({"schema_version": 1, "certificate": text, "chain": [text], "thing_name": text})
    with pytest.raises(MessageParseError) as info:
        parse_message(body)
    assert "chain" in str(info.value)
    assert "thing_name" in str(info.value)
    assert text[:40] not in str(info.value)
    assert text[-40:] not in str(info.value)


def test_batch_messages(cert: DeviceCertificate) -> None:
    one = ImportRequest(certificate=encode_for_transport(cert), thing_name="a")
    two = one.model_copy(update={"thing_name": "b"})
    body = ImportBatch(requests=(one, two)).to_body()
    assert parse_message(body) == (one, two)
    with pytest.raises(MessageParseError) as info:
        ImportRequest.parse(body)
    assert info.value.reason == "count"
    with pytest.raises(MessageParseError):
        parse_message('{"schema_version": 1, "requests": []}')


def test_corrupt_certificate_parses_as_a_message_but_not_as_a_certificate() -> None:
    request = ImportRequest.parse(
        json.dumps({"schema_version": 1, "certificate": "bm90IGEgY2VydGlmaWNhdGU="})
    )
    with pytest.raises(CertificateError):
        request.to_entry()


def test_a_request_with_two_certificates_is_refused_at_decoding(cert: DeviceCertificate) -> None:
    other = next(generate_device_certificates(1, start=5))
    request = ImportRequest(certificate=encode_for_transport([cert, other]))
    with pytest.raises(CertificateError, match="exactly one"):
        request.to_entry()


def test_duplicate_names_are_folded() -> None:
    request = ImportRequest(certificate="x", policies=("P", "P", "Q"))
    assert request.policies == ("P", "Q")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_bodies_never_raise_anything_else(body: str | bytes) -> None:
    outcome: object
    try:
        outcome = parse_message(body)
    except MessageParseError as exc:
        outcome = exc
    assert isinstance(outcome, tuple | MessageParseError)
    assert str(outcome)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["thing", "certificate", "policies", "thing_groups", "thing_type_name", "cert_format"]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    )
)
def test_arbitrary_legacy_shaped_bodies_never_raise_anything_else(data: dict[str, object]) -> None:
    reason = "parsed"
    try:
        parse_message(json.dumps(data))
    except MessageParseError as exc:
        reason = exc.reason
    assert reason in {"parsed", "legacy", "unknown_format", "invalid"}


_names = st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20), max_size=10, unique=True)


@settings(max_examples=100, deadline=None)
@given(
    thing=st.none() | st.text(max_size=40),
    policies=_names,
    groups=_names,
    key=st.none() | st.text(max_size=60),
    index=st.none() | st.integers(min_value=0, max_value=10**9),
)
def test_requests_round_trip_through_a_body(
    thing: str | None, policies: list[str], groups: list[str], key: str | None, index: int | None
) -> None:
    request = ImportRequest(
        thing_name=thing,
        certificate="QUJD",
        policies=tuple(policies),
        thing_groups=tuple(groups),
        source=ImportSource(bucket="b", key=key, index=index),
    )
    assert parse_message(request.to_body()) == (request,)


def test_a_current_form_body_without_schema_version_keeps_its_fields(cert: DeviceCertificate) -> None:
    # Read as a legacy message it would silently lose thing_name and chain.
    ca = generate_ca()
    body = json.dumps(
        {
            "certificate": encode_for_transport(cert),
            "thing_name": "named-by-producer",
            "chain": encode_for_transport(ca.cert),
        }
    )
    (request,) = parse_message(body)
    assert request.thing_name == "named-by-producer"
    assert request.to_entry().chain == (ca.cert,)
    # mixing the two forms is refused, not half read
    mixed = json.dumps({"certificate": encode_for_transport(cert), "thing": "t", "thing_name": "x"})
    with pytest.raises(MessageParseError) as info:
        parse_message(mixed)
    assert info.value.reason == "invalid"


def test_a_corrupt_certificate_error_names_the_source_of_the_request() -> None:
    request = ImportRequest(
        certificate="bm90IGEgY2VydGlmaWNhdGU=", source=ImportSource(bucket="b", key="lot.csv", index=2)
    )
    with pytest.raises(CertificateError, match=r"s3://b/lot\.csv entry 3"):
        request.to_entry()
