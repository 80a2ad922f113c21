"""`LambdaRuntime`: everything a Lambda process builds once and keeps while it stays warm."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import ConfigurationError
from thingpress_core.integrations._batch import BatchLoop, LambdaContext, RecordDurations, log_summary
from thingpress_core.integrations._metrics import (
    FunctionRole,
    InvocationMeter,
    ThrottleTally,
    consumer_record,
    print_record,
    producer_record,
)
from thingpress_core.integrations._records import BatchResult, PreflightCache, RecordResult, process_record
from thingpress_core.integrations._s3 import S3EventReport, handle_s3_event, s3_response
from thingpress_core.integrations._settings import LambdaSettings, build_importer

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter, IoTOperations
    from thingpress_core.ledger import Ledger
    from thingpress_core.resilience import CircuitBreakerRegistry
    from thingpress_core.services import S3Service, SQSService
    from thingpress_core.settings import ThingpressSettings

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")


@dataclass(frozen=True, kw_only=True)
class LambdaRuntime:
    """The settings, AWS services, importer and caches of one Lambda process.

    Built once per cold start (`from_environment`, which the handlers `sqs_handler` and
    `s3_handler` call on their first invocation) and reused while the execution environment
    lives. Frozen: what it learns between events lives in its two caches, ``preflight``
    (which option sets exist) and ``durations`` (how long recent records took).

    Tests and custom handlers use the constructor, or `from_settings` with a `ClientFactory`
    bound to moto or to another account.

    Args:
        settings: ``THINGPRESS_LAMBDA_*``: the S3 trigger's queue, options and manifest
            settings, and the consumer's safety margin and give-up count.
        importer: what SQS records are imported with; its options are the base each
            request's own policies, groups, thing type and status replace.
        factory: the `ClientFactory` the services share, when it is one.
        s3: the service the S3 trigger reads manifests with (only a runtime that handles S3
            events needs it).
        sqs: the service the S3 trigger sends messages with (likewise).
        worker: this process's name in ledger leases (random, unique per cold start).
        preflight: which option sets this process has checked (`PreflightCache`).
        durations: recent record durations, for the time budget (`RecordDurations`).
        throttles: throttled AWS attempts counted on the factory's clients, for the metrics
            (`ThrottleTally`).
        clock: monotonic seconds for the batch loop, for tests.

    With ``settings.metrics`` (the default), `handle_sqs_event` and `handle_s3_event` print
    one CloudWatch embedded-metric-format record per call on stdout (see ``_metrics``).
    """

    settings: LambdaSettings
    importer: CertificateImporter
    factory: ClientFactory | None = None
    s3: S3Service | None = None
    sqs: SQSService | None = None
    worker: str = field(default_factory=lambda: f"lambda-{secrets.token_hex(6)}")
    preflight: PreflightCache = field(default_factory=PreflightCache, compare=False)
    durations: RecordDurations = field(default_factory=RecordDurations, compare=False)
    throttles: ThrottleTally = field(default_factory=ThrottleTally, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: LambdaSettings, factory: ClientFactory) -> LambdaRuntime:
        """A runtime whose services all come from ``factory`` (and so its settings).

        The importer's `IoTService` gets its own breakers and a rate limiter at the quota
        share (`build_importer`), ``settings.import_options()``, and with
        ``settings.ledger_table`` the DynamoDB ledger in that table (which must exist:
        ``thingpress-core ledger init dynamodb://TABLE``). With ``settings.workers`` (N
        consumers share the account), the importer's quota share is the factory settings'
        ``quota_share`` divided by N.
        """
        from thingpress_core.services import S3Service, SQSService

        ledger: Ledger | None = None
        if settings.ledger_table:
            from thingpress_core.ledger import open_ledger

            ledger = open_ledger(f"dynamodb://{settings.ledger_table}", factory=factory)
        return cls(
            settings=settings,
            importer=build_importer(
                _worker_share(factory.settings, settings.workers),
                options=settings.import_options(),
                factory=factory,
                ledger=ledger,
            ),
            factory=factory,
            s3=S3Service(factory),
            sqs=SQSService(factory),
        )

    @classmethod
    def from_environment(cls, *, factory: ClientFactory | None = None) -> LambdaRuntime:
        """The runtime the environment describes: ``THINGPRESS_LAMBDA_*`` and ``THINGPRESS_*``.

        ``factory`` replaces the one built from ``ThingpressSettings()`` (e.g. one bound to
        moto). Invalid values raise `ConfigurationError` naming the variable. Nothing
        connects to AWS until the first call.
        """
        settings = LambdaSettings()
        if factory is None:
            from thingpress_core.clients import ClientFactory

            factory = ClientFactory()
        return cls.from_settings(settings, factory)

    # -- what it holds -------------------------------------------------------------------

    @property
    def iot(self) -> IoTOperations:
        """The importer's IoT facade."""
        return self.importer.iot

    @property
    def ledger(self) -> Ledger | None:
        """The importer's ledger (``THINGPRESS_LAMBDA_LEDGER_TABLE``), if any."""
        return self.importer.ledger

    @property
    def registry(self) -> CircuitBreakerRegistry | None:
        """The IoT facade's circuit breakers, when it has them (an `IoTService` does)."""
        from thingpress_core.resilience import CircuitBreakerRegistry

        registry = getattr(self.importer.iot, "registry", None)
        return registry if isinstance(registry, CircuitBreakerRegistry) else None

    def batch_loop(self) -> BatchLoop:
        """The loop for one SQS event: the settings' time margin and give-up count."""
        return BatchLoop(
            safety_margin=self.settings.safety_margin,
            give_up_after=self.settings.give_up_after,
            durations=self.durations,
            clock=self.clock,
        )

    # -- SQS -----------------------------------------------------------------------------

    def process_record(self, record: object, message_id: str | None = None) -> RecordResult:
        """`process_record` with this runtime's importer and preflight cache; with a ledger,
        each device is leased to this worker while it is imported."""
        return process_record(
            self.importer,
            record,
            preflight=self.preflight,
            message_id=message_id,
            lease_owner=self.worker if self.ledger is not None else None,
            lease_seconds=self.settings.lease_seconds,
        )

    def process_sqs_event(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> BatchResult:
        """Import every record of an SQS event while time allows; log one summary line."""
        batch = self.batch_loop().run(event, self.process_record, context)
        log_summary(batch, self.registry)
        return batch

    def handle_sqs_event(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """The partial batch response for an SQS event (``{"batchItemFailures": [...]}``).

        With ``settings.metrics``, prints the consumer's metrics record for the event.
        """
        meter = self._meter("consumer")
        batch = self.process_sqs_event(event, context)
        if meter is not None:
            self._print(
                lambda: consumer_record(
                    batch,
                    namespace=self.settings.metrics_namespace,
                    pipeline=self.settings.pipeline,
                    meter=meter,
                    request_id=_request_id(context),
                )
            )
        return batch.response()

    # -- S3 ------------------------------------------------------------------------------

    def process_s3_event(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> S3EventReport:
        """`handle_s3_event` with everything resolved from this runtime's settings and services.

        Raises `ConfigurationError` without a queue URL (``THINGPRESS_LAMBDA_QUEUE_URL``) or
        without the S3 and SQS services.
        """
        settings = self.settings
        if not settings.queue_url:
            raise ConfigurationError(
                "no queue URL: set THINGPRESS_LAMBDA_QUEUE_URL (LambdaSettings.queue_url)",
                variable="THINGPRESS_LAMBDA_QUEUE_URL",
            )
        if self.s3 is None or self.sqs is None:
            raise ConfigurationError(
                "this LambdaRuntime has no S3 or SQS service to handle S3 events with; "
                "build it with from_settings or pass s3 and sqs",
                variable="s3" if self.s3 is None else "sqs",
            )
        return handle_s3_event(
            event,
            context,
            queue_url=settings.queue_url,
            options=settings.import_options(),
            s3=self.s3,
            sqs=self.sqs,
            max_bytes=settings.max_manifest_bytes,
            format=settings.manifest_format,
            per_message=settings.per_message,
            verifiers=settings.verifiers,
            ledger=self.ledger,
            target=self.importer.target() if self.ledger is not None else None,
        )

    def handle_s3_event(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """The S3 handler's answer: the report as JSON data, or `EnqueueError` when transient.

        With ``settings.metrics``, prints the producer's metrics record for the event, also
        when it raises.
        """
        meter = self._meter("producer")
        report: S3EventReport | None = None
        error: BaseException | None = None
        try:
            report = self.process_s3_event(event, context)
            return s3_response(report, self.settings.queue_url or "")
        except BaseException as exc:
            error = exc
            raise
        finally:
            if meter is not None:
                self._print(
                    lambda: producer_record(
                        report,
                        namespace=self.settings.metrics_namespace,
                        pipeline=self.settings.pipeline,
                        meter=meter,
                        error=error,
                        request_id=_request_id(context),
                    )
                )

    # -- metrics -------------------------------------------------------------------------

    def _meter(self, role: FunctionRole) -> InvocationMeter | None:
        """The call counters of ``role``'s facades read now, or None with metrics off.

        The clients ``role`` calls are watched for throttled attempts first (each once: the
        hook is registered under one id), so a cold start's first invocation counts too.
        """
        if not self.settings.metrics:
            return None
        ledger_service = getattr(self.ledger, "service", None)
        sources: list[object] = (
            [self.importer.iot, ledger_service] if role == "consumer" else [self.s3, self.sqs, ledger_service]
        )
        try:
            if self.factory is not None:
                names = ["iot"] if role == "consumer" else ["s3", "sqs"]
                names += ["dynamodb"] if ledger_service is not None else []
                for name in names:
                    self.throttles.watch(self.factory.client(name), name)  # type: ignore[call-overload]  # one of the literals
            return InvocationMeter([s for s in sources if s is not None], self.throttles)
        except Exception as exc:  # metrics never stop an import
            logger.warning("metrics are off for this invocation: %s", exc, extra={"operation": "metrics"})
            return None

    @staticmethod
    def _print(build: Callable[[], Mapping[str, Any]]) -> None:
        try:
            print_record(build())
        except Exception as exc:  # metrics never stop an import
            logger.warning("the metrics record was not printed: %s", exc, extra={"operation": "metrics"})


def _request_id(context: object) -> str | None:
    """The invocation's request id (the correlation id of Lambda's own log lines)."""
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) and value else None


def _worker_share(settings: ThingpressSettings, workers: int | None) -> ThingpressSettings:
    """``settings`` with its quota share divided among ``workers`` consumers (as given if None)."""
    if not workers or workers == 1:
        return settings
    resilience = settings.resilience
    share = resilience.model_copy(update={"quota_share": resilience.quota_share / workers})
    return settings.model_copy(update={"resilience": share})
