"""The public module `aws_lambda`: its names, where they say they live, and what it imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pydantic import BaseModel

from thingpress_core.integrations import aws_lambda

HEAVY = ("boto3", "botocore", "moto", "py7zr", "typer", "rich", "click")

PUBLIC = {
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
    "ThrottleTally",
    "SQSConsumer",
    "build_importer",
    "default_runtime",
    "enqueue_manifest",
    "handle_s3_event",
    "handle_sqs_event",
    "parse_message",
    "process_record",
    "s3_handler",
    "sqs_handler",
}


def test_all_is_the_public_api() -> None:
    assert set(aws_lambda.__all__) == PUBLIC
    assert len(aws_lambda.__all__) == len(PUBLIC)


def test_public_objects_name_the_public_module() -> None:
    # every error lives in thingpress_core.errors (the one tree) and is re-exported here
    errors = {"EnqueueError", "MessageParseError"}
    for name in PUBLIC:
        obj = getattr(aws_lambda, name)
        if name in errors:
            assert obj.__module__ == "thingpress_core.errors", name
            continue
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__")):
            assert obj.__module__ == "thingpress_core.integrations.aws_lambda", name
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            assert obj.__pydantic_complete__, name  # no forward reference left to resolve
    assert aws_lambda.default_runtime.__module__ == "thingpress_core.integrations.aws_lambda"


def test_the_handlers_resolve_by_their_configured_path() -> None:
    # Lambda's handler setting is "module.function"; handle_sqs_event is the former name.
    for handler in ("sqs_handler", "s3_handler", "handle_sqs_event"):
        module, _, function = f"thingpress_core.integrations.aws_lambda.{handler}".rpartition(".")
        assert callable(getattr(sys.modules[module], function))


def test_importing_the_module_loads_nothing_heavy() -> None:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    code = (
        "import sys, json; import thingpress_core.integrations.aws_lambda as m; "
        "[getattr(m, n) for n in m.__all__]; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert "thingpress_core.integrations._runtime" in loaded  # the check really ran the import
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
