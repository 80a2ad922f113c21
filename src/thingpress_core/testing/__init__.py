"""Fault injection for boto3 clients: throttling, 5xx, dropped connections, lost answers, partial batches.

`FaultInjector` hooks a handler onto a client's ``before-send`` event (registered first, so it
runs before moto or the real HTTP send). The handler either lets the request through, or
answers it with a forged HTTP response / raises a connection error, or lets the service act
on it and loses the answer. Everything after that is botocore's own machinery: response
parsing, error classification and the retry loop. So a throttle injected twice on a client
configured for three attempts succeeds on the third, and one injected five times surfaces as a
[`ThrottledError`][thingpress_core.errors.ThrottledError] from the facades, exactly as it would against AWS.

Use it in your own tests (against moto or the sandbox):

```python
from thingpress_core import ClientFactory, ThingpressSettings
from thingpress_core.testing import FaultInjector

factory = ClientFactory(ThingpressSettings(total_max_attempts=3))
with FaultInjector(factory, seed=7, fast_retries=True) as faults:
    faults.throttle("iot.CreateThing", times=2)  # then the service answers
    faults.server_error("iot.DescribeThing", rate=0.1)
    faults.lost_response("iot.AttachThingPrincipal", times=1)
    factory.iot().create_thing(thingName="sensor-1")  # succeeds on attempt 3
assert faults.count("iot.CreateThing") == 2
```

Triggers (per rule): ``times=N`` fires on the next N matching requests, ``rate=p`` fires on
each with probability ``p`` from a generator seeded by ``seed``, neither fires on every
request; ``after=K`` lets the first K matching requests through first. `FaultInjector.quota`
throttles by token bucket, e.g. at the default AWS IoT quotas (preset ``"aws-iot-defaults"``)
times a scale factor. Every request counted here is one HTTP attempt: botocore's retries are
attempts too.

This package imports botocore only when an injector is attached; it is meant for tests and is
not imported by ``import thingpress_core``.
"""

from __future__ import annotations

from thingpress_core._public import publish
from thingpress_core.testing._injector import FaultInjector
from thingpress_core.testing._rules import QUOTA_PRESETS, ConnectionErrorKind, FaultKind, Injection

__all__ = [
    "QUOTA_PRESETS",
    "ConnectionErrorKind",
    "FaultInjector",
    "FaultKind",
    "Injection",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
