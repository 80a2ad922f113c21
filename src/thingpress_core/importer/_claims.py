"""The thing names certificates claimed during one `import_all`, in a fixed amount of memory.

Two certificates that map to one thing name must never share it. AWS refuses a CreateThing that
names an existing thing with another configuration (the owner attribute differs), and the
importer relies on that refusal across runs. Within one run the importer knows more than AWS
tells it, and does not have to trust the refusal (a stand-in such as moto replaces the thing
instead): a name a certificate of this run has claimed is remembered here, and a later
certificate with that name reads the thing before it registers anything.

A Bloom filter holds the names: 2 MiB whatever the input's size (a million names give about
one false "seen" in 500, which costs one DescribeThing and nothing else), and never a false
"not seen".
"""

from __future__ import annotations

import hashlib

__all__ = ["ClaimedNames"]

_BITS = 1 << 24  # 2 MiB
_HASHES = 4  # 24-bit slices of one SHA-256


class ClaimedNames:
    """A set of thing names that may answer "maybe" for a name never added (never the reverse)."""

    __slots__ = ("_bits", "count")

    def __init__(self) -> None:
        self._bits = bytearray()  # allocated with the first name: a run that claims none costs nothing
        self.count = 0

    @staticmethod
    def _positions(name: str) -> tuple[int, ...]:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
        return tuple(int.from_bytes(digest[3 * i : 3 * i + 3], "big") for i in range(_HASHES))

    def add(self, name: str) -> None:
        """Remember that a certificate of this run holds thing ``name``."""
        if not self._bits:
            self._bits = bytearray(_BITS // 8)
        for position in self._positions(name):
            self._bits[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or self.count == 0:
            return False
        return all(self._bits[p >> 3] & (1 << (p & 7)) for p in self._positions(name))
