"""Fixtures for the fleet operations: moto with policies, a group and a type; certificates; a
SQLite ledger."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import ops_support` (importlib mode)

from ops_support import EXTRA, GROUP, POLICY, TYPE

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates
from thingpress_core.ledger import SqliteLedger
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory


@pytest.fixture(scope="session")
def ca() -> GeneratedCA:
    return generate_ca("operations tests CA")


@pytest.fixture(scope="session")
def certs(ca: GeneratedCA) -> tuple[DeviceCertificate, ...]:
    """60 distinct device certificates, named op-00000.. by their common name."""
    return tuple(generate_device_certificates(60, ca=ca, cn_prefix="op-"))


@pytest.fixture(autouse=True)
def _serial_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's backends are not thread-safe (AWS is): let it answer one request at a time."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


@pytest.fixture
def iot(factory: ClientFactory) -> IoTService:
    """The real facade on moto, with the policies, group and type an import needs; no rate
    limit (moto has no quota and the tests must stay fast)."""
    client = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    for policy in (POLICY, EXTRA):
        client.create_policy(policyName=policy, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)
    return IoTService(factory, limiter=RateLimiter({}))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db") as opened:
        yield opened
