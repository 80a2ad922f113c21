"""``naming=``: one vocabulary for every format, and a clear refusal of what a format cannot offer.

The table (`_readers.READERS`) says what each format offers; these tests read a real
manifest of each format under every spelling and check the name each entry offers.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generated_manifest_lines
from thingpress_core.errors import ConfigurationError
from thingpress_core.manifests import ManifestFormat, ReaderNaming, read_manifest
from thingpress_core.manifests._readers import READERS

SPELLINGS: tuple[ReaderNaming, ...] = (*typing.get_args(typing.get_args(ReaderNaming)[0]), None)


@pytest.fixture(scope="module")
def cert(device_certs: dict[str, list[DeviceCertificate]]) -> DeviceCertificate:
    return device_certs["E0E0"][0]


@pytest.fixture(scope="module")
def one_entry(build: Any, cert: DeviceCertificate, signer: Any) -> dict[str, Any]:
    """Per format: a manifest of one certificate, its options, and its vendor id and cn column."""
    return {
        "pem": (cert.pem.encode(), {}, None),
        "generated": (next(generated_manifest_lines([cert])).encode() + b"\n", {}, None),
        "espressif": (f'MAC,cn,cert\nAABBCC000001,column-cn,"{cert.pem}"\n'.encode(), {}, "AABBCC000001"),
        "microchip": (
            json.dumps([signer.entry("0123abcdef00000001", device=cert)]).encode(),
            {"verifiers": [signer.pem]},
            "0123abcdef00000001",
        ),
        "infineon": (build.infineon_archive({"E0E0": [cert]}), {}, None),
    }


def test_the_vocabulary_is_the_one_the_issue_fixed() -> None:
    assert SPELLINGS == ("default", "common_name", "certificate_id", "mac", "unique_id", None)


def test_every_format_has_one_row_that_offers_what_every_format_offers() -> None:
    assert set(READERS) == set(ManifestFormat)
    for fmt, spec in READERS.items():
        assert {"common_name", "certificate_id"} <= set(spec.namings), fmt
        assert spec.default_naming in spec.namings, fmt
        assert set(spec.namings) <= set(SPELLINGS) - {"default", None}, fmt
    assert READERS[ManifestFormat.MICROCHIP].default_naming == "unique_id"
    assert READERS[ManifestFormat.ESPRESSIF].default_naming == "mac"
    others = set(ManifestFormat) - {ManifestFormat.MICROCHIP, ManifestFormat.ESPRESSIF}
    assert {READERS[f].default_naming for f in others} == {"common_name"}
    assert [f for f in ManifestFormat if "mac" in READERS[f].namings] == [ManifestFormat.ESPRESSIF]
    assert [f for f in ManifestFormat if "unique_id" in READERS[f].namings] == [ManifestFormat.MICROCHIP]


@pytest.mark.parametrize("naming", SPELLINGS)
@pytest.mark.parametrize("fmt", [f.value for f in ManifestFormat])
def test_every_naming_of_every_format(
    fmt: str, naming: ReaderNaming, one_entry: dict[str, Any], cert: DeviceCertificate
) -> None:
    data, options, vendor_id = one_entry[fmt]
    spec = READERS[ManifestFormat(fmt)]
    reader = read_manifest(data, format=fmt, naming=naming, **options)
    offered = ("default", *spec.namings, None)
    if naming not in offered:
        with pytest.raises(ConfigurationError) as caught:
            next(reader)
        error = caught.value
        assert error.variable == "naming"
        assert error.value == naming
        assert str(error) == (
            f"naming must be one of {', '.join(map(repr, offered))} for {fmt} manifests, not {naming!r}"
        )
        return
    (entry,) = reader
    resolved = spec.default_naming if naming == "default" else naming
    expected = {
        "common_name": "column-cn" if fmt == "espressif" else cert.common_name,
        "certificate_id": cert.certificate_id,
        "mac": vendor_id,
        "unique_id": vendor_id,
        None: None,
    }[resolved]
    assert entry.thing_name == expected


def test_espressif_common_name_falls_back_to_the_certificate(cert: DeviceCertificate) -> None:
    data = f'MAC,cn,cert\nAABBCC000001,,"{cert.pem}"\n'.encode()
    (entry,) = read_manifest(data, naming="common_name")
    assert entry.thing_name == cert.common_name


@pytest.mark.parametrize("fmt", [f.value for f in ManifestFormat])
def test_the_old_cn_spelling_is_refused_with_the_new_one(fmt: str, one_entry: dict[str, Any]) -> None:
    data, options, _ = one_entry[fmt]
    reader = read_manifest(data, naming="cn", **options)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match=r"naming='cn' is not a naming: use naming='common_name'"):
        next(reader)


def test_a_value_outside_the_vocabulary_names_what_the_format_offers(one_entry: dict[str, Any]) -> None:
    data, _, _ = one_entry["pem"]
    with pytest.raises(ConfigurationError) as caught:
        list(read_manifest(data, naming="serial"))  # type: ignore[call-overload]
    assert str(caught.value) == (
        "naming must be one of 'default', 'common_name', 'certificate_id', None "
        "for pem manifests, not 'serial'"
    )
