"""Typed facades over the AWS IoT, S3, SQS and DynamoDB APIs, sharing one call path.

Every call goes rate limiter → circuit breaker → boto3 (botocore's own retries) → error
mapping to `thingpress_core.errors` → per-operation counters (`CallStats`). Build the facades
from one [`ClientFactory`][thingpress_core.clients.ClientFactory] and let them share breakers
and limits:

```python
from thingpress_core.clients import ClientFactory
from thingpress_core.services import IoTService, SQSService

iot = IoTService(ClientFactory())
sqs = SQSService(iot.factory, registry=iot.registry, limiter=iot.limiter)
```
"""

from __future__ import annotations

from thingpress_core._public import publish
from thingpress_core.errors import BatchSendError
from thingpress_core.services._dynamodb import DynamoDBService, KeyAttribute, TableDescription
from thingpress_core.services._errors import map_aws_error
from thingpress_core.services._iot import CertificateStatus, IoTService
from thingpress_core.services._models import (
    BatchSendReport,
    CallStats,
    CertificateDescription,
    CertificateRegistration,
    FailedMessage,
    PolicyInfo,
    QueueDepth,
    ReceivedMessage,
    S3Object,
    S3ObjectRef,
    Thing,
    ThingDescription,
    ThingGroupInfo,
    ThingTypeInfo,
)
from thingpress_core.services._quotas import QUOTA_CODES, AccountQuotas, OperationQuota, QuotaReader
from thingpress_core.services._s3 import DEFAULT_MAX_OBJECT_BYTES, S3ObjectStream, S3Service
from thingpress_core.services._sqs import SQSService

__all__ = [
    "IoTService",
    "S3Service",
    "SQSService",
    "CallStats",
    "CertificateRegistration",
    "Thing",
    "ThingDescription",
    "CertificateDescription",
    "PolicyInfo",
    "ThingGroupInfo",
    "ThingTypeInfo",
    "S3Object",
    "S3ObjectRef",
    "BatchSendReport",
    "FailedMessage",
    "QueueDepth",
    "ReceivedMessage",
    # additions beyond the contract
    "BatchSendError",
    "CertificateStatus",
    "DEFAULT_MAX_OBJECT_BYTES",
    "DynamoDBService",
    "KeyAttribute",
    "TableDescription",
    "map_aws_error",
    "S3ObjectStream",
    # issue 18: the account's IoT quotas
    "QUOTA_CODES",
    "AccountQuotas",
    "OperationQuota",
    "QuotaReader",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
