"""How a fault injector hooks onto a boto3 client: botocore events, fast retries, relayed sends.

Everything here touches botocore's client machinery; the injector itself only decides what
happens to each request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import ConfigurationError

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse


def is_client(obj: object) -> bool:
    meta = getattr(obj, "meta", None)
    return meta is not None and hasattr(meta, "events") and hasattr(meta, "service_model")


@dataclasses.dataclass
class Hooks:
    """The handlers registered on one client, and how to take them off again."""

    client: Any
    registered: list[tuple[str, Callable[..., Any]]]
    undo_retry: Callable[[], None] | None = None

    def remove(self) -> None:
        events = self.client.meta.events
        for event, handler in self.registered:
            events.unregister(event, handler)
        if self.undo_retry is not None:
            self.undo_retry()


def hook(
    client: Any,
    *,
    before_send: Callable[..., Any],
    after_call: Callable[..., Any],
    fast_retries: bool,
    record_delay: Callable[[float], None],
) -> Hooks:
    """Register ``before_send`` first (before moto's handler and the real send) and ``after_call``.

    With ``fast_retries``, botocore's retry backoff for this client becomes zero.
    """
    event_service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    registered = [
        (f"before-send.{event_service}", before_send),
        (f"after-call.{event_service}", after_call),
    ]
    events.register_first(*registered[0])
    events.register(*registered[1])
    hooks = Hooks(client=client, registered=registered)
    if fast_retries:
        hooks.undo_retry = _no_retry_delay(client, record_delay)
    return hooks


def relay(client: Any, request: AWSPreparedRequest, event_name: str) -> AWSResponse:
    """Send ``request`` the way botocore was about to, and return the service's answer.

    botocore emits ``before-send`` and sends over HTTP itself only when no handler answered.
    A ``before-send`` handler that lets a request reach the service, but keeps its answer
    from the caller, has to do both itself: emit the event again (the caller must step aside
    while it does; moto's in-process mock answers here) and, when nothing answered, send
    over the client's HTTP session (moto's server, or AWS). Handlers registered before the
    caller's on the same event run a second time.
    """
    from botocore.hooks import first_non_none_response

    answer: AWSResponse | None = first_non_none_response(client.meta.events.emit(event_name, request=request))
    response: AWSResponse = answer if answer is not None else client._endpoint.http_session.send(request)
    _ = response.content  # read the whole body, so a pooled connection is released
    return response


class _NoDelayPolicy:
    """Wraps botocore's standard RetryPolicy: same decisions, zero backoff."""

    def __init__(self, policy: Any, record: Callable[[float], None]) -> None:
        self._policy = policy
        self._record = record

    def should_retry(self, context: Any) -> bool:
        return bool(self._policy.should_retry(context))

    def compute_retry_delay(self, context: Any) -> float:
        self._record(float(self._policy.compute_retry_delay(context)))
        return 0.0


def _no_retry_delay(client: Any, record: Callable[[float], None]) -> Callable[[], None]:
    """Zero botocore's retry backoff for this one client; returns the undo function.

    botocore registers its retry handler on ``needs-retry.<service>`` under the unique id
    ``retry-config-<service>``. In standard mode that is ``RetryHandler.needs_retry`` whose
    policy computes the delay; in legacy mode the handler's ``_action`` does. Only that
    client's handler object is changed.
    """
    event_service = client.meta.service_model.service_id.hyphenize()
    emitter = client.meta.events
    inner = getattr(emitter, "_emitter", emitter)
    entry = getattr(inner, "_unique_id_handlers", {}).get(f"retry-config-{event_service}")
    handler = entry.get("handler") if isinstance(entry, dict) else None
    owner = getattr(handler, "__self__", handler)
    if owner is not None and hasattr(owner, "_retry_policy"):
        original_policy = owner._retry_policy
        owner._retry_policy = _NoDelayPolicy(original_policy, record)

        def undo_standard() -> None:
            owner._retry_policy = original_policy

        return undo_standard
    if owner is not None and hasattr(owner, "_action"):
        original_action = owner._action

        def no_delay(**kwargs: Any) -> float:
            record(float(original_action(**kwargs)))
            return 0.0

        owner._action = no_delay

        def undo_legacy() -> None:
            owner._action = original_action

        return undo_legacy
    raise ConfigurationError(
        "fast_retries: this botocore version does not expose the retry handler of the "
        f"{event_service} client; patch botocore.endpoint.time.sleep in your test instead",
        variable="fast_retries",
    )
