"""Microchip manifests: the real sample files, and every way an entry must be refused."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError, ManifestError, ManifestSignatureError
from thingpress_core.manifests import ManifestFormat, load_verifiers, read_manifest

TNGTLSU_IDS = [
    "0123f2408ea1fcf201",
    "01237fa064679e6a01",
    "01235ce7a9c4250501",
    "0123ee8faf5c5e4801",
    "01239145f2b3dcbe01",
    "0123959fe6aa93f901",
    "0123ff4da296014901",
    "0123994afca075b501",
    "0123d773fd90577f01",
    "01235305d966e82401",
]


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.fixture
def tngtlsu(data_dir: Path) -> Path:
    return data_dir / "microchip" / "ECC608C-TNGTLSU-B.json"


@pytest.fixture
def tmngtlss(data_dir: Path) -> Path:
    return data_dir / "microchip" / "ECC608-TMNGTLSS-B.json"


@pytest.fixture
def entries(tngtlsu: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(tngtlsu.read_text())
    return loaded


def _dump(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps(entries).encode()


def test_tngtlsu_yields_ten_verified_entries_named_by_signed_unique_id(
    tngtlsu: Path, verifiers: list[Path]
) -> None:
    reader = read_manifest(tngtlsu, verifiers=verifiers)
    found = list(reader)
    assert [e.thing_name for e in found] == TNGTLSU_IDS
    assert [e.vendor_id for e in found] == TNGTLSU_IDS
    assert [e.index for e in found] == list(range(10))
    assert found[0].certificate.certificate_id == (
        "47574cb6e6fea6370f10e636041663eccc567e5f45002e142f39c75e94a28335"
    )
    assert found[-1].certificate.certificate_id == (
        "a73052045cb453919239bdfb3c7ee21aba13c2dc88160e69ac5fcd83676c8da2"
    )
    for entry in found:
        assert entry.certificate.common_name == "sn" + entry.vendor_id.upper()  # type: ignore[union-attr]
        assert entry.certificate.certificate_id == hashlib.sha256(entry.certificate.der).hexdigest()
        assert len(entry.chain) == 1
        assert entry.chain[0].common_name is not None
        assert entry.chain[0].common_name.startswith("Crypto Authentication Signer")
        assert entry.source == str(tngtlsu)
    assert reader.format is ManifestFormat.MICROCHIP
    assert reader.report.yielded == 10
    assert reader.report.skipped == []
    assert reader.report.complete


def test_naming_option_common_name_and_none(tngtlsu: Path, verifiers: list[Path]) -> None:
    by_cn = list(read_manifest(tngtlsu, verifiers=verifiers, naming="common_name"))
    assert by_cn[0].thing_name == "sn0123F2408EA1FCF201"
    assert by_cn[0].vendor_id == TNGTLSU_IDS[0]
    unnamed = list(read_manifest(tngtlsu, verifiers=verifiers, naming=None))
    assert {e.thing_name for e in unnamed} == {None}


def test_tmngtlss_has_no_certificates_and_says_so(tmngtlss: Path, verifiers: list[Path]) -> None:
    reader = read_manifest(tmngtlss, verifiers=verifiers)
    assert list(reader) == []
    report = reader.report
    assert report.complete
    assert report.yielded == 0
    assert report.entries == 10
    assert [s.index for s in report.skipped] == list(range(10))
    assert {s.code for s in report.skipped} == {"no_certificate"}
    assert report.skipped[0].vendor_id == "01230cac6606e99401"
    assert "entry 1" in report.skipped[0].reason
    assert "no publicKeySet" in report.skipped[0].reason
    assert report.summary().endswith("10 entries, 0 certificates, 10 skipped (10 no_certificate)")


def test_tmngtlss_entries_still_verify(tmngtlss: Path, verifiers: list[Path]) -> None:
    data = json.loads(tmngtlss.read_text())
    data[4]["payload"] = data[4]["payload"][:-4] + "AAAA"
    with pytest.raises(ManifestSignatureError, match="entry 5"):
        list(read_manifest(json.dumps(data).encode(), verifiers=verifiers, format="microchip"))


def _refused(data: bytes, verifiers: list[Path], **options: Any) -> ManifestError:
    reader = read_manifest(data, format="microchip", verifiers=verifiers, name="m.json", **options)
    with pytest.raises(ManifestError) as caught:
        next(reader)  # nothing is yielded: the very first next() raises
    assert reader.report.yielded == 0
    return caught.value


def test_tampered_payload_is_refused(entries: list[dict[str, Any]], verifiers: list[Path]) -> None:
    payload = json.loads(_b64url_decode(entries[2]["payload"]))
    payload["uniqueId"] = "0123deadbeef000001"
    entries[2]["payload"] = _b64url(json.dumps(payload).encode())
    entries[2]["header"]["uniqueId"] = "0123deadbeef000001"
    error = _refused(_dump(entries), verifiers)
    assert isinstance(error, ManifestSignatureError)
    assert "1 of 10 entries" in str(error)
    assert "entry 3: signature does not verify" in str(error)
    assert error.source == "m.json"
    assert error.index == 2
    assert [e.index for e in error.errors] == [2]


def test_swapped_signature_is_refused(entries: list[dict[str, Any]], verifiers: list[Path]) -> None:
    entries[0]["signature"], entries[1]["signature"] = entries[1]["signature"], entries[0]["signature"]
    error = _refused(_dump(entries), verifiers)
    assert isinstance(error, ManifestSignatureError)
    assert [e.index for e in error.errors] == [0, 1]
    assert "2 of 10 entries" in str(error)
    assert "entry 1:" in str(error)
    assert "entry 2:" in str(error)


def test_unknown_kid_is_refused(entries: list[dict[str, Any]], verifiers: list[Path]) -> None:
    header = json.loads(_b64url_decode(entries[6]["protected"]))
    header["kid"] = _b64url(b"\x01" * 20)
    entries[6]["protected"] = _b64url(json.dumps(header).encode())
    error = _refused(_dump(entries), verifiers)
    assert isinstance(error, ManifestSignatureError)
    assert "entry 7: unknown signer" in str(error)


def test_signer_not_among_the_verifiers_is_refused(tngtlsu: Path, verifiers: list[Path]) -> None:
    others = [v for v in verifiers if "signer_5" not in v.name]
    error = _refused(tngtlsu.read_bytes(), others)
    assert "10 of 10 entries" in str(error)
    assert "unknown signer" in str(error)
    assert len(error.errors) == 10


def test_header_and_payload_unique_id_disagree(entries: list[dict[str, Any]], verifiers: list[Path]) -> None:
    entries[4]["header"]["uniqueId"] = "0123aaaaaaaaaaaa01"
    error = _refused(_dump(entries), verifiers)
    assert isinstance(error, ManifestSignatureError)
    assert "entry 5: unprotected header uniqueId '0123aaaaaaaaaaaa01' disagrees" in str(error)


def test_x5t_that_does_not_match_the_kid_verifier(make_signer: Any) -> None:
    signer = make_signer()
    other = make_signer()
    entry = signer.entry("0123000000000001")
    # re-sign with a header naming signer's kid but other's thumbprint
    header = {"alg": "ES256", "kid": signer.kid, "x5t#S256": other.x5t}
    entry = _resign(signer, entry, header)
    error = _refused(json.dumps([entry]).encode(), [signer.pem, other.pem])
    assert "x5t#S256 does not match" in str(error)


def _resign(signer: Any, entry: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    protected = _b64url(json.dumps(header).encode())
    der = signer.key.sign(f"{protected}.{entry['payload']}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return {
        **entry,
        "protected": protected,
        "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
    }


def test_non_es256_algorithm_is_refused(make_signer: Any) -> None:
    signer = make_signer()
    entry = _resign(signer, signer.entry("01"), {"alg": "HS256", "kid": signer.kid})
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert "unsupported signature algorithm 'HS256'" in str(error)


def test_skip_mode_yields_the_good_entries_and_reports_the_bad(
    entries: list[dict[str, Any]], verifiers: list[Path]
) -> None:
    entries[3]["header"]["uniqueId"] = "0123aaaaaaaaaaaa01"
    entries[8]["signature"] = entries[0]["signature"]
    reader = read_manifest(_dump(entries), verifiers=verifiers, on_error="skip")
    found = list(reader)
    assert [e.index for e in found] == [0, 1, 2, 4, 5, 6, 7, 9]
    assert [(s.index, s.code) for s in reader.report.skipped] == [(3, "signature"), (8, "signature")]
    assert reader.report.skipped[0].number == 4
    assert "entry 4" in reader.report.skipped[0].reason
    assert reader.report.summary().endswith("10 entries, 8 certificates, 2 skipped (2 signature)")


def test_own_signer_with_chain(make_signer: Any, device_certs: dict[str, list[DeviceCertificate]]) -> None:
    signer = make_signer()
    device, ca = device_certs["E0E0"][0], device_certs["E0E1"][0]
    manifest = json.dumps([signer.entry("0123abcdef00000001", device=device, chain=[ca])]).encode()
    (entry,) = list(read_manifest(manifest, verifiers=signer.certificate))
    assert entry.certificate == device
    assert entry.chain == (ca,)
    assert entry.thing_name == "0123abcdef00000001"


def test_jwk_that_does_not_match_the_certificate(
    make_signer: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    signer = make_signer()
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    entry = signer.entry("01", device=device_certs["E0E0"][0], jwk_key=other_key)
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert isinstance(error, ManifestSignatureError)
    assert "does not hold the public key in the signed JWK" in str(error)


def test_verifier_validity_at_provisioning_time(
    make_signer: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    utc = dt.timezone.utc
    signer = make_signer(
        not_before=dt.datetime(2019, 1, 1, tzinfo=utc), not_after=dt.datetime(2020, 1, 1, tzinfo=utc)
    )
    inside = signer.entry("01", device=device_certs["E0E0"][0], timestamp="2019-06-01T00:00:00.000Z")
    outside = signer.entry("02", device=device_certs["E0E0"][1], timestamp="2025-06-01T20:14:53.773Z")
    error = _refused(json.dumps([inside, outside]).encode(), [signer.pem])
    assert "entry 2: signer 'CN=Test Manifest Signer' was not valid at provisioning time 2025-06-01" in str(
        error
    )
    assert [e.index for e in error.errors] == [1]
    unchecked = read_manifest(
        json.dumps([inside, outside]).encode(), verifiers=[signer.pem], check_verifier_validity=False
    )
    assert [e.thing_name for e in unchecked] == ["01", "02"]


def test_missing_timestamp_is_refused_when_validity_is_checked(make_signer: Any) -> None:
    signer = make_signer()
    entry = signer.entry("01", timestamp="yesterday")
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert "no valid provisioningTimestamp" in str(error)


def test_verifiers_are_required(tngtlsu: Path) -> None:
    with pytest.raises(ConfigurationError, match="verifiers="):
        list(read_manifest(tngtlsu))


def test_verifier_inputs(data_dir: Path, verifiers: list[Path]) -> None:
    signer5 = next(v for v in verifiers if "signer_5" in v.name)
    pem = signer5.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    kid = "TCnpnzYB8M3CO776ByPJ2yX3KYo"
    assert set(load_verifiers(data_dir / "microchip" / "verifiers")) >= {kid}
    assert list(load_verifiers(str(signer5))) == [kid]
    assert list(load_verifiers(pem)) == [kid]
    assert list(load_verifiers(cert)) == [kid]
    assert list(load_verifiers(DeviceCertificate.from_pem(pem))) == [kid]
    assert load_verifiers(pem)[kid].x5t_s256 == "Vx2ZhBEX46-zTyiIYEWQP6eFzCg90ugGjh5epGBM4OM"
    with pytest.raises(ConfigurationError, match="not a PEM or DER"):
        load_verifiers(b"nonsense")
    with pytest.raises(ConfigurationError, match=r"cannot read verifier file\(s\) from .*missing\.crt"):
        load_verifiers(str(data_dir / "missing.crt"))
    with pytest.raises(ConfigurationError, match="no certificate files"):
        load_verifiers(data_dir / "espressif")
    with pytest.raises(ConfigurationError, match="must be a path"):
        load_verifiers([42])  # type: ignore[list-item]


def test_not_json_and_wrong_shape(verifiers: list[Path]) -> None:
    with pytest.raises(ManifestError, match=r"m\.json: not a Microchip manifest: the file is not JSON"):
        list(read_manifest(b"[{oops", format="microchip", verifiers=verifiers, name="m.json"))
    with pytest.raises(ManifestError, match="expected a JSON array"):
        list(read_manifest(b'"text"', format="microchip", verifiers=verifiers))
    error = _refused(b'[1, {"payload": "x"}]', verifiers)
    assert "entry 1: entry is not a JSON object" in str(error)
    assert "entry 2: entry has no 'protected' string" in str(error)
    assert not isinstance(error, ManifestSignatureError)


def test_many_bad_entries_are_listed_briefly(entries: list[dict[str, Any]], verifiers: list[Path]) -> None:
    many = entries * 3
    for item in many:
        item_sig = item["signature"]
        item["signature"] = item_sig[:-6] + ("AAAAAA" if not item_sig.endswith("AAAAAA") else "BBBBBB")
    error = _refused(_dump(many), verifiers)
    assert "30 of 30 entries" in str(error)
    assert "and 20 more" in str(error)
    assert len(error.errors) == 30


def test_broken_x5c_certificate_is_named(
    make_signer: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    signer = make_signer()
    entry = signer.entry("01", device=device_certs["E0E0"][0])
    payload = json.loads(_b64url_decode(entry["payload"]))
    payload["publicKeySet"]["keys"][0]["x5c"][0] = base64.b64encode(b"0 not DER").decode()
    entry = _resign(
        signer,
        {**entry, "payload": _b64url(json.dumps(payload).encode())},
        json.loads(_b64url_decode(entry["protected"])),
    )
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert "entry 1: x5c[0] is not a valid certificate" in str(error)


def test_payload_that_is_not_ascii_is_refused_not_crashed(
    entries: list[dict[str, Any]], verifiers: list[Path]
) -> None:
    entries[1]["payload"] = "é" + entries[1]["payload"]
    error = _refused(_dump(entries), verifiers)
    assert "entry 2: payload is not base64url text" in str(error)
    assert [e.index for e in error.errors] == [1]


def test_signed_payload_that_is_not_json_or_has_no_unique_id(make_signer: Any) -> None:
    signer = make_signer()
    entries = [signer.sign(b"\xff not json"), signer.sign(b"[1, 2]"), signer.sign(b'{"uniqueId": 7}')]
    error = _refused(json.dumps(entries).encode(), [signer.pem])
    assert "entry 1: payload is not JSON" in str(error)
    assert "entry 2: payload is not a JSON object" in str(error)
    assert "entry 3: signed payload has no uniqueId" in str(error)


def test_skipped_entries_never_carry_the_unverified_unique_id(
    entries: list[dict[str, Any]], verifiers: list[Path]
) -> None:
    entries[3]["header"]["uniqueId"] = "0123aaaaaaaaaaaa01"
    reader = read_manifest(_dump(entries), verifiers=verifiers, on_error="skip")
    assert len(list(reader)) == 9
    (skipped,) = reader.report.skipped
    assert skipped.vendor_id is None
    assert "0123aaaaaaaaaaaa01" in skipped.reason  # named in the reason, as a claim


def test_out_of_range_timestamp_is_refused_not_crashed(make_signer: Any) -> None:
    signer = make_signer()
    entry = signer.entry("01", timestamp="0001-01-01T00:00:00+05:00")
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert "no valid provisioningTimestamp" in str(error)


# --- what a verifier must be: a manifest signer, not a device or TLS client certificate ---


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def test_real_signers_are_self_signed_with_ca_false_and_load(verifiers: list[Path]) -> None:
    # what Microchip issues: the reason a self-signed certificate with cA=false is accepted
    for path in verifiers:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        assert cert.issuer == cert.subject
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert not [e for e in cert.extensions if isinstance(e.value, x509.KeyUsage | x509.ExtendedKeyUsage)]
    assert len(load_verifiers(verifiers)) == 5


def test_a_device_certificate_as_verifier_is_refused_naming_the_file(
    tngtlsu: Path, verifiers: list[Path], device_certs: dict[str, list[DeviceCertificate]], tmp_path: Path
) -> None:
    device = tmp_path / "device.pem"
    device.write_bytes(_pem(device_certs["E0E0"][0].x509()))
    expected = (
        rf"^{re.escape(str(device))}: verifier 'CN=dev-E0E0-000000,O=thingpress-core tests' is not a "
        r"manifest signer: its ExtendedKeyUsage \(clientAuth\) allows no signing purpose, as a TLS or device "
        r"certificate's; pass the Microchip manifest signer certificates \(MCHP_manifest_signer_\*\.crt\)$"
    )
    with pytest.raises(ConfigurationError, match=expected) as info:
        load_verifiers(device)
    assert info.value.variable == "verifiers"
    # refused when the reader loads its verifiers, even beside the right ones
    with pytest.raises(ConfigurationError, match=expected):
        list(read_manifest(tngtlsu, verifiers=[*verifiers, device]))
    # in a directory, the error names the file, not the directory
    for path in verifiers:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(str(device))}: verifier"):
        load_verifiers(tmp_path)
    device.unlink()
    assert len(load_verifiers(tmp_path)) == 5


def test_a_real_microchip_device_certificate_is_refused(data_dir: Path) -> None:
    devices = data_dir.parent / "certs" / "microchip-devices.pem"
    with pytest.raises(
        ConfigurationError,
        match=r"microchip-devices\.pem: verifier 'CN=sn0123F2408EA1FCF201,O=Microchip Technology Inc' is "
        r"not a manifest signer: it is issued by 'CN=Crypto Authentication Signer 2A00,"
        r"O=Microchip Technology Inc' and its extensions cannot be parsed",
    ):
        load_verifiers(devices)


def test_an_end_entity_certificate_without_extended_key_usage_is_refused(make_signer: Any) -> None:
    ca = make_signer("Test CA", extensions=[x509.BasicConstraints(ca=True, path_length=0)])
    leaf = make_signer("Leaf", issuer=ca, extensions=[x509.BasicConstraints(ca=False, path_length=None)])
    with pytest.raises(
        ConfigurationError,
        match=r"^verifier 'CN=Leaf' is not a manifest signer: it is an end-entity certificate issued by "
        r"'CN=Test CA' \(not a CA, not self-signed, no code or document signing ExtendedKeyUsage\)",
    ):
        load_verifiers(leaf.certificate)
    # a certificate claiming its issuer's name but not signed by itself is no more self-signed
    forged = make_signer("Test CA", issuer=ca)
    with pytest.raises(ConfigurationError, match="it is an end-entity certificate issued by 'CN=Test CA'"):
        load_verifiers(forged.certificate)


def test_a_key_usage_without_digital_signature_is_refused(make_signer: Any) -> None:
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # keyCertSign, cRLSign
    ca = make_signer("CA", extensions=[x509.BasicConstraints(ca=True, path_length=None), usage])
    with pytest.raises(ConfigurationError, match="its KeyUsage does not allow digitalSignature"):
        load_verifiers(ca.pem)


def test_signers_that_are_cas_or_carry_a_signing_purpose_verify(
    make_signer: Any, device_certs: dict[str, list[DeviceCertificate]], data_dir: Path
) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    # the Crypto Authentication signer CAs (cA=true, digitalSignature) load as verifiers
    assert len(load_verifiers(data_dir.parent / "certs" / "microchip-signer.pem")) == 4
    signing = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    ca = make_signer("Signing CA", extensions=[x509.BasicConstraints(ca=True, path_length=0), signing])
    issued = make_signer(
        "Issued Signer",
        issuer=ca,
        extensions=[
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.CLIENT_AUTH])
        ],
    )
    for signer in (ca, issued):
        manifest = json.dumps([signer.entry("0123abcdef00000001", device=device_certs["E0E0"][0])]).encode()
        (entry,) = list(read_manifest(manifest, verifiers=[signer.pem]))
        assert entry.vendor_id == "0123abcdef00000001"


# --- JWS critical header parameters (RFC 7515, section 4.1.11) ---


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (
            {"crit": ["exp"], "exp": 1},
            r"protected header marks 'exp' critical, an extension this reader does not",
        ),
        ({"crit": ["b64"]}, r"protected header 'crit' names parameter\(s\) it does not carry: 'b64'"),
        ({"crit": []}, r"protected header 'crit' is not a non-empty list of header parameter names"),
        ({"crit": "exp", "exp": 1}, r"protected header 'crit' is not a non-empty list"),
        ({"crit": [1]}, r"protected header 'crit' is not a non-empty list"),
        ({"crit": None}, r"protected header 'crit' is not a non-empty list"),
    ],
    ids=["unknown", "absent", "empty", "not-a-list", "not-names", "null"],
)
def test_critical_header_parameters_fail_the_entry(
    make_signer: Any, device_certs: dict[str, list[DeviceCertificate]], header: dict[str, Any], reason: str
) -> None:
    signer = make_signer()
    good = signer.entry("01", device=device_certs["E0E0"][0])
    bad = signer.entry("02", device=device_certs["E0E0"][1], header=header)
    error = _refused(json.dumps([good, bad]).encode(), [signer.pem])
    assert isinstance(error, ManifestSignatureError)
    assert [e.index for e in error.errors] == [1]
    assert re.search(rf"m\.json: entry 2: {reason}", str(error.errors[0]))
    reader = read_manifest(json.dumps([good, bad]).encode(), verifiers=[signer.pem], on_error="skip")
    assert [e.vendor_id for e in reader] == ["01"]
    assert [(s.index, s.code) for s in reader.report.skipped] == [(1, "signature")]


def test_crit_in_the_unprotected_header_fails_the_entry(make_signer: Any) -> None:
    signer = make_signer()
    entry = signer.entry("01")
    entry["header"]["crit"] = ["exp"]
    error = _refused(json.dumps([entry]).encode(), [signer.pem])
    assert "entry 1: 'crit' appears in the unprotected header; it must be protected" in str(error)


# --- fuzzing: nothing but a ManifestError (or entries) for any input ---

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _consume(document: bytes, verifiers: Any, on_error: str) -> list[Any]:
    try:
        reader = read_manifest(document, format="microchip", verifiers=verifiers, on_error=on_error)  # type: ignore[arg-type]
        found = list(reader)
        assert reader.report.complete
        return found
    except ManifestError:
        return []
    except Exception as exc:  # pragma: no cover - the assertion is the point
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


DATA = Path(__file__).resolve().parent.parent / "data" / "manifests" / "microchip"
REAL_ENTRIES: list[dict[str, Any]] = json.loads((DATA / "ECC608C-TNGTLSU-B.json").read_text())
REAL_VERIFIERS = sorted((DATA / "verifiers").glob("*.crt"))


@FUZZ
@given(data=st.data())
def test_real_entries_with_values_replaced(data: st.DataObject) -> None:
    original = REAL_ENTRIES[data.draw(st.integers(0, 9))]
    entry = json.loads(json.dumps(original))
    # replace a value somewhere inside the entry, or inside its decoded header or payload
    part = data.draw(st.sampled_from(["entry", "protected", "payload"]))
    target: Any = entry if part == "entry" else json.loads(_b64url_decode(entry[part]))
    node = target
    while isinstance(node, dict | list) and node:
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
            node[key] = data.draw(JSON)
            break
        node = node[key]
    if part != "entry":
        entry[part] = _b64url(json.dumps(target).encode())
    found = _consume(
        json.dumps([entry]).encode(), REAL_VERIFIERS, data.draw(st.sampled_from(["raise", "skip"]))
    )
    # a changed signed part never verifies
    assert not found or part == "entry" or entry[part] == original[part]


@FUZZ
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "x5t#S256", "crit", "typ", "b64", "exp"]), JSON))
def test_signed_random_protected_headers(signer: Any, header: dict[str, Any]) -> None:
    found = _consume(json.dumps([signer.entry("01", header=header)]).encode(), [signer.pem], "skip")
    # an entry verifies only with a header this reader fully understands
    assert not found or "crit" not in header


@FUZZ
@given(
    key_set=JSON, x5c=st.lists(st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()), max_size=3)
)
def test_signed_random_key_sets(signer: Any, key_set: Any, x5c: list[str]) -> None:
    for value in (key_set, {"keys": [{"kty": "EC", "crv": "P-256", "x5c": x5c}]}):
        payload = {"uniqueId": "01", "provisioningTimestamp": "2025-01-01T00:00:00Z", "publicKeySet": value}
        entry = signer.sign(json.dumps(payload).encode())
        assert _consume(json.dumps([entry]).encode(), [signer.pem], "skip") == []


@FUZZ
@given(
    data=st.binary(max_size=600)
    | st.builds(
        lambda head, tail: head + tail, st.just(b"-----BEGIN CERTIFICATE-----\n"), st.binary(max_size=300)
    )
)
def test_random_verifier_bytes_are_a_configuration_error(data: bytes) -> None:
    try:
        load_verifiers(data)
    except ConfigurationError:
        pass
    except Exception as exc:  # pragma: no cover - the assertion is the point
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


def test_verifiers_with_other_keys_are_refused() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Key")])
    now = dt.datetime.now(dt.timezone.utc)
    for key, digest in (
        (ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()),
        (ed25519.Ed25519PrivateKey.generate(), None),
    ):
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, digest)
        )
        with pytest.raises(ConfigurationError, match="verifier 'CN=Other Key' does not hold a P-256 key"):
            load_verifiers(cert)
