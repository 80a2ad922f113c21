"""Type-checked only (mypy, pyright), never run: every public signature of the certificates area."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

from thingpress_core.certificates import (
    DEFAULT_MAX_CERTIFICATE_BYTES,
    MAX_THING_NAME_LENGTH,
    THING_NAME_PATTERN,
    DeviceCertificate,
    ThingNaming,
    TrustStore,
    VerifiedChain,
    check_validity,
    decode_transport,
    encode_for_transport,
    is_valid_thing_name,
    load_certificate,
    load_certificates,
    thing_name_for,
    verify_certificate,
)
from thingpress_core.certificates.generate import (
    GeneratedCA,
    KeyType,
    PrivateKey,
    generate_ca,
    generate_device_certificates,
    generate_key,
    generated_manifest_lines,
    issue_certificate,
)


def model(der: bytes, pem: str) -> None:
    cert: DeviceCertificate = DeviceCertificate.from_der(der, source="a.der")
    cert = DeviceCertificate.from_pem(pem, source="a.pem")
    cert = DeviceCertificate.from_pem(pem.encode())
    cert = DeviceCertificate.from_x509(cert.x509())
    raw: bytes = cert.der
    text: str = cert.pem
    cid: str = cert.certificate_id
    cn: str | None = cert.common_name
    subject: str = cert.subject
    issuer: str = cert.issuer
    serial: str = cert.serial_number
    start: dt.datetime = cert.not_before
    end: dt.datetime = cert.not_after
    key_type: str = cert.key_type
    is_ca: bool = cert.is_ca
    obj: x509.Certificate = cert.x509()
    same: bool = cert == cert
    h: int = hash(cert)
    print(raw, text, cid, cn, subject, issuer, serial, start, end, key_type, is_ca, obj, same, h)


def loading(data: bytes, text: str) -> None:
    many: list[DeviceCertificate] = load_certificates(data)
    many = load_certificates(text, source="s3://b/k", max_bytes=DEFAULT_MAX_CERTIFICATE_BYTES)
    one: DeviceCertificate = load_certificate(data, source="x", max_bytes=10)
    print(many, one)


def naming(cert: DeviceCertificate) -> None:
    def by_serial(c: DeviceCertificate) -> str:
        return c.serial_number

    strategy: ThingNaming = "certificate_id"
    a: str = thing_name_for(cert)
    b: str = thing_name_for(cert, naming="common_name", prefix="p-", strict=True)
    c: str = thing_name_for(cert, naming=by_serial)
    d: str = thing_name_for(cert, naming=lambda x: x.certificate_id[:8])
    e: str = thing_name_for(cert, naming=strategy)
    ok: bool = is_valid_thing_name(a)
    limit: int = MAX_THING_NAME_LENGTH
    matched = THING_NAME_PATTERN.match(b)
    print(a, b, c, d, e, ok, limit, matched)


def trust(cert: DeviceCertificate, inter: DeviceCertificate, path: Path) -> None:
    store: TrustStore = TrustStore.from_pem(b"...")
    store = TrustStore.from_pem("...", source="ca.pem", max_bytes=1000)
    store = TrustStore.from_path(path)
    store = TrustStore.from_path("ca-dir", max_bytes=1000)
    store = TrustStore(certificates=(cert,))
    anchors: tuple[DeviceCertificate, ...] = store.certificates
    native: verification.Store = store.store()
    chain: VerifiedChain = verify_certificate(cert, store)
    chain = verify_certificate(cert, store, intermediates=[inter], at=dt.datetime.now(dt.timezone.utc))
    chain = verify_certificate(cert, store, intermediates=(inter,))
    leaf: DeviceCertificate = chain.leaf
    full: tuple[DeviceCertificate, ...] = chain.chain
    root: DeviceCertificate = chain.root
    middle: tuple[DeviceCertificate, ...] = chain.intermediates
    check_validity(cert, dt.datetime.now(dt.timezone.utc))
    print(anchors, native, leaf, full, root, middle, len(store))


def transport(cert: DeviceCertificate, certs: list[DeviceCertificate]) -> None:
    one: str = encode_for_transport(cert)
    many: str = encode_for_transport(certs)
    more: str = encode_for_transport(iter(certs))
    back: list[DeviceCertificate] = decode_transport(one)
    back = decode_transport(many, source="msg-1", max_bytes=100)
    print(more, back)


def generate() -> None:
    kind: KeyType = "rsa"
    ca: GeneratedCA = generate_ca()
    ca = generate_ca("root", key_type=kind)
    inter: GeneratedCA = generate_ca("inter", issuer=ca, not_before=None, not_after=None, path_length=0)
    cert: DeviceCertificate = inter.cert
    key: PrivateKey = inter.key
    key = generate_key("ec")
    devices = generate_device_certificates(
        10,
        ca=inter,
        cn_prefix="sensor-",
        key_type="ec",
        reuse_key=False,
        start=5,
        not_before=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
        not_after=None,
    )
    first: DeviceCertificate = next(devices)
    issued, issued_key = issue_certificate("x", issuer=ca, key=key, is_ca=False)
    lines: list[str] = list(generated_manifest_lines([first, issued]))
    print(cert, issued_key, lines)
