"""Manifest readers: entries per second for each format against `load_certificates`.

Workload: the same generated EC P-256 device certificates (10,000; 2,000 with ``--quick``)
written as each manifest format:

- ``pem``: one PEM bundle; ``generated``: one base64-of-PEM line per certificate;
- ``espressif``: CSV ``MAC,cn,cert`` with a quoted PEM per row;
- ``infineon``: a 7z archive holding ``<reel>_<guid>_E0E0_Certs.7z`` (one CRLF PEM file per
  certificate, built with py7zr), two other slot archives and an encrypted keys archive;
- ``microchip``: a JSON array of ES256-signed JWS entries (signed here with a test signer),
  each carrying the device certificate and its CA in ``x5c``.

Baseline: ``load_certificates`` on the plain PEM bundle of the same certificates (certificates
per second, best of several interleaved rounds). Figure: entries/s read through
``read_manifest``; ratio = ours / baseline. Microchip also reports the cost of signature
verification per entry in microseconds (cryptography's ES256 verify alone) and the whole
per-entry cost of the Microchip reader (JSON, base64, signature, JWK check, certificate).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

from _harness import Result, best_of

BENCH = "manifests"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _seven_zip(members: list[tuple[str, bytes]], password: str | None = None) -> bytes:
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password) as archive:
        for name, data in members:
            archive.writestr(data, name)
    return buffer.getvalue()


def _signer() -> tuple[Any, bytes, str, str]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench manifest signer")])
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return key, pem, _b64url(ski.digest), _b64url(hashlib.sha256(der).digest())


def _microchip(certs: list[Any], ca_der: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key, pem, kid, x5t = _signer()
    protected = _b64url(json.dumps({"alg": "ES256", "kid": kid, "typ": "JWT", "x5t#S256": x5t}).encode())
    ca_b64 = base64.b64encode(ca_der).decode()
    entries = []
    signed: list[tuple[bytes, bytes]] = []
    for i, cert in enumerate(certs):
        numbers = cert.x509().public_key().public_numbers()
        uid = f"0123{i:012x}01"
        payload = {
            "version": 1,
            "provisioningTimestamp": "2025-06-01T20:14:53.773Z",
            "uniqueId": uid,
            "publicKeySet": {
                "keys": [
                    {
                        "kid": "0",
                        "kty": "EC",
                        "crv": "P-256",
                        "x": _b64url(numbers.x.to_bytes(32, "big")),
                        "y": _b64url(numbers.y.to_bytes(32, "big")),
                        "x5c": [base64.b64encode(cert.der).decode(), ca_b64],
                    }
                ]
            },
        }
        body = _b64url(json.dumps(payload).encode())
        message = f"{protected}.{body}".encode()
        der_sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_sig)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signed.append((message, der_sig))
        entries.append(
            {"payload": body, "protected": protected, "header": {"uniqueId": uid}, "signature": _b64url(raw)}
        )
    return json.dumps(entries).encode(), pem, signed


def run(quick: bool) -> list[Result]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from thingpress_core.certificates import load_certificates
    from thingpress_core.certificates.generate import (
        generate_ca,
        generate_device_certificates,
        generated_manifest_lines,
    )
    from thingpress_core.manifests import read_manifest

    count = 2_000 if quick else 10_000
    repeat = 3 if quick else 5
    ca = generate_ca("bench CA")
    certs = list(generate_device_certificates(count, ca=ca))
    pem_bundle = "".join(c.pem for c in certs).encode("ascii")
    limit = len(pem_bundle) * 4

    generated = ("\n".join(generated_manifest_lines(certs)) + "\n").encode("ascii")
    csv_rows = ["MAC,cn,cert"] + [f'{i:012X},{c.common_name},"{c.pem.strip()}"' for i, c in enumerate(certs)]
    espressif = ("\r\n".join(csv_rows) + "\r\n").encode("ascii")
    reel = "R0001_3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162"
    crlf = [c.pem.replace("\n", "\r\n").encode("ascii") for c in certs]
    inner = _seven_zip([(f"{i:016X}_E0E0.pem", p) for i, p in enumerate(crlf)])
    small = _seven_zip([(f"{i:016X}_E0E1.pem", p) for i, p in enumerate(crlf[:10])])
    keys = _seven_zip([("keys.bin", b"\x00" * 1024)], password="bench")
    infineon = _seven_zip(
        [
            ("README.txt", b"bench\r\n"),
            (f"{reel}_E0E0_Certs.7z", inner),
            (f"{reel}_E0E1_Certs.7z", small),
            (f"{reel}_keys.7z", keys),
        ]
    )
    microchip, signer_pem, signed = _microchip(certs, ca.cert.der)

    def baseline() -> int:
        return len(load_certificates(pem_bundle, max_bytes=limit))

    def reader(data: bytes, fmt: str, **options: Any) -> Callable[[], int]:
        def read() -> int:
            return sum(1 for _ in read_manifest(data, format=fmt, max_bytes=limit, **options))

        return read

    workloads: dict[str, Callable[[], int]] = {
        "pem": reader(pem_bundle, "pem"),
        "generated": reader(generated, "generated"),
        "espressif": reader(espressif, "espressif"),
        "infineon": reader(infineon, "infineon"),
        "microchip": reader(microchip, "microchip", verifiers=[signer_pem]),
    }
    assert baseline() == count
    for name, fn in workloads.items():
        assert fn() == count, f"{name} read the wrong number of entries"

    t_base = float("inf")
    times = dict.fromkeys(workloads, float("inf"))
    for _ in range(repeat):  # interleaved so drift in machine load hits all alike
        t_base = min(t_base, best_of(baseline, repeat=1))
        for name, fn in workloads.items():
            times[name] = min(times[name], best_of(fn, repeat=1))

    base_rate = count / t_base
    results = [
        Result(
            BENCH,
            f"{name} entries/s",
            count / seconds,
            "entries/s",
            baseline=base_rate,
            baseline_name="load_certificates on the same certificates as PEM",
            note=f"{count} certificates" if name == "pem" else "",
        )
        for name, seconds in times.items()
    ]

    # ES256 verification alone, as the Microchip reader does it (raw r||s re-encoded to DER)
    signer_key = x509.load_pem_x509_certificate(signer_pem).public_key()
    assert isinstance(signer_key, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA(hashes.SHA256())

    def verify_all() -> None:
        for message, der_sig in signed:
            signer_key.verify(der_sig, message, algorithm)

    t_verify = min(best_of(verify_all, repeat=1) for _ in range(repeat))
    per_entry_total = times["microchip"] / count * 1e6
    results.append(
        Result(
            BENCH,
            "microchip signature verify per entry",
            t_verify / count * 1e6,
            "µs",
            baseline=per_entry_total,
            baseline_name="whole Microchip reader per entry",
            note="ratio = share of the Microchip reader's time spent verifying signatures",
        )
    )
    results.append(
        Result(
            BENCH,
            "microchip reader per entry",
            per_entry_total,
            "µs",
            baseline=1e6 / base_rate,
            baseline_name="load_certificates per certificate",
        )
    )
    return results
