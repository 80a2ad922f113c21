"""Refusals the importer makes itself: a thing name another certificate holds, a certificate
already on another thing. Each becomes a failed outcome with its ``reason``; none leaves the
importer."""

from __future__ import annotations

from thingpress_core.errors import ThingpressError

__all__ = ["Refusal", "collision"]


class Refusal(ThingpressError):
    """A refusal found by the importer itself; ``reason`` becomes the outcome's reason.

    Raised and caught inside the importer's attempt: it never leaves the importer (it becomes
    a failed outcome), so it is not part of the public error tree.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        other_certificate_id: str | None = None,
        other_things: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.other_certificate_id = other_certificate_id
        self.other_things = other_things


def collision(name: str, other: str, *, source: str = "AWS") -> Refusal:
    """The refusal of a thing name another certificate holds (``source`` says who said so)."""
    return Refusal(
        f"thing {name!r} belongs to certificate {other} (says {source}): two certificates map to "
        "one thing name (choose another naming, e.g. certificate_id, or rename one device)",
        reason="name_collision",
        other_certificate_id=other,
    )
