"""Fuzzing the certificates package: whatever the bytes, only ThingpressError comes out.

Two kinds of input: a deterministic corpus of structurally mutated certificates (tests/fuzz/
_mutate.py, seeded, so a failing case number reproduces), and hypothesis, which draws the
mutations (and shrinks them) or plain bytes and text. The public parsers see each input,
every property of what loads is read, and the parsers must agree with each other.

Reproduce a corpus failure: ``tests.fuzz._mutate.mutant(<case>)`` gives its bytes. A longer
run: ``THINGPRESS_FUZZ_SCALE=10 pytest tests/fuzz``; another corpus: ``THINGPRESS_FUZZ_SEED=7``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz._checks import exercise_certificate, raised, raw_failures, read_properties
from tests.fuzz._mutate import MUTATED_DER, SCALE, SEED, Mutant, mutant, mutants, pem

from thingpress_core.certificates import (
    DeviceCertificate,
    TrustStore,
    decode_transport,
    encode_for_transport,
    load_certificate,
    load_certificates,
)
from thingpress_core.errors import CertificateError, CertificateParseError, ThingpressError

CORPUS = int(12_000 * SCALE)
"""Mutated certificates per run; with the manifests of test_fuzz_manifests.py over 20,000."""
EXAMPLES = max(1, int(150 * SCALE))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _named(item: Mutant, check: Callable[[], bool]) -> bool:
    """``check()``, the mutant named when it fails (an escaping exception made an assertion)."""
    try:
        return check()
    except AssertionError as exc:
        raise AssertionError(f"{item}: {exc}") from exc
    except Exception as exc:
        raise AssertionError(f"{item}: {type(exc).__name__} escaped: {exc}") from exc


def test_mutation_corpus_through_every_parser_and_property(
    anchors: TrustStore, issuer_pool: list[DeviceCertificate]
) -> None:
    checked = loaded = 0
    kinds: Counter[str] = Counter()
    for item in mutants(CORPUS, seed=SEED):
        # every mutant through load_certificates (each form) and every property; one in four
        # through the thin wrappers as well (hypothesis sends all of its inputs through them)
        check = partial(
            exercise_certificate,
            item.der,
            anchors=anchors,
            issuer_pool=issuer_pool,
            every_parser=item.case % 4 == 0,
        )
        loaded += _named(item, check)
        kinds.update(raw_failures(item.der))
        checked += 1
    print(f"\n{checked} mutated certificates (seed {SEED}), {loaded} still load; cryptography raised {kinds}")
    assert checked == CORPUS
    assert checked >= 12_000 * SCALE
    # the corpus is not noise: a share still loads, and it reaches each failure cryptography has
    assert 0.1 < loaded / checked < 0.9
    assert {
        "ValueError",
        "TypeError",
        "InvalidVersion",
        "DuplicateExtension",
        "UnsupportedGeneralNameType",
        "UnsupportedAlgorithm",
    } <= set(kinds)


def test_the_corpus_is_deterministic() -> None:
    again = [mutant(case, seed=SEED).der for case in range(100, 105)]
    assert [m.der for m in mutants(5, seed=SEED, start=100)] == again
    assert mutant(100, seed=SEED).der != mutant(100, seed=SEED + 1).der


# -- hypothesis ---------------------------------------------------------------------------------


@FUZZ
@given(der=MUTATED_DER)
def test_hypothesis_mutants_through_every_parser_and_property(
    anchors: TrustStore, issuer_pool: list[DeviceCertificate], der: bytes
) -> None:
    exercise_certificate(der, anchors=anchors, issuer_pool=issuer_pool)


_PARSERS: dict[str, Callable[[Any], object]] = {
    "load_certificates": lambda d: load_certificates(d, source="fuzz"),
    "load_certificate": lambda d: load_certificate(d, source="fuzz"),
    "from_der": DeviceCertificate.from_der,
    "from_pem": DeviceCertificate.from_pem,
    "decode_transport": decode_transport,
    "TrustStore.from_pem": TrustStore.from_pem,
    "model_validate der": lambda d: DeviceCertificate.model_validate({"der": d}),
    "model_validate pem": lambda d: DeviceCertificate.model_validate({"pem": d}),
    "model_validate_json": DeviceCertificate.model_validate_json,
}
_ANY_INPUT = st.one_of(
    st.binary(max_size=1500),
    st.text(max_size=300),
    MUTATED_DER,
    MUTATED_DER.map(pem),
    MUTATED_DER.map(lambda d: base64.b64encode(pem(d))),
    MUTATED_DER.map(lambda d: json.dumps({"der": base64.b64encode(d).decode()})),
)


@pytest.mark.parametrize("parser", sorted(_PARSERS))
@FUZZ
@given(data=_ANY_INPUT)
def test_every_parser_answers_or_raises_a_certificate_error(parser: str, data: bytes | str) -> None:
    results: list[object] = []
    error = raised(ThingpressError, lambda: results.append(_PARSERS[parser](data)))
    if error is not None:
        assert isinstance(error, CertificateError)
        return
    [result] = results
    certs = result if isinstance(result, list) else getattr(result, "certificates", [result])
    for cert in certs:
        read_properties(cert, must_answer=True)


@FUZZ
@given(der=st.one_of(MUTATED_DER, st.binary(max_size=800)))
def test_every_property_of_an_unparsed_certificate_answers_or_names_it(der: bytes) -> None:
    """``model_construct`` skips parsing: a property then answers or raises naming the certificate."""
    cert = DeviceCertificate.model_construct(der=der, certificate_id=hashlib.sha256(der).hexdigest())
    read_properties(cert, must_answer=False)


# -- the other public entry points ------------------------------------------------------------


def test_trust_store_from_path_with_mutated_files(tmp_path: Path) -> None:
    refused = 0
    for item in mutants(40, seed=SEED, start=50_000):
        file = tmp_path / f"{item.case}.pem"
        file.write_bytes(pem(item.der))
        error = raised(CertificateParseError, partial(TrustStore.from_path, file))
        if error is None:
            assert len(TrustStore.from_path(file)) == 1
            continue
        refused += 1
        assert error.source == str(file)
        assert str(error).startswith(f"{file}, certificate 1: ")
    assert refused > 0
    # the whole directory: the first file that is not a certificate is named
    error = raised(CertificateParseError, lambda: TrustStore.from_path(tmp_path))
    assert error is not None
    assert error.source is not None
    assert error.source.startswith(str(tmp_path))


@pytest.mark.parametrize("path", ["bad\x00name.pem", "no/such/dir/ca.pem"])
def test_trust_store_from_a_path_that_cannot_be(path: str) -> None:
    with pytest.raises(CertificateParseError, match="cannot read"):
        TrustStore.from_path(path)


@pytest.mark.parametrize("value", [5, None, "text", b"bytes", [b"x"], [None]])
def test_encode_for_transport_refuses_what_is_not_a_certificate(value: Any) -> None:
    with pytest.raises(CertificateError, match="encode_for_transport needs"):
        encode_for_transport(value)


@pytest.mark.parametrize("value", [5, 10**12, None, 1.5, ["x"]])
@pytest.mark.parametrize(
    "make", [DeviceCertificate.from_der, DeviceCertificate.from_pem, DeviceCertificate.from_x509]
)
def test_constructors_refuse_other_types_without_allocating(
    make: Callable[[Any], object], value: Any
) -> None:
    # bytes(10**12) would ask for a terabyte: the type is checked first
    with pytest.raises(CertificateParseError, match="expected"):
        make(value)
