"""`PreflightGate`: the IoT facade behind a preflight that runs when the first device needs it.

With a ledger, `import_all` does not check the account before it begins: a re-run over a
finished ledger then makes no call at all. The check runs instead when the first device needs
AWS, on that device's worker thread. Its failure belongs to the run, not to that device, so
the gate raises `RunHalted` (never turned into a certificate's outcome) and `import_all`
raises the error inside it, exactly as the eager preflight would have.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thingpress_core.importer._protocol import IoTOperations

__all__ = ["PreflightGate", "RunHalted"]


class RunHalted(Exception):
    """The run's setup (preflight, group policies) failed on a worker thread: ``error`` ends
    the run. Internal to the importer: `import_all` raises ``error`` itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class PreflightGate:
    """The IoT facade behind a setup that runs on the first call for it, once, for every
    thread. A setup that failed, for whatever reason (missing resources, access denied, still
    throttled after botocore's retries), fails every later call the same way: the eager
    preflight would have ended the run with that error too."""

    def __init__(self, check: Callable[[], None], iot: Callable[[], IoTOperations]) -> None:
        self._check = check
        self._iot = iot
        self._lock = threading.Lock()
        self._passed = False
        self._error: Exception | None = None

    def __call__(self) -> IoTOperations:
        if not self._passed:
            with self._lock:
                if self._error is not None:
                    raise RunHalted(self._error)
                if not self._passed:
                    try:
                        self._check()
                    except Exception as exc:
                        self._error = exc
                        raise RunHalted(exc) from exc
                    self._passed = True
        return self._iot()
