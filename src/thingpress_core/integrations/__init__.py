"""Integrations with the AWS services that run imports beyond one machine.

`thingpress_core.integrations.aws_lambda` holds the SQS producer (`enqueue_manifest`), the
Lambda runtime and its handlers (`LambdaRuntime`, `sqs_handler`, `s3_handler`), the S3
trigger (`handle_s3_event`) and the message model they share (`ImportRequest`). Importing
this package imports nothing heavy; import the submodule for the names.
"""

from __future__ import annotations

__all__: list[str] = []
