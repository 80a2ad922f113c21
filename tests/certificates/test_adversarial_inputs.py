"""Hostile certificates and files an outside attacker would try, found by an adversarial review.

Each test here failed before its fix: a chain check whose cost grew with the square of the
issuer candidates an entry carries, messages that quoted a certificate's CN raw (line breaks,
terminal escapes, bidirectional overrides, 10 KB of it), and a trust file that was a FIFO
without a writer, which hung the read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.certificates import (
    DeviceCertificate,
    TrustStore,
    check_validity,
    load_certificate,
    verify_certificate,
)
from thingpress_core.certificates._model import shown_text
from thingpress_core.errors import CertificateParseError, CertificateValidationError

_START = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
_END = dt.datetime(2040, 1, 1, tzinfo=dt.timezone.utc)
_AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
_SAN = x509.ObjectIdentifier("2.5.29.17")


def _name(text: str) -> x509.Name:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a CN over 64 characters, on purpose
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text, _validate=False)])


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    serial: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    not_after: dt.datetime = _END,
) -> DeviceCertificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_START)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    with warnings.catch_warnings():
        # a CN over 64 characters, on purpose (the suite turns warnings into errors; outside
        # it, thingpress_core ignores this one)
        warnings.simplefilter("ignore", UserWarning)
        cert = builder.sign(issuer_key, hashes.SHA256())
        return load_certificate(cert.public_bytes(serialization.Encoding.PEM))


def _ca_extensions(
    key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey
) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False),
    ]


class _Hierarchy:
    """A trusted root, and a leaf whose subjectAltName cryptography cannot parse (as Microchip's
    ``eui48_`` names), issued by "L0", whose issuer candidates the tests make by the dozen."""

    def __init__(self) -> None:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _issue(
            _name("root"),
            root_key,
            issuer=_name("root"),
            issuer_key=root_key,
            serial=1,
            extensions=_ca_extensions(root_key, root_key),
        )
        self.store = TrustStore(certificates=(root,))
        self.root_key = root_key
        self.l0_key = ec.generate_private_key(ec.SECP256R1())
        self.l1_key = ec.generate_private_key(ec.SECP256R1())
        unreadable_san = x509.UnrecognizedExtension(_SAN, b"\x30\x03\x13\x01\xff")
        self.leaf = _issue(
            _name("leaf"),
            ec.generate_private_key(ec.SECP256R1()),
            issuer=_name("L0"),
            issuer_key=self.l0_key,
            serial=2,
            extensions=[
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (x509.AuthorityKeyIdentifier.from_issuer_public_key(self.l0_key.public_key()), False),
                (unreadable_san, False),
            ],
        )

    def decoys(self, count: int) -> list[DeviceCertificate]:
        """``count`` CAs named "L0" with the leaf's issuer key (each signature on the leaf holds),
        issued by "L1", which chains nowhere."""
        return [
            _issue(
                _name("L0"),
                self.l0_key,
                issuer=_name("L1"),
                issuer_key=self.l1_key,
                serial=100 + n,
                extensions=_ca_extensions(self.l0_key, self.l1_key),
            )
            for n in range(count)
        ]

    def genuine(self) -> DeviceCertificate:
        """The one "L0" the root really issued."""
        return _issue(
            _name("L0"),
            self.l0_key,
            issuer=_name("root"),
            issuer_key=self.root_key,
            serial=99,
            extensions=_ca_extensions(self.l0_key, self.root_key),
        )


@pytest.fixture(scope="module")
def hierarchy() -> _Hierarchy:
    return _Hierarchy()


def test_an_unparseable_leaf_still_verifies_through_its_real_issuer(hierarchy: _Hierarchy) -> None:
    chain = verify_certificate(hierarchy.leaf, hierarchy.store, intermediates=[hierarchy.genuine()], at=_AT)
    assert [c.common_name for c in chain.chain] == ["leaf", "L0", "root"]


def test_issuer_candidates_tried_for_an_unparseable_leaf_are_capped(hierarchy: _Hierarchy) -> None:
    """Four candidates whose signature holds are tried, then the leaf is untrusted: an entry
    cannot make the check try hundreds (each try is a whole path search)."""
    assert (
        verify_certificate(
            hierarchy.leaf, hierarchy.store, intermediates=[*hierarchy.decoys(3), hierarchy.genuine()], at=_AT
        ).root
        == hierarchy.store.certificates[0]
    )
    with pytest.raises(CertificateValidationError) as caught:
        verify_certificate(
            hierarchy.leaf, hierarchy.store, intermediates=[*hierarchy.decoys(4), hierarchy.genuine()], at=_AT
        )
    assert caught.value.reason == "untrusted"


def _best_of_three(call: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with contextlib.suppress(CertificateValidationError):
            call()
        times.append(time.perf_counter() - start)
    return min(times)


def test_the_cost_of_many_issuer_candidates_does_not_grow_with_their_square(hierarchy: _Hierarchy) -> None:
    """Before the cap, 200 candidates cost 60 times what 10 did (1.2 s against 19 ms)."""
    few, many = hierarchy.decoys(8), hierarchy.decoys(256)
    small = _best_of_three(
        lambda: verify_certificate(hierarchy.leaf, hierarchy.store, intermediates=few, at=_AT)
    )
    large = _best_of_three(
        lambda: verify_certificate(hierarchy.leaf, hierarchy.store, intermediates=many, at=_AT)
    )
    # 32 times the candidates: linear bookkeeping at most, never 32 whole path searches more
    assert large < 12 * small, (small, large)


HOSTILE_CNS = [
    pytest.param("line1\nERROR forged log line\r\x1b[31m\u202egnp.exe", id="control-and-bidi"),
    pytest.param("A" * 10_000, id="10KB"),
]


@pytest.mark.parametrize("common_name", HOSTILE_CNS)
def test_messages_escape_and_bound_a_hostile_common_name(common_name: str, hierarchy: _Hierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(
        _name(common_name),
        key,
        issuer=_name("nobody"),
        issuer_key=key,
        serial=5,
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert cert.common_name == common_name  # the data keeps it whole; only messages escape it
    errors = []
    for call in (
        lambda: check_validity(cert, _AT),
        lambda: verify_certificate(cert, hierarchy.store, at=dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc)),
    ):
        with pytest.raises(CertificateValidationError) as caught:
            call()
        errors.append(str(caught.value))
    for message in errors:
        assert cert.certificate_id in message
        assert message.isprintable(), repr(message)  # no line break, escape or bidi override
        assert len(message) < 600, len(message)


def _run_isolated(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    # a read that blocks forever must fail the test, not hang the suite
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_trust_file_that_is_a_fifo_without_a_writer_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "anchors.pem"
    os.mkfifo(fifo)
    code = (
        "import sys\n"
        "from thingpress_core.certificates import TrustStore\n"
        "from thingpress_core.errors import CertificateParseError\n"
        "try:\n"
        "    TrustStore.from_path(sys.argv[1])\n"
        "except CertificateParseError as exc:\n"
        "    print(exc)\n"
    )
    result = _run_isolated(code, str(fifo))
    assert result.returncode == 0, result.stderr
    assert f"{fifo}: input is empty" in result.stdout


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_pipe_whose_writer_has_finished_is_read_whole(ec_certs: list[DeviceCertificate]) -> None:
    """The FIFO fix must not cut a pipe short (``--trust-ca <(cat ca.pem)``): the data a writer
    left in the pipe is read, then its end."""
    code = (
        "import os, sys\n"
        "from thingpress_core.certificates import TrustStore\n"
        "read_end, write_end = os.pipe()\n"
        "os.write(write_end, sys.stdin.read().encode())\n"
        "os.close(write_end)\n"
        "print(len(TrustStore.from_path(f'/proc/self/fd/{read_end}')))\n"
    )
    pem = "".join(c.pem for c in ec_certs)
    result = subprocess.run(
        [sys.executable, "-c", code], input=pem, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(ec_certs))


def test_an_unreadable_trust_file_names_itself(tmp_path: Path) -> None:
    loop = tmp_path / "loop.pem"
    loop.symlink_to(tmp_path / "other.pem")
    (tmp_path / "other.pem").symlink_to(loop)
    with pytest.raises(CertificateParseError, match=r"loop\.pem: cannot read"):
        TrustStore.from_path(loop)


def test_the_constructors_raise_only_our_errors_and_never_quote_the_input() -> None:
    """``DeviceCertificate(der=...)`` and ``TrustStore(...)`` raised pydantic's ValidationError,
    whose text quotes the input (a certificate body, or part of one)."""
    body = b"\x30\x82\x01\x00" + b"SECRET-BODY" * 20
    with pytest.raises(CertificateParseError) as caught:
        DeviceCertificate(der=body, certificate_id="claimed")
    assert "SECRET-BODY" not in str(caught.value)
    assert caught.value.__cause__ is None  # pydantic's error, with the input in it, is not chained
    for bad in ((), (body,)):
        with pytest.raises(CertificateParseError, match=r"not a trust store|at least one|needs a mapping"):
            TrustStore(certificates=bad)  # type: ignore[arg-type]  # a hostile caller's value, on purpose


@given(st.text(max_size=300), st.integers(min_value=4, max_value=200))
def test_shown_text_is_one_printable_line_of_bounded_length(text: str, limit: int) -> None:
    shown = shown_text(text, limit)
    assert shown.isprintable()
    assert len(shown) <= 10 * limit
    if text.isprintable() and len(text) <= limit:
        assert shown == text  # ordinary names are shown as they are
