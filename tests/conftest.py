"""Shared fixtures: fake AWS credentials always, moto on request."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; under CI the
# examples are also derandomized so one commit always runs the same cases.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever reaches real AWS or reads the developer's own profile or THINGPRESS_*."""
    for name in list(os.environ):
        if name.startswith("THINGPRESS_") or name in {
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL",
        }:
            monkeypatch.delenv(name, raising=False)
    for name, value in _FAKE_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Whatever a test configures (the CLI runs in-process: basicConfig, logger levels, the
    redacting filter on handlers) is undone, so no test sees another's logging setup."""
    import logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {id(h): list(h.filters) for h in handlers}
    names = ("thingpress_core", "botocore", "boto3", "urllib3", "s3transfer")
    levels = {name: logging.getLogger(name).level for name in (*names, "")}
    last_resort = logging.lastResort
    last_filters = list(last_resort.filters) if last_resort is not None else []
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        handler.filters[:] = filters.get(id(handler), [])
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    if last_resort is not None:
        last_resort.filters[:] = last_filters


@pytest.fixture
def aws() -> Iterator[None]:
    """In-process moto for IoT, S3, SQS and STS, with AWS-compatible certificate ids, and a
    conflicting CreateThing answered with 409 as AWS does (`sandbox.aws_fidelity`)."""
    from moto import mock_aws

    from thingpress_core.sandbox import aws_fidelity

    with mock_aws(config={"iot": {"use_valid_cert": True}}), aws_fidelity():
        yield


@pytest.fixture
def factory(aws: None) -> ClientFactory:
    """A ClientFactory whose clients talk to the in-process moto of `aws`."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    return ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
