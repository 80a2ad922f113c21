"""The deployed pipeline end to end on moto, as deploy/template.yaml builds it, and its IAM.

A manifest object is put in the bucket; the producer handler gets the EventBridge event
that upload makes and enqueues; the consumer handler drains the queue in batches of 10
(deleting what succeeded, as Lambda does); then the devices are in IoT, the ledger holds
their records and each invocation printed its metrics. The resources and every function's
environment come from the template (queue attributes, table keys, variables), resolved with
the names moto gave.

The same run records every AWS operation each function called, from two sides: the call
path's own counters (``service.Operation``) and a botocore hook on the function's clients
(so nothing bypasses the path). Those names, mapped to IAM actions, must be exactly what the
function's role allows, except statements the Lambda service uses on the function's behalf.
"""

from __future__ import annotations

import collections
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.deploy._template import Function, functions, resolve, template

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.integrations.aws_lambda import LambdaRuntime, LambdaSettings, s3_handler, sqs_handler
from thingpress_core.ledger import DynamoDBLedger
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.settings import ThingpressSettings

ACCOUNT = "123456789012"
PARAMETERS = {
    "Policies": "DevicePolicy",
    "ThingGroups": "Fleet",
    "ThingType": "Sensor",
    "BillingGroup": "Billing",
}

#: Statements the Lambda service uses with the function's role, not the function's code:
#: writing its logs, the SQS event source polling the queue, the producer's dead-letter queue.
SERVICE_STATEMENTS = {"WriteItsLogs", "ReadTheImportQueue", "KeepFailedEvents"}

#: IoT actions IAM accepts only with ``Resource: "*"`` (no resource type in the Service
#: Authorization Reference); every other statement must name resources.
WITHOUT_RESOURCE_TYPES = {
    "iot:RegisterCertificateWithoutCA",
    "iot:AttachThingPrincipal",
    "iot:ListPrincipalThings",
}

#: Call path operations whose IAM action is named otherwise (None: no permission needed).
_ACTION_FOR = {
    "sqs.SendMessageBatch": "sqs:SendMessage",
    "sqs.DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs.ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3.ListObjectsV2": "s3:ListBucket",
    "s3.HeadObject": "s3:GetObject",
    "sts.GetCallerIdentity": None,
}


def iam_action(operation: str) -> str | None:
    """``iot.CreateThing`` -> ``iot:CreateThing``; see `_ACTION_FOR` for the exceptions."""
    if operation in _ACTION_FOR:
        return _ACTION_FOR[operation]
    service, _, name = operation.partition(".")
    return f"{service}:{name}"


class Recorder:
    """Every operation botocore sends for one function, as ``service.Operation``."""

    def __init__(self) -> None:
        self.operations: collections.Counter[str] = collections.Counter()

    def __call__(self, event_name: str = "", **_: object) -> None:
        _, service, operation = event_name.split(".", 2)
        self.operations[f"{service}.{operation}"] += 1


def unlimited() -> ThingpressSettings:
    """No rate limits (moto needs no pacing, tests never sleep), breakers off, two attempts."""
    return ThingpressSettings(
        region="us-east-1",
        account_id=ACCOUNT,
        total_max_attempts=2,
        resilience=ResilienceSettings(
            rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
            breaker_defaults=CircuitBreakerSettings(enabled=False),
        ),
    )


@dataclass
class Stack:
    """The template's resources in moto, and the functions built from its environment."""

    setup: ClientFactory
    refs: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    recorders: dict[str, Recorder] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return self.refs["ManifestBucket"]

    @property
    def queue_url(self) -> str:
        return self.refs["ImportQueue"]

    @property
    def table(self) -> str:
        return self.refs["LedgerTable"]

    def environment(self, function: str) -> dict[str, str]:
        env = resolve(functions()[function].environment, self.refs, PARAMETERS)
        return {name: str(value) for name, value in env.items()}

    def runtime(self, function: str) -> LambdaRuntime:
        """A cold start of ``function``: its settings read from the template's environment,
        its clients recorded (the hook is on the session, so every client it builds has it)."""
        with self.monkeypatch.context() as env:
            for name, value in self.environment(function).items():
                env.setenv(name, value)
            settings = LambdaSettings()
        factory = ClientFactory(unlimited())
        recorder = self.recorders.setdefault(function, Recorder())
        factory.session.events.register("before-call", recorder)
        return LambdaRuntime.from_settings(settings, factory)


def _queue_attributes(properties: dict[str, Any]) -> dict[str, str]:
    names = {"VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"}
    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in properties.items() if k in names}


def _create_table(setup: ClientFactory, name: str) -> None:
    props = template()["Resources"]["LedgerTable"]["Properties"]
    setup.dynamodb().create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Stack:
    setup = ClientFactory(unlimited())
    resources = template()["Resources"]
    sqs = setup.sqs()
    dlq_url = sqs.create_queue(QueueName="fleet-import-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = resolve(resources["ImportQueue"]["Properties"], {"ImportDeadLetterQueue.Arn": dlq_arn})
    queue_url = sqs.create_queue(QueueName="fleet-import-queue", Attributes=_queue_attributes(queue))[
        "QueueUrl"
    ]
    setup.s3().create_bucket(Bucket="fleet-import-manifests")
    _create_table(setup, "fleet-import-ledger")
    iot = setup.iot()
    iot.create_policy(
        policyName="DevicePolicy",
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    iot.create_thing_group(thingGroupName="Fleet")
    iot.create_billing_group(billingGroupName="Billing")
    iot.create_thing_type(thingTypeName="Sensor")
    iot.create_thing_type(thingTypeName="Legacy")
    refs = {
        "ManifestBucket": "fleet-import-manifests",
        "ImportQueue": queue_url,
        "ImportDeadLetterQueue": dlq_url,
        "LedgerTable": "fleet-import-ledger",
    }
    return Stack(setup=setup, refs=refs, monkeypatch=monkeypatch)


def upload_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    """The EventBridge event S3 sends for an upload (the template's rule matches it)."""
    return {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "account": ACCOUNT,
        "region": "us-east-1",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}, "reason": "PutObject"},
    }


def matches_rule(event: dict[str, Any], bucket: str) -> bool:
    """Whether the producer's EventBridge rule (its pattern, resolved) matches ``event``."""
    rule = functions()["Producer"].properties["Events"]["ManifestUploaded"]["Properties"]
    pattern = resolve(rule["Pattern"], {"ManifestBucket": bucket})
    key = event["detail"]["object"]["key"]
    return (
        event["source"] in pattern["source"]
        and event["detail-type"] in pattern["detail-type"]
        and event["detail"]["bucket"]["name"] in pattern["detail"]["bucket"]["name"]
        and any(key.startswith(p["prefix"]) for p in pattern["detail"]["object"]["key"])
    )


class Context:
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def emf_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def drain(stack: Stack, consumer: LambdaRuntime) -> tuple[int, list[str]]:
    """Hand the queue to the consumer in batches of 10 until it is empty; (batches, failures)."""
    sqs = stack.setup.sqs()
    failures: list[str] = []
    for batches in range(20):
        answer = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = answer.get("Messages", [])
        if not messages:
            return batches, failures
        event = {
            "Records": [
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
                for m in messages
            ]
        }
        failed = {
            f["itemIdentifier"] for f in sqs_handler(event, Context(), runtime=consumer)["batchItemFailures"]
        }
        failures.extend(sorted(failed))
        done = [m for m in messages if m["MessageId"] not in failed]
        for m in done:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    pytest.fail("the queue did not drain")


def call_path_operations(runtime: LambdaRuntime) -> set[str]:
    """The ``service.Operation`` names the runtime's facades counted (the call path's own)."""
    sources: list[Any] = [
        runtime.importer.iot,
        runtime.s3,
        runtime.sqs,
        getattr(runtime.ledger, "service", None),
    ]
    return {name for s in sources if s is not None for name, n in s.stats().calls.items() if n}


def test_a_manifest_in_the_bucket_becomes_devices_ledger_records_and_metrics(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    certs: list[DeviceCertificate] = list(generate_device_certificates(12, cn_prefix="fleet-"))
    iot = stack.setup.iot()
    # one certificate registered before (RegisterCertificateWithoutCA answers 409: whose is it?)
    iot.register_certificate_without_ca(certificatePem=certs[0].pem, status="ACTIVE")
    # one thing made by hand with another type and no owner attribute (adopted and retyped)
    iot.create_thing(thingName=certs[1].common_name or "", thingTypeName="Legacy")

    key = "manifests/lot-7.pem"
    body = "".join(c.pem for c in certs).encode()
    stack.setup.s3().put_object(Bucket=stack.bucket, Key=key, Body=body)
    event = upload_event(stack.bucket, key, len(body))
    assert matches_rule(event, stack.bucket)
    assert not matches_rule(upload_event(stack.bucket, "elsewhere/lot-7.pem", 1), stack.bucket)

    producer = stack.runtime("Producer")
    answer = s3_handler(event, Context(), runtime=producer)
    assert answer["objects"][0]["enqueue"]["sent"] == 12
    run_id = answer["objects"][0]["run_id"]
    assert run_id

    consumer = stack.runtime("Consumer")
    batches, failures = drain(stack, consumer)
    assert (batches, failures) == (2, [])

    # the devices, as the template's parameters say
    for cert in certs:
        name = cert.common_name or ""
        thing = iot.describe_thing(thingName=name)
        assert thing["thingTypeName"] == "Sensor", name
        arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/{cert.certificate_id}"
        assert iot.list_thing_principals(thingName=name)["principals"] == [arn]
        assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == [
            "DevicePolicy"
        ]
        groups = iot.list_thing_groups_for_thing(thingName=name)["thingGroups"]
        assert [g["groupName"] for g in groups] == ["Fleet"]

    # the ledger, in the template's table
    ledger = DynamoDBLedger(stack.table, factory=stack.setup)
    target = consumer.importer.target().key
    records = list(ledger.devices(target=target, run_id=run_id))
    assert sorted(r.certificate_id for r in records) == sorted(c.certificate_id for c in certs)
    run = ledger.run(run_id)
    assert run is not None
    assert (run.status, run.input_name) == ("enqueued", f"s3://{stack.bucket}/{key}")

    # the metrics: one record per invocation, under the template's namespace and dimensions
    printed = emf_records(capsys.readouterr().out)
    assert [r["Function"] for r in printed] == ["producer", "consumer", "consumer"]
    assert {r["Pipeline"] for r in printed} == {"fleet-import"}
    assert {r["_aws"]["CloudWatchMetrics"][0]["Namespace"] for r in printed} == {"Thingpress"}
    assert printed[0]["Enqueued"] == 12
    consumers = printed[1:]
    assert sum(r["Imported"] + r["AlreadyPresent"] for r in consumers) == 12
    assert sum(r["Failed"] + r["Redelivered"] for r in consumers) == 0
    assert sum(len(r["RecordLatency"]) for r in consumers) == 12
    assert sum(r["Calls.iot.RegisterCertificateWithoutCA"] for r in consumers) == 12
    assert all(r["request_id"] == "req-1" for r in printed)

    # every call went through the call path: botocore saw exactly the operations it counted
    for name, runtime in (("Producer", producer), ("Consumer", consumer)):
        assert set(stack.recorders[name].operations) == call_path_operations(runtime), name


def operations_of(stack: Stack, capsys: pytest.CaptureFixture[str]) -> dict[str, set[str]]:
    """What each function called: the whole pipeline once, plus each function's cold start on
    a ledger table nobody opened before (the first opener stamps the table)."""
    test_a_manifest_in_the_bucket_becomes_devices_ledger_records_and_metrics(stack, capsys)
    seen = {name: set(r.operations) for name, r in stack.recorders.items()}
    for name in ("Producer", "Consumer"):
        fresh = f"fresh-{name.lower()}"
        _create_table(stack.setup, fresh)
        stack.refs["LedgerTable"] = fresh
        stack.recorders.pop(name)
        stack.runtime(name)
        seen[name] |= set(stack.recorders[name].operations)
    return seen


def code_statements(function: Function) -> list[dict[str, Any]]:
    return [s for s in function.statements() if s.get("Sid") not in SERVICE_STATEMENTS]


def test_each_role_allows_exactly_what_its_code_calls(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = operations_of(stack, capsys)
    # not only new devices: a certificate registered before and a thing made by hand sent the
    # consumer down the paths that need the read and update actions
    assert {
        "iot.ListPrincipalThings",
        "iot.DescribeThing",
        "iot.ListThingPrincipals",
        "iot.UpdateThing",
        "dynamodb.Scan",
    } <= seen["Consumer"]
    assert not any(op.startswith("iot.") for op in seen["Producer"])
    for name, function in functions().items():
        needed = {a for a in map(iam_action, seen[name]) if a is not None}
        allowed: set[str] = set()
        for statement in code_statements(function):
            action = statement["Action"]
            allowed.update([action] if isinstance(action, str) else action)
        assert needed - allowed == set(), f"{name} calls what its role does not allow"
        assert allowed - needed == set(), f"{name}'s role allows what its code never calls"


def test_only_actions_without_resource_types_get_every_resource() -> None:
    for name, function in functions().items():
        for statement in function.statements():
            resources = statement["Resource"]
            if resources == "*" or "*" in (resources if isinstance(resources, list) else [resources]):
                actions = statement["Action"]
                actions = {actions} if isinstance(actions, str) else set(actions)
                assert actions <= WITHOUT_RESOURCE_TYPES, (name, statement.get("Sid"))


def test_service_statements_are_the_documented_ones() -> None:
    consumer, producer = functions()["Consumer"], functions()["Producer"]
    by_sid = {s["Sid"]: s for s in consumer.statements()}
    assert set(by_sid["ReadTheImportQueue"]["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    assert by_sid["ReadTheImportQueue"]["Resource"] == {"Fn::GetAtt": ["ImportQueue", "Arn"]}
    kept = {s["Sid"]: s for s in producer.statements()}["KeepFailedEvents"]
    assert kept["Resource"] == {"Fn::GetAtt": ["ProducerDeadLetterQueue", "Arn"]}
    assert producer.properties["DeadLetterQueue"]["TargetArn"] == kept["Resource"]
    for function in (consumer, producer):
        logs = {s["Sid"]: s for s in function.statements()}["WriteItsLogs"]
        group = function.properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert logs["Resource"] == {"Fn::GetAtt": [group, "Arn"]}
        assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
