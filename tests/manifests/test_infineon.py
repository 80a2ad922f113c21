"""Infineon OPTIGA Trust M archives, built here with py7zr: selection, counts, size guards."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests import (
    DEFAULT_MAX_MANIFEST_BYTES,
    ManifestEntry,
    ManifestFormat,
    _infineon,
    detect_format,
    read_manifest,
)
from thingpress_core.manifests._infineon import DEFAULT_MAX_DICTIONARY_BYTES, DEFAULT_MAX_MEMBERS
from thingpress_core.manifests._sevenzip import Archive, Budget, Limits

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
    found = list(read_manifest(archive, cert_type=cert_type, naming=None))
    assert [e.certificate for e in found] == device_certs[cert_type.upper()]
    assert {e.thing_name for e in found} == {None}


def test_only_the_selected_member_is_extracted(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import py7zr

    opened: list[list[str]] = []  # the member names of every archive py7zr opened
    asked: list[str] = []  # every member py7zr was asked to decode
    init = py7zr.SevenZipFile.__init__
    extract = py7zr.SevenZipFile.extract

    def spy_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self.getnames())

    def spy_extract(self: Any, *args: Any, **kwargs: Any) -> None:
        asked.extend(kwargs["targets"])
        extract(self, *args, **kwargs)

    monkeypatch.setattr(py7zr.SevenZipFile, "__init__", spy_init)
    monkeypatch.setattr(py7zr.SevenZipFile, "extract", spy_extract)
    assert len(list(read_manifest(archive, cert_type="E0E1"))) == 5
    # the outer archive and the E0E1 certificate archive: never the keys, E0E0 or E0E2 archives
    assert len(opened) == 2
    assert f"{REEL}_keys.7z" in opened[0]
    assert sorted(opened[1]) == [f"{i:016X}_E0E1.pem" for i in range(5)]
    assert f"{REEL}_E0E1_Certs.7z" in asked
    # README and E0E0 precede it in the outer archive's one solid block, so they are decoded (and
    # dropped); nothing after it is
    assert not [n for n in asked if "keys" in n or "E0E2" in n]


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


def read(
    data: bytes, *, name: str = "<bytes>", on_error: str = "raise", **options: Any
) -> list[ManifestEntry]:
    """read_manifest(format="infineon"); options it does not forward yet go to the reader itself."""
    import inspect

    if set(options) <= set(inspect.signature(read_manifest).parameters):
        return list(read_manifest(data, format="infineon", name=name, on_error=on_error, **options))  # type: ignore[arg-type]
    from thingpress_core.manifests._common import Policy
    from thingpress_core.manifests._model import ManifestReport

    policy = Policy(ManifestReport(source=name, format=ManifestFormat.INFINEON), on_error)  # type: ignore[arg-type]
    return list(
        _infineon.read_infineon(
            io.BytesIO(data), source=name, policy=policy, max_bytes=DEFAULT_MAX_MANIFEST_BYTES, **options
        )
    )


# --- hostile archives: what an archive costs is bounded from its headers, then counted ---

MiB = 1024 * 1024
SMALL_DICT = [{"id": 0x21, "dict_size": MiB}]  # LZMA2 with a 1 MiB dictionary


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the bytes py7zr's decoders produce (member data and py7zr's own header decoding)
    and what py7zr sends to its uncounted null writer. What our writers are handed is counted
    by the `Budget` an `Archive` is given (see `extract`)."""
    import py7zr.compressor
    import py7zr.io

    seen = {"decoded": 0, "null": 0}
    decompress = py7zr.compressor.SevenZipDecompressor.decompress
    null_write: Any = py7zr.io.NullIO.write

    def counting_decompress(self: Any, fp: Any, max_length: int = -1) -> bytes:
        out: bytes = decompress(self, fp, max_length)
        seen["decoded"] += len(out)
        return out

    def counting_null(self: Any, data: bytes) -> int:
        seen["null"] += len(data)
        return int(null_write(self, data))

    monkeypatch.setattr(py7zr.compressor.SevenZipDecompressor, "decompress", counting_decompress)
    monkeypatch.setattr(py7zr.io.NullIO, "write", counting_null)
    return seen


def extract(data: bytes, name: str, *, budget: Budget) -> bytes:
    """One member of a 7z archive, read as the Infineon reader reads its outer archive, through
    ``budget`` (whose ``written`` counts every byte py7zr hands our writers)."""
    limits = Limits(max_members=DEFAULT_MAX_MEMBERS, max_dictionary_bytes=DEFAULT_MAX_DICTIONARY_BYTES)
    archive = Archive(
        io.BytesIO(data), source="reel.7z", what="the Infineon archive", limits=limits, budget=budget
    )
    try:
        return archive.extract([name], limit=DEFAULT_MAX_MANIFEST_BYTES)[name]
    finally:
        archive.close()


class Unplanned(Budget):
    """A budget whose header check books nothing, as if the plan were wrong: only the writers'
    count can stop a read."""

    def plan(self, size: int, *, where: str, what: str) -> None:
        return None


@pytest.fixture(scope="module")
def inner_archive(build: Any, device_certs: dict[str, list[DeviceCertificate]]) -> bytes:
    pems = [(f"{i:016X}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E0"][:2])]
    data: bytes = build.seven_zip(pems, filters=SMALL_DICT)
    return data


def test_solid_block_bytes_before_the_wanted_member_are_refused_from_the_headers(
    build: Any, inner_archive: bytes, decoded: dict[str, int]
) -> None:
    # one solid block: 32 MiB of padding must be decoded to reach the certificate archive
    data = build.seven_zip([("A_pad.bin", bytes(32 * MiB)), (f"{REEL}_E0E0_Certs.7z", inner_archive)])
    assert len(data) < 20_000
    with pytest.raises(ManifestError) as info:
        read(data, name="reel.7z", max_unpacked_bytes=16 * MiB)
    message = str(info.value)
    assert message.startswith("reel.7z: extracting 1 member(s) of the Infineon archive would decompress ")
    assert (
        "more than max_unpacked_bytes=16777216; refusing it (raise max_unpacked_bytes to read it)" in message
    )
    assert info.value.source == "reel.7z"
    assert decoded["decoded"] < 64 * 1024  # py7zr decoded the archive's header, no member data
    # the same archive within a larger budget reads, and every decoded byte went through our writer
    assert len(read(data, max_unpacked_bytes=40 * MiB)) == 2
    budget = Budget(40 * MiB, "reel.7z")
    assert extract(data, f"{REEL}_E0E0_Certs.7z", budget=budget) == inner_archive
    assert decoded["null"] == 0
    assert budget.written >= 32 * MiB


def test_the_default_budget_refuses_a_small_archive_that_unpacks_big(
    build: Any, inner_archive: bytes
) -> None:
    import time

    # 65 MiB of padding, over the default 64 MiB budget, in about 10 KB
    pad = build.seven_zip(
        [("A_pad.bin", bytes(65 * MiB)), (f"{REEL}_E0E0_Certs.7z", inner_archive)],
        filters=[{"id": 0x21, "preset": 1}],
    )
    assert len(pad) < 20_000
    # the same archive without the padding is the yardstick: refusing must not cost more than
    # a handful of normal reads (decoding 65 MiB costs hundreds of them)
    plain = build.seven_zip([(f"{REEL}_E0E0_Certs.7z", inner_archive)], filters=[{"id": 0x21, "preset": 1}])
    assert len(read(plain)) == 2  # warm: imports and caches are not what is compared
    started = time.perf_counter()
    for _ in range(3):
        assert len(read(plain)) == 2
    yardstick = (time.perf_counter() - started) / 3
    started = time.perf_counter()
    with pytest.raises(ManifestError, match=r"more than max_unpacked_bytes=67108864; refusing it"):
        read(pad)
    assert time.perf_counter() - started < 10 * yardstick


def test_inner_archive_padding_is_refused_naming_the_inner_archive(
    build: Any, device_certs: dict[str, list[DeviceCertificate]], decoded: dict[str, int]
) -> None:
    pems = [(f"{i:016X}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E0"][:2])]
    inner = build.seven_zip([("0_pad.bin", bytes(8 * MiB)), *pems], filters=SMALL_DICT)
    data = build.seven_zip([(f"{REEL}_E0E0_Certs.7z", inner)], filters=SMALL_DICT)
    with pytest.raises(
        ManifestError,
        match=rf"^reel\.7z!{REEL}_E0E0_Certs\.7z: extracting 2 member\(s\) of certificate archive would "
        r"decompress \d+ bytes, \d+ in all, more than max_unpacked_bytes=4194304",
    ):
        read(data, name="reel.7z", max_unpacked_bytes=4 * MiB)
    assert decoded["decoded"] < len(inner) + 64 * 1024  # the outer member only; not the padding
    assert len(read(data, max_unpacked_bytes=9 * MiB)) == 2


def test_outer_and_inner_archives_share_one_budget(
    build: Any, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    pems = [(f"{i:016X}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E0"][:2])]
    inner = build.seven_zip([("0_pad.bin", bytes(3 * MiB)), *pems], filters=SMALL_DICT)
    data = build.seven_zip(
        [("A_pad.bin", bytes(3 * MiB)), (f"{REEL}_E0E0_Certs.7z", inner)], filters=SMALL_DICT
    )
    # each level alone fits in 4 MiB, both together do not
    with pytest.raises(ManifestError, match=r"in all, more than max_unpacked_bytes=4194304"):
        read(data, max_unpacked_bytes=4 * MiB)
    assert len(read(data, max_unpacked_bytes=7 * MiB)) == 2


def test_several_reels_cost_one_pass_over_the_solid_block(build: Any, inner_archive: bytes) -> None:
    reels = [(f"R{n}_g_E0E0_Certs.7z", inner_archive) for n in range(4)]
    data = build.seven_zip([("A_pad.bin", bytes(2 * MiB)), *reels], filters=SMALL_DICT)
    # decoding the block once per reel would cost four times the padding
    assert len(read(data, max_unpacked_bytes=3 * MiB)) == 8


def test_the_writer_stops_extraction_past_the_budget_if_the_plan_is_wrong(
    build: Any, inner_archive: bytes, decoded: dict[str, int]
) -> None:
    # the header check is the first line; this is the second: pretend it found nothing to pay
    budget = Unplanned(300 * 1024, "reel.7z")
    pads = [(f"P{n}", bytes(256 * 1024)) for n in range(4)]
    data = build.seven_zip([*pads, (f"{REEL}_E0E0_Certs.7z", inner_archive)], filters=SMALL_DICT)
    with pytest.raises(
        ManifestError, match=r"decompressing went past max_unpacked_bytes=307200 \(raise max_unpacked_bytes"
    ):
        extract(data, f"{REEL}_E0E0_Certs.7z", budget=budget)
    # stopped in the second padding member: the rest of the block was never decoded
    assert 300 * 1024 < budget.written <= 512 * 1024
    assert decoded["decoded"] < 600 * 1024


def test_peak_memory_stays_within_the_budget(build: Any, inner_archive: bytes) -> None:
    import tracemalloc

    def small(members: list[tuple[str, bytes]], **filter: int) -> bytes:
        # 1 MiB dictionaries throughout, headers included (py7zr's own headers ask for 16 MiB)
        raw = build.seven_zip(
            members, filters=[{"id": 0x21, "dict_size": MiB, **filter}], encoded_header=False
        )
        data: bytes = build.encode_header(raw, lzma1=False, dict_size=MiB)
        return data

    budget = 8 * MiB
    data = small([("A_pad.bin", bytes(6 * MiB)), (f"{REEL}_E0E0_Certs.7z", inner_archive)])
    hostile = small([("A_pad.bin", bytes(200 * MiB)), (f"{REEL}_E0E0_Certs.7z", inner_archive)], preset=1)
    tracemalloc.start()
    try:
        assert len(read(data, max_unpacked_bytes=budget)) == 2
        _, within = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        with pytest.raises(ManifestError, match="max_unpacked_bytes"):
            read(hostile, max_unpacked_bytes=budget)
        refused = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # decoding holds dictionaries and at most a member and a copy of it at once
    assert 6 * MiB < within < 3 * budget
    # refused from the headers: no member's bytes were ever held, only a header's dictionary
    assert refused < 2 * MiB


def test_a_huge_dictionary_is_refused_before_anything_is_allocated(
    build: Any, inner_archive: bytes, decoded: dict[str, int]
) -> None:
    raw = build.seven_zip(
        [(f"{REEL}_E0E0_Certs.7z", inner_archive)], filters=SMALL_DICT, encoded_header=False
    )
    # LZMA2 coder (flags 0x21, id 0x21, one property byte): 0x10 is 1 MiB, 0x28 the 4 GiB maximum
    huge = build.patch_header(raw, b"\x21\x21\x01\x10", b"\x21\x21\x01\x28")
    with pytest.raises(
        ManifestError,
        match=r"^<bytes>: the Infineon archive asks for a 4294967295-byte LZMA2 dictionary, more than "
        r"max_dictionary_bytes=67108864; refusing it \(raise max_dictionary_bytes to read it\)$",
    ):
        read(huge)
    assert decoded["decoded"] == 0
    # the limit is the operator's to move: py7zr's own archives ask for 16 MiB
    default = build.seven_zip([(f"{REEL}_E0E0_Certs.7z", inner_archive)])
    with pytest.raises(
        ManifestError, match=r"16777216-byte LZMA2 dictionary, more than max_dictionary_bytes=1048576"
    ):
        read(default, max_dictionary_bytes=MiB)
    assert len(read(default, max_dictionary_bytes=16 * MiB)) == 2
    with pytest.raises(ConfigurationError, match="max_dictionary_bytes must be a positive integer"):
        read(default, max_dictionary_bytes=0)
    with pytest.raises(ConfigurationError, match="max_unpacked_bytes must be a positive integer"):
        read(default, max_unpacked_bytes=-1)


@pytest.mark.parametrize("lzma1", [True, False])
def test_compressed_headers_are_checked_before_they_are_decoded(
    build: Any, inner_archive: bytes, decoded: dict[str, int], lzma1: bool
) -> None:
    raw = build.seven_zip(
        [(f"{REEL}_E0E0_Certs.7z", inner_archive)], filters=SMALL_DICT, encoded_header=False
    )
    # 7-Zip compresses headers with LZMA: read as well as py7zr's LZMA2
    assert len(read(build.encode_header(raw, lzma1=lzma1))) == 2
    decoded["decoded"] = 0
    bomb = build.encode_header(raw, lzma1=lzma1, declared_size=1 << 40)
    with pytest.raises(
        ManifestError, match=r"compressed header \(decoded twice\) would decompress 2199023255552 bytes"
    ):
        read(bomb)
    huge = build.encode_header(raw, lzma1=lzma1, dict_size=1 << 31)
    with pytest.raises(
        ManifestError, match=r"asks for a \d+-byte LZMA2? dictionary, more than max_dictionary"
    ):
        read(huge)
    assert decoded["decoded"] == 0


def test_member_and_block_counts_are_refused_before_py7zr_reads_the_header(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import py7zr

    opened: list[object] = []
    original = py7zr.SevenZipFile.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        original(self, *args, **kwargs)

    many = build.seven_zip([(f"{n:05d}.txt", b"") for n in range(300)])
    blocks = build.seven_zip_blocks([[(f"B{n}_E0E0_Certs.7z", b"x")] for n in range(6)])
    monkeypatch.setattr(py7zr.SevenZipFile, "__init__", spy)
    with pytest.raises(
        ManifestError, match=r"the Infineon archive holds 300 members, more than max_members=100"
    ):
        read(many, max_members=100)
    with pytest.raises(
        ManifestError,
        match=r"the Infineon archive holds 6 compressed blocks, more than max_members=5; refusing",
    ):
        read(blocks, max_members=5)
    assert opened == []


@pytest.mark.parametrize(
    ("method", "accepted"),
    [(0x32, False), (0x38, False), (0x35, False), (0x37, False), (0x31, True), (0x33, True), (0x36, True)],
    ids=["deflate", "deflate64", "zstd", "brotli", "bzip2", "copy", "ppmd"],
)
def test_only_methods_decoded_with_an_output_bound_are_accepted(
    build: Any, device_certs: dict[str, list[DeviceCertificate]], method: int, accepted: bool
) -> None:
    pems = [(f"{i:016X}_E0E0.pem", build.crlf_pem(c)) for i, c in enumerate(device_certs["E0E0"][:2])]
    inner = build.seven_zip(pems, filters=[{"id": method}])
    data = build.seven_zip([(f"{REEL}_E0E0_Certs.7z", inner)], filters=SMALL_DICT)
    if accepted:
        assert len(read(data)) == 2
        return
    with pytest.raises(
        ManifestError,
        match=r"_E0E0_Certs\.7z: certificate archive uses \w+ compression, which py7zr decodes without an "
        r"output bound; refusing it \(repack it with LZMA2",
    ):
        read(data)


def test_options_are_listed_for_read_manifest() -> None:
    from thingpress_core.manifests._readers import READERS

    infineon = READERS[ManifestFormat.INFINEON]
    assert {"max_unpacked_bytes", "max_dictionary_bytes", "max_members"} <= infineon.options
    with pytest.raises(ConfigurationError, match="max_unpacked_bytes"):
        read(b"not an archive", max_unpacked_bytes="big")


# --- fuzzing: whatever the bytes, a ManifestError or entries, and never an unbounded read ---

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _consume(data: bytes, **options: Any) -> None:
    try:
        for entry in read(data, on_error="skip", max_unpacked_bytes=4 * MiB, **options):
            assert entry.certificate is not None
    except ManifestError:
        pass
    except Exception as exc:  # pragma: no cover - the assertion is the point
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


@FUZZ
@given(header=st.binary(max_size=400))
def test_random_headers_with_valid_checksums(build: Any, header: bytes) -> None:
    # random bytes behind a signature header whose CRCs match reach the header parser itself
    _consume(build.with_header(b"", header))
    _consume(build.with_header(bytes(64), b"\x01\x04" + header))
    _consume(build.with_header(bytes(64), b"\x17" + header))


@FUZZ
@given(data=st.data())
def test_mutated_headers(build: Any, inner_archive: bytes, data: st.DataObject) -> None:
    if not _RAW:
        raw = build.seven_zip(
            [(f"{REEL}_E0E0_Certs.7z", inner_archive), ("x.txt", b"x")], encoded_header=False
        )
        _RAW.append(build.header_of(raw))
    body, header = _RAW[0]
    mutated = bytearray(header)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(
            st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, mutated[position] ^ 0x10])
        )
    cut = data.draw(st.integers(0, len(mutated)))
    _consume(build.with_header(body, bytes(mutated[:cut] if data.draw(st.booleans()) else mutated)))


_RAW: list[tuple[bytes, bytes]] = []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_inner_archive_headers(build: Any, inner_archive: bytes, data: st.DataObject) -> None:
    # the outer archive stores the inner one as is (Copy), so the mutations reach the inner survey
    body, header = build.header_of(
        build.encode_header(
            build.seven_zip(
                [("0_E0E0.pem", b"-----BEGIN CERTIFICATE-----\r\n"), ("n.txt", b"x")], encoded_header=False
            ),
            lzma1=data.draw(st.booleans()),
        )
    )
    mutated = bytearray(header)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    inner = build.with_header(body, bytes(mutated))
    _consume(build.seven_zip([(f"{REEL}_E0E0_Certs.7z", inner)], filters=[{"id": 0x33}]))
