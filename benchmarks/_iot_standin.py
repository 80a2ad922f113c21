"""A light AWS IoT Core stand-in for throughput benchmarks: real HTTP, AWS's shapes, quotas, latency.

moto's server tops out near 600 calls/s on these machines, far below raised quotas (an import at
100 certificates/s makes 400-500 calls/s, the one-process ceiling at x30 quotas 1,500). This
server answers only what an import, its pre-flight and its checks send, with AWS's REST-JSON
request and response shapes (botocore parses every answer), and:

- a token bucket per operation (``quotas``, requests per second, one second of burst like
  AWS's): a call over it gets AWS's throttle, HTTP 400 with ``x-amzn-ErrorType:
  ThrottlingException`` (AWS IoT answers throttles with 400, not 429; see DESIGN.md); an
  operation without a quota is unlimited;
- a fixed ``latency`` per answered call (throttled ones too), slept on the request's thread;
- minimal state, so the importer's checks hold: certificates (id = SHA-256 of the DER),
  things (with their type), principal attachments (exclusive or not), policy targets and
  group members. Registering a certificate twice answers 409 with ``resourceId`` and
  ``resourceArn`` as AWS does; an identical CreateThing succeeds, a conflicting one is a 409;
  a certificate attached exclusively to one thing cannot go to another (InvalidRequest);
- the Service Quotas API (``ListServiceQuotas``, ``ListAWSDefaultServiceQuotas``, JSON 1.1) on
  the same port, answering with the quotas it enforces, so ``QuotaReader`` can be pointed at it.

`IoTStandIn` runs the server in a child process by default (the client under test keeps the
GIL to itself) or on a thread (``in_process=True``, for small tests). Usage::

    with IoTStandIn(quotas={"iot.RegisterCertificateWithoutCA": 100.0}, latency=0.02,
                    policies=["DevicePolicy"], groups=["Fleet"], thing_types=["Sensor"]) as aws:
        settings = ThingpressSettings(endpoint_url=aws.endpoint_url, ...)
        ...
        aws.counts()   # answered calls per operation, and throttled ones
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ACCOUNT, REGION = "123456789012", "us-east-1"

# Operations answered, with botocore's method and URI (iot-2015-05-28). Order matters only
# where two templates could match one path: literal templates come first.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("RegisterCertificateWithoutCA", "POST", "/certificate/register-no-ca"),
    ("RegisterCertificate", "POST", "/certificate/register"),
    ("AddThingToThingGroup", "PUT", "/thing-groups/addThingToThingGroup"),
    ("ListPrincipalThings", "GET", "/principals/things"),
    ("AttachThingPrincipal", "PUT", "/things/{thingName}/principals"),
    ("ListThingPrincipals", "GET", "/things/{thingName}/principals"),
    ("ListThingGroupsForThing", "GET", "/things/{thingName}/thing-groups"),
    ("CreateThing", "POST", "/things/{thingName}"),
    ("DescribeThing", "GET", "/things/{thingName}"),
    ("UpdateThing", "PATCH", "/things/{thingName}"),
    ("AttachPolicy", "PUT", "/target-policies/{policyName}"),
    ("ListAttachedPolicies", "POST", "/attached-policies/{target}"),
    ("GetPolicy", "GET", "/policies/{policyName}"),
    ("DescribeThingGroup", "GET", "/thing-groups/{thingGroupName}"),
    ("DescribeThingType", "GET", "/thing-types/{thingTypeName}"),
    ("DescribeCertificate", "GET", "/certificates/{certificateId}"),
)

#: Quota codes the Service Quotas answers carry (the same as thingpress_core.services.QUOTA_CODES).
QUOTA_CODES = {
    "RegisterCertificateWithoutCA": "L-4671C7C8",
    "RegisterCertificate": "L-8C0011A3",
    "CreateThing": "L-64CBACAC",
    "AttachThingPrincipal": "L-F64D1AA6",
    "AttachPolicy": "L-CA7D4E3E",
    "AddThingToThingGroup": "L-2904683A",
    "UpdateThing": "L-211F680E",
    "DescribeThing": "L-0EF0F5EE",
    "ListPrincipalThings": "L-C481616A",
    "ListThingPrincipals": "L-FC3EF4D9",
    "ListThingGroupsForThing": "L-75F129AD",
    "ListAttachedPolicies": "L-B2DA2A45",
    "GetPolicy": "L-5CE9072D",
    "DescribeThingGroup": "L-52E1E197",
    "DescribeThingType": "L-DDCF8E97",
    "DescribeCertificate": "L-FC864907",
}


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


_COMPILED = tuple((op, method, _compile(uri)) for op, method, uri in ROUTES)


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The operation ``method path`` calls and its URI parameters, or None."""
    for operation, verb, pattern in _COMPILED:
        found = pattern.match(path) if verb == method else None
        if found is not None:
            return operation, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


class _Bucket:
    """Tokens refill at ``rate`` per second up to one second's worth (at least one)."""

    __slots__ = ("_capacity", "_lock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


class _State:
    """What the stand-in remembers, behind one lock (held for dictionary work only)."""

    def __init__(self, policies: Iterable[str], groups: Iterable[str], thing_types: Iterable[str]) -> None:
        self.lock = threading.Lock()
        self.policies = set(policies)
        self.groups = set(groups)
        self.thing_types = set(thing_types)
        self.certificates: dict[str, str] = {}  # id -> status
        self.things: dict[str, str | None] = {}  # name -> thing type
        self.principals: dict[str, dict[str, str]] = {}  # certificate ARN -> {thing: type}
        self.targets: dict[str, set[str]] = {}  # target ARN -> policies
        self.members: dict[str, set[str]] = {}  # thing -> groups


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{name}"


def _certificate_id(pem: str) -> str:
    body = "".join(line for line in pem.strip().splitlines() if line and not line.startswith("-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


class _IoT:
    """The answers, one method per operation: ``(params, query, headers, body) -> response``."""

    def __init__(self, state: _State) -> None:
        self.s = state

    def RegisterCertificateWithoutCA(self, p: dict[str, str], q: Any, h: Any, body: dict[str, Any]) -> Any:
        cert_id = _certificate_id(str(body.get("certificatePem", "")))
        arn = _arn("cert", cert_id)
        with self.s.lock:
            if cert_id in self.s.certificates:
                raise _ApiError(
                    409,
                    "ResourceAlreadyExistsException",
                    "The certificate is already provisioned or registered",
                    resourceId=cert_id,
                    resourceArn=arn,
                )
            self.s.certificates[cert_id] = str(body.get("status", "ACTIVE"))
        return {"certificateArn": arn, "certificateId": cert_id}

    RegisterCertificate = RegisterCertificateWithoutCA

    def CreateThing(self, p: dict[str, str], q: Any, h: Any, body: dict[str, Any]) -> Any:
        name, kind = p["thingName"], body.get("thingTypeName")
        if kind is not None and kind not in self.s.thing_types:
            raise _ApiError(404, "ResourceNotFoundException", f"Thing type {kind} does not exist")
        with self.s.lock:
            if name in self.s.things and self.s.things[name] != kind:
                raise _ApiError(409, "ResourceAlreadyExistsException", f"Thing {name} already exists")
            self.s.things[name] = kind
        return {"thingName": name, "thingArn": _arn("thing", name), "thingId": name}

    def UpdateThing(self, p: dict[str, str], q: Any, h: Any, body: dict[str, Any]) -> Any:
        with self.s.lock:
            if p["thingName"] not in self.s.things:
                raise _ApiError(404, "ResourceNotFoundException", "Thing does not exist")
            if "thingTypeName" in body:
                self.s.things[p["thingName"]] = body["thingTypeName"]
        return {}

    def DescribeThing(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        name = p["thingName"]
        with self.s.lock:
            if name not in self.s.things:
                raise _ApiError(404, "ResourceNotFoundException", f"Thing {name} does not exist")
            kind = self.s.things[name]
        answer = {
            "thingName": name,
            "thingId": name,
            "thingArn": _arn("thing", name),
            "defaultClientId": name,
        }
        answer.update({"attributes": {}, "version": 1})
        if kind is not None:
            answer["thingTypeName"] = kind
        return answer

    def AttachThingPrincipal(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        name, principal = p["thingName"], h.get("x-amzn-principal", "")
        kind = (q.get("thingPrincipalType") or ["NON_EXCLUSIVE_THING"])[0]
        with self.s.lock:
            if name not in self.s.things:
                raise _ApiError(404, "ResourceNotFoundException", f"Thing {name} does not exist")
            attached = self.s.principals.setdefault(principal, {})
            others = {thing: how for thing, how in attached.items() if thing != name}
            if others and (kind == "EXCLUSIVE_THING" or "EXCLUSIVE_THING" in others.values()):
                raise _ApiError(
                    400, "InvalidRequestException", "Principal is exclusively attached to a thing"
                )
            attached[name] = kind
        return {}

    def ListPrincipalThings(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        with self.s.lock:
            things = sorted(self.s.principals.get(h.get("x-amzn-principal", ""), {}))
        return {"things": things}

    def ListThingPrincipals(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        with self.s.lock:
            arns = sorted(arn for arn, things in self.s.principals.items() if p["thingName"] in things)
        return {"principals": arns}

    def AttachPolicy(self, p: dict[str, str], q: Any, h: Any, body: dict[str, Any]) -> Any:
        if p["policyName"] not in self.s.policies:
            raise _ApiError(404, "ResourceNotFoundException", f"Policy {p['policyName']} does not exist")
        with self.s.lock:
            self.s.targets.setdefault(str(body.get("target", "")), set()).add(p["policyName"])
        return {}

    def ListAttachedPolicies(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        with self.s.lock:
            names = sorted(self.s.targets.get(p["target"], ()))
        return {"policies": [{"policyName": n, "policyArn": _arn("policy", n)} for n in names]}

    def AddThingToThingGroup(self, p: dict[str, str], q: Any, h: Any, body: dict[str, Any]) -> Any:
        group, name = body.get("thingGroupName"), body.get("thingName")
        if group not in self.s.groups:
            raise _ApiError(404, "ResourceNotFoundException", f"Thing group {group} does not exist")
        with self.s.lock:
            if name not in self.s.things:
                raise _ApiError(404, "ResourceNotFoundException", f"Thing {name} does not exist")
            self.s.members.setdefault(str(name), set()).add(str(group))
        return {}

    def ListThingGroupsForThing(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        with self.s.lock:
            groups = sorted(self.s.members.get(p["thingName"], ()))
        return {"thingGroups": [{"groupName": g, "groupArn": _arn("thinggroup", g)} for g in groups]}

    def GetPolicy(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        name = p["policyName"]
        if name not in self.s.policies:
            raise _ApiError(404, "ResourceNotFoundException", f"Policy {name} does not exist")
        document = json.dumps({"Version": "2012-10-17", "Statement": []})
        return {"policyName": name, "policyArn": _arn("policy", name), "policyDocument": document}

    def DescribeThingGroup(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        name = p["thingGroupName"]
        if name not in self.s.groups:
            raise _ApiError(404, "ResourceNotFoundException", f"Thing group {name} does not exist")
        return {
            "thingGroupName": name,
            "thingGroupId": name,
            "thingGroupArn": _arn("thinggroup", name),
            "version": 1,
            "thingGroupProperties": {},
            "thingGroupMetadata": {},
        }

    def DescribeThingType(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        name = p["thingTypeName"]
        if name not in self.s.thing_types:
            raise _ApiError(404, "ResourceNotFoundException", f"Thing type {name} does not exist")
        return {
            "thingTypeName": name,
            "thingTypeId": name,
            "thingTypeArn": _arn("thingtype", name),
            "thingTypeProperties": {},
            "thingTypeMetadata": {"deprecated": False},
        }

    def DescribeCertificate(self, p: dict[str, str], q: Any, h: Any, body: Any) -> Any:
        cert_id = p["certificateId"]
        with self.s.lock:
            status = self.s.certificates.get(cert_id)
        if status is None:
            raise _ApiError(404, "ResourceNotFoundException", f"Certificate {cert_id} does not exist")
        arn = _arn("cert", cert_id)
        return {"certificateDescription": {"certificateArn": arn, "certificateId": cert_id, "status": status}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], quotas: Mapping[str, float], latency: float, state: _State
    ) -> None:
        super().__init__(address, _Handler)
        self.quotas = {op.removeprefix("iot."): rate for op, rate in quotas.items()}
        self.buckets = {op: _Bucket(rate) for op, rate in self.quotas.items()}
        self.latency = latency
        self.api = _IoT(state)
        self.count_lock = threading.Lock()
        self.answered: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore's pool reuses connections
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        if target.startswith("ServiceQuotasV20190624."):
            self._quotas(target.split(".", 1)[1])
            return
        url = urlsplit(self.path)
        route = _route(method, url.path)
        if route is None:
            self._send(404, {"message": f"no route for {method} {url.path}"}, "UnknownOperationException")
            return
        operation, params = route
        server = self.server
        bucket = server.buckets.get(operation)
        if bucket is not None and not bucket.take():
            with server.count_lock:
                server.throttled[operation] += 1
            time.sleep(server.latency)
            self._send(400, {"message": "Rate exceeded"}, "ThrottlingException")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = json.loads(raw) if raw else {}
        try:
            answer = getattr(server.api, operation)(params, parse_qs(url.query), headers, body)
            status, code = 200, None
        except _ApiError as exc:
            answer, status, code = {"message": str(exc), **exc.extra}, exc.status, exc.code
        with server.count_lock:
            server.answered[operation] += 1
        time.sleep(server.latency)
        self._send(status, answer, code)

    def _quotas(self, action: str) -> None:
        if action not in {"ListServiceQuotas", "ListAWSDefaultServiceQuotas"}:
            self._send(400, {"__type": "UnknownOperationException", "message": action}, None, json11=True)
            return
        quotas = [
            {
                "ServiceCode": "iotcore",
                "ServiceName": "AWS IoT Core",
                "QuotaCode": QUOTA_CODES[op],
                "QuotaName": f"{op} API TPS",
                "Value": rate,
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
                "Period": {"PeriodValue": 1, "PeriodUnit": "SECOND"},
            }
            for op, rate in sorted(self.server.quotas.items())
            if op in QUOTA_CODES
        ]
        self._send(200, {"Quotas": quotas}, None, json11=True)

    def _send(
        self, status: int, answer: Mapping[str, Any], code: str | None, *, json11: bool = False
    ) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1" if json11 else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", "standin")
        if code is not None:
            self.send_header("x-amzn-ErrorType", f"{code}:")
        self.end_headers()
        self.wfile.write(payload)


class IoTStandIn:
    """The stand-in server, as a context manager; see the module docstring.

    ``quotas``: requests per second per ``iot.Operation`` (or bare ``Operation``); ``latency``:
    seconds per answer; ``policies``, ``groups``, ``thing_types``: what exists.
    """

    def __init__(
        self,
        *,
        quotas: Mapping[str, float],
        latency: float,
        policies: Iterable[str] = (),
        groups: Iterable[str] = (),
        thing_types: Iterable[str] = (),
        in_process: bool = False,
    ) -> None:
        self._config = {
            "quotas": dict(quotas),
            "latency": latency,
            "policies": list(policies),
            "groups": list(groups),
            "thing_types": list(thing_types),
        }
        self._in_process = in_process
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def __enter__(self) -> IoTStandIn:
        if self._in_process:
            self._server = _serve(self._config)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
            port = self._server.server_address[1]
        else:
            self._child = subprocess.Popen(
                [sys.executable, __file__, json.dumps(self._config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._child.stdout is not None
            port = int(self._child.stdout.readline())
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"answered": {op: n}, "throttled": {op: n}}`` so far."""
        if self._server is not None:
            with self._server.count_lock:
                return {"answered": dict(self._server.answered), "throttled": dict(self._server.throttled)}
        assert self._child is not None and self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write("counts\n")
        self._child.stdin.flush()
        return dict(json.loads(self._child.stdout.readline()))

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._child is not None:
            assert self._child.stdin is not None
            self._child.stdin.close()  # the child exits when its stdin ends
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()


def _serve(config: Mapping[str, Any]) -> _Server:
    state = _State(config["policies"], config["groups"], config["thing_types"])
    return _Server(("127.0.0.1", 0), config["quotas"], float(config["latency"]), state)


def _child_main(raw: str) -> None:
    server = _serve(json.loads(raw))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    for line in sys.stdin:  # the parent asks for counts; EOF ends the child
        if line.strip() == "counts":
            with server.count_lock:
                counts = {"answered": dict(server.answered), "throttled": dict(server.throttled)}
            print(json.dumps(counts), flush=True)
    server.shutdown()


if __name__ == "__main__":
    _child_main(sys.argv[1])
