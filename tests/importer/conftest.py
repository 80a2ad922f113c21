"""Fixtures for the importer tests: generated certificates, a CA, the in-memory fake IoT."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import fake_iot` (importlib mode)

from fake_iot import GROUP, POLICY, TYPE, FakeIoT

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import (
    GeneratedCA,
    generate_ca,
    generate_device_certificates,
)


@pytest.fixture(scope="session")
def ca() -> GeneratedCA:
    return generate_ca("importer tests CA")


@pytest.fixture(scope="session")
def pool(ca: GeneratedCA) -> tuple[DeviceCertificate, ...]:
    """120 distinct device certificates, made once per session."""
    return tuple(generate_device_certificates(120, ca=ca))


@pytest.fixture
def fake() -> FakeIoT:
    return FakeIoT(policies=[POLICY, "Extra1", "Extra2"], thing_groups=[GROUP, "G2"], thing_types=[TYPE])


@pytest.fixture
def serial_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let in-process moto answer one request at a time.

    moto's backends are not thread-safe: AddThingToThingGroup iterates over the things while
    another thread's CreateThing adds one ("OrderedDict mutated during iteration"). AWS has no
    such problem, so the tests serialize moto, never the importer.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
