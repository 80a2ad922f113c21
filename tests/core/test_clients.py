from __future__ import annotations

import threading
from unittest import mock

import boto3
import pytest

from thingpress_core import ClientFactory, ThingpressSettings
from thingpress_core.errors import ConfigurationError


def test_same_client_object_back() -> None:
    factory = ClientFactory(ThingpressSettings(region="eu-west-1"))
    assert factory.iot() is factory.iot()
    assert factory.client("iot") is factory.iot()
    assert factory.s3() is not factory.iot()


def test_one_client_per_service_under_eight_threads() -> None:
    factory = ClientFactory(ThingpressSettings(region="eu-west-1"))
    barrier = threading.Barrier(8)
    seen: list[object] = []
    lock = threading.Lock()

    real_session = boto3.Session(region_name="eu-west-1")
    created = []
    original = real_session.client

    def counting_client(*args: object, **kwargs: object) -> object:
        created.append(args[0] if args else kwargs.get("service_name"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    factory = ClientFactory(ThingpressSettings(region="eu-west-1"), session=real_session)

    def worker() -> None:
        barrier.wait()
        for name in ("iot", "sqs"):
            client = factory.client(name)  # type: ignore[call-overload]
            with lock:
                seen.append(client)

    with mock.patch.object(real_session, "client", side_effect=counting_client):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(created) == ["iot", "sqs"]
    assert len({id(c) for c in seen}) == 2


def test_config_comes_from_settings() -> None:
    settings = ThingpressSettings(
        region="eu-central-1",
        retry_mode="adaptive",
        total_max_attempts=9,
        connect_timeout=2.5,
        read_timeout=11,
        max_pool_connections=48,
    )
    config = ClientFactory(settings).iot().meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 9}
    assert config.connect_timeout == 2.5
    assert config.read_timeout == 11
    assert config.max_pool_connections == 48
    assert "thingpress-core/" in (config.user_agent_extra or "")


def test_endpoint_url_and_region_are_used() -> None:
    client = ClientFactory(ThingpressSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:5999")).sqs()
    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.region_name == "eu-west-1"


def test_injected_session_is_used() -> None:
    session = boto3.Session(region_name="ap-northeast-1")
    factory = ClientFactory(ThingpressSettings(), session=session)
    assert factory.session is session
    assert factory.iot().meta.region_name == "ap-northeast-1"
    assert factory.region == "ap-northeast-1"


def test_premade_clients_are_returned_as_given() -> None:
    premade = boto3.client("iot", region_name="us-west-2")
    factory = ClientFactory(clients={"iot": premade})
    assert factory.iot() is premade
    assert factory.region == "us-west-2"


def test_unknown_premade_client_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="ec2"):
        ClientFactory(clients={"ec2": object()})


def test_account_id_from_settings_makes_no_call() -> None:
    class FailingSts:
        def get_caller_identity(self) -> dict[str, str]:
            raise AssertionError("no STS call expected")

    factory = ClientFactory(ThingpressSettings(account_id="210987654321"), clients={"sts": FailingSts()})
    assert factory.account_id() == "210987654321"


def test_account_id_from_sts_is_cached(aws: None) -> None:
    factory = ClientFactory(ThingpressSettings(region="us-east-1"))
    sts = factory.sts()
    with mock.patch.object(sts, "get_caller_identity", wraps=sts.get_caller_identity) as spy:
        first = factory.account_id()
        second = factory.account_id()
    assert first == second
    assert len(first) == 12
    assert spy.call_count == 1


def test_moto_round_trip_through_factory_client(factory: ClientFactory) -> None:
    iot = factory.iot()
    iot.create_thing_type(thingTypeName="Sensor")
    iot.create_thing(thingName="device-1", thingTypeName="Sensor")
    described = iot.describe_thing(thingName="device-1")
    assert described["thingTypeName"] == "Sensor"
    sqs = factory.sqs()
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hello"


def test_repr_names_region_and_cache() -> None:
    factory = ClientFactory(ThingpressSettings(region="eu-west-1"))
    factory.iot()
    assert repr(factory) == "ClientFactory(region='eu-west-1', cached=['iot'])"


def test_aws_region_is_honoured_when_boto3_would_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 itself reads AWS_DEFAULT_REGION only; Lambda and the other SDKs set AWS_REGION
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert boto3.Session().region_name is None
    factory = ClientFactory(ThingpressSettings())
    assert factory.iot().meta.region_name == "eu-west-3"
    assert factory.region == "eu-west-3"


def test_the_settings_region_wins_over_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert ClientFactory(ThingpressSettings(region="ap-south-1")).iot().meta.region_name == "ap-south-1"


def test_an_unknown_profile_from_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigurationError, match="'no-such-profile'") as info:
        ClientFactory(ThingpressSettings()).iot()
    assert "None" not in str(info.value)


def test_missing_credentials_are_a_permanent_access_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thingpress_core.errors import AccessDeniedError
    from thingpress_core.resilience import is_transient

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    from thingpress_core.services import IoTService

    service = IoTService(
        ClientFactory(ThingpressSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    )
    with pytest.raises(AccessDeniedError, match="credentials cannot be loaded") as info:
        service.describe_thing("sensor-1")
    assert info.value.code == "NoCredentialsError"
    assert not is_transient(info.value)


def test_an_sso_profile_not_signed_in_maps_like_missing_credentials() -> None:
    from botocore.exceptions import SSOTokenLoadError

    from thingpress_core.errors import AccessDeniedError
    from thingpress_core.services import map_aws_error

    error = map_aws_error(
        SSOTokenLoadError(error_msg="token expired"), service="iot", operation="CreateThing"
    )
    assert isinstance(error, AccessDeniedError)
    assert "aws sso login" in str(error)
