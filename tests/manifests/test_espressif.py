"""Espressif CSV manifests: the real sample, BOM and CRLF, options and bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests import ManifestFormat, read_manifest

MACS = [
    "4BA2BB8764BD",
    "E5B314DA749D",
    "5B62ACC6615E",
    "060C6696C8B0",
    "5042C6471A9C",
    "52564B8E4246",
    "764C4DDF59BF",
]


@pytest.fixture
def sample(data_dir: Path) -> Path:
    return data_dir / "espressif" / "manifest-espressif.csv"


def test_real_sample_has_seven_entries_named_by_mac(sample: Path) -> None:
    reader = read_manifest(sample)
    found = list(reader)
    assert reader.format is ManifestFormat.ESPRESSIF
    assert [e.thing_name for e in found] == MACS
    assert [e.vendor_id for e in found] == MACS
    assert [e.index for e in found] == list(range(7))
    assert found[0].certificate.common_name == "6d1d54ba-ed81-4c32-8e08-f9f8c885a6ed"
    assert found[0].certificate.key_type.lower().startswith("rsa")
    assert reader.report.summary().endswith("7 entries, 7 certificates")


def test_naming_common_name_option(sample: Path) -> None:
    found = list(read_manifest(sample, naming="common_name"))
    assert found[0].thing_name == "6d1d54ba-ed81-4c32-8e08-f9f8c885a6ed"
    assert found[0].vendor_id == "4BA2BB8764BD"
    assert {e.thing_name for e in read_manifest(sample, naming=None)} == {None}
    with pytest.raises(ConfigurationError, match="naming must be one of"):
        list(read_manifest(sample, naming="serial"))  # type: ignore[call-overload]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_bom_and_line_ends_are_tolerated(sample: Path, bom: bytes, newline: bytes) -> None:
    text = sample.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", newline)
    found = list(read_manifest(bom + text))
    assert [e.thing_name for e in found] == MACS


def _row(mac: str, cert: DeviceCertificate) -> str:
    return f'{mac},{cert.common_name},"{cert.pem.strip()}"\r\n'


def test_bad_rows_name_the_row(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    certs = device_certs["E0E0"]
    text = (
        "MAC,cn,cert\r\n"
        + _row("AABBCCDDEE01", certs[0])
        + 'AABBCCDDEE02,x,"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"\r\n'
        + "\r\n"
        + ",nomac,x\r\n"
        + _row("AABBCCDDEE04", certs[1])
    ).encode()
    with pytest.raises(ManifestError, match=r"m\.csv: row 2 \(line \d+\): not a valid certificate") as caught:
        list(read_manifest(text, name="m.csv"))
    assert caught.value.index == 1
    reader = read_manifest(text, name="m.csv", on_error="skip")
    assert [e.thing_name for e in reader] == ["AABBCCDDEE01", "AABBCCDDEE04"]
    assert [(s.index, s.code, s.vendor_id) for s in reader.report.skipped] == [
        (1, "invalid", "AABBCCDDEE02"),
        (2, "invalid", None),
    ]
    assert "row 3" in reader.report.skipped[1].reason
    assert "has no MAC" in reader.report.skipped[1].reason


def test_header_is_required() -> None:
    with pytest.raises(ManifestError, match="header must name MAC, cn and cert"):
        list(read_manifest(b"serial,cert\n1,2\n", format="espressif"))
    # an empty manifest is the same answer whatever the format (issue 13)
    with pytest.raises(ManifestError, match="the manifest is empty"):
        list(read_manifest(b"", format="espressif"))


def test_columns_in_another_order(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    cert = device_certs["E0E0"][0]
    text = f'cert,MAC,cn\n"{cert.pem.strip()}",AABBCCDDEEFF,{cert.common_name}\n'.encode()
    (entry,) = list(read_manifest(text))
    assert entry.thing_name == "AABBCCDDEEFF"
    assert entry.certificate == cert


def test_short_row_and_broken_quote() -> None:
    with pytest.raises(ManifestError, match=r"row 1 .*has 2 fields"):
        list(read_manifest(b"MAC,cn,cert\nAABB,cc\n"))
    with pytest.raises(ManifestError, match="row 1"):
        list(read_manifest(b'MAC,cn,cert\nAABB,cc,"abc"x"\n'))


def test_broken_quote_fails_even_in_skip_mode(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    # the csv module cannot read past a broken quote: stopping quietly would drop the last row
    cert = device_certs["E0E0"][0]
    text = ("MAC,cn,cert\r\n" + 'AA01,x,"abc"x"\r\n' + _row("AABBCCDDEE04", cert)).encode()
    reader = read_manifest(text, name="q.csv", on_error="skip")
    with pytest.raises(ManifestError, match=r"q\.csv: row 1 \(line 2\): is not valid CSV .*cannot be read"):
        list(reader)
    assert not reader.report.complete


def test_not_utf8() -> None:
    with pytest.raises(ManifestError, match="not UTF-8"):
        list(read_manifest(b"MAC,cn,cert\nAA,\xff\xfe,x\n"))


def test_a_row_whose_certificate_has_an_invalid_version_fails_alone(sample: Path) -> None:
    rows = sample.read_bytes()
    first = rows.index(b"-----BEGIN CERTIFICATE-----")
    end = rows.index(b"-----END CERTIFICATE-----", first)
    # the first row's certificate, its version INTEGER made 5 ("version 6"), cryptography's
    # InvalidVersion before: it escaped the reader and lost the six good rows
    import base64

    der = bytearray(base64.b64decode(rows[first + 27 : end]))
    der[der.find(bytes.fromhex("a003020102")) + 4] = 5
    body = base64.encodebytes(bytes(der)).replace(b"\n", b"\r\n")
    broken = rows[: first + 27] + b"\r\n" + body + rows[end:]
    reader = read_manifest(broken, on_error="skip", name="e.csv")
    assert [e.vendor_id for e in reader] == MACS[1:]
    [skipped] = reader.report.skipped
    assert (skipped.index, skipped.code, skipped.vendor_id) == (0, "invalid", MACS[0])
    assert skipped.reason.startswith("e.csv: row 1 (line 2): not a valid certificate")
    assert "5 is not a valid X509 version" in skipped.reason
    with pytest.raises(ManifestError, match=r"^e\.csv: row 1 .*5 is not a valid X509 version"):
        list(read_manifest(broken, name="e.csv"))
