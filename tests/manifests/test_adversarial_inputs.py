"""Hostile manifests an outside attacker would try, found by an adversarial review.

Each test here failed before its fix: 7z archives of thousands of empty members (py7zr's cost
per member, not per byte, made a 76 KB archive cost 5 s), inner archives with two members of
one name (one device's certificate stood in for another's, the other was lost without a
word), member names, MACs and PEM labels quoted raw in messages (line breaks, terminal
escapes, bidirectional overrides, kilobytes of them), lines held whole however long, a
renewed Microchip signer that made every entry of its older certificate fail, and a FIFO
without a writer that hung the read.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, read_manifest

# Attacker-chosen text that must never reach a message as it is.
_HOSTILE = "\u202e" + "A" * 3000 + "\x1b[2J"


def _only_ours(message: str) -> None:
    assert message.isprintable(), repr(message[:200])  # no line break, escape or bidi override
    assert len(message) < 1000, len(message)


@pytest.fixture(scope="module")
def certs() -> list[DeviceCertificate]:
    return list(generate_device_certificates(3, cn_prefix="adv-"))


def _counted(reader: Any) -> tuple[list[ManifestEntry], list[ManifestError]]:
    entries: list[ManifestEntry] = []
    errors: list[ManifestError] = []
    for item in reader:
        if isinstance(item, ManifestError):
            errors.append(item)
        else:
            entries.append(item)
    return entries, errors


# -- Infineon 7z ------------------------------------------------------------------------------


def _empty_members(build: Any, count: int, *, last: tuple[str, bytes]) -> bytes:
    return build.seven_zip([*((f"f{i:07d}.txt", b"") for i in range(count)), last])


def test_an_outer_archive_of_thousands_of_empty_members_is_refused_from_its_headers(build: Any) -> None:
    """5,000 empty members in 10 KB: py7zr spends ~0.3 ms on each, whatever its size."""
    archive = _empty_members(build, 5000, last=("R_1_E0E0_Certs.7z", b"not read"))
    assert len(archive) < 20_000
    with pytest.raises(ManifestError, match=r"holds 5001 members in \d+ bytes, more than one per 32 bytes"):
        list(read_manifest(archive, format="infineon"))


def test_an_inner_archive_of_thousands_of_empty_members_is_refused(build: Any) -> None:
    inner = build.seven_zip([(f"{i:016X}_E0E0.pem", b"") for i in range(5000)])
    with pytest.raises(ManifestError, match=r"R_1_E0E0_Certs\.7z: certificate archive holds 5000 members"):
        list(read_manifest(build.seven_zip([("R_1_E0E0_Certs.7z", inner)]), format="infineon"))


def test_real_certificates_are_far_denser_than_the_member_bound(build: Any) -> None:
    """Certificates sharing one key (the smallest real members: ~85 bytes each in a solid
    archive) still read: the bound leaves them room."""
    devices = list(generate_device_certificates(600, cn_prefix="reel-"))
    entries = list(read_manifest(build.infineon_archive({"E0E0": devices}), format="infineon"))
    assert [e.certificate for e in entries] == devices


def test_members_of_one_name_in_an_inner_archive_fail_each_and_none_stands_for_the_other(
    build: Any, certs: list[DeviceCertificate]
) -> None:
    inner = build.seven_zip(
        [
            ("0001_E0E0.pem", build.crlf_pem(certs[0])),
            ("0001_E0E0.pem", build.crlf_pem(certs[1])),
            ("0002_E0E0.pem", build.crlf_pem(certs[2])),
        ]
    )
    reader = read_manifest(build.seven_zip([("R_1_E0E0_Certs.7z", inner)]), on_error="yield")
    entries, errors = _counted(reader)
    assert [e.certificate for e in entries] == [certs[2]]
    assert [e.index for e in errors] == [0, 1]
    assert all("shares its name with another member" in str(e) for e in errors)
    assert len(entries) + len(reader.report.skipped) == 3  # every member accounted for


def test_two_certificate_archives_of_one_name_refuse_the_manifest(
    build: Any, certs: list[DeviceCertificate]
) -> None:
    inner = build.seven_zip([("0001_E0E0.pem", build.crlf_pem(certs[0]))])
    archive = build.seven_zip([("R_1_E0E0_Certs.7z", inner), ("R_1_E0E0_Certs.7z", inner)])
    with pytest.raises(ManifestError, match=r"more than one member named R_1_E0E0_Certs\.7z"):
        list(read_manifest(archive, on_error="skip"))


def test_member_names_are_escaped_and_bounded_in_messages(build: Any, certs: list[DeviceCertificate]) -> None:
    inner = build.seven_zip([(f"{_HOSTILE}_E0E1.pem", build.crlf_pem(certs[0]))])
    archive = build.seven_zip([(f"R{_HOSTILE}_E0E0_Certs.7z", inner)])
    reader = read_manifest(archive, format="infineon", on_error="yield")
    _, errors = _counted(reader)
    assert len(errors) == 1
    assert "is named for slot E0E1" in str(errors[0])
    _only_ours(str(errors[0]))
    _only_ours(reader.report.skipped[0].reason)
    assert errors[0].source is not None
    _only_ours(errors[0].source)


# -- Espressif CSV, generated and PEM manifests ------------------------------------------------


def test_an_espressif_mac_is_escaped_and_bounded_in_messages() -> None:
    quoted = '"' + _HOSTILE.replace("\x1b", "\n\x1b") + '"'
    manifest = f'MAC,cn,cert\r\n{quoted},cn,""\r\n'.encode()
    reader = read_manifest(manifest, on_error="yield")
    _, errors = _counted(reader)
    assert "has no certificate" in str(errors[0])
    _only_ours(str(errors[0]))


def test_an_espressif_line_longer_than_any_row_is_refused_before_it_is_held_whole() -> None:
    manifest = b"MAC,cn,cert\r\n" + b"A" * 3_000_000
    with pytest.raises(ManifestError, match=r"line 2 is longer than 1048576 characters"):
        list(read_manifest(manifest, format="espressif", on_error="skip"))


def test_a_generated_line_too_long_for_a_certificate_fails_alone(certs: list[DeviceCertificate]) -> None:
    import base64

    lines = [base64.b64encode(c.pem.encode()) for c in certs]
    manifest = b"\n".join([lines[0], b"QUFB" * 500_000, lines[1], lines[2]]) + b"\n"
    reader = read_manifest(manifest, format="generated", on_error="yield")
    entries, errors = _counted(reader)
    assert [e.certificate for e in entries] == certs
    assert [e.index for e in errors] == [1]
    assert "longer than 1500000 bytes" in str(errors[0])


def test_a_der_manifest_larger_than_a_certificate_is_refused_without_reading_it_whole(
    certs: list[DeviceCertificate],
) -> None:
    manifest = certs[0].der + b"\0" * 2_000_000
    reader = read_manifest(manifest, format="pem", on_error="yield")
    entries, errors = _counted(reader)
    assert entries == []
    assert "larger than 1048576 bytes is not a certificate" in str(errors[0])
    assert len(reader.report.skipped) == 1


def test_a_pem_block_label_is_escaped_in_the_report(certs: list[DeviceCertificate]) -> None:
    label = "\x1b[2JKEY\u202e"
    manifest = f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n{certs[0].pem}".encode()
    reader = read_manifest(manifest, format="pem", on_error="skip")
    assert [e.certificate for e in reader] == [certs[0]]
    _only_ours(reader.report.skipped[0].reason)


# -- Microchip ------------------------------------------------------------------------------


def test_a_renewed_signer_certificate_does_not_hide_the_one_that_signed(
    make_signer: Any, certs: list[DeviceCertificate]
) -> None:
    """Two certificates of one signing key share a kid: entries name theirs by x5t#S256, and
    kid alone finds whichever was valid when the entry was signed."""
    signer = make_signer()
    subject = signer.certificate.subject
    renewed = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(signer.key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.timezone.utc))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.key.public_key()), critical=False)
        .sign(signer.key, hashes.SHA256())
    )
    with_x5t = signer.entry("01a1", device=certs[0])
    kid_only = signer.entry("01a2", device=certs[1], header={"x5t#S256": None})
    manifest = json.dumps([with_x5t, kid_only]).encode()
    for verifiers in ([signer.certificate, renewed], [renewed, signer.certificate]):
        entries = list(read_manifest(manifest, verifiers=verifiers))
        assert [e.vendor_id for e in entries] == ["01a1", "01a2"]
    # the renewed certificate alone was not valid in 2025, when the entries were signed
    with pytest.raises(ManifestError, match="was not valid at provisioning time"):
        list(read_manifest(manifest, verifiers=[renewed]))


# -- sources that are not regular files --------------------------------------------------------


def _run_isolated(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    # a read that blocks forever must fail the test, not hang the suite
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_manifest_that_is_a_fifo_without_a_writer_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "devices.csv"
    os.mkfifo(fifo)
    code = (
        "import sys\n"
        "from thingpress_core.errors import ManifestError\n"
        "from thingpress_core.manifests import detect_format, read_manifest\n"
        "for call in (lambda: list(read_manifest(sys.argv[1])), lambda: detect_format(sys.argv[1])):\n"
        "    try:\n"
        "        call()\n"
        "    except ManifestError as exc:\n"
        "        print(exc)\n"
    )
    result = _run_isolated(code, str(fifo))
    assert result.returncode == 0, result.stderr
    assert f"{fifo}: the manifest is empty" in result.stdout


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_pipe_whose_writer_has_finished_is_read_whole(data_dir: Path) -> None:
    """``thingpress import <(cat manifest.csv)``: the pipe is read to its end, not cut short."""
    code = (
        "import os, sys\n"
        "from thingpress_core.manifests import read_manifest\n"
        "read_end, write_end = os.pipe()\n"
        "os.write(write_end, open(sys.argv[1], 'rb').read())\n"
        "os.close(write_end)\n"
        "print(sum(1 for _ in read_manifest(f'/proc/self/fd/{read_end}')))\n"
    )
    result = _run_isolated(code, str(data_dir / "espressif" / "manifest-espressif.csv"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


@pytest.mark.parametrize("fmt", ["espressif", "generated", "pem"])
def test_dev_zero_is_refused_within_bounded_memory(fmt: str) -> None:
    """Endless bytes with no line break: refused at a bound, never held whole (it used to reach
    ~300 MB of memory, the whole 256 MiB limit, before the refusal)."""
    code = (
        "import resource, sys\n"
        "from thingpress_core.errors import ManifestError\n"
        "from thingpress_core.manifests import read_manifest\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    list(read_manifest('/dev/zero', format=sys.argv[1], on_error='skip'))\n"
        "except ManifestError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    result = _run_isolated(code, fmt)
    assert result.returncode == 0, result.stderr
    message, grown_mib = result.stdout.strip().rsplit("\n", 1)
    assert "/dev/zero" in message
    assert int(grown_mib) < 64, result.stdout


class _FailingStream(io.RawIOBase):
    """A stream whose device fails part way, as a disk or a network mount can."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError(5, "Input/output error")


def test_a_stream_that_fails_while_read_raises_our_error_naming_it() -> None:
    with pytest.raises(ManifestError, match=r"devices\.csv: cannot read manifest: Input/output error"):
        list(read_manifest(io.BufferedReader(_FailingStream()), name="devices.csv"))


def test_a_source_name_from_outside_is_escaped_in_messages(certs: list[DeviceCertificate]) -> None:
    """An S3 key may hold line breaks and escapes; every message names the source."""
    manifest = f'MAC,cn,cert\r\naa,cn,"{certs[0].pem[:-30]}"\r\n'.encode()
    reader = read_manifest(manifest, name="uploads/x\n2026-01-01 INFO forged\x1b[2J.csv", on_error="yield")
    _, errors = _counted(reader)
    _only_ours(str(errors[0]))
    assert str(errors[0]).startswith(r"uploads/x\n2026-01-01 INFO forged\x1b[2J.csv: row 1")
    assert reader.report.source == r"uploads/x\n2026-01-01 INFO forged\x1b[2J.csv"


def test_a_manifest_of_bad_entries_is_refused_past_the_bound_on_skipped_entries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every skipped entry costs a report record and a log line: 14 MiB of ``[[],[],...]`` cost
    2.4 GB and 80 s. Past MAX_SKIPPED_ENTRIES the rest of the manifest is refused; past 1,000
    skips one line says the rest are in the report only."""
    from thingpress_core.manifests._common import MAX_SKIPPED_ENTRIES

    manifest = b"x\n" * (MAX_SKIPPED_ENTRIES + 10)
    reader = read_manifest(manifest, format="generated", on_error="skip")
    with caplog.at_level("INFO", logger="thingpress_core.manifests"):
        with pytest.raises(ManifestError, match=rf"more than {MAX_SKIPPED_ENTRIES} entries skipped"):
            list(reader)
    assert len(reader.report.skipped) == MAX_SKIPPED_ENTRIES
    assert not reader.report.complete
    lines = [r.getMessage() for r in caplog.records if r.name == "thingpress_core.manifests"]
    assert len(lines) == 1001
    assert lines[-1] == "more than 1000 manifest entries skipped: the rest are listed in the report only"


def test_a_microchip_refusal_keeps_a_bounded_list_of_errors_and_counts_them_all(signer: Any) -> None:
    from thingpress_core.manifests._common import MAX_SKIPPED_ENTRIES

    total = MAX_SKIPPED_ENTRIES + 5
    manifest = b"[" + b",".join([b"[]"] * total) + b"]"
    with pytest.raises(ManifestError, match=rf"{total} of {total} entries failed") as caught:
        list(read_manifest(manifest, format="microchip", verifiers=signer.certificate))
    assert len(caught.value.errors) == MAX_SKIPPED_ENTRIES
