"""Forged HTTP answers, in each AWS protocol, and the connection errors botocore would raise.

botocore parses a forged `~botocore.awsrequest.AWSResponse` exactly as one from the network,
so the error codes, modeled error fields and retry decisions are botocore's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from thingpress_core.testing._rules import ConnectionErrorKind, Rule

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

NOWHERE = "https://fault-injected.thingpress.invalid/"


class RawBody:
    """The minimal urllib3-like body botocore reads from an `AWSResponse`."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._read = False

    def stream(self, **_: Any) -> Iterator[bytes]:
        if not self._read:
            self._read = True
            yield self._data

    def read(self, amt: int | None = None) -> bytes:
        if self._read:
            return b""
        self._read = True
        return self._data

    def close(self) -> None:
        self._read = True


def answered(request: AWSPreparedRequest, response: AWSResponse | None) -> AWSResponse | None:
    """Keep later ``before-send`` handlers from acting on a request we answered.

    botocore calls every ``before-send`` handler and then uses the first answer, so moto's
    handler (registered on the broader ``before-send``) would still execute the operation,
    with side effects, after we answered it. Pointing this attempt's request (botocore builds
    a new one per attempt) at a host no mock claims makes moto pass it by.
    """
    if response is not None:
        request.url = NOWHERE
    return response


def make_response(url: str, status: int, headers: Mapping[str, str], body: bytes) -> AWSResponse:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    http_headers = HTTPHeaders()
    for name, value in headers.items():
        http_headers[name] = value
    http_headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, http_headers, RawBody(body))


def error_response(url: str, protocol: str, query_compatible: bool, rule: Rule) -> AWSResponse:
    """The error ``rule`` describes, as the service's protocol writes it."""
    request_id = str(uuid.uuid4())
    code, message = rule.code, rule.message
    if protocol == "rest-json":
        headers = {
            "x-amzn-ErrorType": f"{code}:",
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
        }
        body = json.dumps({"message": message, **rule.fields}).encode()
    elif protocol == "json":
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
        if query_compatible:
            headers["x-amzn-query-error"] = f"{code};{'Receiver' if rule.status >= 500 else 'Sender'}"
        body = json.dumps({"__type": code, "message": message, **rule.fields}).encode()
    elif protocol == "rest-xml":
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
    else:  # query, ec2
        headers = {"Content-Type": "text/xml"}
        body = (
            f"<ErrorResponse><Error><Type>{'Receiver' if rule.status >= 500 else 'Sender'}</Type>"
            f"<Code>{_xml(code)}</Code><Message>{_xml(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    return make_response(url, rule.status, headers, body)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def raise_connection_error(kind: ConnectionErrorKind, url: str) -> NoReturn:
    from botocore import exceptions

    if kind == "closed":
        raise exceptions.ConnectionClosedError(endpoint_url=url)
    if kind == "read_timeout":
        raise exceptions.ReadTimeoutError(endpoint_url=url)
    raise exceptions.EndpointConnectionError(endpoint_url=url)


# -- SQS batches ----------------------------------------------------------------------------


def batch_entries(request: AWSPreparedRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON body of an SQS batch request and its ``Entries``."""
    body = request.body
    raw = body if isinstance(body, bytes | bytearray | str) else b""
    payload: dict[str, Any] = json.loads(raw or b"{}")
    return payload, list(payload.get("Entries") or [])


def failed_entries(
    entries: Sequence[Mapping[str, Any]], chosen: Sequence[int], rule: Rule
) -> list[dict[str, Any]]:
    """The ``Failed`` members an SQS answer would hold for the entries at ``chosen``."""
    return [
        {"Id": entries[i]["Id"], "SenderFault": rule.sender_fault, "Code": rule.code, "Message": rule.message}
        for i in chosen
    ]


def all_failed_response(url: str, failed: list[dict[str, Any]]) -> AWSResponse:
    """HTTP 200 with every entry in ``Failed``: the request need not reach the service."""
    data = json.dumps({"Successful": [], "Failed": failed}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": str(uuid.uuid4())}
    return make_response(url, 200, headers, data)


def keep_entries(request: AWSPreparedRequest, payload: dict[str, Any], keep: list[dict[str, Any]]) -> None:
    """Rewrite the request so only ``keep`` reach the service."""
    payload["Entries"] = keep
    new_body = json.dumps(payload).encode()
    request.body = new_body
    request.headers["Content-Length"] = str(len(new_body))
