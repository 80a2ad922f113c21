"""Property tests: loading never fails with a foreign exception, transport is lossless, names are valid."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import (
    THING_NAME_PATTERN,
    DeviceCertificate,
    decode_transport,
    encode_for_transport,
    load_certificates,
    thing_name_for,
)
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, issue_certificate
from thingpress_core.errors import CertificateParseError

pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")

_CA: GeneratedCA = generate_ca("property root")
_SAMPLE = issue_certificate("sample", issuer=_CA)[0]
_PEM = _SAMPLE.pem
_KEY = _CA.key


def _mutations() -> st.SearchStrategy[bytes]:
    """Certificate-shaped inputs: real PEM/DER with bytes flipped, cut or spliced."""
    pem = _PEM.encode()
    der = _SAMPLE.der
    return st.one_of(
        st.sampled_from([pem, der, base64.b64encode(pem), base64.b64encode(der)]).flatmap(
            lambda data: st.tuples(
                st.integers(0, len(data) - 1), st.integers(0, 255), st.integers(0, len(data))
            ).map(lambda t: (data[: t[0]] + bytes([t[1]]) + data[t[0] + 1 :])[: max(t[2], 1)])
        ),
        st.binary(max_size=64).map(
            lambda b: b"-----BEGIN CERTIFICATE-----\n" + b + b"\n-----END CERTIFICATE-----"
        ),
        st.binary(max_size=64).map(lambda b: b"b'" + b + b"'"),
        st.binary(max_size=64).map(lambda b: b"\x30" + b),
    )


def _check(data: bytes | str) -> None:
    error: CertificateParseError | None = None
    certs: list[DeviceCertificate] = []
    try:
        certs = load_certificates(data, source="fuzz")
    except CertificateParseError as exc:
        error = exc
    if error is not None:
        assert error.source == "fuzz"
        assert str(error).startswith("fuzz")
        return
    assert isinstance(certs, list)
    assert all(isinstance(c, DeviceCertificate) for c in certs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\x30\x82\xff\xff")
@example(b"b''")
def test_any_bytes_give_certificates_or_a_parse_error(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=512))
@example("-----BEGIN CERTIFICATE-----")
@example("b'\\n'")
def test_any_text_gives_certificates_or_a_parse_error(data: str) -> None:
    _check(data)


@settings(max_examples=300, deadline=None)
@given(_mutations())
def test_damaged_certificates_give_certificates_or_a_parse_error(data: bytes) -> None:
    _check(data)


_CN_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=0, max_size=200)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=1, max_size=4))
def test_encode_then_decode_is_identity(picks: list[int]) -> None:
    pool = _POOL
    certs = [pool[i] for i in picks]
    assert decode_transport(encode_for_transport(certs)) == certs
    assert [c.der for c in decode_transport(encode_for_transport(certs))] == [c.der for c in certs]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=512), st.binary(max_size=512), _mutations().map(base64.b64encode)))
@example("b'" + base64.b64encode(_PEM.encode()).decode()[:-7] + "'")
def test_any_transport_text_gives_certificates_or_a_parse_error(text: str | bytes) -> None:
    error: CertificateParseError | None = None
    try:
        certs = decode_transport(text, source="message 1")
    except CertificateParseError as exc:
        error = exc
    if error is not None:
        assert error.source == "message 1"
        assert str(error).startswith("message 1")
        return
    assert certs
    assert decode_transport(encode_for_transport(certs)) == certs


@settings(max_examples=150, deadline=None)
@given(cn=st.one_of(st.none(), _CN_TEXT), serial=st.integers(1, 2**159 - 1))
def test_every_encoding_of_any_certificate_loads_back(cn: str | None, serial: int) -> None:
    # many certificates, not a fixed few: about one DER in 40 ends in a byte that is ASCII
    # whitespace, which a loader treating DER as text would cut off
    cert = issue_certificate(cn, issuer=_CA, key=_KEY, serial_number=serial)[0]
    pem = cert.pem.encode()
    forms = [cert.der, pem, base64.b64encode(cert.der), base64.b64encode(pem), str(base64.b64encode(pem))]
    for form in forms:
        assert load_certificates(form) == [cert]
    assert decode_transport(encode_for_transport([cert, cert])) == [cert, cert]


_POOL = [
    _SAMPLE,
    issue_certificate("rsa one", issuer=_CA, key_type="rsa")[0],
    issue_certificate(None, issuer=_CA)[0],
    issue_certificate("ünïcødé ✓", issuer=_CA)[0],
]


@settings(max_examples=100, deadline=None)
@given(cn=_CN_TEXT, prefix=st.sampled_from([None, "", "fleet-", "a:b_"]))
def test_thing_name_always_matches_the_aws_pattern(cn: str, prefix: str | None) -> None:
    cert = issue_certificate(cn, issuer=_CA, key=_KEY)[0]
    name = thing_name_for(cert, prefix=prefix)
    assert THING_NAME_PATTERN.match(name)
    assert thing_name_for(cert, prefix=prefix) == name
    assert THING_NAME_PATTERN.match(thing_name_for(cert, naming=lambda c: cn, prefix=prefix))


_SCRIPT = """
import json, sys
from thingpress_core.certificates import load_certificates, thing_name_for
certs = load_certificates(sys.stdin.read(), max_bytes=10_000_000)
print(json.dumps([thing_name_for(c) for c in certs]))
"""


def test_thing_names_are_identical_across_hash_seeds() -> None:
    cns = [
        "device 01",
        "device.example.com",
        "serial=12",
        "Gerät-7",
        "温度计",
        "x" * 200,
        None,
        "plain-ok",
        "",
    ]
    certs = [issue_certificate(cn, issuer=_CA, key=_KEY)[0] for cn in cns]
    bundle = "".join(c.pem for c in certs)
    results = []
    for seed in ("1", "2024"):
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONWARNINGS": "error",
        }  # a 200-character CN must not warn
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT], input=bundle, capture_output=True, text=True, env=env, check=True
        )
        results.append(json.loads(out.stdout))
    assert results[0] == results[1]
    assert results[0] == [thing_name_for(c) for c in certs]
    assert all(THING_NAME_PATTERN.match(name) for name in results[0])
