"""Issue 16: billing group, attributes and the manifest's vendor id travel in `ImportRequest`;
messages written before them read as before."""

from __future__ import annotations

import json

import pytest

from thingpress_core.certificates.generate import generate_ca, generate_device_certificates
from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions
from thingpress_core.integrations._messages import ImportRequest
from thingpress_core.integrations._settings import LambdaSettings
from thingpress_core.manifests import ManifestEntry

CERT = next(iter(generate_device_certificates(1, ca=generate_ca("messages CA"))))


def test_a_body_without_the_new_fields_reads_and_keeps_the_consumers_own() -> None:
    old = ImportRequest(certificate=ImportRequest.from_certificate(CERT).certificate, thing_type="Sensor")
    body = old.to_body()
    assert not {"billing_group", "attributes", "manifest_attributes", "vendor_id"} & json.loads(body).keys()
    base = ImportOptions(thing_type="Sensor", billing_group="B1", attributes={"site": "a"})
    chosen = ImportRequest.parse(body).options_for(base)
    assert (chosen.billing_group, chosen.attributes, chosen.manifest_attributes) == (
        "B1",
        {"site": "a"},
        True,
    )


def test_the_new_fields_round_trip_and_replace_the_consumers() -> None:
    entry = ManifestEntry(thing_name="dev-1", certificate=CERT, vendor_id="AA:BB", index=3)
    options = ImportOptions(
        thing_type="Sensor", billing_group="B2", attributes={"site": "b"}, manifest_attributes=False
    )
    request = ImportRequest.parse(ImportRequest.from_certificate(entry, options=options).to_body())
    assert (request.billing_group, request.attributes, request.vendor_id) == ("B2", {"site": "b"}, "AA:BB")
    assert request.to_entry().vendor_id == "AA:BB"
    chosen = request.options_for(ImportOptions(thing_type="Sensor"))
    assert (chosen.billing_group, chosen.attributes, chosen.manifest_attributes) == (
        "B2",
        {"site": "b"},
        False,
    )


def test_a_request_whose_attributes_do_not_fit_its_thing_type_is_refused() -> None:
    request = ImportRequest(
        certificate=ImportRequest.from_certificate(CERT).certificate,
        attributes={"a": "1", "b": "2"},
    )
    with pytest.raises(ConfigurationError, match="at most 3 attributes"):
        request.options_for(ImportOptions())


def test_lambda_settings_carry_billing_group_and_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_LAMBDA_BILLING_GROUP", "B1")
    monkeypatch.setenv("THINGPRESS_LAMBDA_ATTRIBUTES", '{"site": "plant-7"}')
    options = LambdaSettings().import_options()
    assert (options.billing_group, options.attributes) == ("B1", {"site": "plant-7"})
