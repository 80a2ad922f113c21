"""`pages`: every page of an AWS listing, each page one call on the call path.

AWS pages its listings with a token: the answer carries the token of the next page, the next
request sends it back, and the last page carries none. Each page is its own call, so each is
rate-limited, guarded by the breaker, mapped and counted like any other call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thingpress_core.services._path import CallPath

__all__ = ["pages"]


def pages(
    path: CallPath,
    operation: str,
    method: Callable[..., Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    token: tuple[str, str] = ("nextToken", "nextToken"),
    certificate_id: str | None = None,
    thing_name: str | None = None,
) -> Iterator[Mapping[str, Any]]:
    """Each page of ``operation``, fetched when the iteration reaches it.

    ``token`` names the request field that asks for the next page and the answer field that
    carries it (``("marker", "nextMarker")`` for AWS IoT's policy listings). Nothing is called
    until the first page is asked for; an error is raised from the page that failed.
    """
    sent, received = token
    page_params = dict(params)
    while True:
        page = path.call(operation, method, page_params, certificate_id=certificate_id, thing_name=thing_name)
        yield page
        next_token = page.get(received)
        if not next_token:
            return
        page_params[sent] = next_token
