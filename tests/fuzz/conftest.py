"""Fixtures of the fuzz tests, and the figure they report at the end of the run."""

from __future__ import annotations

import pytest
from tests.fuzz._checks import TALLY
from tests.fuzz._mutate import SEED

from thingpress_core.certificates import DeviceCertificate, TrustStore
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates

_SECONDS: list[float] = []


@pytest.fixture(scope="session")
def fuzz_ca() -> GeneratedCA:
    return generate_ca("fuzz anchor")


@pytest.fixture(scope="session")
def anchors(fuzz_ca: GeneratedCA) -> TrustStore:
    return TrustStore(certificates=(fuzz_ca.cert,))


@pytest.fixture(scope="session")
def issuer_pool(fuzz_ca: GeneratedCA) -> list[DeviceCertificate]:
    """Good device certificates issued by the anchor (to verify through a mutated CA)."""
    return list(generate_device_certificates(3, ca=fuzz_ca, cn_prefix="fuzz-"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and ("tests/fuzz/" in report.nodeid or "test_fuzz.py" in report.nodeid):
        _SECONDS.append(report.duration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    total = TALLY["certificates"] + TALLY["manifests"]
    terminalreporter.write_sep(
        "-",
        f"fuzz (seed {SEED}): {total} mutated inputs: {TALLY['certificates']} certificates through every "
        f"parser and property, {TALLY['manifests']} manifests; fuzz tests took {sum(_SECONDS):.1f} s",
    )
