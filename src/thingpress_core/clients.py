"""`ClientFactory`: one configured boto3 client per service, built once and shared.

Every client comes from one botocore ``Config`` derived from `ThingpressSettings`: retry mode
and attempts, connect and read timeouts, connection pool size and the
``thingpress-core/<version>`` user agent. boto3 is imported on first use, not at
``import thingpress_core``.

The retry budget is sized for bulk work. botocore's standard and adaptive modes share one
client-wide retry quota (500 tokens; a retry after a 5xx or a timeout costs 14, after a
throttle 5; a success gives back 1): a crude circuit breaker sized for an interactive program.
An import runs 8 to 32 threads through one client, so a partial outage (40 % of answers 5xx)
empties it within seconds, after which botocore stops retrying calls a retry would have saved,
although the service answers. thingpress-core protects services per operation instead (a
circuit breaker that opens after consecutive failed calls, and an AIMD rate limiter), so the
factory lifts the client-wide quota: the budget is ``total_max_attempts`` per call, the
importer's ``transient_rounds`` per certificate and its ``retry_deadline`` per run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from thingpress_core.errors import ConfigurationError
from thingpress_core.settings import ThingpressSettings, partition_for

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

__all__ = ["ClientFactory", "ServiceName"]

ServiceName = Literal["iot", "s3", "sqs", "sts", "dynamodb", "service-quotas"]
_SERVICES: frozenset[str] = frozenset({"iot", "s3", "sqs", "sts", "dynamodb", "service-quotas"})


class ClientFactory:
    """A thread-safe cache of boto3 clients sharing one configuration.

    Args:
        settings: the configuration; `ThingpressSettings()` (environment) when omitted.
        session: a boto3 ``Session`` to build clients from, for your own credential setup.
            When omitted one is made from ``settings.profile`` and ``settings.region``.
        clients: ready-made clients by service name (``{"iot": client}``); they are returned
            as they are, e.g. for clients created inside a moto mock or with custom auth.

    Examples:
        ```python
        from thingpress_core import ClientFactory, ThingpressSettings

        factory = ClientFactory(ThingpressSettings(region="eu-west-1"))
        assert factory.iot() is factory.iot()  # one cached client per service
        ```
    """

    def __init__(
        self,
        settings: ThingpressSettings | None = None,
        *,
        session: boto3.Session | None = None,
        clients: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings if settings is not None else ThingpressSettings()
        self._session = session
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._config: Config | None = None
        self._account_id: str | None = self._settings.account_id
        for name, client in (clients or {}).items():
            if name not in _SERVICES:
                raise ConfigurationError(
                    f"unknown service {name!r} in clients; expected one of {sorted(_SERVICES)}",
                    variable="clients",
                    value=name,
                )
            self._clients[name] = client

    def __repr__(self) -> str:
        return f"ClientFactory(region={self.region!r}, cached={sorted(self._clients)})"

    @property
    def settings(self) -> ThingpressSettings:
        """The settings every client is configured from."""
        return self._settings

    @property
    def session(self) -> boto3.Session:
        """The boto3 session clients are built from (made on first use)."""
        with self._lock:
            return self._session_locked()

    def _session_locked(self) -> boto3.Session:
        if self._session is None:
            import boto3
            from botocore.exceptions import ProfileNotFound

            profile = self._settings.profile
            # boto3 reads AWS_DEFAULT_REGION only; AWS_REGION is what Lambda, containers and the
            # other AWS SDKs set, so it counts here too (after the settings' region).
            region = self._settings.region or os.environ.get("AWS_REGION") or None
            try:
                self._session = boto3.Session(profile_name=profile, region_name=region)
            except ProfileNotFound as exc:
                profile = profile or str(exc.kwargs.get("profile") or os.environ.get("AWS_PROFILE") or "")
                raise ConfigurationError(
                    f"AWS profile {profile!r} is not in the AWS config files: pass another profile= "
                    "(or set THINGPRESS_PROFILE or AWS_PROFILE), or add the profile with "
                    "'aws configure --profile'",
                    variable="profile",
                    value=profile,
                ) from exc
        return self._session

    @property
    def region(self) -> str:
        """The region clients use: the settings', else the session's, else ``us-east-1``."""
        if self._settings.region:
            return self._settings.region
        iot = self._clients.get("iot")
        if iot is not None:
            return str(iot.meta.region_name)
        return self.session.region_name or "us-east-1"

    @property
    def partition(self) -> str:
        """The ARN partition of `region`."""
        return partition_for(self.region)

    @property
    def config(self) -> Config:
        """The botocore ``Config`` every client is built with."""
        with self._lock:
            return self._config_locked()

    def _config_locked(self) -> Config:
        if self._config is None:
            from botocore.config import Config

            from thingpress_core._version import version

            s = self._settings
            self._config = Config(
                retries={"mode": s.retry_mode, "total_max_attempts": s.total_max_attempts},
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                max_pool_connections=s.max_pool_connections,
                user_agent_extra=f"thingpress-core/{version()}",
            )
        return self._config

    @overload
    def client(self, name: Literal["iot"]) -> IoTClient: ...
    @overload
    def client(self, name: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, name: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, name: Literal["sts"]) -> STSClient: ...
    @overload
    def client(self, name: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, name: Literal["service-quotas"]) -> Any: ...  # no mypy-boto3-service-quotas
    def client(self, name: ServiceName) -> Any:
        """The cached client for ``name``, built on first request (once, even under threads)."""
        cached = self._clients.get(name)
        if cached is not None:
            return cached
        if name not in _SERVICES:
            raise ConfigurationError(
                f"unknown service {name!r}; expected one of {sorted(_SERVICES)}",
                variable="name",
                value=name,
            )
        with self._lock:
            cached = self._clients.get(name)
            if cached is None:
                session = self._session_locked()
                kwargs: dict[str, Any] = {"config": self._config_locked()}
                if self._settings.region:
                    kwargs["region_name"] = self._settings.region
                if self._settings.endpoint_url:
                    kwargs["endpoint_url"] = self._settings.endpoint_url
                cached = _make_client(session, name, kwargs)
                _lift_retry_quota(cached)
                self._clients[name] = cached
            return cached

    def iot(self) -> IoTClient:
        """The AWS IoT Core control-plane client."""
        return self.client("iot")

    def s3(self) -> S3Client:
        """The S3 client."""
        return self.client("s3")

    def sqs(self) -> SQSClient:
        """The SQS client."""
        return self.client("sqs")

    def sts(self) -> STSClient:
        """The STS client (used once, for the account id)."""
        return self.client("sts")

    def dynamodb(self) -> DynamoDBClient:
        """The DynamoDB client (the ledger's DynamoDB backend)."""
        return self.client("dynamodb")

    def account_id(self) -> str:
        """The AWS account id: from settings, else one ``GetCallerIdentity`` call, cached.

        The call goes through the one call path like every other (its own rate limit and
        breaker, ``sts.GetCallerIdentity``, and errors mapped to the
        [`AwsServiceError`][thingpress_core.errors.AwsServiceError] tree).
        """
        if self._account_id is None:
            import logging

            from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
            from thingpress_core.services._path import CallCounter, CallPath

            resilience = self._settings.resilience
            path = CallPath(
                "sts",
                registry=CircuitBreakerRegistry(resilience),
                limiter=RateLimiter(resilience),
                counter=CallCounter(),
                logger=logging.getLogger("thingpress_core.clients"),
            )
            identity = path.call("GetCallerIdentity", self.sts().get_caller_identity, {})
            self._account_id = str(identity["Account"])
        return self._account_id


def _make_client(session: boto3.Session, name: str, kwargs: dict[str, Any]) -> Any:
    """``session.client(name, **kwargs)``, with botocore's setup errors as `ConfigurationError`."""
    from botocore.exceptions import NoRegionError

    try:
        return session.client(name, **kwargs)  # type: ignore[call-overload]  # name is one of the literals
    except NoRegionError as exc:
        raise ConfigurationError(
            "no AWS region is configured: pass region= (or set THINGPRESS_REGION or AWS_REGION, "
            "or a region in the AWS profile)",
            variable="region",
        ) from exc


class _UnlimitedRetryQuota:
    """Stands in for botocore's ``RetryQuotaChecker``: every retry may go ahead."""

    def acquire_retry_quota(self, context: object) -> bool:
        return True

    def release_retry_quota(self, context: object, http_response: object, **kwargs: object) -> None:
        return None


def _lift_retry_quota(client: Any) -> None:
    """Replace the client-wide retry quota of ``client``'s retry handler (see the module
    docstring for why). botocore keeps its handler under the unique id
    ``retry-config-<service>``; a botocore without it (or the legacy mode) is left as it is."""
    try:
        event_service = client.meta.service_model.service_id.hyphenize()
        emitter = client.meta.events
        inner = getattr(emitter, "_emitter", emitter)
        entry = getattr(inner, "_unique_id_handlers", {}).get(f"retry-config-{event_service}")
    except AttributeError:  # a stand-in client without botocore's internals
        return
    handler = entry.get("handler") if isinstance(entry, dict) else None
    owner = getattr(handler, "__self__", None)
    if owner is not None and hasattr(owner, "_retry_quota"):
        owner._retry_quota = _UnlimitedRetryQuota()
