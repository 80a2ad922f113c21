"""A child process for the SQLite ledger's process tests (run as a script, never collected).

``hold PATH N``: open PATH for writing, save devices 0..N-1, print ``ready``, then wait for
stdin to close and close the ledger. ``save PATH``: open PATH for writing and save device
after device, printing each one's number once its save returned, until it is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sqlite_support import imported

from thingpress_core.ledger import SqliteLedger


def main(mode: str, path: str, count: str = "0") -> int:
    ledger = SqliteLedger(path)
    if mode == "hold":
        for n in range(int(count)):
            ledger.save(imported(n))
        print("ready", flush=True)
        sys.stdin.read()  # until the test closes our stdin
        ledger.close()
        return 0
    n = 0
    while True:  # killed by the test
        ledger.save(imported(n))
        print(n, flush=True)
        n += 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
