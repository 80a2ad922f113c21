"""A bad manifest entry is logged once, by whoever sees it last.

With ``on_error="yield"`` the reader hands the entry's error on (the importer logs it as that
item's failure), so the reader does not log it; with ``on_error="skip"`` nobody else sees the
entry, so the reader logs it. An entry that is no error but carries nothing to import is never
yielded, so the reader logs it in either mode. No log line carries a certificate's body.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ManifestError
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.manifests import ManifestEntry, read_manifest

#: A dry run without preflight makes no AWS call: the importer runs without an IoT service.
DRY = ImportOptions(dry_run=True, preflight=False)

#: How messages name the second entry of a manifest read from bytes ("entry 2", "row 2",
#: "certificate 2 (line 14)", whatever the format calls an entry).
_SECOND = re.compile(r"<bytes>: \w+ 2\b")


def _broken_pem(cert: DeviceCertificate) -> tuple[str, list[str]]:
    """A PEM block of ``cert`` with a middle line cut out (not a certificate any more), and
    the base64 lines it still holds (none may reach a log line)."""
    lines = cert.pem.strip().splitlines()
    body = lines[1:-1]
    kept = body[:2] + body[3:]
    return "\n".join([lines[0], *kept, lines[-1]]) + "\n", [line for line in kept if len(line) >= 16]


@pytest.fixture(scope="module")
def manifests(device_certs: dict[str, list[DeviceCertificate]], signer: Any) -> dict[str, Any]:
    """Per format: (manifest bytes, reader options, text that must never be logged); each holds
    a good entry, one bad entry (the second) and another good one."""
    one, two, three = device_certs["E0E0"][:3]
    broken, body = _broken_pem(three)
    espressif = f'MAC,cn,cert\nAA01,a,"{one.pem}"\nAA02,b,"{broken}"\nAA03,c,"{two.pem}"\n'
    tampered = signer.entry("0123000000000002", device=three)
    tampered["payload"] = signer.entry("0123000000000009", device=three)["payload"]
    microchip = [
        signer.entry("0123000000000001", device=one),
        tampered,
        signer.entry("0123000000000003", device=two),
    ]
    der = base64.b64encode(three.der).decode("ascii")
    return {
        "pem": ((one.pem + broken + two.pem).encode(), {}, body),
        "espressif": (espressif.encode(), {}, body),
        "microchip": (json.dumps(microchip).encode(), {"verifiers": [signer.pem]}, [der[:64], der[-64:]]),
    }


def _about_entry_2(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The package's log records that speak of the bad entry (the second, index 1)."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("thingpress_core")
        and (_SECOND.search(r.getMessage()) is not None or getattr(r, "entry", None) == 2)
    ]


def _no_body(caplog: pytest.LogCaptureFixture, secret: list[str]) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert "BEGIN CERTIFICATE" not in text
        assert not any(piece in text for piece in secret), text


@pytest.mark.parametrize("fmt", ["pem", "espressif", "microchip"])
def test_yield_through_import_all_logs_the_bad_entry_once(
    fmt: str, manifests: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data, options, secret = manifests[fmt]
    reader = read_manifest(data, on_error="yield", **options)
    with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
        report = CertificateImporter(options=DRY).import_all(reader)
    assert (report.total, report.skipped, report.failed) == (3, 2, 1)
    (record,) = _about_entry_2(caplog)
    assert record.name == "thingpress_core.importer"
    assert record.levelno == logging.WARNING
    assert "item 2: could not be read" in record.getMessage()
    # the reader still lists it: the report keeps every entry it did not import
    assert [skip.index for skip in reader.report.skipped] == [1]
    _no_body(caplog, secret)


@pytest.mark.parametrize("fmt", ["pem", "espressif", "microchip"])
def test_skip_through_the_reader_logs_the_bad_entry_once(
    fmt: str, manifests: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data, options, secret = manifests[fmt]
    with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
        entries = list(read_manifest(data, on_error="skip", **options))
    assert all(isinstance(entry, ManifestEntry) for entry in entries)
    assert len(entries) == 2
    (record,) = _about_entry_2(caplog)
    assert record.name == "thingpress_core.manifests"
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("manifest entry skipped: <bytes>: ")
    _no_body(caplog, secret)


def test_yield_through_the_reader_alone_leaves_the_logging_to_the_caller(
    manifests: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data, options, _ = manifests["pem"]
    with caplog.at_level(logging.DEBUG, logger="thingpress_core.manifests"):
        items = list(read_manifest(data, on_error="yield", **options))
    assert [type(item) for item in items] == [ManifestEntry, ManifestError, ManifestEntry]
    assert _about_entry_2(caplog) == []


def test_an_entry_with_nothing_to_import_is_logged_by_the_reader_in_yield_mode(
    device_certs: dict[str, list[DeviceCertificate]], caplog: pytest.LogCaptureFixture
) -> None:
    # a key block is not an error, so it is never yielded: the reader is the only one to see it
    key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    data = (device_certs["E0E0"][0].pem + key).encode()
    with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
        report = CertificateImporter(options=DRY).import_all(read_manifest(data, on_error="yield"))
    assert (report.total, report.failed) == (1, 0)
    (record,) = _about_entry_2(caplog)
    assert record.name == "thingpress_core.manifests"
    assert getattr(record, "skip_code", None) == "not_a_certificate"


def test_many_yielded_errors_cost_no_reader_log_line_not_even_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the reader's "more than 1000 skipped" line speaks for entries it logged one by one; the
    # yielded ones it never logged are the caller's, one each
    reader = read_manifest(b"x\n" * 1_500, format="generated", on_error="yield")
    with caplog.at_level(logging.DEBUG, logger="thingpress_core.manifests"):
        errors = list(reader)
    assert len(errors) == 1_500
    assert all(isinstance(error, ManifestError) for error in errors)
    assert len(reader.report.skipped) == 1_500
    assert [r for r in caplog.records if r.name == "thingpress_core.manifests"] == []
