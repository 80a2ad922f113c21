"""A preflight that fails is one error for the run, with a ledger as without one.

With a ledger the preflight waits for the first device that needs AWS (a re-run over a
finished ledger makes no call). Its failure must still end the run the way the eager
preflight does: the same error raised from `import_all`, no certificate reported, logged or
counted as failed for it, and nothing written about any device.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import PreflightError, ThrottledError
from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome
from thingpress_core.ledger import SqliteLedger, Target
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from pathlib import Path

    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

TARGET = Target(account_id="123456789012", region="us-east-1")
OPTIONS = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, concurrency=4, retry_pause=0.0
)
MISSING = OPTIONS.model_copy(update={"policies": ("Missing",)})


def _create_resources(factory: ClientFactory) -> None:
    client = factory.iot()
    allow = {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [allow]}
    client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)


def _importer(
    factory: ClientFactory, options: ImportOptions, ledger: SqliteLedger | None
) -> CertificateImporter:
    service = IoTService(factory, limiter=RateLimiter({}))  # moto has no quota
    return CertificateImporter(service, options=options, ledger=ledger, target=TARGET, sleep=lambda _: None)


def _backend() -> Any:
    from moto.iot.models import iot_backends

    return iot_backends[TARGET.account_id][TARGET.region]


def _raised(
    factory: ClientFactory,
    options: ImportOptions,
    ledger: SqliteLedger | None,
    certs: tuple[DeviceCertificate, ...],
    seen: list[ImportOutcome],
) -> Exception:
    with pytest.raises(Exception) as caught:  # the type is what the tests compare
        _importer(factory, options, ledger).import_all(certs, progress=seen.append)
    assert isinstance(caught.value, Exception)
    return caught.value


def test_a_missing_policy_is_one_error_for_the_run_with_a_ledger(
    factory: ClientFactory,
    pool: tuple[DeviceCertificate, ...],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _create_resources(factory)
    certs = pool[:12]
    seen: list[ImportOutcome] = []
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
            error = _raised(factory, MISSING, ledger, certs, seen)
        assert isinstance(error, PreflightError)
        assert "'Missing'" in str(error)
        assert error.missing == ("policy:Missing",)
        # the run is recorded as failed with nothing counted, and no device has a record
        (run,) = ledger.runs()
        assert run.status == "failed"
        assert run.counts == {"total": 0, "imported": 0, "already_present": 0, "failed": 0, "skipped": 0}
        assert all(ledger.device(TARGET.key, cert.certificate_id) is None for cert in certs)
    assert seen == []  # no outcome reached the caller
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    for record in caplog.records:  # no line is about a certificate
        text = record.getMessage()
        assert not any(cert.certificate_id in text for cert in certs), text
        assert getattr(record, "certificate_id", None) is None
    assert (len(_backend().certificates), len(_backend().things)) == (0, 0)


def test_a_missing_policy_raises_the_same_error_with_and_without_a_ledger(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...], tmp_path: Path
) -> None:
    _create_resources(factory)
    certs = pool[:6]
    seen: list[ImportOutcome] = []
    without = _raised(factory, MISSING, None, certs, seen)
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        with_ledger = _raised(factory, MISSING, ledger, certs, seen)
    assert (type(with_ledger), str(with_ledger)) == (type(without), str(without))
    assert seen == []


def test_a_throttled_preflight_ends_the_run_once_as_without_a_ledger(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...], tmp_path: Path
) -> None:
    # A transient failure of the preflight (throttled after botocore's retries) ends an eager
    # run; the lazy one must not turn it into a transient failure of each certificate instead.
    _create_resources(factory)
    certs = pool[:8]
    seen: list[ImportOutcome] = []
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.throttle("iot.GetPolicy")
        without = _raised(factory, OPTIONS, None, certs, seen)
        eager_attempts = faults.count("iot.GetPolicy")
        with SqliteLedger(tmp_path / "ledger.db") as ledger:
            with_ledger = _raised(factory, OPTIONS, ledger, certs, seen)
            (run,) = ledger.runs()
        lazy_attempts = faults.count("iot.GetPolicy") - eager_attempts
    assert isinstance(without, ThrottledError)
    assert isinstance(with_ledger, ThrottledError)  # the request ids differ, so not the text
    assert (with_ledger.operation, with_ledger.code) == (without.operation, without.code)
    assert lazy_attempts == eager_attempts  # the preflight ran once, not once per worker
    assert (run.status, run.counts["failed"], run.counts["total"]) == ("failed", 0, 0)
    assert seen == []
    assert len(_backend().certificates) == 0


def test_devices_done_in_the_ledger_are_settled_before_the_preflight_fails(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...], tmp_path: Path
) -> None:
    # The lazy preflight still earns its keep: a re-run over a finished ledger makes no call
    # even when a resource has gone since; a device that needs AWS then meets the error.
    _create_resources(factory)
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        first = _importer(factory, OPTIONS, ledger).import_all(pool[:3])
        assert first.imported == 3
        _backend().thing_groups.clear()  # the group is gone (moto keeps no reference checks)
        again = _importer(factory, OPTIONS, ledger).import_all(pool[:3])
        assert (again.already_present, again.calls) == (3, {})
        seen: list[ImportOutcome] = []
        error = _raised(factory, OPTIONS, ledger, pool[:5], seen)
        assert isinstance(error, PreflightError)
        assert error.missing == (f"thing_group:{GROUP}",)
        assert all(ledger.device(TARGET.key, cert.certificate_id) is None for cert in pool[3:5])
        last = ledger.runs()[-1]
    assert [outcome.status.value for outcome in seen] == ["already_present"] * len(seen)
    assert (last.status, last.counts["failed"]) == ("failed", 0)
