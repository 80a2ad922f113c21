"""read_manifest itself: detection, options, limits, the reader and its report."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generated_manifest_lines
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests import (
    ManifestEntry,
    ManifestFormat,
    ManifestReader,
    detect_format,
    read_manifest,
)


def test_detect_the_real_files(data_dir: Path) -> None:
    assert detect_format(data_dir / "espressif" / "manifest-espressif.csv") is ManifestFormat.ESPRESSIF
    assert detect_format(str(data_dir / "microchip" / "ECC608C-TNGTLSU-B.json")) is ManifestFormat.MICROCHIP
    assert (
        detect_format((data_dir / "microchip" / "ECC608-TMNGTLSS-B.json").read_bytes())
        is ManifestFormat.MICROCHIP
    )


def test_detect_from_content_and_then_name(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    cert = device_certs["E0E0"][0]
    assert detect_format(cert.pem.encode()) is ManifestFormat.PEM
    assert detect_format(cert.der) is ManifestFormat.PEM
    line = next(generated_manifest_lines([cert]))
    assert detect_format(line.encode()) is ManifestFormat.GENERATED
    assert detect_format(b"\xef\xbb\xbfMAC,cn,cert\r\n") is ManifestFormat.ESPRESSIF
    assert detect_format(b"  [ ]") is ManifestFormat.MICROCHIP
    assert detect_format(b"", name="reel.7z") is ManifestFormat.INFINEON
    assert detect_format(b"?", name="x.csv") is ManifestFormat.ESPRESSIF
    with pytest.raises(ManifestError, match=r"x\.bin: cannot tell the manifest format"):
        detect_format(b"\x00\x01", name="x.bin")
    with pytest.raises(ManifestError, match="the manifest is empty"):
        detect_format(b"")


def test_detect_puts_a_seekable_stream_back(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    stream = io.BytesIO(device_certs["E0E0"][0].pem.encode())
    stream.seek(3)
    with pytest.raises(ManifestError):
        detect_format(stream)
    assert stream.tell() == 3
    stream.seek(0)
    assert detect_format(stream) is ManifestFormat.PEM
    assert stream.tell() == 0


def test_format_as_string_and_unknown_format() -> None:
    assert read_manifest(b"", format="generated").format is ManifestFormat.GENERATED
    assert read_manifest(b"", format="PEM").format is ManifestFormat.PEM
    with pytest.raises(ConfigurationError, match="unknown manifest format 'zip'"):
        read_manifest(b"", format="zip")
    assert str(ManifestFormat.MICROCHIP) == "microchip"


def test_unknown_and_bad_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="option cert_type does not apply to pem manifests"):
        read_manifest(b"", format="pem", cert_type="E0E0")
    with pytest.raises(ConfigurationError, match="on_error must be one of"):
        read_manifest(b"", format="pem", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_bytes must be a positive integer"):
        read_manifest(b"", format="pem", max_bytes=0)
    with pytest.raises(ConfigurationError, match="must be bytes, a path or a binary stream"):
        list(read_manifest(42, format="pem"))  # type: ignore[arg-type]


def test_max_bytes_refuses_instead_of_truncating(
    device_certs: dict[str, list[DeviceCertificate]], tmp_path: Path
) -> None:
    text = "".join(c.pem for c in device_certs["E0E0"]).encode()
    with pytest.raises(ManifestError, match=f"manifest is {len(text)} bytes, larger than max_bytes=1000"):
        list(read_manifest(text, max_bytes=1000))
    reader = read_manifest(io.BytesIO(text), max_bytes=1000, format="pem")
    with pytest.raises(ManifestError, match="larger than max_bytes=1000"):
        list(reader)
    path = tmp_path / "d.pem"
    path.write_bytes(text)
    with pytest.raises(ManifestError, match=r"d\.pem: manifest is"):
        list(read_manifest(path, max_bytes=len(text) - 1))
    assert len(list(read_manifest(path, max_bytes=len(text)))) == 5


def test_text_passed_as_a_path_is_refused_without_echoing_it(
    device_certs: dict[str, list[DeviceCertificate]],
) -> None:
    pem = device_certs["E0E0"][0].pem
    with pytest.raises(ConfigurationError, match="pass manifest content as bytes") as caught:
        read_manifest(pem)
    assert len(str(caught.value)) < 200
    with pytest.raises(ConfigurationError, match="pass manifest content as bytes"):
        detect_format(pem)
    assert [e.certificate for e in read_manifest(pem.encode())] == device_certs["E0E0"][:1]


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot open manifest"):
        read_manifest(tmp_path / "none.pem")
    with pytest.raises(ManifestError, match="cannot open manifest"):
        list(read_manifest(tmp_path / "none.pem", format="pem"))


def test_reader_is_an_iterator_with_a_report(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    text = "".join(c.pem for c in device_certs["E0E0"]).encode()
    with read_manifest(text, name="bundle.pem") as reader:
        assert isinstance(reader, ManifestReader)
        assert iter(reader) is reader
        first = next(reader)
        assert isinstance(first, ManifestEntry)
        assert "ManifestEntry(index=0" in repr(first)
        assert not reader.report.complete
        assert "(not read to the end)" in reader.report.summary()
    assert reader.report.yielded == 1
    assert reader.source == "bundle.pem"
    assert "bundle.pem (pem): 1 entries" in repr(reader)


def test_entries_are_frozen(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    entry = next(read_manifest(device_certs["E0E0"][0].pem.encode()))
    with pytest.raises(Exception, match="frozen"):
        entry.thing_name = "x"  # type: ignore[misc]


def test_skips_are_logged_without_certificate_bodies(
    caplog: pytest.LogCaptureFixture, data_dir: Path, verifiers: list[Path]
) -> None:
    caplog.set_level("INFO", logger="thingpress_core.manifests")
    list(read_manifest(data_dir / "microchip" / "ECC608-TMNGTLSS-B.json", verifiers=verifiers))
    assert len(caplog.records) == 10
    record: Any = caplog.records[0]
    assert record.levelname == "INFO"
    assert record.entry == 1
    assert record.skip_code == "no_certificate"
    assert "BEGIN" not in caplog.text


def test_options_of_other_formats_are_ignored_only_when_detected(
    device_certs: dict[str, list[DeviceCertificate]], verifiers: list[Path]
) -> None:
    pem = device_certs["E0E0"][0].pem.encode()
    assert len(list(read_manifest(pem, verifiers=verifiers, cert_type="E0E1"))) == 1
    with pytest.raises(ConfigurationError, match="option verifiers does not apply to pem"):
        read_manifest(pem, format="pem", verifiers=verifiers)
    with pytest.raises(ConfigurationError, match="option check_verifier_validity, max_members does not"):
        read_manifest(pem, format="pem", check_verifier_validity=False, max_members=5)
    # a name no format knows is not a keyword of read_manifest at all (type checkers flag it)
    with pytest.raises(TypeError, match="colour"):
        read_manifest(pem, colour="red")  # type: ignore[call-arg]


def test_only_the_options_given_reach_the_reader(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    cert = device_certs["E0E0"][0]
    pem = cert.pem.encode()
    # "default" and None differ: the format's own name source, or no name at all
    (named,) = read_manifest(pem, format="pem")
    (same,) = read_manifest(pem, format="pem", naming="default")
    (unnamed,) = read_manifest(pem, format="pem", naming=None)
    assert named.thing_name is not None
    assert same.thing_name == named.thing_name
    assert unnamed.thing_name is None
    # a name source the format does not have is a bad value, refused when read
    reader = read_manifest(pem, format="pem", naming="mac")
    with pytest.raises(ConfigurationError, match="naming"):
        next(reader)
    # None means "not given": nothing to refuse even with an explicit format
    assert len(list(read_manifest(pem, format="pem", cert_type=None, verifiers=None, max_members=None))) == 1
    # Infineon's bounds are options like any other: ignored for a detected PEM, refused for an explicit one
    assert len(list(read_manifest(pem, max_unpacked_bytes=1, max_dictionary_bytes=1))) == 1
    with pytest.raises(ConfigurationError, match="option max_dictionary_bytes, max_unpacked_bytes does not"):
        read_manifest(pem, format="pem", max_unpacked_bytes=1, max_dictionary_bytes=1)


def test_bad_entries_skipped_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="thingpress_core.manifests")
    reader = read_manifest(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", on_error="skip")
    assert list(reader) == []
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_importing_the_package_does_not_import_py7zr() -> None:
    import subprocess
    import sys

    code = "import sys, thingpress_core.manifests; print('py7zr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_infineon_bounds_reach_the_reader(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    archive = build.infineon_archive(device_certs)
    assert len(list(read_manifest(archive))) == 5
    with pytest.raises(ManifestError, match="max_unpacked_bytes=1000"):
        list(read_manifest(archive, max_unpacked_bytes=1000))
    with pytest.raises(ManifestError, match="max_dictionary_bytes=16"):
        list(read_manifest(archive, format="infineon", max_dictionary_bytes=16))
