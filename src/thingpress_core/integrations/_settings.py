"""`LambdaSettings` (the ``THINGPRESS_LAMBDA_*`` variables) and `build_importer`.

Nothing here is kept between calls: the one object a Lambda process keeps is its
`LambdaRuntime`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, ClassVar, Final

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from thingpress_core._config import ConfigSettings
from thingpress_core._vocabulary import RegistrationStatus, ThingNamingChoice

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter, ImportOptions
    from thingpress_core.ledger import Ledger
    from thingpress_core.settings import ThingpressSettings

#: Default bound on a manifest object `handle_s3_event` reads from S3 (256 MiB).
MAX_MANIFEST_BYTES: Final = 256 * 1_048_576
#: Seconds of Lambda time the consumer keeps in hand to answer (see `BatchLoop`).
DEFAULT_SAFETY_MARGIN: Final = 10.0
#: CloudWatch namespace of the functions' metrics (``THINGPRESS_LAMBDA_METRICS_NAMESPACE``).
DEFAULT_METRICS_NAMESPACE: Final = "Thingpress"
#: Value of the metrics' ``Pipeline`` dimension when none is set (``THINGPRESS_LAMBDA_PIPELINE``).
DEFAULT_PIPELINE: Final = "thingpress"


_NameList = Annotated[tuple[str, ...], NoDecode]


class LambdaSettings(ConfigSettings):
    """What the Lambda entry points read from ``THINGPRESS_LAMBDA_*`` variables.

    Lists (``POLICIES``, ``THING_GROUPS``) are comma-separated or a JSON array. The AWS
    client, retry, rate-limit and quota-share settings are `ThingpressSettings`'
    (``THINGPRESS_REGION``, ``THINGPRESS_RESILIENCE__QUOTA_SHARE``, ...).

    Keyword arguments win over the environment; the constructor is typed (a misspelt field
    is a type error, and a `ConfigurationError` at run time, as is an invalid value, naming
    its variable).
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="THINGPRESS_LAMBDA_", extra="forbid", frozen=True, case_sensitive=False
    )

    queue_url: str | None = Field(default=None, description="The import queue (S3 trigger).")
    policies: _NameList = Field(default=(), description="Policies every certificate gets (producer).")
    thing_groups: _NameList = Field(default=(), description="Thing groups every thing joins (producer).")
    thing_type: str | None = Field(default=None, description="Thing type of every thing (producer).")
    naming: ThingNamingChoice | None = Field(
        default=None, description="Naming strategy; None: the manifest's own names, else the common name."
    )
    thing_name_prefix: str | None = None
    billing_group: str | None = Field(default=None, description="Billing group of every thing (producer).")
    attributes: dict[str, str] = Field(
        default={}, description="Thing attributes every thing gets, a JSON object (producer)."
    )
    manifest_attributes: bool = Field(
        default=True, description="Give things the manifest's vendor id as attribute vendor_id (producer)."
    )
    status: RegistrationStatus = "ACTIVE"
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
    ledger_table: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{3,255}$",
        description="DynamoDB table of the import ledger; None: no ledger.",
    )
    lease_seconds: float = Field(
        default=300.0, gt=0.0, le=3600.0, description="How long a worker holds a device (ledger)."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Consumers that share the account's quotas; each then uses quota_share / workers.",
    )
    metrics: bool = Field(
        default=True, description="Print one CloudWatch embedded-metric-format record per invocation."
    )
    metrics_namespace: str = Field(
        default=DEFAULT_METRICS_NAMESPACE,
        pattern=r"^[A-Za-z0-9 ._/#:-]{1,255}$",
        description="CloudWatch namespace of the metrics.",
    )
    pipeline: str = Field(
        default=DEFAULT_PIPELINE,
        min_length=1,
        max_length=255,
        description="Value of the metrics' Pipeline dimension (the stack name).",
    )

    @field_validator("policies", "thing_groups", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @field_validator("metrics_namespace")
    @classmethod
    def _own_namespace(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("namespaces starting with AWS/ are CloudWatch's own")
        return value

    def import_options(self) -> ImportOptions:
        """The `ImportOptions` these settings describe."""
        from thingpress_core.importer import ImportOptions

        return ImportOptions(
            policies=self.policies,
            thing_groups=self.thing_groups,
            thing_type=self.thing_type,
            naming=self.naming,
            thing_name_prefix=self.thing_name_prefix,
            status=self.status,
            concurrency=1,
            billing_group=self.billing_group,
            attributes=self.attributes,
            manifest_attributes=self.manifest_attributes,
        )


def build_importer(
    settings: ThingpressSettings | None = None,
    *,
    options: ImportOptions | None = None,
    factory: ClientFactory | None = None,
    ledger: Ledger | None = None,
) -> CertificateImporter:
    """The importer a Lambda consumer uses, with its own breakers and rate limiter.

    ``settings`` defaults to the ``factory``'s, else ``ThingpressSettings()`` (the
    ``THINGPRESS_*`` environment); ``factory`` to ``ClientFactory(settings)``; ``options`` to
    ``LambdaSettings().import_options()``. The `IoTService` gets its own breaker registry and
    a `RateLimiter` whose rates are ``settings.resilience.effective_rate_limits()``: every
    account quota times ``quota_share``. With reserved concurrency 10, set
    ``THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1`` so ten consumers together stay under the quota.
    """
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    if settings is None:
        settings = factory.settings if factory is not None else ThingpressSettings()
    iot = IoTService(
        factory if factory is not None else ClientFactory(settings),
        settings=settings,
        registry=CircuitBreakerRegistry(settings.resilience),
        limiter=RateLimiter(settings.resilience),
    )
    options = options if options is not None else LambdaSettings().import_options()
    return CertificateImporter(iot, options=options, ledger=ledger)
