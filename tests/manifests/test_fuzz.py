"""Random and mutated input into every reader gives entries or a ManifestError, nothing else.

Byte-level mutations of whole manifests live here; structured mutations of the certificates
inside them (tests/fuzz/_mutate.py) are drawn by hypothesis below, and a larger deterministic
corpus of them runs in tests/fuzz/test_fuzz_manifests.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz._checks import check_manifest, espressif_manifest, generated_manifest, pem_manifest
from tests.fuzz._mutate import MUTATED_DER

from thingpress_core.certificates import load_certificates
from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, ManifestFormat, ManifestReport, read_manifest
from thingpress_core.manifests._common import Policy

DATA = Path(__file__).resolve().parent.parent / "data" / "manifests"
CERTS = Path(__file__).resolve().parent.parent / "data" / "certs"
VERIFIERS = sorted((DATA / "microchip" / "verifiers").glob("*.crt"))
_MICROCHIP_PEM = (CERTS / "microchip-devices.pem").read_bytes()
SEEDS = {
    ManifestFormat.ESPRESSIF: (DATA / "espressif" / "manifest-espressif.csv").read_bytes(),
    ManifestFormat.MICROCHIP: (DATA / "microchip" / "ECC608C-TNGTLSU-B.json").read_bytes(),
    ManifestFormat.PEM: (CERTS / "espressif-devices.pem").read_bytes(),
    ManifestFormat.GENERATED: b"\n".join(
        base64.b64encode(b"-----BEGIN CERTIFICATE-----" + block)
        for block in _MICROCHIP_PEM.split(b"-----BEGIN CERTIFICATE-----")[1:]
    ),
}
FUZZ = settings(
    max_examples=int(os.environ.get("THINGPRESS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _consume(data: bytes, fmt: ManifestFormat | None, on_error: str) -> None:
    options: dict[str, Any] = {"verifiers": VERIFIERS} if fmt in (ManifestFormat.MICROCHIP, None) else {}
    try:
        reader = read_manifest(data, format=fmt, on_error=on_error, **options)  # type: ignore[arg-type]
        for entry in reader:
            assert isinstance(entry, ManifestEntry)
        assert reader.report.complete
    except ManifestError:
        pass
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


@pytest.mark.parametrize("fmt", list(ManifestFormat))
@pytest.mark.parametrize("on_error", ["raise", "skip"])
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(fmt: ManifestFormat, on_error: str, data: bytes) -> None:
    _consume(data, fmt, on_error)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_with_detection(data: bytes) -> None:
    _consume(data, None, "skip")


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@FUZZ
@given(st.data())
def test_mutated_real_files(fmt: ManifestFormat, data: st.DataObject) -> None:
    seed = bytearray(SEEDS[fmt])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(seed)))
    _consume(bytes(seed[:cut]), fmt, data.draw(st.sampled_from(["raise", "skip"])))


@FUZZ
@given(st.data())
def test_mutated_infineon_archive(build: Any, data: st.DataObject) -> None:
    from thingpress_core.certificates.generate import generate_device_certificates

    if not _ARCHIVE:
        _ARCHIVE.append(build.infineon_archive({"E0E0": list(generate_device_certificates(3))}))
    seed = bytearray(_ARCHIVE[0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    _consume(bytes(seed), ManifestFormat.INFINEON, data.draw(st.sampled_from(["raise", "skip"])))


_ARCHIVE: list[bytes] = []


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_KEY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["EC", "RSA", 1]),
        "crv": st.sampled_from(["P-256", "P-384"]),
        "x": st.sampled_from(["", "AA", "!!", 3]),
        "y": st.sampled_from(["", "AA", "!!"]),
        "x5c": st.one_of(_JSON, st.lists(st.sampled_from(["", "AAAA", "MIIB", "é"]), max_size=3)),
    },
)
_PAYLOADS = st.one_of(
    st.binary(max_size=64),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"uniqueId": st.one_of(st.text(max_size=20), _JSON)},
        optional={
            "provisioningTimestamp": st.one_of(st.text(max_size=30), _JSON),
            "publicKeySet": st.one_of(
                _JSON, st.fixed_dictionaries({"keys": st.lists(_KEY_FIELDS, max_size=2)})
            ),
        },
    ).map(lambda v: json.dumps(v).encode()),
)


@FUZZ
@given(payloads=st.lists(_PAYLOADS, min_size=1, max_size=3), on_error=st.sampled_from(["raise", "skip"]))
def test_signed_random_microchip_payloads(signer: Any, payloads: list[bytes], on_error: str) -> None:
    """Entries whose signature verifies but whose payload is anything: entries or ManifestError."""
    document = json.dumps([signer.sign(p) for p in payloads]).encode()
    try:
        reader = read_manifest(document, format="microchip", verifiers=[signer.pem], on_error=on_error)  # type: ignore[arg-type]
        for entry in reader:
            assert isinstance(entry, ManifestEntry)
        assert reader.report.entries == len(payloads)
    except ManifestError:
        pass


_PEM_TOKENS = [b"-----BEGIN ", b"-----END ", b"CERTIFICATE", b"-----", b"\n", b"\r\n", b"PRIVATE KEY", b"AA"]


@FUZZ
@given(st.data())
def test_streamed_pem_reads_like_the_whole_text(data: st.DataObject) -> None:
    """Whatever the read chunk size, the PEM reader finds what `load_certificates` finds."""
    from thingpress_core.certificates import load_certificates
    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.errors import CertificateParseError
    from thingpress_core.manifests import _pem

    if not _BUNDLE:
        _BUNDLE.append("".join(c.pem for c in generate_device_certificates(3)).encode())
    text = bytearray(_BUNDLE[0])
    for _ in range(data.draw(st.integers(0, 3))):
        position = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text[position:position] = data.draw(st.sampled_from(_PEM_TOKENS))
        else:
            del text[position : position + data.draw(st.integers(1, 40))]
    whole: list[object] | None
    try:
        whole = list(load_certificates(bytes(text)))
    except CertificateParseError:
        whole = None
    chunk = data.draw(st.sampled_from([1, 7, 64, 1000]))
    policy = Policy(ManifestReport(source="<bytes>", format=ManifestFormat.PEM), "raise")
    try:
        streamed: list[object] | None = [
            item.certificate
            for item in _pem.read_pem(
                io.BytesIO(bytes(text)), source="<bytes>", policy=policy, naming=None, chunk_size=chunk
            )
            if isinstance(item, ManifestEntry)
        ]
    except ManifestError:
        streamed = None
    if whole is not None and streamed is not None:
        assert streamed == whole
    if streamed:
        assert whole is not None  # the reader never yields from text the loader refuses


_BUNDLE: list[bytes] = []


@pytest.mark.parametrize("fmt", ["pem", "generated", "espressif"])
@FUZZ
@given(der=MUTATED_DER, place=st.integers(0, 2), style=st.integers(0, 2))
def test_a_mutated_certificate_fails_alone(fmt: str, der: bytes, place: int, style: int) -> None:
    """Among real vendor certificates, a structurally mutated one is reported alone (or read, if
    it is still a certificate): the others come out whatever ``on_error`` says."""
    good = [_GOOD[place], _GOOD[-1 - place]]
    if fmt == "pem":
        case = pem_manifest(good, der, place)
    elif fmt == "generated":
        case = generated_manifest(good, der, place, style=style)
    else:
        case = espressif_manifest(good, der, place)
    check_manifest(case)


_GOOD = [c.der for c in load_certificates((CERTS / "espressif-devices.pem").read_bytes() + _MICROCHIP_PEM)]
