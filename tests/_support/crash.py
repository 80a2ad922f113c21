"""The import crash test's machinery, shared by ``tests/ledger/test_crash_resume.py`` and
``benchmarks/bench_ledger_crash.py``.

`IoTStandIn` is moto's server on 127.0.0.1 in this process (so it outlives the importer it
serves), behind a WSGI layer that names every request from botocore's own IoT model: its
run (the ``app/<tag>`` botocore puts in the User-Agent from ``AWS_SDK_UA_APP_ID``), its
operation (``iot.AttachPolicy``), its subject (``policyName=P target=<certificate id>``),
moto's status and its fate. The layer can trip at the K-th mutating request of a run, so a
test kills the importer after K calls rather than after a guess at wall time, and can then
hold the network still: the K-th request carried out with its answer lost, or never carried
out, and every later one never carried out.

`run_campaign` imports one manifest with the CLI in a subprocess, kills it with SIGKILL at
random points (seeded), re-runs the same command after each kill and lets the last run
finish; after each kill it opens the ledger (as the next run would, then SQLite's integrity
check) and notes which steps it holds. The caller judges the `Campaign` it returns.

A step is "in flight" at a kill when the run sent its request and the ledger did not hold
the step after the kill. An importer thread saves a step (durably) before its next call, so
each of the ``concurrency`` threads has at most one step in flight at any moment.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

if TYPE_CHECKING:
    from thingpress_core.ledger import DeviceRecord, RunRecord

#: What happened to a request: moto ran it and its answer went out; moto ran it and its
#: answer was held until the caller was dead (lost); it never reached moto (dropped).
Fate = Literal["answered", "lost", "dropped"]
#: How a kill lands: as soon as the K-th mutating request arrives, while the other threads
#: run on (race); or with the network held still from the K-th request on, which is carried
#: out with its answer lost (lost) or not carried out (dropped).
KillMode = Literal["race", "lost", "dropped"]
KILL_MODES: tuple[KillMode, ...] = ("race", "lost", "dropped")
#: (operation, subject): one step of one device as the wire shows it.
CallKey = tuple[str, str]

SETUP = "setup"  # the run tag of the test's own requests (resources, reading AWS back)
_MAX_BODY = 1 << 20  # an IoT request body is a few KiB: refuse anything larger
_HOLD_SECONDS = 120.0  # a held request waits at most this long for `release`
# Body members that say which resource a request is about (the others configure it).
_IDENTIFYING = frozenset({"thingName", "thingGroupName", "policyName", "target", "principal"})


def subject(**fields: str) -> str:
    """A request's subject as ``name=value`` pairs in name order; an ARN becomes its last
    path segment (a certificate ARN its certificate id)."""
    shown = {k: v.rsplit("/", 1)[-1] if v.startswith("arn:") else v for k, v in fields.items()}
    return " ".join(f"{k}={shown[k]}" for k in sorted(shown))


def step_call(step: str, *, certificate_id: str, thing_name: str) -> CallKey:
    """The request that confirms ledger step ``step`` (a `step_key`) of one device."""
    kind, _, name = step.partition(":")
    if kind == "register":
        return "iot.RegisterCertificateWithoutCA", subject(certificateId=certificate_id)
    if kind == "thing":
        return "iot.CreateThing", subject(thingName=thing_name)
    if kind == "principal":
        return "iot.AttachThingPrincipal", subject(thingName=thing_name, principal=certificate_id)
    if kind == "policy":
        return "iot.AttachPolicy", subject(policyName=name, target=certificate_id)
    if kind == "group":
        return "iot.AddThingToThingGroup", subject(thingGroupName=name, thingName=thing_name)
    raise ValueError(f"no request confirms step {step!r}")


def device_steps(policies: Sequence[str], groups: Sequence[str]) -> tuple[str, ...]:
    """The ledger steps of a fully imported device, the floor's calls in order."""
    return (
        "register",
        "thing",
        "principal",
        *(f"policy:{p}" for p in policies),
        *(f"group:{g}" for g in groups),
    )


def recorded_calls(records: Iterable[DeviceRecord]) -> frozenset[CallKey]:
    """Every step the records hold, as the request that confirmed it."""
    return frozenset(
        step_call(step, certificate_id=r.certificate_id, thing_name=r.thing_name or "")
        for r in records
        for step in r.steps
    )


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the stand-in saw."""

    run: str
    operation: str
    subject: str
    mutating: bool
    status: int | None  # moto's HTTP status; None when it never reached moto
    fate: Fate

    @property
    def key(self) -> CallKey:
        return (self.operation, self.subject)

    @property
    def carried_out(self) -> bool:
        """Whether moto did what was asked (the caller may never have heard)."""
        return self.status is not None and 200 <= self.status < 300


class _Routes:
    """(method, path) to operation, from botocore's model of a rest-json service."""

    def __init__(self, service: str) -> None:
        import botocore.session

        model = botocore.session.get_session().get_service_model(service)
        routes = []
        for name in model.operation_names:
            operation = model.operation_model(name)
            path = operation.http["requestUri"].split("?", 1)[0]
            parts = tuple(p for p in path.split("/") if p)
            literal = sum(not p.startswith("{") for p in parts)
            routes.append((literal, operation.http["method"], parts, operation))
        routes.sort(key=lambda r: -r[0])  # the most literal template wins
        self._routes = routes
        self.service = service

    def match(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
        segments = [unquote(s) for s in path.split("/") if s]
        for _, verb, parts, operation in self._routes:
            if verb != method or len(parts) != len(segments):
                continue
            labels: dict[str, str] = {}
            for part, segment in zip(parts, segments, strict=True):
                if part.startswith("{"):
                    labels[part.strip("{}+")] = segment
                elif part != segment:
                    break
            else:
                return operation, labels
        return None


def _certificate_id(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


class _Connections:
    """The server's open connections and the run each last carried (None: none yet)."""

    def __init__(self, changed: threading.Condition) -> None:
        self._changed = changed
        self.runs: dict[int, str | None] = {}

    def opened(self, key: int) -> None:
        with self._changed:
            self.runs[key] = None

    def closed(self, key: int) -> None:
        with self._changed:
            self.runs.pop(key, None)
            self._changed.notify_all()


class IoTStandIn:
    """moto's server (AWS IoT, STS) with every request named, counted and gateable.

    moto runs one request at a time (its backends are not thread-safe), answers a
    conflicting CreateThing with 409 as AWS does (`sandbox.aws_fidelity`) and computes
    certificate ids as AWS does. ``requests`` holds every request of every run.
    """

    def __init__(self) -> None:
        self._routes = _Routes("iot")
        self._changed = threading.Condition()
        self._connections = _Connections(self._changed)
        self._moto_lock = threading.Lock()
        self.requests: list[Request] = []
        self._active = 0
        self._armed: str | None = None
        self._trigger: int | None = None
        self._mode: KillMode = "race"
        self._seen = 0
        self._frozen = False
        self.tripped = threading.Event()
        self._released = threading.Event()
        self._stack = contextlib.ExitStack()
        self._moto: Any = None  # moto's WSGI application, made on enter
        self.endpoint_url = ""

    # -- life --------------------------------------------------------------------------------

    def __enter__(self) -> IoTStandIn:
        from moto.core.config import default_user_config
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from thingpress_core.sandbox import aws_fidelity

        try:
            self._stack.enter_context(aws_fidelity())
            before = dict(default_user_config.get("iot") or {"use_valid_cert": False})
            default_user_config["iot"] = {"use_valid_cert": True}  # certificate id = SHA-256 of the DER
            self._stack.callback(default_user_config.__setitem__, "iot", before)
            self._moto = DomainDispatcherApplication(create_backend_app)
            server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=self._handler())
            thread = threading.Thread(target=server.serve_forever, name="crash-stand-in", daemon=True)
            thread.start()
            self._stack.callback(thread.join, 10)
            self._stack.callback(server.server_close)
            self._stack.callback(server.shutdown)
            self.endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"
            self._reset()
            self._stack.callback(self._reset)  # moto's state is per process: leave none behind
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._released.set()
        self._stack.close()

    def _handler(self) -> type[Any]:
        from werkzeug.serving import WSGIRequestHandler

        connections = self._connections

        class Handler(WSGIRequestHandler):
            """No access log; every connection is known while it is open."""

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return None

            def handle(self) -> None:
                connections.opened(id(self.connection))
                try:
                    super().handle()
                finally:
                    connections.closed(id(self.connection))

        return Handler

    def _reset(self) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:  # our loopback server
            answer.read()

    def client(self) -> Any:
        """A boto3 IoT client of the test's own (its requests run as `SETUP`)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "iot",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # moto accepts any key
            config=Config(user_agent_extra=f"app/{SETUP}", retries={"total_max_attempts": 1}),
        )

    def create_resources(self, *, policies: Sequence[str], groups: Sequence[str]) -> None:
        from thingpress_core.sandbox import DEVICE_POLICY_DOCUMENT

        iot = self.client()
        for name in policies:
            iot.create_policy(policyName=name, policyDocument=json.dumps(DEVICE_POLICY_DOCUMENT))
        for name in groups:
            iot.create_thing_group(thingGroupName=name)

    # -- the gate ----------------------------------------------------------------------------

    def arm(self, run: str, *, after: int | None, mode: KillMode = "race") -> None:
        """Trip `tripped` at run ``run``'s ``after``-th mutating request (None: never)."""
        with self._changed:
            self._armed, self._trigger, self._mode = run, after, mode
            self._seen = 0
            self._frozen = False
            self.tripped.clear()
            self._released.clear()

    def release(self) -> None:
        """Let held requests finish (their caller is dead: their answers go nowhere). After a
        kill that held the network still, a request of that run that arrives later (sent
        before the kill, read after it) is not carried out either, until the next `arm`."""
        self._released.set()

    def settle(self, run: str, *, timeout: float = 60.0) -> None:
        """Wait until no request is being handled and no connection that carried run ``run``'s
        requests (or none yet) is open, so every request the dead run sent is in ``requests``."""

        def quiet() -> bool:
            return self._active == 0 and all(r not in (run, None) for r in self._connections.runs.values())

        with self._changed:
            if not self._changed.wait_for(quiet, timeout=timeout):
                raise TimeoutError(f"run {run}'s requests still open after {timeout} s")

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > _MAX_BODY:
            start_response("413 Request Entity Too Large", [("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        run, operation, about, mutating = self._name(environ, body)
        hold: Fate | None = None
        with self._changed:
            self._active += 1
            self._connections.runs[id(environ.get("werkzeug.socket"))] = run
            if run == self._armed and self._trigger is not None:
                if self._frozen:
                    hold = "dropped"
                elif mutating:
                    self._seen += 1
                    if self._seen == self._trigger:
                        if self._mode != "race":
                            self._frozen = True
                            hold = self._mode
                        self.tripped.set()
        try:
            return self._serve(
                environ, start_response, Request(run, operation, about, mutating, None, "dropped"), hold
            )
        finally:
            with self._changed:
                self._active -= 1
                self._changed.notify_all()

    def _serve(
        self, environ: dict[str, Any], start_response: Callable[..., Any], request: Request, hold: Fate | None
    ) -> Iterable[bytes]:
        if hold == "dropped":
            self._released.wait(_HOLD_SECONDS)
            self._record(request)
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        answer: list[Any] = []

        def keep(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            answer[:] = [status, headers]
            return lambda data: None

        with self._moto_lock:
            chunks = list(self._moto(environ, keep))
        if hold == "lost":
            self._released.wait(_HOLD_SECONDS)
        status = int(str(answer[0]).split(" ", 1)[0]) if answer else 500
        self._record(dataclasses.replace(request, status=status, fate=hold or "answered"))
        start_response(*answer)
        return chunks

    def _record(self, request: Request) -> None:
        with self._changed:
            self.requests.append(request)

    def _name(self, environ: Mapping[str, Any], body: bytes) -> tuple[str, str, str, bool]:
        """(run, operation, subject, mutating) of one request."""
        agent = str(environ.get("HTTP_USER_AGENT", ""))
        run = next((p[4:] for p in agent.split() if p.startswith("app/")), "-")
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", "/"))
        scope = str(environ.get("HTTP_AUTHORIZATION", "")).partition("Credential=")[2].split("/")
        service = scope[3] if len(scope) > 3 else "-"
        if service != "iot":
            action = "-"
            if method == "POST" and body.startswith(b"Action="):
                action = body.split(b"&", 1)[0][7:].decode("ascii", "replace")
            return run, f"{service}.{action}" if service != "-" else f"{method} {path}", "", False
        found = self._routes.match(method, path)
        if found is None:
            return run, f"iot.? {method} {path}", "", method != "GET"
        operation, labels = found
        fields: dict[str, str] = {}
        payload: dict[str, Any] = {}
        if body:
            with contextlib.suppress(ValueError):
                loaded = json.loads(body)
                payload = loaded if isinstance(loaded, dict) else {}
        for name, shape in operation.input_shape.members.items():
            where = shape.serialization.get("location")
            if where == "uri":
                fields[name] = labels.get(shape.serialization.get("name", name), "")
            elif where == "header":
                header = "HTTP_" + str(shape.serialization.get("name", name)).upper().replace("-", "_")
                if header in environ:
                    fields[name] = str(environ[header])
            elif where is None and name in _IDENTIFYING and isinstance(payload.get(name), str):
                fields[name] = payload[name]
        if isinstance(payload.get("certificatePem"), str):
            with contextlib.suppress(ValueError):
                fields["certificateId"] = _certificate_id(payload["certificatePem"])
        return run, f"iot.{operation.name}", subject(**fields), method != "GET"

    # -- what it holds ---------------------------------------------------------------------------

    def of_run(self, run: str) -> list[Request]:
        with self._changed:
            return [r for r in self.requests if r.run == run]

    def aws_state(self, policies: Sequence[str], groups: Sequence[str]) -> AwsState:
        """What moto holds, read back through the IoT API."""
        iot = self.client()

        def pages(method: str, key: str, **kwargs: Any) -> Iterator[Any]:
            for page in iot.get_paginator(method).paginate(**kwargs):
                yield from page.get(key, [])

        def ids(arns: Iterable[str]) -> collections.Counter[str]:
            return collections.Counter(arn.rsplit("/", 1)[-1] for arn in arns)

        things = {t["thingName"]: t for t in pages("list_things", "things")}
        return AwsState(
            certificates=dict(
                collections.Counter(c["certificateId"] for c in pages("list_certificates", "certificates"))
            ),
            thing_principals={
                name: tuple(
                    sorted(ids(pages("list_thing_principals", "principals", thingName=name)).elements())
                )
                for name in things
            },
            thing_attributes={n: dict(t.get("attributes", {})) for n, t in things.items()},
            policy_targets={
                p: ids(pages("list_targets_for_policy", "targets", policyName=p)) for p in policies
            },
            group_things={
                g: collections.Counter(pages("list_things_in_thing_group", "things", thingGroupName=g))
                for g in groups
            },
        )


@dataclasses.dataclass(frozen=True)
class AwsState:
    """What the stand-in holds after the campaign."""

    certificates: dict[str, int]  # certificate id -> how many moto lists
    thing_principals: dict[str, tuple[str, ...]]  # thing -> certificate ids on it
    thing_attributes: dict[str, dict[str, str]]
    policy_targets: dict[str, collections.Counter[str]]  # policy -> certificate ids it is on
    group_things: dict[str, collections.Counter[str]]  # group -> thing names in it


# -- the campaign --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Device:
    certificate_id: str
    thing_name: str


@dataclasses.dataclass(frozen=True)
class Kill:
    """One SIGKILL and what the ledger held after it."""

    run: str
    run_ids: tuple[str, ...]  # the run ids the ledger gained with this run (one: its own)
    after: int  # mutating requests of the run the stand-in saw when it tripped
    mode: KillMode
    opened: bool  # the ledger opened for writing, as the next run opens it
    integrity: str  # SQLite's integrity_check ("ok")
    recorded_before: frozenset[CallKey]  # every step the ledger held when the run started
    recorded: frozenset[CallKey]  # every step the ledger held after the kill
    inflight: frozenset[CallKey]  # steps the run requested that the ledger did not hold after it
    complete: frozenset[str]  # certificate ids with every step recorded after the kill


@dataclasses.dataclass(frozen=True)
class Campaign:
    devices: tuple[Device, ...]
    policies: tuple[str, ...]
    groups: tuple[str, ...]
    concurrency: int
    seed: int
    kills: tuple[Kill, ...]
    runs: tuple[str, ...]  # every run's tag, in order; the last one finished
    requests: tuple[Request, ...]  # every request of every run
    final_code: int
    final_report: dict[str, Any]
    final_output: str
    records: dict[str, DeviceRecord]  # after the last run
    ledger_runs: tuple[RunRecord, ...]
    aws: AwsState
    seconds: float  # wall time of the whole campaign, from the first start to the last exit

    def requests_of(self, run: str) -> list[Request]:
        return [r for r in self.requests if r.run == run]

    def mutations(self) -> collections.Counter[CallKey]:
        return collections.Counter(r.key for r in self.requests if r.mutating)

    def device_of(self, request: Request) -> str | None:
        """The certificate id of the device a request is about (None: a run's own, e.g. the
        preflight's reads)."""
        fields = dict(pair.split("=", 1) for pair in request.subject.split())
        ids = {d.certificate_id for d in self.devices}
        for name in ("certificateId", "target", "principal"):
            if fields.get(name) in ids:
                return fields[name]
        things = {d.thing_name: d.certificate_id for d in self.devices}
        return things.get(fields.get("thingName", ""))


def subprocess_python() -> str:
    """The interpreter that runs the CLI (nox points it at the session's)."""
    import sys

    return os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)


def snapshot_ledger(path: Path) -> tuple[bool, str, list[DeviceRecord], list[RunRecord]]:
    """Open the ledger for writing as the next run would (and close it), run SQLite's
    integrity check, then read every record: (opened, integrity, devices, runs)."""
    from thingpress_core.ledger import SqliteLedger

    with SqliteLedger(path):
        pass
    connection = sqlite3.connect(path)
    try:
        integrity = str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()
    with SqliteLedger(path, read_only=True) as ledger:
        return True, integrity, list(ledger.devices()), ledger.runs()


def _kill_modes(rng: random.Random, kills: int) -> list[KillMode]:
    """Every mode at least once (when there are three kills or more), the rest at random."""
    modes = list(KILL_MODES[:kills]) + [rng.choice(KILL_MODES) for _ in range(kills - len(KILL_MODES))]
    rng.shuffle(modes)
    return modes


def _environment() -> dict[str, str]:
    """This environment without AWS or thingpress settings of its own, with fake keys and every
    IoT rate limit lifted (the crash test is about the ledger, not AWS's quotas)."""
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS

    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "THINGPRESS_"))}
    return {
        **kept,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "THINGPRESS_RESILIENCE__RATE_LIMITS": json.dumps(dict.fromkeys(DEFAULT_RATE_LIMITS, "Infinity")),
    }


def run_campaign(
    workdir: Path,
    *,
    devices: int,
    kills: int,
    seed: int,
    concurrency: int | None = None,
    policies: Sequence[str] = ("DevicePolicy",),
    groups: Sequence[str] = ("Fleet",),
    plan: Sequence[tuple[KillMode, int]] | None = None,
    timeout: float = 300.0,
    progress: Callable[[str], object] = lambda line: None,
) -> Campaign:
    """Import ``devices`` generated certificates, killed ``kills`` times, then to the end.

    The K of each kill is drawn (seeded) between 1 and 40 % of the steps the ledger does not
    hold yet, so every kill lands inside the run and the runs get further each time; its mode
    is drawn too, each mode at least once. ``plan`` gives (mode, K) of every kill instead.
    """
    import time

    from thingpress_core.certificates.generate import generate_ca, generate_device_certificates

    rng = random.Random(seed)
    width = concurrency if concurrency is not None else rng.randint(4, 8)
    certs = list(generate_device_certificates(devices, ca=generate_ca("crash"), cn_prefix="crash-"))
    fleet = tuple(Device(c.certificate_id, c.common_name or "") for c in certs)
    manifest = workdir / "fleet.pem"
    manifest.write_text("".join(c.pem for c in certs))
    ledger = workdir / "crash-ledger.db"
    steps_total = devices * len(device_steps(policies, groups))
    env = _environment()
    if plan is None:
        plan = [(mode, 0) for mode in _kill_modes(rng, kills)]
    done: list[Kill] = []
    tags: list[str] = []
    with IoTStandIn() as stand_in:
        stand_in.create_resources(policies=policies, groups=groups)
        command = [
            subprocess_python(), "-m", "thingpress_core.cli", "import", str(manifest),
            "--ledger", str(ledger), "--endpoint-url", stand_in.endpoint_url, "--region", "us-east-1",
            "--concurrency", str(width),
            *(a for p in policies for a in ("--policy", p)),
            *(a for g in groups for a in ("--thing-group", g)),
        ]  # fmt: skip
        recorded: frozenset[CallKey] = frozenset()
        started = time.perf_counter()
        known: set[str] = set()
        for number, (mode, given) in enumerate(plan):
            tag = f"crash-{number}"
            tags.append(tag)
            left = steps_total - len(recorded)
            after = given or rng.randint(1, max(1, left * 2 // 5))
            stand_in.arm(tag, after=after, mode=mode)
            log = workdir / f"{tag}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [*command, "--report", str(workdir / f"{tag}.json")],
                    env={**env, "AWS_SDK_UA_APP_ID": tag},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                try:
                    _wait_for_trip(stand_in, process, timeout, log)
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout)
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait(timeout)
                    stand_in.release()
            stand_in.settle(tag)
            opened, integrity, records, runs = snapshot_ledger(ledger)
            gained = tuple(r.run_id for r in runs if r.run_id not in known)
            known.update(gained)
            after_kill = recorded_calls(records)
            sent = {r.key for r in stand_in.of_run(tag) if r.mutating}
            wanted = len(device_steps(policies, groups))
            done.append(
                Kill(
                    run=tag,
                    run_ids=gained,
                    after=after,
                    mode=mode,
                    opened=opened,
                    integrity=integrity,
                    recorded_before=recorded,
                    recorded=after_kill,
                    inflight=frozenset(sent - after_kill),
                    complete=frozenset(r.certificate_id for r in records if len(r.steps) == wanted),
                )
            )
            progress(f"{tag}: {mode} kill after {after} mutating calls; {len(after_kill)}/{steps_total} held")
            recorded = after_kill
        tag = f"crash-{len(done)}"
        tags.append(tag)
        stand_in.arm(tag, after=None)
        report = workdir / f"{tag}.json"
        final = subprocess.run(
            [*command, "--report", str(report)],
            env={**env, "AWS_SDK_UA_APP_ID": tag},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - started
        stand_in.settle(tag)
        progress(f"{tag}: finished with exit code {final.returncode}")
        _, _, records, ledger_runs = snapshot_ledger(ledger)
        aws = stand_in.aws_state(policies, groups)
        requests = tuple(r for r in stand_in.requests if r.run in tags)
    return Campaign(
        devices=fleet,
        policies=tuple(policies),
        groups=tuple(groups),
        concurrency=width,
        seed=seed,
        kills=tuple(done),
        runs=tuple(tags),
        requests=requests,
        final_code=final.returncode,
        final_report=json.loads(report.read_text()) if report.exists() else {},
        final_output=(final.stdout + final.stderr)[-4000:],
        records={r.certificate_id: r for r in records},
        ledger_runs=tuple(ledger_runs),
        aws=aws,
        seconds=seconds,
    )


def _wait_for_trip(stand_in: IoTStandIn, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until the stand-in trips; fail if the import ends (or hangs) first."""
    import time

    deadline = time.monotonic() + timeout
    while not stand_in.tripped.wait(0.05):
        if process.poll() is not None:
            raise AssertionError(
                f"the import ended (exit {process.returncode}) before the kill point:\n"
                + log.read_text()[-3000:]
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"no kill point within {timeout} s:\n" + log.read_text()[-3000:])
