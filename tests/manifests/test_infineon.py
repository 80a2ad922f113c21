"""Infineon OPTIGA Trust M archives, built here with py7zr: selection, counts, size guards."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests import ManifestFormat, _infineon, detect_format, read_manifest

REEL = "R0001_3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"


@pytest.fixture(scope="module")
def archive(build: Any, device_certs: dict[str, list[DeviceCertificate]]) -> bytes:
    data: bytes = build.infineon_archive(device_certs)
    return data


def test_default_type_is_e0e0(archive: bytes, device_certs: dict[str, list[DeviceCertificate]]) -> None:
    assert detect_format(archive) is ManifestFormat.INFINEON
    reader = read_manifest(archive, name="reel.7z")
    found = list(reader)
    assert [e.certificate for e in found] == device_certs["E0E0"]
    assert [e.thing_name for e in found] == [f"dev-E0E0-{i:06d}" for i in range(5)]
    assert [e.vendor_id for e in found] == [f"{i:016X}" for i in range(5)]
    assert [e.index for e in found] == list(range(5))
    assert found[0].source == f"reel.7z!{REEL}_E0E0_Certs.7z"
    assert reader.report.summary() == "reel.7z (infineon): 5 entries, 5 certificates"


@pytest.mark.parametrize("cert_type", ["E0E1", "e0e2"])
def test_select_by_cert_type(
    archive: bytes, device_certs: dict[str, list[DeviceCertificate]], cert_type: str
) -> None:
    found = list(read_manifest(archive, cert_type=cert_type, thing_name=None))
    assert [e.certificate for e in found] == device_certs[cert_type.upper()]
    assert {e.thing_name for e in found} == {None}


def test_only_the_selected_member_is_extracted(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    extracted: list[str] = []
    original = _infineon._Archive.extract

    def spy(self: Any, names: list[str], *, limit: int) -> dict[str, bytes]:
        extracted.extend(names)
        return original(self, names, limit=limit)

    monkeypatch.setattr(_infineon._Archive, "extract", spy)
    assert len(list(read_manifest(archive, cert_type="E0E1"))) == 5
    assert f"{REEL}_E0E1_Certs.7z" in extracted
    assert not [n for n in extracted if "keys" in n or "E0E0" in n or "E0E2" in n or "README" in n]


def test_missing_type_lists_what_is_there(archive: bytes) -> None:
    with pytest.raises(
        ManifestError, match=r"no E0E3 certificate archive .* types present: E0E0, E0E1, E0E2"
    ):
        list(read_manifest(archive, cert_type="E0E3"))
    with pytest.raises(ConfigurationError, match="cert_type"):
        list(read_manifest(archive, cert_type="keys"))


def test_size_guards(archive: bytes, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"larger than max_bytes=1000; refusing"):
        list(read_manifest(archive, max_bytes=1000))
    path = tmp_path / "reel.7z"
    path.write_bytes(archive)
    with pytest.raises(ManifestError, match=r"reel\.7z: manifest is \d+ bytes, larger than max_bytes"):
        list(read_manifest(path, max_bytes=len(archive) - 1))
    with pytest.raises(ManifestError, match="holds 5 members, more than max_members=4"):
        list(read_manifest(path, max_members=4))
    with pytest.raises(ConfigurationError, match="max_members"):
        list(read_manifest(path, max_members=0))
    assert len(list(read_manifest(path, max_bytes=len(archive)))) == 5


def test_inner_archive_larger_than_max_bytes_is_refused(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    padding = [(f"PAD{i:04d}_E0E0.pem", bytes(4096)) for i in range(16)]  # compresses well, unpacks big
    data = build.infineon_archive({"E0E0": device_certs["E0E0"]}, extra_inner=padding)
    assert len(data) < 20_000
    with pytest.raises(
        ManifestError, match=r"the certificates unpack to \d+ bytes, more than max_bytes=20000"
    ):
        list(read_manifest(data, max_bytes=20_000))


def test_one_pem_too_large_for_a_certificate(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    data = build.infineon_archive(
        {"E0E0": device_certs["E0E0"][:1]}, extra_inner=[("BIG_E0E0.pem", bytes(70_000))]
    )
    with pytest.raises(ManifestError, match=r"member 2 \(BIG_E0E0\.pem\): 70000 bytes, too large"):
        list(read_manifest(data))
    reader = read_manifest(data, on_error="skip")
    assert len(list(reader)) == 1
    assert reader.report.skipped[0].vendor_id == "BIG"


def test_inner_members_over_the_count_limit(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    data = build.infineon_archive({"E0E0": device_certs["E0E0"]})
    with pytest.raises(ManifestError, match="certificate archive holds 5 members, more than max_members=4"):
        list(read_manifest(data, max_members=4))


def test_other_files_and_bad_pems_are_reported(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    extra = [
        ("notes.txt", b"hello"),
        ("FFFFFFFFFFFFFFFF_E0E0.pem", b"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n"),
    ]
    data = build.infineon_archive({"E0E0": device_certs["E0E0"][:2]}, extra_inner=extra)
    with pytest.raises(
        ManifestError, match=r"member 3 \(FFFFFFFFFFFFFFFF_E0E0\.pem\): not a valid certificate"
    ):
        list(read_manifest(data))
    reader = read_manifest(data, on_error="skip")
    assert [e.vendor_id for e in reader] == ["0000000000000000", "0000000000000001"]
    assert [(s.index, s.code, s.vendor_id) for s in reader.report.skipped] == [
        (2, "invalid", "FFFFFFFFFFFFFFFF"),
        (3, "not_a_certificate", None),
    ]


def test_member_named_for_another_slot_is_refused(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    extra = [("0000000000000009_E0E1.pem", build.crlf_pem(device_certs["E0E1"][0]))]
    data = build.infineon_archive({"E0E0": device_certs["E0E0"][:1]}, extra_inner=extra)
    with pytest.raises(
        ManifestError, match=r"member 2 \(0000000000000009_E0E1\.pem\): is named for slot E0E1"
    ):
        list(read_manifest(data))
    reader = read_manifest(data, on_error="skip")
    assert [e.certificate for e in reader] == device_certs["E0E0"][:1]
    assert [(s.index, s.code, s.vendor_id) for s in reader.report.skipped] == [
        (1, "invalid", "0000000000000009")
    ]


def test_several_reels_follow_on(build: Any, device_certs: dict[str, list[DeviceCertificate]]) -> None:
    reel_a = build.seven_zip(
        [(f"A{i}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E0"][:2])]
    )
    reel_b = build.seven_zip(
        [(f"B{i}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E1"][:3])]
    )
    data = build.seven_zip([("r2_g_E0E0_Certs.7z", reel_b), ("r1_g_E0E0_Certs.7z", reel_a)])
    found = list(read_manifest(data))
    assert [e.vendor_id for e in found] == ["A0", "A1", "B0", "B1", "B2"]
    assert [e.index for e in found] == list(range(5))


def test_not_an_archive() -> None:
    with pytest.raises(ManifestError, match="the Infineon archive is not a readable 7z archive"):
        list(read_manifest(b"7z\xbc\xaf\x27\x1c" + bytes(40), format="infineon"))
    with pytest.raises(ManifestError, match="not a readable 7z archive"):
        list(read_manifest(b"hello", format=ManifestFormat.INFINEON))


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_outer_archive_is_refused(header_encryption: bool) -> None:
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password="secret", header_encryption=header_encryption) as archive:
        archive.writestr(b"data", "x_E0E0_Certs.7z")
    with pytest.raises(ManifestError, match="the Infineon archive is encrypted; refusing to open it"):
        list(read_manifest(buffer.getvalue(), format="infineon"))


def test_from_seekable_and_unseekable_streams(archive: bytes) -> None:
    assert len(list(read_manifest(io.BytesIO(archive)))) == 5

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    assert len(list(read_manifest(Pipe(archive)))) == 5
    assert len(list(read_manifest(Pipe(archive), format="infineon"))) == 5


def test_missing_py7zr_names_the_extra(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "py7zr", None)
    with pytest.raises(ImportError, match=r"pip install 'thingpress-core\[manifests\]'"):
        list(read_manifest(archive))
