"""`SQSConsumer`: the batch loop and `process_record` over one importer, with their own caches.

It predates `LambdaRuntime` and stays for code that builds a consumer around an importer;
both run the same `BatchLoop` and `process_record`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from thingpress_core.integrations._batch import BatchLoop, LambdaContext, log_summary
from thingpress_core.integrations._records import BatchResult, PreflightCache, RecordResult, process_record
from thingpress_core.integrations._settings import DEFAULT_SAFETY_MARGIN

if TYPE_CHECKING:
    from thingpress_core.importer import CertificateImporter, ImportOptions
    from thingpress_core.resilience import CircuitBreakerRegistry


class SQSConsumer:
    """Imports the records of SQS events with one importer, one record at a time.

    Args:
        importer: the `CertificateImporter` (and so the one `IoTService`, rate limiter and
            breakers) every record goes through.
        options: the base options; each request's policies, groups, thing type and status
            replace those fields. Default: the importer's own options.
        safety_margin: the time budget's margin (`BatchLoop`).
        give_up_after: the give-up count (`BatchLoop`).
        preflight: check each distinct set of policies, groups and thing type once before
            its first certificate (`PreflightCache`); a set that fails is checked again after
            ``preflight_retry_after`` seconds, and meanwhile its records are item failures.
        registry: the breakers to summarise in the per-event log line. Default: the
            importer's `IoTService` registry, when it has one.
        clock: monotonic seconds, for tests.

    Invalid values raise `ConfigurationError`.
    """

    def __init__(
        self,
        importer: CertificateImporter,
        *,
        options: ImportOptions | None = None,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
        give_up_after: int | None = 3,
        preflight: bool = True,
        preflight_retry_after: float = 60.0,
        registry: CircuitBreakerRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from thingpress_core.resilience import CircuitBreakerRegistry

        self.loop: BatchLoop = BatchLoop(
            safety_margin=safety_margin, give_up_after=give_up_after, clock=clock
        )
        self.importer: CertificateImporter = importer
        self.options: ImportOptions = options if options is not None else importer.options
        self.preflight: bool = preflight
        self.preflight_cache: PreflightCache = PreflightCache(retry_after=preflight_retry_after, clock=clock)
        if registry is None:
            registry = getattr(importer.iot, "registry", None)
        self.registry: CircuitBreakerRegistry | None = (
            registry if isinstance(registry, CircuitBreakerRegistry) else None
        )

    @property
    def safety_margin(self) -> float:
        return self.loop.safety_margin

    @property
    def give_up_after(self) -> int | None:
        return self.loop.give_up_after

    def process_record(self, record: object, message_id: str | None = None) -> RecordResult:
        """`process_record` with this consumer's importer, options and preflight cache."""
        return process_record(
            self.importer,
            record,
            options=self.options,
            preflight=self.preflight_cache if self.preflight else None,
            message_id=message_id,
        )

    def process(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> BatchResult:
        """Process an SQS event and return every record's result. Never raises."""
        batch = self.loop.run(event, self.process_record, context)
        log_summary(batch, self.registry)
        return batch

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event; return the partial batch response for Lambda."""
        return self.process(event, context).response()
