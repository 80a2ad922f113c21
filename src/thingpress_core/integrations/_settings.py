"""What the Lambda entry points build from the environment: settings, importer, AWS services."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from thingpress_core.errors import ConfigurationError

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter, ImportOptions
    from thingpress_core.services import S3Service, SQSService
    from thingpress_core.settings import ThingpressSettings

#: Default bound on a manifest object `handle_s3_event` reads from S3 (256 MiB).
MAX_MANIFEST_BYTES: Final = 256 * 1_048_576
#: Seconds of Lambda time the consumer keeps in hand to answer (see `SQSConsumer`).
DEFAULT_SAFETY_MARGIN: Final = 10.0


_NameList = Annotated[tuple[str, ...], NoDecode]


class LambdaSettings(BaseSettings):
    """What the Lambda entry points read from ``THINGPRESS_LAMBDA_*`` variables.

    Lists (``POLICIES``, ``THING_GROUPS``) are comma-separated or a JSON array. The AWS
    client, retry, rate-limit and quota-share settings are `ThingpressSettings`'
    (``THINGPRESS_REGION``, ``THINGPRESS_RESILIENCE__QUOTA_SHARE``, ...).
    """

    model_config = SettingsConfigDict(
        env_prefix="THINGPRESS_LAMBDA_", extra="ignore", frozen=True, case_sensitive=False
    )

    queue_url: str | None = Field(default=None, description="The import queue (S3 trigger).")
    policies: _NameList = Field(default=(), description="Policies every certificate gets (producer).")
    thing_groups: _NameList = Field(default=(), description="Thing groups every thing joins (producer).")
    thing_type: str | None = Field(default=None, description="Thing type of every thing (producer).")
    thing_name: Literal["common_name", "certificate_id"] = Field(default="common_name")
    thing_name_prefix: str | None = None
    status: Literal["ACTIVE", "INACTIVE"] = "ACTIVE"
    per_message: int = Field(default=1, ge=1, le=500, description="Requests per SQS message (producer).")
    manifest_format: str | None = Field(default=None, description="Manifest format; None: detect.")
    verifiers: _NameList = Field(
        default=(), description="Microchip manifest signer certificates: paths in the deployment package."
    )
    max_manifest_bytes: int = Field(default=MAX_MANIFEST_BYTES, ge=1, description="Bound on a manifest read.")
    safety_margin: float = Field(
        default=DEFAULT_SAFETY_MARGIN, ge=0.0, le=900.0, description="Seconds (consumer)."
    )
    give_up_after: int = Field(default=3, ge=1, description="Consecutive transient failures (consumer).")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError.from_validation_error(exc, env_prefix="THINGPRESS_LAMBDA_") from None

    @field_validator("policies", "thing_groups", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    def import_options(self) -> ImportOptions:
        """The `ImportOptions` these settings describe."""
        from thingpress_core.importer import ImportOptions

        return ImportOptions(
            policies=self.policies,
            thing_groups=self.thing_groups,
            thing_type=self.thing_type,
            thing_name=self.thing_name,
            thing_name_prefix=self.thing_name_prefix,
            status=self.status,
            concurrency=1,
        )


def build_importer(
    settings: ThingpressSettings | None = None, *, options: ImportOptions | None = None
) -> CertificateImporter:
    """The importer the Lambda consumer uses by default, built from settings.

    ``settings`` defaults to ``ThingpressSettings()`` (the ``THINGPRESS_*`` environment) and
    ``options`` to ``LambdaSettings().import_options()``. The `IoTService` gets its own
    breaker registry and a `RateLimiter` whose rates are
    ``settings.resilience.effective_rate_limits()``: every account quota times
    ``quota_share``. With reserved concurrency 10, set
    ``THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1`` so ten consumers together stay under the quota.
    """
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    settings = settings if settings is not None else ThingpressSettings()
    iot = IoTService(
        ClientFactory(settings),
        settings=settings,
        registry=CircuitBreakerRegistry(settings.resilience),
        limiter=RateLimiter(settings.resilience),
    )
    options = options if options is not None else LambdaSettings().import_options()
    return CertificateImporter(iot, options=options)


class _DefaultServices:
    """The S3 and SQS services the handlers build from ``THINGPRESS_*`` once per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.factory: ClientFactory | None = None
        self.s3: S3Service | None = None
        self.sqs: SQSService | None = None

    def client_factory(self) -> ClientFactory:
        """The one factory both services share; call with ``lock`` held."""
        if self.factory is None:
            from thingpress_core.clients import ClientFactory

            self.factory = ClientFactory()
        return self.factory


_defaults = _DefaultServices()


def default_sqs() -> SQSService:
    """The process's `SQSService`, made from ``THINGPRESS_*`` on first use."""
    with _defaults.lock:
        if _defaults.sqs is None:
            from thingpress_core.services import SQSService

            _defaults.sqs = SQSService(_defaults.client_factory())
        return _defaults.sqs


def default_s3() -> S3Service:
    """The process's `S3Service`, made from ``THINGPRESS_*`` on first use."""
    with _defaults.lock:
        if _defaults.s3 is None:
            from thingpress_core.services import S3Service

            _defaults.s3 = S3Service(_defaults.client_factory())
        return _defaults.s3
