"""Type-checked only (mypy --strict, pyright strict), never run: every public manifests signature."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from cryptography import x509
from typing_extensions import assert_type

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ManifestError, ManifestSignatureError
from thingpress_core.manifests import (
    DEFAULT_MAX_MANIFEST_BYTES,
    ManifestEntry,
    ManifestFormat,
    ManifestReader,
    ManifestReport,
    ManifestSource,
    ReaderNaming,
    SkippedEntry,
    Verifier,
    VerifierInput,
    detect_format,
    load_verifiers,
    read_manifest,
)


def formats() -> list[str]:
    fmt: ManifestFormat = detect_format(b"MAC,cn,cert\n")
    named: ManifestFormat = detect_format(Path("reel.7z"), name="reel.7z")
    from_stream: ManifestFormat = detect_format(io.BytesIO(b"[]"))
    value: str = ManifestFormat.MICROCHIP.value
    return [fmt, named, from_stream, value, str(ManifestFormat.INFINEON)]


def read_everything(verifier: x509.Certificate, device: DeviceCertificate) -> int:
    reader: ManifestReader = read_manifest(
        "ECC608C-TNGTLSU-B.json",
        format=ManifestFormat.MICROCHIP,
        verifiers=[Path("signer.crt"), b"-----BEGIN CERTIFICATE-----", verifier, device],
        check_verifier_validity=True,
        naming="unique_id",
        on_error="skip",
    )
    entries: Iterator[ManifestEntry] = reader
    total = 0
    for entry in entries:
        name: str | None = entry.thing_name
        cert: DeviceCertificate = entry.certificate
        chain: tuple[DeviceCertificate, ...] = entry.chain
        vendor: str | None = entry.vendor_id
        index: int = entry.index
        source: str | None = entry.source
        total += index + len(chain) + len(name or "") + len(vendor or "") + len(source or "") + len(cert.der)
    report: ManifestReport = reader.report
    skipped: list[SkippedEntry] = report.skipped
    for item in skipped:
        total += item.index + item.number + len(item.code) + len(item.reason) + len(item.vendor_id or "")
    summary: str = report.summary()
    complete: bool = report.complete
    return total + report.yielded + report.entries + len(summary) + int(complete)


def other_formats() -> None:
    with open("reel.7z", "rb") as handle:
        list(read_manifest(handle, cert_type="E0E1", max_members=1000, max_bytes=DEFAULT_MAX_MANIFEST_BYTES))
    list(read_manifest(Path("m.csv"), format="espressif", naming="common_name"))
    list(read_manifest(Path("m.csv"), naming="mac", verifiers=None, check_verifier_validity=None))
    naming: ReaderNaming = "default"
    list(read_manifest(b"...", naming=naming, cert_type=None, max_members=None))
    list(read_manifest(b"...", naming="certificate_id"))
    list(read_manifest("reel.7z", max_unpacked_bytes=1 << 20, max_dictionary_bytes=1 << 16))
    one: VerifierInput = Path("signer.crt")
    list(read_manifest("m.json", verifiers=one, check_verifier_validity=False))
    list(read_manifest(b"...", format="generated", naming=None, name="s3://bucket/key"))
    with read_manifest(bytearray(b"..."), format=ManifestFormat.PEM) as reader:
        fmt: ManifestFormat = reader.format
        source: str | None = reader.source
        del fmt, source
        reader.close()


def verifiers() -> dict[str, Verifier]:
    table = load_verifiers(Path("verifiers"))
    for kid, verifier in table.items():
        thumb: str = verifier.x5t_s256
        cert: x509.Certificate = verifier.certificate
        del kid, thumb, cert
    return table


def errors() -> None:
    try:
        list(read_manifest("m.json", verifiers="signer.crt"))
    except ManifestSignatureError as exc:
        bad: tuple[ManifestError, ...] = exc.errors
        where: int | None = exc.index
        del bad, where


def yielded_errors(source: ManifestSource, mode: Literal["raise", "skip", "yield"]) -> int:
    """on_error="yield" makes the reader yield ManifestError too; the other values only entries."""
    assert_type(read_manifest(source), ManifestReader[ManifestEntry])
    assert_type(read_manifest(source, on_error="raise"), ManifestReader[ManifestEntry])
    assert_type(read_manifest(source, on_error="skip", naming=None), ManifestReader[ManifestEntry])
    mixed = read_manifest(source, on_error="yield", format="pem", max_bytes=1 << 20)
    assert_type(mixed, ManifestReader[ManifestEntry | ManifestError])
    assert_type(read_manifest(source, on_error=mode), ManifestReader[ManifestEntry | ManifestError])
    bare: ManifestReader = read_manifest(source, on_error="skip")  # bare means ManifestReader[ManifestEntry]
    assert_type(next(bare), ManifestEntry)
    wider: ManifestReader[ManifestEntry | ManifestError] = read_manifest(source)  # covariant
    failed = 0
    for item in mixed:
        assert_type(item, ManifestEntry | ManifestError)
        if isinstance(item, ManifestError):
            index: int | None = item.index
            failed += index or 0
        else:
            name: str | None = item.thing_name
            failed += len(name or "")
    with read_manifest(source, on_error="yield") as reader:
        assert_type(reader, ManifestReader[ManifestEntry | ManifestError])
    del wider
    return failed
