"""Generated manifests (base64 lines) and PEM bundles."""

from __future__ import annotations

import base64
import io

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generated_manifest_lines
from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, ManifestFormat, read_manifest


@pytest.fixture
def certs(device_certs: dict[str, list[DeviceCertificate]]) -> list[DeviceCertificate]:
    return device_certs["E0E0"]


def test_generated_lines_with_blank_lines(certs: list[DeviceCertificate]) -> None:
    lines = list(generated_manifest_lines(certs))
    text = ("\n".join(lines[:2]) + "\n\n  \n" + "\r\n".join(lines[2:]) + "\n").encode()
    reader = read_manifest(text)
    found = list(reader)
    assert reader.format is ManifestFormat.GENERATED
    assert [e.certificate for e in found] == certs
    assert [e.thing_name for e in found] == [c.common_name for c in certs]
    assert [e.index for e in found] == [0, 1, 4, 5, 6]  # 0-based line numbers
    assert reader.report.skipped == []


def test_generated_der_lines_and_naming_none(certs: list[DeviceCertificate]) -> None:
    text = "\n".join(base64.b64encode(c.der).decode() for c in certs).encode()
    found = list(read_manifest(text, format="generated", naming=None))
    assert [e.certificate for e in found] == certs
    assert {e.thing_name for e in found} == {None}


def test_generated_line_with_a_chain(certs: list[DeviceCertificate]) -> None:
    line = base64.b64encode((certs[0].pem + certs[1].pem).encode()).decode()
    (entry,) = list(read_manifest(line.encode(), format="generated"))
    assert entry.certificate == certs[0]
    assert entry.chain == (certs[1],)


def test_generated_legacy_bytes_literal(certs: list[DeviceCertificate]) -> None:
    line = "b'" + base64.b64encode(certs[0].pem.encode()).decode() + "'"
    (entry,) = list(read_manifest(line.encode(), format="generated"))
    assert entry.certificate == certs[0]


def test_generated_bad_lines_are_named(certs: list[DeviceCertificate]) -> None:
    good = list(generated_manifest_lines(certs[:2]))
    text = "\n".join([good[0], "not base64!", base64.b64encode(b"junk").decode(), good[1]]).encode()
    with pytest.raises(ManifestError, match=r"g\.txt: line 2: not base64 text") as caught:
        list(read_manifest(text, format="generated", name="g.txt"))
    assert caught.value.index == 1
    reader = read_manifest(text, format="generated", name="g.txt", on_error="skip")
    assert [e.certificate for e in reader] == certs[:2]
    assert [(s.index, s.code) for s in reader.report.skipped] == [(1, "invalid"), (2, "invalid")]
    assert "g.txt: line 3: not a valid X.509 certificate" in reader.report.skipped[1].reason


def test_pem_bundle(certs: list[DeviceCertificate]) -> None:
    bundle = ("# devices\n" + "".join(c.pem for c in certs)).encode()
    reader = read_manifest(bundle)
    assert reader.format is ManifestFormat.PEM
    found = list(reader)
    assert [e.certificate for e in found] == certs
    assert [e.index for e in found] == list(range(5))
    assert found[0].thing_name == certs[0].common_name


def test_pem_bundle_from_a_stream_that_cannot_seek(certs: list[DeviceCertificate]) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self._data.read(min(len(buffer), 100))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    found = list(read_manifest(Pipe("".join(c.pem for c in certs).encode())))
    assert [e.certificate for e in found] == certs


def test_pem_private_key_blocks_are_reported_not_imported(certs: list[DeviceCertificate]) -> None:
    bundle = (
        certs[0].pem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + certs[1].pem
    ).encode()
    reader = read_manifest(bundle)
    assert [e.certificate for e in reader] == certs[:2]
    assert [(s.index, s.code) for s in reader.report.skipped] == [(1, "not_a_certificate")]
    assert "AAAA" not in reader.report.skipped[0].reason


def test_pem_broken_blocks(certs: list[DeviceCertificate]) -> None:
    broken = certs[0].pem + "-----BEGIN CERTIFICATE-----\nAAAA\n"
    with pytest.raises(
        ManifestError, match=r"certificate 2 \(line \d+\): PEM block BEGIN CERTIFICATE has no END"
    ):
        list(read_manifest(broken.encode(), format="pem"))
    bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + certs[0].pem
    reader = read_manifest(bad.encode(), on_error="skip")
    assert [e.certificate for e in reader] == [certs[0]]
    assert reader.report.skipped[0].index == 0


def test_der_file(certs: list[DeviceCertificate]) -> None:
    reader = read_manifest(certs[0].der)
    assert reader.format is ManifestFormat.PEM
    assert [e.certificate for e in reader] == [certs[0]]


def test_path_and_stream_sources(tmp_path: object, certs: list[DeviceCertificate]) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "devices.pem"
    path.write_text("".join(c.pem for c in certs))
    assert len(list(read_manifest(path))) == 5
    assert len(list(read_manifest(str(path)))) == 5
    with path.open("rb") as handle:
        reader = read_manifest(handle)
        assert reader.source == str(path)
        assert len(list(reader)) == 5


class _CountedReads(io.BytesIO):
    """A stream that remembers the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int | None] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def read_pem_in_chunks(data: bytes, *, chunk_size: int, **limits: int) -> list[ManifestEntry]:
    """The PEM reader over ``data``, ``chunk_size`` bytes at a time (``limits``: ``max_block``):
    `read_manifest` reads 1 MiB at a time, so it never cuts a small bundle's blocks."""
    from thingpress_core.manifests._common import Policy
    from thingpress_core.manifests._model import ManifestReport
    from thingpress_core.manifests._pem import read_pem

    policy = Policy(ManifestReport(source="<bytes>", format=ManifestFormat.PEM), "raise")
    stream = _CountedReads(data)
    found: list[ManifestEntry] = []
    try:
        for entry in read_pem(
            stream, source="<bytes>", policy=policy, naming="common_name", chunk_size=chunk_size, **limits
        ):
            assert isinstance(entry, ManifestEntry)  # on_error="raise": a bad entry raises instead
            found.append(entry)
    finally:
        # the reads were cut as asked, whether the bundle read or raised
        assert stream.sizes
        assert set(stream.sizes) == {chunk_size}
    return found


@pytest.mark.parametrize("chunk", [5, 11, 64, 1000])
def test_pem_blocks_cut_across_read_chunks(certs: list[DeviceCertificate], chunk: int) -> None:
    bundle = ("\ufeffheader text\r\n" + "\r\n".join(c.pem for c in certs)).encode("utf-8")
    assert [e.certificate for e in read_pem_in_chunks(bundle, chunk_size=chunk)] == certs
    broken = (certs[0].pem + "\n\n-----BEGIN CERTIFICATE-----\nAAAA\n").encode()
    line = certs[0].pem.count("\n") + 3
    with pytest.raises(
        ManifestError, match=rf"certificate 2 \(line {line}\): PEM block BEGIN CERTIFICATE has no END"
    ):
        read_pem_in_chunks(broken, chunk_size=chunk)


def test_pem_mismatched_end_and_runaway_block() -> None:
    mismatched = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ManifestError, match="ends with END PRIVATE KEY"):
        list(read_manifest(mismatched, format="pem"))
    runaway = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 1000
    with pytest.raises(ManifestError, match="no END line within 300 bytes"):
        read_pem_in_chunks(runaway, chunk_size=100, max_block=300)


def test_broken_block_fails_even_in_skip_mode(certs: list[DeviceCertificate]) -> None:
    # with no END line nothing after it can be found: ending the read quietly would lose certs[1]
    text = (certs[0].pem + "-----BEGIN CERTIFICATE-----\nAAAA\n" + certs[1].pem).encode()
    reader = read_manifest(text, format="pem", on_error="skip", name="b.pem")
    with pytest.raises(
        ManifestError, match=r"b\.pem: certificate 2 \(line \d+\): PEM block BEGIN CERTIFICATE"
    ):
        list(reader)
    assert reader.report.yielded == 1
    assert not reader.report.complete


@pytest.mark.parametrize("fmt", ["pem", "generated"])
def test_hostile_pem_costs_linear_time(fmt: str) -> None:
    from tests._support.scaling import growth_ratio

    # a lazy BEGIN.*?END regular expression is quadratic on this; a linear scan is not
    def run(lines: int) -> None:
        hostile = b"-----BEGIN CERTIFICATE-----\n" * lines
        data = hostile if fmt == "pem" else base64.b64encode(hostile) + b"\n"
        with pytest.raises(ManifestError, match="has no END line"):
            list(read_manifest(data, format=fmt))

    assert growth_ratio(run, 9_000) < 8


def test_line_decoding_to_pem_without_a_certificate(certs: list[DeviceCertificate]) -> None:
    line = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(
        ManifestError, match=r"line 1: decodes to PEM that is not a certificate.*no CERTIFICATE"
    ):
        list(read_manifest(line, format="generated"))


def _version_six(cert: DeviceCertificate) -> bytes:
    """``cert`` with its X.509 version INTEGER set to 5 ("version 6"), which cryptography refuses."""
    der = bytearray(cert.der)
    der[der.find(bytes.fromhex("a003020102")) + 4] = 5
    return bytes(der)


def _pem_of(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("fmt", ["pem", "generated"])
def test_an_invalid_version_fails_alone(certs: list[DeviceCertificate], fmt: str) -> None:
    blocks = [certs[0].pem.encode(), _pem_of(_version_six(certs[1])), certs[2].pem.encode()]
    data = b"".join(blocks) if fmt == "pem" else b"\n".join(base64.b64encode(b) for b in blocks)
    noun = "certificate" if fmt == "pem" else "line"
    reader = read_manifest(data, format=fmt, on_error="skip", name="m")
    assert [e.certificate for e in reader] == [certs[0], certs[2]]
    [skipped] = reader.report.skipped
    assert (skipped.index, skipped.code) == (1, "invalid")
    assert skipped.reason.startswith(f"m: {noun} 2")
    assert "5 is not a valid X509 version" in skipped.reason
    with pytest.raises(ManifestError, match=rf"^m: {noun} 2.*5 is not a valid X509 version") as caught:
        list(read_manifest(data, format=fmt, name="m"))
    assert caught.value.index == 1


def test_a_broken_der_file_is_one_skipped_entry(certs: list[DeviceCertificate]) -> None:
    der = _version_six(certs[0])
    reader = read_manifest(der, format="pem", on_error="skip", name="d.der")
    assert list(reader) == []
    assert [(s.index, s.code) for s in reader.report.skipped] == [(0, "invalid")]
    assert reader.report.complete
    with pytest.raises(ManifestError, match=r"^d\.der: certificate 1: not a valid X\.509 certificate \(id "):
        list(read_manifest(der, format="pem", name="d.der"))
