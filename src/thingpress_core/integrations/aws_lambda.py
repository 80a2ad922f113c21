"""SQS fan-out for imports beyond one machine: a producer, a Lambda consumer, an S3 trigger.

```
S3 upload ──s3_handler────────┐
manifest ───enqueue_manifest──┴─▶ SQS queue
                                   ├─ sqs_handler (Lambda) ─▶ AWS IoT Core
                                   └─ after maxReceiveCount ─▶ dead-letter queue
```

Each SQS message carries one `ImportRequest` (JSON, ``schema_version`` 1) or, when the
producer packs several per message, an `ImportBatch` of them. `parse_message` reads both and
also the legacy Thingpress message (``thing``, ``certificate`` as ``"b'<base64>'"``,
``policies``/``thing_groups`` as lists of objects, ``thing_type_name``).

A Lambda process builds one `LambdaRuntime` on its first invocation (settings, client
factory, services, importer, preflight cache) and keeps it while it stays warm
(`default_runtime`). The handlers ``sqs_handler`` and ``s3_handler`` are thin functions over
it, and the only code that reads the environment; tests and custom handlers build a
runtime themselves and pass it (``sqs_handler(event, context, runtime=...)``).

The consumer is split as a batch loop and a per-record function. `BatchLoop` keeps the time
budget, gives up after consecutive transient failures and builds the partial batch
response (``{"batchItemFailures": [...]}``; the event source mapping must enable
``ReportBatchItemFailures``). `process_record` imports one record and returns a
`RecordResult`: certificates counted by the importer's `OutcomeStatus`, and, when SQS must
deliver the record again, why (`RedeliverReason`): a transient failure (throttled after
retries, 5xx, circuit open), something the deployment must fix (resources missing, an IAM
permission missing), a body that does not parse, or no time left. A permanent failure (a
corrupt, expired or rejected certificate, a thing name taken by another certificate) is
logged with the certificate id and reason and is not an item failure: sending it again
cannot succeed. Records that keep failing reach the queue's dead-letter queue after its
``maxReceiveCount``. See ``docs/deployment.md``.

boto3 and the rest of the SDK load on first use; importing this module costs only pydantic
and pydantic-settings.

The code lives in private modules by what it holds (``_messages``, ``_producer``,
``_records``, ``_batch``, ``_consumer``, ``_s3``, ``_settings``, ``_runtime``,
``_handlers``); every name is public here, and only here. ``handle_sqs_event`` is the
consumer handler's former name and works as before.
"""

from thingpress_core._public import publish
from thingpress_core.errors import EnqueueError, MessageParseError
from thingpress_core.integrations._batch import BatchLoop, LambdaContext, RecordDurations
from thingpress_core.integrations._consumer import SQSConsumer
from thingpress_core.integrations._handlers import default_runtime, handle_sqs_event, s3_handler, sqs_handler
from thingpress_core.integrations._messages import (
    MAX_MESSAGE_BYTES,
    ImportBatch,
    ImportRequest,
    ImportSource,
    parse_message,
)
from thingpress_core.integrations._metrics import ThrottleTally
from thingpress_core.integrations._producer import enqueue_manifest
from thingpress_core.integrations._records import (
    BatchResult,
    PreflightCache,
    RecordDisposition,
    RecordResult,
    RedeliverReason,
    process_record,
)
from thingpress_core.integrations._reports import EnqueueFailure, EnqueueProgress, EnqueueReport
from thingpress_core.integrations._runtime import LambdaRuntime
from thingpress_core.integrations._s3 import S3EventReport, S3ObjectReport, handle_s3_event
from thingpress_core.integrations._settings import (
    DEFAULT_SAFETY_MARGIN,
    MAX_MANIFEST_BYTES,
    LambdaSettings,
    build_importer,
)

__all__ = [
    "DEFAULT_SAFETY_MARGIN",
    "MAX_MANIFEST_BYTES",
    "MAX_MESSAGE_BYTES",
    "BatchLoop",
    "BatchResult",
    "EnqueueError",
    "EnqueueFailure",
    "EnqueueProgress",
    "EnqueueReport",
    "ImportBatch",
    "ImportRequest",
    "ImportSource",
    "LambdaContext",
    "LambdaRuntime",
    "LambdaSettings",
    "MessageParseError",
    "PreflightCache",
    "RecordDisposition",
    "RecordDurations",
    "RecordResult",
    "RedeliverReason",
    "S3EventReport",
    "S3ObjectReport",
    "SQSConsumer",
    "ThrottleTally",
    "build_importer",
    "default_runtime",
    "enqueue_manifest",
    "handle_s3_event",
    "handle_sqs_event",
    "parse_message",
    "process_record",
    "s3_handler",
    "sqs_handler",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
