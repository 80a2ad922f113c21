"""Shared certificates for the certificates tests: one CA hierarchy per session, real vendor files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from thingpress_core.certificates import DeviceCertificate, load_certificates
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates

DATA = Path(__file__).resolve().parent.parent / "data" / "certs"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def root_ca() -> GeneratedCA:
    return generate_ca("thingpress test root")


@pytest.fixture(scope="session")
def intermediate_ca(root_ca: GeneratedCA) -> GeneratedCA:
    return generate_ca("thingpress test intermediate", issuer=root_ca)


@pytest.fixture(scope="session")
def ec_certs(root_ca: GeneratedCA) -> list[DeviceCertificate]:
    return list(generate_device_certificates(5, ca=root_ca))


@pytest.fixture(scope="session")
def rsa_certs(root_ca: GeneratedCA) -> list[DeviceCertificate]:
    return list(generate_device_certificates(2, ca=root_ca, key_type="rsa"))


@pytest.fixture(scope="session")
def espressif_certs() -> list[DeviceCertificate]:
    return load_certificates((DATA / "espressif-devices.pem").read_bytes(), source="espressif-devices.pem")


@pytest.fixture(scope="session")
def microchip_certs() -> list[DeviceCertificate]:
    return load_certificates((DATA / "microchip-devices.pem").read_bytes(), source="microchip-devices.pem")


@pytest.fixture(scope="session")
def microchip_signers() -> list[DeviceCertificate]:
    return load_certificates((DATA / "microchip-signer.pem").read_bytes(), source="microchip-signer.pem")


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
