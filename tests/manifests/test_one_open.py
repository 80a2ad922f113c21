"""A source is opened once and each byte read once: detection uses the head the reader goes on reading.

Opens are counted with an audit hook (CPython raises the ``open`` event for every file opened,
however it is opened), reads with a stream that records how often each byte was handed out.
Before this was so, reading a path with detection opened it twice and a seekable stream had
its first 4 KiB read twice.
"""

from __future__ import annotations

import collections
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generated_manifest_lines
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests import ManifestFormat, read_manifest

_OPENS: collections.Counter[str] = collections.Counter()
_WATCHED: set[str] = set()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if path in _WATCHED:
            _OPENS[path] += 1


sys.addaudithook(_audit)  # hooks cannot be removed; this one does nothing unless a path is watched


@pytest.fixture
def opens() -> Any:
    """``opens(path)`` starts counting the opens of ``path`` and returns the counter."""

    def watch(path: Path) -> collections.Counter[str]:
        _WATCHED.add(str(path))
        _OPENS[str(path)] = 0
        return _OPENS

    yield watch
    _WATCHED.clear()
    _OPENS.clear()


class Counting(io.RawIOBase):
    """A binary stream that counts how many times each of its bytes was read."""

    def __init__(self, data: bytes, *, seekable: bool, piece: int | None = None) -> None:
        super().__init__()
        self.data = data
        self.pos = 0
        self.piece = piece
        self._seekable = seekable
        self.reads: collections.Counter[int] = collections.Counter()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self.data) - self.pos, self.piece or len(buffer))
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.reads.update(range(self.pos, self.pos + n))
        self.pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        self.pos = (offset, self.pos + offset, len(self.data) + offset)[whence]
        return self.pos

    def tell(self) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("tell")
        return self.pos

    def most_reads(self) -> int:
        return max(self.reads.values(), default=0)


@pytest.fixture(scope="module")
def manifests(build: Any, device_certs: dict[str, list[DeviceCertificate]], signer: Any) -> dict[str, Any]:
    """One manifest of five certificates per format, with the options it needs."""
    certs = device_certs["E0E0"]
    rows = "".join(f'AABBCC00000{i},dev{i},"{c.pem}"\n' for i, c in enumerate(certs))
    signed = [signer.entry(f"0123abcdef0000000{i}", device=c) for i, c in enumerate(certs)]
    return {
        "pem": ("".join(c.pem for c in certs).encode(), {}),
        "generated": ("\n".join(generated_manifest_lines(certs)).encode() + b"\n", {}),
        "espressif": (("MAC,cn,cert\n" + rows).encode(), {}),
        "microchip": (json.dumps(signed).encode(), {"verifiers": [signer.pem]}),
        "infineon": (build.infineon_archive(device_certs), {}),
    }


FORMATS = [f.value for f in ManifestFormat]
STREAMING = [f for f in FORMATS if f != "infineon"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_path_is_opened_once(fmt: str, manifests: dict[str, Any], tmp_path: Path, opens: Any) -> None:
    data, options = manifests[fmt]
    path = tmp_path / f"manifest.{fmt}"
    path.write_bytes(data)
    counter = opens(path)
    reader = read_manifest(path, **options)
    assert reader.format is ManifestFormat(fmt)
    assert len(list(reader)) == 5
    assert counter[str(path)] == 1  # was 2: detection opened it, then the reader again
    counter[str(path)] = 0
    assert len(list(read_manifest(path, format=fmt, **options))) == 5
    assert counter[str(path)] == 1


@pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "pipe"])
@pytest.mark.parametrize("fmt", STREAMING)
def test_each_byte_of_a_stream_is_read_once(fmt: str, seekable: bool, manifests: dict[str, Any]) -> None:
    data, options = manifests[fmt]
    stream = Counting(data, seekable=seekable)
    reader = read_manifest(stream, **options)
    assert reader.format is ManifestFormat(fmt)
    assert len(list(reader)) == 5
    assert len(stream.reads) == len(data)  # every byte was read...
    assert stream.most_reads() == 1  # ...once (a seekable stream had its head read twice)


def test_an_archive_costs_no_read_for_detection(manifests: dict[str, Any]) -> None:
    """Infineon's reader seeks (7z keeps its header at the end): detecting it adds no read."""
    data, _ = manifests["infineon"]
    detected, told = Counting(data, seekable=True), Counting(data, seekable=True)
    assert len(list(read_manifest(detected))) == len(list(read_manifest(told, format="infineon"))) == 5
    assert detected.reads == told.reads
    pipe = Counting(data, seekable=False)
    assert len(list(read_manifest(pipe))) == 5
    assert pipe.most_reads() == 1  # read once into memory, within max_bytes


def test_the_head_of_a_pipe_answering_in_small_pieces_is_whole(
    device_certs: dict[str, list[DeviceCertificate]],
) -> None:
    # the BEGIN line comes after 300 bytes of comment: a head of one 100-byte piece misses it
    bundle = ("# " + "x" * 300 + "\n" + device_certs["E0E0"][0].pem).encode()
    reader = read_manifest(Counting(bundle, seekable=False, piece=100))
    assert reader.format is ManifestFormat.PEM
    assert [e.certificate for e in reader] == device_certs["E0E0"][:1]


@pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "pipe"])
def test_a_stream_of_exactly_max_bytes_is_read_and_one_more_byte_is_refused(
    seekable: bool, device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    text = "".join(c.pem for c in device_certs["E0E0"]).encode()
    assert len(list(read_manifest(Counting(text, seekable=seekable), max_bytes=len(text)))) == 5
    reader = read_manifest(Counting(text, seekable=seekable), max_bytes=len(text) - 1)
    with pytest.raises(ManifestError, match=f"larger than max_bytes={len(text) - 1}"):
        list(reader)


def test_a_seekable_stream_is_read_from_where_it_stands(manifests: dict[str, Any]) -> None:
    for fmt in ("pem", "infineon"):
        data, _ = manifests[fmt]
        stream = io.BytesIO(b"JUNK" + data)
        stream.seek(4)
        assert len(list(read_manifest(stream))) == 5, fmt
    data, _ = manifests["infineon"]
    stream = io.BytesIO(b"JUNK" + data)
    stream.seek(4)
    with pytest.raises(ManifestError, match=f"manifest is {len(data)} bytes, larger than max_bytes=1000"):
        list(read_manifest(stream, max_bytes=1000, format="infineon"))


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_path_opened_to_detect_is_closed_by_the_reader(manifests: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "m.pem"
    path.write_bytes(manifests["pem"][0])
    before = _open_descriptors()
    reader = read_manifest(path)  # opened here, to detect the format
    assert _open_descriptors() == before + 1
    reader.close()  # never iterated: closing still releases it
    assert _open_descriptors() == before
    with read_manifest(path) as reader:
        next(reader)
    assert _open_descriptors() == before
    list(read_manifest(path))  # read to the end
    assert _open_descriptors() == before
    with pytest.raises(ConfigurationError, match="naming"):
        next(read_manifest(path, naming="mac"))  # a bad option value, found on the first next()
    assert _open_descriptors() == before
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ManifestError, match="the manifest is empty"):
        read_manifest(empty)  # refused at once: the file is closed before the error leaves
    assert _open_descriptors() == before


def test_a_text_stream_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="must be opened in binary mode"):
        read_manifest(io.StringIO("-----BEGIN CERTIFICATE-----\n"))  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="must be opened in binary mode"):
        list(read_manifest(io.StringIO("-----BEGIN CERTIFICATE-----\n"), format="pem"))  # type: ignore[call-overload]
