"""thing_name_for: always a valid AWS IoT thing name, deterministic, documented rules."""

from __future__ import annotations

import hashlib

import pytest

from thingpress_core.certificates import (
    THING_NAME_PATTERN,
    DeviceCertificate,
    is_valid_thing_name,
    thing_name_for,
)
from thingpress_core.certificates.generate import GeneratedCA, issue_certificate
from thingpress_core.errors import CertificateValidationError, ConfigurationError

# cryptography warns when it reads a CN longer than RFC 5280's 64 characters; tests use some.
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")


def _cert(ca: GeneratedCA, cn: str | None) -> DeviceCertificate:
    return issue_certificate(cn, issuer=ca)[0]


def _h(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def test_valid_common_name_is_used_as_is(ec_certs: list[DeviceCertificate]) -> None:
    assert thing_name_for(ec_certs[0]) == "device-000000"
    assert thing_name_for(ec_certs[0], strict=True) == "device-000000"


def test_common_name_with_colons_and_underscores(root_ca: GeneratedCA) -> None:
    assert thing_name_for(_cert(root_ca, "AA:BB:CC_dd-01")) == "AA:BB:CC_dd-01"


@pytest.mark.parametrize(
    ("cn", "mapped"),
    [
        ("device 01", "device_01"),
        ("device.example.com", "device_example_com"),
        ("serial=1234", "serial_1234"),
        ("Gerät-7", "Ger_t-7"),
        ("温度计", "___"),
        ("a/b+c", "a_b_c"),
    ],
)
def test_invalid_characters_are_mapped_with_a_hash_suffix(root_ca: GeneratedCA, cn: str, mapped: str) -> None:
    name = thing_name_for(_cert(root_ca, cn))
    assert name == f"{mapped}-{_h(cn, 8)}"
    assert is_valid_thing_name(name)


def test_mapping_keeps_similar_names_apart(root_ca: GeneratedCA) -> None:
    names = {thing_name_for(_cert(root_ca, cn)) for cn in ["a b", "a.b", "a=b", "a_b"]}
    assert len(names) == 4


def test_strict_mode_raises_for_invalid_characters(root_ca: GeneratedCA) -> None:
    cert = _cert(root_ca, "device 01.lab")
    with pytest.raises(CertificateValidationError, match="not allow") as info:
        thing_name_for(cert, strict=True)
    assert info.value.reason == "invalid_name"
    assert info.value.certificate_id == cert.certificate_id
    assert "' '" in str(info.value)
    assert "'.'" in str(info.value)


def test_200_character_common_name_is_shortened_deterministically(root_ca: GeneratedCA) -> None:
    cn = "d" * 200
    cert = _cert(root_ca, cn)
    assert cert.common_name == cn
    name = thing_name_for(cert)
    assert len(name) == 128
    assert name == "d" * 111 + "-" + _h(cn, 16)
    assert thing_name_for(_cert(root_ca, cn)) == name  # same CN, other certificate: same name
    with pytest.raises(CertificateValidationError, match="more than 128") as info:
        thing_name_for(cert, strict=True)
    assert info.value.reason == "invalid_name"


def test_long_names_differing_at_the_end_stay_apart(root_ca: GeneratedCA) -> None:
    a = thing_name_for(_cert(root_ca, "x" * 150 + "a"))
    b = thing_name_for(_cert(root_ca, "x" * 150 + "b"))
    assert a != b
    assert len(a) == len(b) == 128


def test_long_name_with_invalid_characters(root_ca: GeneratedCA) -> None:
    name = thing_name_for(_cert(root_ca, "é" * 130))
    assert THING_NAME_PATTERN.match(name)
    assert len(name) == 128


def test_exactly_128_characters_is_kept(root_ca: GeneratedCA) -> None:
    cn = "k" * 128
    assert thing_name_for(_cert(root_ca, cn)) == cn


def test_missing_common_name_falls_back_to_certificate_id(root_ca: GeneratedCA) -> None:
    cert = _cert(root_ca, None)
    assert thing_name_for(cert) == cert.certificate_id
    assert thing_name_for(_cert(root_ca, "")) != ""


def test_certificate_id_strategy(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[0]
    assert thing_name_for(cert, naming="certificate_id") == cert.certificate_id
    assert thing_name_for(cert, naming="certificate_id", prefix="fleet-") == f"fleet-{cert.certificate_id}"


def test_prefix(ec_certs: list[DeviceCertificate], root_ca: GeneratedCA) -> None:
    assert thing_name_for(ec_certs[0], prefix="plant1_") == "plant1_device-000000"
    assert thing_name_for(ec_certs[0], prefix="") == "device-000000"
    long_cn = "z" * 127
    name = thing_name_for(_cert(root_ca, long_cn), prefix="p-")
    assert len(name) == 128
    assert name.startswith("p-zzz")


@pytest.mark.parametrize("prefix", ["bad prefix", "é", "x" * 111])
def test_invalid_prefix_is_a_configuration_error(ec_certs: list[DeviceCertificate], prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        thing_name_for(ec_certs[0], prefix=prefix)


def test_callable_strategy(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[3]

    def by_serial(c: DeviceCertificate) -> str:
        return f"sn {c.serial_number}"

    assert thing_name_for(cert, naming=lambda c: "mac-AABBCC") == "mac-AABBCC"
    name = thing_name_for(cert, naming=by_serial, prefix="x-")
    assert name == f"x-sn_{cert.serial_number}-{_h('sn ' + cert.serial_number, 8)}"
    assert thing_name_for(cert, naming=lambda c: "") == cert.certificate_id
    with pytest.raises(CertificateValidationError):
        thing_name_for(cert, naming=by_serial, strict=True)


def test_callable_returning_non_string(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(ConfigurationError, match="returned int"):
        thing_name_for(ec_certs[0], naming=lambda c: 5)  # type: ignore[arg-type,return-value]


def test_unknown_naming(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(ConfigurationError, match="naming"):
        thing_name_for(ec_certs[0], naming="mac")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("A:b_c-9", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("a b", False),
        ("a\n", False),
        ("é", False),
        (None, False),
        (5, False),
    ],
)
def test_is_valid_thing_name(name: object, valid: bool) -> None:
    assert is_valid_thing_name(name) is valid
    if isinstance(name, str):
        assert (THING_NAME_PATTERN.match(name) is not None) is valid


def test_real_vendor_common_names(
    espressif_certs: list[DeviceCertificate], microchip_certs: list[DeviceCertificate]
) -> None:
    assert thing_name_for(espressif_certs[0]) == "6d1d54ba-ed81-4c32-8e08-f9f8c885a6ed"
    assert thing_name_for(microchip_certs[0]) == "sn0123F2408EA1FCF201"
