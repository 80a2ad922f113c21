"""SQS fan-out for imports beyond one machine: a producer, a Lambda consumer, an S3 trigger.

```
S3 upload ──handle_s3_event───┐
manifest ───enqueue_manifest──┴─▶ SQS queue ──handle_sqs_event (Lambda)──▶ AWS IoT Core
                                      └── after maxReceiveCount ──▶ dead-letter queue
```

Each SQS message carries one `ImportRequest` (JSON, ``schema_version`` 1) or, when the
producer packs several per message, an `ImportBatch` of them. `parse_message` reads both and
also the legacy Thingpress message (``thing``, ``certificate`` as ``"b'<base64>'"``,
``policies``/``thing_groups`` as lists of objects, ``thing_type_name``).

The consumer returns a partial batch response (``{"batchItemFailures": [...]}``; the event
source mapping must enable ``ReportBatchItemFailures``). A record is an item failure, so SQS
delivers it again, when its failure is transient (throttled after retries, 5xx, circuit
open), when it does not parse, when the resources it names do not exist (yet), when the
function lacks an IAM permission, or when the Lambda runs out of time before reaching it.
A permanent failure (a corrupt or rejected certificate, an invalid thing name) is logged
with the certificate id and reason and is not an item failure: sending it again cannot
succeed. Records that keep failing reach the queue's dead-letter queue after its
``maxReceiveCount``. See ``docs/deployment.md``.

boto3 and the rest of the SDK load on first use; importing this module costs only pydantic
and pydantic-settings.

The code lives in private modules by what it holds (``_messages``, ``_producer``,
``_consumer``, ``_s3``, ``_settings``); every name is public here, and only here.
"""

from thingpress_core.integrations._consumer import (
    BatchResult,
    LambdaContext,
    RecordDisposition,
    RecordResult,
    SQSConsumer,
    handle_sqs_event,
)
from thingpress_core.integrations._messages import (
    MAX_MESSAGE_BYTES,
    ImportBatch,
    ImportRequest,
    ImportSource,
    MessageParseError,
    parse_message,
)
from thingpress_core.integrations._producer import (
    EnqueueError,
    EnqueueFailure,
    EnqueueProgress,
    EnqueueReport,
    enqueue_manifest,
)
from thingpress_core.integrations._s3 import S3EventReport, S3ObjectReport, handle_s3_event, s3_handler
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
    "BatchResult",
    "EnqueueError",
    "EnqueueFailure",
    "EnqueueProgress",
    "EnqueueReport",
    "ImportBatch",
    "ImportRequest",
    "ImportSource",
    "LambdaContext",
    "LambdaSettings",
    "MessageParseError",
    "RecordDisposition",
    "RecordResult",
    "S3EventReport",
    "S3ObjectReport",
    "SQSConsumer",
    "build_importer",
    "enqueue_manifest",
    "handle_s3_event",
    "handle_sqs_event",
    "parse_message",
    "s3_handler",
]

# Tracebacks, reprs and the API docs name the public module, so the private ones can move.
for _public in (
    BatchResult,
    EnqueueError,
    EnqueueFailure,
    EnqueueProgress,
    EnqueueReport,
    ImportBatch,
    ImportRequest,
    ImportSource,
    LambdaContext,
    LambdaSettings,
    MessageParseError,
    RecordResult,
    S3EventReport,
    S3ObjectReport,
    SQSConsumer,
    build_importer,
    enqueue_manifest,
    handle_s3_event,
    handle_sqs_event,
    parse_message,
    s3_handler,
):
    _public.__module__ = __name__
del _public
