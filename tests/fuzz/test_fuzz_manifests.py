"""Fuzzing the manifest readers with mutated certificates: the bad entry fails alone.

Each manifest (PEM bundle, generated base64 lines, Espressif CSV) holds one mutated
certificate among good ones. Read with ``on_error="skip"`` every good entry comes out and the
bad one is listed in the report; with ``on_error="raise"`` the entries before it come out,
then a `ManifestError` names it; with ``on_error="yield"`` (every fourth manifest) that error
comes out in the bad entry's place. A mutant that is still a certificate comes out like any other.
The verdict must be the one `load_certificates` gives the same certificate.

Reproduce a failure: the message names the mutant's case number; ``tests.fuzz._mutate.
mutant(<case>)`` gives its bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pytest
from tests.fuzz._checks import (
    ManifestCase,
    assert_no_body,
    check_manifest,
    der_file_manifest,
    espressif_manifest,
    generated_manifest,
    pem_manifest,
)
from tests.fuzz._mutate import SCALE, SEED, Mutant, mutants, seeds

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates._pem import BEGIN
from thingpress_core.errors import ManifestError
from thingpress_core.manifests import ManifestEntry, read_manifest

PER_FORMAT = int(3_400 * SCALE)
"""Manifests per reader; with the 12,000 certificates of test_fuzz_certificates.py over 20,000."""
_START = {"pem": 100_000, "generated": 200_000, "espressif": 300_000}  # other mutants per reader


@cache
def _good() -> tuple[bytes, ...]:
    """The seed certificates that load (all real vendor ones among them)."""
    good = []
    for der in seeds():
        try:
            DeviceCertificate.from_der(der)
        except ValueError:
            continue
        good.append(der)
    return tuple(good)


def _build(fmt: str, item: Mutant) -> ManifestCase:
    good = _good()
    # two good neighbours and the mutant's place (first, middle, last) vary with the case
    pair: Sequence[bytes] = (good[item.case % len(good)], good[(item.case // 3 + 1) % len(good)])
    bad = item.case % 3
    if fmt == "pem":
        if item.case % 10 == 0 and item.der[:1] == b"\x30" and BEGIN not in item.der[:64]:
            return der_file_manifest(item.der)
        return pem_manifest(pair, item.der, bad)
    if fmt == "generated":
        return generated_manifest(pair, item.der, bad, style=item.case % 3)
    return espressif_manifest(pair, item.der, bad)


def check_yield(case: ManifestCase) -> None:
    """``on_error="yield"``: every entry comes out in order, the bad one as its own error."""
    source = f"fuzz.{case.format}"
    items = list(read_manifest(case.data, format=case.format, on_error="yield", name=source))
    assert [item.index for item in items] == list(range(len(case.ders)))
    errors = [item for item in items if isinstance(item, ManifestError)]
    if case.loads:
        assert errors == []
        return
    assert [type(item) is ManifestEntry for item in items] == [i != case.bad for i in range(len(items))]
    [error] = errors
    assert error.source == source
    assert_no_body(str(error), case.ders[case.bad])


def _check(item: Mutant, case: ManifestCase) -> None:
    try:
        check_manifest(case)
        if item.case % 4 == 0:
            check_yield(case)
    except AssertionError as exc:
        raise AssertionError(f"{item}: {exc}") from exc
    except Exception as exc:
        raise AssertionError(f"{item}: {type(exc).__name__} escaped: {exc}") from exc


@pytest.mark.parametrize("fmt", ["pem", "generated", "espressif"])
def test_a_mutated_certificate_fails_alone(fmt: str) -> None:
    read = refused = 0
    for item in mutants(PER_FORMAT, seed=SEED, start=_START[fmt]):
        case = _build(fmt, item)
        _check(item, case)
        read += 1
        refused += not case.loads
    print(f"\n{fmt}: {read} manifests with a mutated certificate (seed {SEED}), {refused} refused it")
    assert read == PER_FORMAT >= 3_400 * SCALE
    assert 0.1 < refused / read < 0.95  # both verdicts are exercised, many times


def test_the_quota_makes_twenty_thousand() -> None:
    from tests.fuzz.test_fuzz_certificates import CORPUS

    assert 20_000 * min(SCALE, 1) <= CORPUS + 3 * PER_FORMAT
