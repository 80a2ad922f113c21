"""An embedded AWS stand-in (moto's server) for trying thingpress-core without AWS.

`Sandbox` starts moto's server on a free loopback port inside this process, with AWS-compatible
certificate ids (the SHA-256 of the DER, as AWS IoT computes them), and hands out a
`ClientFactory` whose clients talk to it. Nothing leaves the machine. Needs the ``sandbox``
extra: ``pip install 'thingpress-core[sandbox]'``.

Examples:
    ```python
    from thingpress_core.sandbox import Sandbox

    with Sandbox() as sandbox:
        sandbox.create_resources(
            policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor"
        )
        iot = sandbox.factory.iot()
        policy = iot.get_policy(policyName="DevicePolicy")
        assert policy["policyName"] == "DevicePolicy"
    ```
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from thingpress_core.clients import ClientFactory
from thingpress_core.errors import MissingExtraError
from thingpress_core.settings import ThingpressSettings

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = ["SANDBOX_ACCOUNT_ID", "SANDBOX_REGION", "Sandbox", "SandboxThing", "aws_fidelity"]

logger: logging.Logger = logging.getLogger(__name__)

SANDBOX_REGION = "us-east-1"
SANDBOX_ACCOUNT_ID = "123456789012"

#: A policy document that lets a device connect as its thing name and use its own topics.
DEVICE_POLICY_DOCUMENT: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": "arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*",
        },
    ],
}


class SandboxThing(BaseModel):
    """One thing as the sandbox holds it, with everything attached to it."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

    name: str
    thing_type: str | None
    certificate_ids: tuple[str, ...]
    policies: tuple[str, ...]
    thing_groups: tuple[str, ...]


class _Serialized:
    """A WSGI wrapper that lets one request at a time into moto.

    moto's in-memory backends are not thread-safe (concurrent IoT calls can fail with
    "OrderedDict mutated during iteration"), while an import runs 8 threads. Requests are
    still accepted concurrently; only moto's work, response body included, runs under the lock.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


_fidelity_lock = threading.Lock()
_fidelity_users = [0]  # how many aws_fidelity() blocks are open, in this process


@contextlib.contextmanager
def aws_fidelity() -> Generator[None]:
    """Make moto's IoT answer as AWS does where the difference matters to an import.

    moto silently replaces a thing when CreateThing names an existing thing with another
    configuration; AWS answers ``ResourceAlreadyExistsException`` (HTTP 409) and changes
    nothing, and answers a repeat with the same configuration like a creation. Inside this
    block moto does the same (process-wide: moto's backends are). `Sandbox` uses it while it
    runs; wrap ``moto.mock_aws()`` in it in your own tests.

    Examples:
        ```python
        import boto3
        from moto import mock_aws

        from thingpress_core.sandbox import aws_fidelity

        with mock_aws(), aws_fidelity():
            iot = boto3.client("iot", region_name="us-east-1")
            iot.create_thing(thingName="sensor-1")
            iot.create_thing(thingName="sensor-1")  # same configuration: no error
        ```
    """
    with _fidelity_lock:
        if _fidelity_users[0] == 0:
            _patch_create_thing(install=True)
        _fidelity_users[0] += 1
    try:
        yield
    finally:
        with _fidelity_lock:
            _fidelity_users[0] -= 1
            if _fidelity_users[0] == 0:
                _patch_create_thing(install=False)


_ORIGINAL_CREATE_THING: list[tuple[Any, Any]] = []  # (moto's IoTBackend, its own create_thing)


def _patch_create_thing(*, install: bool) -> None:
    if not install:
        if _ORIGINAL_CREATE_THING:
            backend, original_method = _ORIGINAL_CREATE_THING.pop()
            backend.create_thing = original_method  # restored without importing anything
        return
    try:
        from moto.iot.exceptions import ResourceAlreadyExistsException
        from moto.iot.models import IoTBackend
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            "aws_fidelity needs moto: pip install 'thingpress-core[sandbox]'", extra="sandbox"
        ) from exc
    original = IoTBackend.create_thing
    _ORIGINAL_CREATE_THING.append((IoTBackend, original))

    def create_thing(
        self: Any,
        thing_name: str,
        thing_type_name: str,
        attribute_payload: dict[str, Any] | None,
        *more: Any,  # moto 5.2 added billing_group_name; 5.1 has none
        **named: Any,
    ) -> Any:
        existing = next((t for t in self.things.values() if t.thing_name == thing_name), None)
        if existing is None:
            return original(self, thing_name, thing_type_name, attribute_payload, *more, **named)
        billing_group_name = named.get("billing_group_name", more[0] if more else None)
        wanted_type = thing_type_name or None
        had_type = existing.thing_type.thing_type_name if existing.thing_type is not None else None
        wanted_attributes = dict((attribute_payload or {}).get("attributes") or {})
        if (
            wanted_type == had_type
            and wanted_attributes == dict(existing.attributes)
            and (billing_group_name or None) == (getattr(existing, "billing_group_name", None) or None)
        ):
            return existing
        raise ResourceAlreadyExistsException(
            f"Thing {thing_name} already exists with a different configuration",
            existing.thing_name,
            existing.arn,
        )

    IoTBackend.create_thing = create_thing  # type: ignore[method-assign]  # moto has no hook for this


def _make_server(port: int) -> BaseWSGIServer:
    try:
        from moto.core.config import default_user_config
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            "the sandbox needs moto's server: pip install 'thingpress-core[sandbox]'", extra="sandbox"
        ) from exc
    # AWS computes a certificate id as the SHA-256 of the DER; moto does so only when told.
    default_user_config["iot"] = {"use_valid_cert": True}

    class QuietHandler(WSGIRequestHandler):
        """No access-log line per request: an import makes thousands."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    app = _Serialized(DomainDispatcherApplication(create_backend_app))
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)


class Sandbox:
    """moto's threaded server on 127.0.0.1, started on enter and stopped on exit.

    While it runs, moto answers a conflicting CreateThing as AWS does (see `aws_fidelity`).
    """

    def __init__(self, *, port: int = 0, settings: ThingpressSettings | None = None) -> None:
        self._port = port
        self._base_settings = settings
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._factory: ClientFactory | None = None
        self._fidelity: contextlib.ExitStack | None = None
        self.endpoint_url: str | None = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and build the factory (idempotent)."""
        if self._server is not None:
            return
        try:
            self._start()
        except BaseException:
            self.stop()  # nothing half-started is left behind: server, thread, moto patch
            raise

    def _start(self) -> None:
        self._fidelity = contextlib.ExitStack()
        self._fidelity.enter_context(aws_fidelity())
        server = _make_server(self._port)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="thingpress-sandbox", daemon=True)
        self._thread.start()
        port = int(server.server_address[1])
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.reset()
        import boto3

        base = self._base_settings.model_dump() if self._base_settings else {}
        base.update(region=SANDBOX_REGION, endpoint_url=self.endpoint_url, account_id=SANDBOX_ACCOUNT_ID)
        base.pop("profile", None)
        session = boto3.Session(
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",  # moto accepts any key; nothing leaves the machine
            region_name=SANDBOX_REGION,
        )
        self._factory = ClientFactory(ThingpressSettings(**base), session=session)
        logger.info("sandbox started", extra={"endpoint_url": self.endpoint_url})

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
            self._thread = None
            logger.info("sandbox stopped", extra={"endpoint_url": self.endpoint_url})
        if self._fidelity is not None:
            self._fidelity.close()
            self._fidelity = None

    def reset(self) -> None:
        """Forget every resource: moto keeps its state per process, so a new sandbox starts empty."""
        if self.endpoint_url is None:
            raise RuntimeError("the sandbox is not started")
        import urllib.request

        url = f"{self.endpoint_url}/moto-api/reset"  # our own loopback server, http only
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()

    @property
    def factory(self) -> ClientFactory:
        """A `ClientFactory` whose clients talk to the sandbox."""
        if self._factory is None:
            raise RuntimeError("the sandbox is not started; use it as a context manager")
        return self._factory

    def create_resources(
        self,
        *,
        policies: Iterable[str] = (),
        thing_groups: Iterable[str] = (),
        thing_type: str | None = None,
    ) -> None:
        """Create the policies, thing groups and thing type an import will attach."""
        iot = self.factory.iot()
        document = json.dumps(DEVICE_POLICY_DOCUMENT)
        for name in policies:
            iot.create_policy(policyName=name, policyDocument=document)
        for name in thing_groups:
            iot.create_thing_group(thingGroupName=name)
        if thing_type:
            iot.create_thing_type(thingTypeName=thing_type)

    def things(self, *, limit: int | None = None) -> list[SandboxThing]:
        """What the sandbox holds: each thing with its certificates, policies and groups."""
        iot = self.factory.iot()
        result: list[SandboxThing] = []
        paginator = iot.get_paginator("list_things")
        for page in paginator.paginate():
            for thing in page.get("things", []):
                name = thing.get("thingName", "")
                principals = iot.list_thing_principals(thingName=name).get("principals", [])
                cert_ids = tuple(p.rsplit("/", 1)[-1] for p in principals)
                policies = sorted(
                    {
                        p.get("policyName", "")
                        for arn in principals
                        for p in iot.list_attached_policies(target=arn).get("policies", [])
                    }
                )
                groups = sorted(
                    g.get("groupName", "")
                    for g in iot.list_thing_groups_for_thing(thingName=name).get("thingGroups", [])
                )
                result.append(
                    SandboxThing(
                        name=name,
                        thing_type=thing.get("thingTypeName"),
                        certificate_ids=cert_ids,
                        policies=tuple(policies),
                        thing_groups=tuple(groups),
                    )
                )
                if limit is not None and len(result) >= limit:
                    return result
        return result

    def counts(self) -> dict[str, int]:
        """How many things and certificates the sandbox holds."""
        iot = self.factory.iot()
        things = sum(len(p.get("things", [])) for p in iot.get_paginator("list_things").paginate())
        certificates = sum(
            len(p.get("certificates", [])) for p in iot.get_paginator("list_certificates").paginate()
        )
        return {"things": things, "certificates": certificates}
