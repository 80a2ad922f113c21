"""The test-certificate generator other areas build on."""

from __future__ import annotations

import base64
import datetime as dt
import inspect

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from thingpress_core.certificates import DeviceCertificate, load_certificates
from thingpress_core.certificates.generate import (
    GeneratedCA,
    generate_ca,
    generate_device_certificates,
    generated_manifest_lines,
)
from thingpress_core.errors import ConfigurationError


def test_lazy_iterator_with_numbered_common_names(root_ca: GeneratedCA) -> None:
    it = generate_device_certificates(3, ca=root_ca, cn_prefix="sensor-", start=41)
    generator: object = it
    assert inspect.isgenerator(generator)  # lazy: nothing issued before iteration
    certs = list(it)
    assert [c.common_name for c in certs] == ["sensor-000041", "sensor-000042", "sensor-000043"]
    assert len({c.certificate_id for c in certs}) == 3
    assert len({c.serial_number for c in certs}) == 3
    assert all(c.issuer == root_ca.cert.subject for c in certs)
    assert all(not c.is_ca for c in certs)


def test_default_ca_and_key_reuse() -> None:
    certs = list(generate_device_certificates(2))
    assert len({_spki(c) for c in certs}) == 1
    fresh = list(generate_device_certificates(2, reuse_key=False))
    assert len({_spki(c) for c in fresh}) == 2


def _spki(cert: DeviceCertificate) -> bytes:
    return cert.x509().public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_rsa_devices_and_ca() -> None:
    ca = generate_ca("rsa root", key_type="rsa")
    assert ca.cert.key_type == "RSA 2048"
    assert ca.cert.is_ca
    cert = next(generate_device_certificates(1, ca=ca, key_type="rsa"))
    assert cert.key_type == "RSA 2048"
    assert "key" not in repr(ca).replace("key_type", "")


def test_validity_window() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)
    cert = next(generate_device_certificates(1, not_before=start, not_after=end))
    assert (cert.not_before, cert.not_after) == (start, end)


def test_count_zero_and_negative() -> None:
    assert list(generate_device_certificates(0)) == []
    with pytest.raises(ConfigurationError, match="count"):
        list(generate_device_certificates(-1))


def test_bad_key_type() -> None:
    with pytest.raises(ConfigurationError, match="key_type"):
        generate_ca(key_type="dsa")  # type: ignore[arg-type]


def test_generated_manifest_lines(ec_certs: list[DeviceCertificate]) -> None:
    lines = list(generated_manifest_lines(ec_certs))
    assert len(lines) == len(ec_certs)
    assert all("\n" not in line for line in lines)
    assert base64.b64decode(lines[0]).decode() == ec_certs[0].pem
    assert [load_certificates(line)[0] for line in lines] == ec_certs
