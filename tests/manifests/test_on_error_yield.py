"""``on_error="yield"``: each bad entry's error comes out in its place, and the report still lists it.

Every format gets a manifest of a good entry, a bad one, a good one and one that is not an
error but carries nothing to import (a key block, a verified Microchip entry without a
certificate, a file that is not a PEM). "yield" must give entry, error, entry, in that order,
with the error "raise" raises for the same entry, and list the bad and the empty entry in
``report.skipped`` exactly as "skip" does.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generated_manifest_lines
from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, ManifestFormat, read_manifest

_BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def cases(build: Any, device_certs: dict[str, list[DeviceCertificate]], signer: Any) -> dict[str, Any]:
    """Per format: (manifest, options, index of the bad entry, skipped as (index, code))."""
    one, two = device_certs["E0E0"][:2]
    pem = one.pem + _BAD_PEM + two.pem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    good_lines = list(generated_manifest_lines([one, two]))
    generated = "\n".join([good_lines[0], "not base64 at all!", good_lines[1]]) + "\n"
    espressif = f'MAC,cn,cert\nAA01,a,"{one.pem}"\nAA02,b,"{_BAD_PEM}"\nAA03,c,"{two.pem}"\n'
    tampered = signer.entry("0123000000000002", device=two)
    tampered["payload"] = signer.entry("0123000000000009", device=two)["payload"]
    microchip = [
        signer.entry("0123000000000001", device=one),
        tampered,
        signer.entry("0123000000000003", device=two),
        signer.entry("0123000000000004"),  # verified, but carries no certificate
    ]
    inner = [("0000000000000000a_E0E0.pem", b"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n"), ("notes.txt", b"hi")]
    infineon = build.infineon_archive({"E0E0": [one, two]}, extra_inner=inner)
    return {
        "pem": (pem.encode(), {}, 1, [(1, "invalid"), (3, "not_a_certificate")]),
        "generated": (generated.encode(), {}, 1, [(1, "invalid")]),
        "espressif": (espressif.encode(), {}, 1, [(1, "invalid")]),
        "microchip": (
            json.dumps(microchip).encode(),
            {"verifiers": [signer.pem]},
            1,
            [(1, "signature"), (3, "no_certificate")],
        ),
        "infineon": (infineon, {}, 1, [(1, "invalid"), (3, "not_a_certificate")]),
    }


@pytest.mark.parametrize("fmt", [f.value for f in ManifestFormat])
def test_yield_gives_each_bad_entry_in_place(
    fmt: str, cases: dict[str, Any], device_certs: dict[str, list[DeviceCertificate]]
) -> None:
    data, options, bad, skipped = cases[fmt]
    reader = read_manifest(data, on_error="yield", **options)
    items = list(reader)
    assert [type(item) for item in items] == [ManifestEntry, type(items[1]), ManifestEntry]
    first, error, second = items
    assert isinstance(error, ManifestError)
    assert isinstance(first, ManifestEntry)
    assert isinstance(second, ManifestEntry)
    assert [first.certificate, second.certificate] == device_certs["E0E0"][:2]
    assert first.index < bad == error.index < second.index
    assert str(error.source).startswith("<bytes>")
    # the same error "raise" raises for that entry (Microchip's refusal lists it)
    with pytest.raises(ManifestError) as caught:
        list(read_manifest(data, **options))
    raised = caught.value.errors[0] if fmt == "microchip" else caught.value
    assert (str(raised), raised.index, type(raised)) == (str(error), error.index, type(error))
    # the report is the one "skip" makes: the bad entry and the empty one, and only entries count
    assert [(s.index, s.code) for s in reader.report.skipped] == skipped
    assert reader.report.skipped[0].reason == str(error)
    assert reader.report.yielded == 2
    assert reader.report.entries == 2 + len(skipped)
    assert reader.report.complete
    skipping = read_manifest(data, on_error="skip", **options)
    assert [e.certificate for e in skipping] == [first.certificate, second.certificate]
    assert skipping.report.summary() == reader.report.summary()


def test_microchip_yield_verifies_one_entry_at_a_time(cases: dict[str, Any]) -> None:
    data, options, _, _ = cases["microchip"]
    reader = read_manifest(data, on_error="yield", **options)
    first = next(reader)
    assert isinstance(first, ManifestEntry)
    # with "raise" nothing comes out before every entry has verified; here the first is out
    # before the bad second one was even looked at
    assert reader.report.skipped == []
    assert isinstance(next(reader), ManifestError)
    assert [s.code for s in reader.report.skipped] == ["signature"]


def test_a_fault_that_ends_the_reading_still_raises(device_certs: dict[str, list[DeviceCertificate]]) -> None:
    broken = device_certs["E0E0"][0].pem + "-----BEGIN CERTIFICATE-----\nAAAA\n"
    reader = read_manifest(broken.encode(), on_error="yield")
    assert isinstance(next(reader), ManifestEntry)
    with pytest.raises(ManifestError, match="has no END"):
        next(reader)
    csv = b'MAC,cn,cert\nAA01,a,"-----BEGIN\n'
    with pytest.raises(ManifestError, match="is not valid CSV"):
        list(read_manifest(csv, on_error="yield"))


def test_a_der_file_that_is_not_a_certificate_is_yielded_as_its_error() -> None:
    der = b"\x30\x82\x01\x00" + bytes(256)
    (error,) = read_manifest(der, format="pem", on_error="yield", name="d.der")
    assert isinstance(error, ManifestError)
    assert (error.source, error.index) == ("d.der", 0)


@cache
def _good_line() -> str:
    from thingpress_core.certificates.generate import generate_device_certificates

    (cert,) = generate_device_certificates(1)
    return base64.b64encode(cert.der).decode()


@settings(max_examples=40, deadline=None)
@given(plan=st.lists(st.sampled_from(["good", "bad", "blank"]), min_size=1, max_size=12))
def test_yield_is_skip_with_the_errors_in_place(plan: list[str]) -> None:
    lines = [_good_line() if kind == "good" else "@@" if kind == "bad" else "" for kind in plan]
    data = ("\n".join(lines) + "\n").encode()
    if set(plan) == {"blank"}:  # nothing but blank lines: an empty manifest, refused whatever the mode
        for mode in ("yield", "skip"):
            with pytest.raises(ManifestError, match="the manifest is empty"):
                list(read_manifest(data, format="generated", on_error=mode))
        return
    yielded = list(read_manifest(data, format="generated", on_error="yield"))
    skipping = read_manifest(data, format="generated", on_error="skip")
    entries = list(skipping)
    assert [i for i in yielded if isinstance(i, ManifestEntry)] == entries
    errors = [i for i in yielded if isinstance(i, ManifestError)]
    assert [(e.index, str(e)) for e in errors] == [(s.index, s.reason) for s in skipping.report.skipped]
    # in input order: the index of every item is its line, and lines come in order
    assert [i.index for i in yielded] == [n for n, kind in enumerate(plan) if kind != "blank"]
