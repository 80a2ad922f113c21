"""Fixtures of the CLI tests. Every CLI test runs in its own empty working directory: `import`
keeps its default ledger there, so no test leaves a file in the checkout or finds another
test's ledger."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from thingpress_core.sandbox import Sandbox


class _Counter(http.server.BaseHTTPRequestHandler):
    """Answers every request with 400 and records its path."""

    requests: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(400)
        self.end_headers()

    do_GET = do_PUT = do_POST

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def stand_in() -> Iterator[tuple[str, list[str]]]:
    """An endpoint URL that counts every request it gets: a setup mistake must send none."""
    _Counter.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One embedded AWS stand-in per test module (tests reset it)."""
    with Sandbox() as box:
        yield box


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder
