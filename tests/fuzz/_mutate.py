"""Deterministic, structured DER mutations of X.509 certificates for the fuzz tests.

A certificate is parsed into a tree of TLV nodes, one or more mutation operators change the
tree (a field's value, a tag, a length header, whole elements), and the tree is encoded again
with correct lengths everywhere except where an operator broke one on purpose. So most
mutants get past the outer framing and reach the deep parts of cryptography's parser: names,
times, extensions, general names, public keys.

Everything is a function of the seed: `mutants(count, seed=...)` gives the same bytes in the
same order on every machine, so a failing case number reproduces with `mutant(case)`.
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

__all__ = [
    "DEFAULT_SEED",
    "MUTATED_DER",
    "SCALE",
    "SEED",
    "STRUCTURED",
    "apply",
    "Mutant",
    "Node",
    "decode",
    "encode",
    "encodings",
    "extension",
    "extension_list",
    "mutant",
    "mutants",
    "pem",
    "oid",
    "seeds",
    "set_extensions",
    "tbs_field",
]

DEFAULT_SEED = 20_250_611
# The environment is read at import: the suite's autouse fixture clears THINGPRESS_* for tests.
SEED = int(os.environ.get("THINGPRESS_FUZZ_SEED", str(DEFAULT_SEED)))
"""The corpus seed of this run; CI uses the default, so a failing case number reproduces anywhere."""
SCALE = float(os.environ.get("THINGPRESS_FUZZ_SCALE", "1"))
"""Multiplies the corpus sizes (and hypothesis examples) for a longer run on a developer machine."""
DATA = Path(__file__).resolve().parent.parent / "data" / "certs"

_SEQ = 0x30
_SET = 0x31
_INTEGER = 0x02
_OCTET = 0x04
_OID = 0x06
_BOOL = 0x01
_UTC = 0x17
_GEN = 0x18


@dataclass
class Node:
    """One TLV: ``children`` is None for a primitive (or unparseable) element."""

    tag: int
    content: bytes = b""
    children: list[Node] | None = None
    #: a length header to write instead of the correct one (set by the length operators)
    header: bytes | None = field(default=None, compare=False)

    def copy(self) -> Node:
        kids = None if self.children is None else [c.copy() for c in self.children]
        return Node(self.tag, self.content, kids, self.header)

    def walk(self) -> Iterator[tuple[Node | None, Node]]:
        """(parent, node) for this node and every descendant, depth first."""
        stack: list[tuple[Node | None, Node]] = [(None, self)]
        while stack:
            parent, node = stack.pop()
            yield parent, node
            for child in reversed(node.children or []):
                stack.append((node, child))


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(node: Node) -> bytes:
    content = node.content if node.children is None else b"".join(encode(c) for c in node.children)
    header = node.header if node.header is not None else _length(len(content))
    return bytes([node.tag]) + header + content


def _read(data: bytes, offset: int) -> tuple[int, int, int]:
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise ValueError("length form")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated")
    return tag, start, start + length


def decode(data: bytes) -> Node:
    """The TLV tree of DER ``data`` (constructed elements are split into children)."""
    tag, start, end = _read(data, 0)
    return _node(data, tag, start, end)


def _node(data: bytes, tag: int, start: int, end: int) -> Node:
    content = data[start:end]
    # constructed universal types and context-specific [n] constructed; OCTET STRINGs that
    # hold DER (extension values) are opened too, so their insides can be mutated
    if tag & 0x20 or tag == _OCTET:
        kids: list[Node] = []
        offset = start
        try:
            while offset < end:
                ctag, cstart, cend = _read(data, offset)
                if cend > end:
                    raise ValueError("child overruns parent")
                kids.append(_node(data, ctag, cstart, cend))
                offset = cend
        except (ValueError, IndexError):
            return Node(tag, content)
        if tag == _OCTET and not kids:
            return Node(tag, content)
        return Node(tag, content, kids)
    return Node(tag, content)


# -- seeds -------------------------------------------------------------------------------


def _pem_ders(path: Path) -> list[bytes]:
    text = path.read_text()
    out = []
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = block.split("-----END CERTIFICATE-----")[0]
        out.append(base64.b64decode("".join(body.split())))
    return out


@cache
def seeds() -> tuple[bytes, ...]:
    """Real vendor certificates (tests/data/certs) and generated ones with varied extensions."""
    real = [der for p in sorted(DATA.glob("*.pem")) for der in _pem_ders(p)]
    return tuple(real + list(_generated()))


def _generated() -> Iterator[bytes]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    from thingpress_core.certificates.generate import generate_ca, generate_device_certificates

    ca = generate_ca("fuzz seed CA")
    yield ca.cert.der
    yield from (c.der for c in generate_device_certificates(2, ca=ca))
    yield from (c.der for c in generate_device_certificates(1, ca=ca, key_type="rsa"))
    # one certificate with many extensions and GeneralName kinds, so every parser is reached
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fuzz"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "0042"),
            x509.NameAttribute(NameOID.COMMON_NAME, "rich.example"),
        ]
    )
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rich = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.x509().subject)
        .public_key(key.public_key())
        .serial_number(2**150 + 7)
        .not_valid_before(start)
        .not_valid_after(dt.datetime(2060, 1, 1, tzinfo=dt.timezone.utc))  # GeneralizedTime
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("rich.example"),
                    x509.RFC822Name("ops@rich.example"),
                    x509.UniformResourceIdentifier("https://rich.example/d"),
                    x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
                    x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
                    x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
                    x509.DirectoryName(name),
                    x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.1"), b"\x0c\x03abc"),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),  # type: ignore[arg-type]  # EC key
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier("http://c.example")], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://o.example"),
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    yield rich.public_bytes(serialization.Encoding.DER)
    # version 1 (no extensions), Ed25519 and an RSA key, so the absent-field paths are reached
    ed = ed25519.Ed25519PrivateKey.generate()
    v1 = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ed.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .sign(ed, None)
    )
    v1_tree = decode(v1.public_bytes(serialization.Encoding.DER))
    assert v1_tree.children is not None
    assert v1_tree.children[0].children is not None
    tbs = v1_tree.children[0].children
    del tbs[0]  # drop the explicit version: a v1 certificate (the signature no longer matches)
    yield encode(v1_tree)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    yield (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(3)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(rsa_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


# -- locating fields -------------------------------------------------------------------------


def _tbs(root: Node) -> list[Node]:
    if root.children and root.children[0].children is not None:
        return root.children[0].children
    return []


def tbs_field(root: Node, name: str) -> Node | None:
    """A TBSCertificate field by name, allowing for the optional [0] version."""
    tbs = _tbs(root)
    offset = 1 if tbs and tbs[0].tag == 0xA0 else 0
    order = ["serial", "signature", "issuer", "validity", "subject", "spki"]
    if name == "version":
        return tbs[0] if offset else None
    if name == "extensions":
        return next((n for n in tbs if n.tag == 0xA3), None)
    i = order.index(name) + offset
    return tbs[i] if i < len(tbs) else None


def extension_list(root: Node) -> list[Node] | None:
    ext = tbs_field(root, "extensions")
    if ext is None or not ext.children or ext.children[0].children is None:
        return None
    return ext.children[0].children


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for value in parts[2:]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def extension(dotted: str, value: Node | bytes, *, critical: bool = False) -> Node:
    """An Extension SEQUENCE: OID, the critical flag when set, the value in an OCTET STRING."""
    inner = encode(value) if isinstance(value, Node) else value
    kids = [Node(_OID, oid(dotted))]
    if critical:
        kids.append(Node(_BOOL, b"\xff"))
    kids.append(Node(_OCTET, inner))
    return Node(_SEQ, children=kids)


def set_extensions(root: Node, extensions: list[Node]) -> None:
    tbs = _tbs(root)
    ext = tbs_field(root, "extensions")
    if ext is None:
        if not tbs:
            return
        ext = Node(0xA3, children=[Node(_SEQ, children=[])])
        tbs.append(ext)
        if tbs[0].tag != 0xA0:  # extensions need v3
            tbs.insert(0, Node(0xA0, children=[Node(_INTEGER, b"\x02")]))
    ext.children = [Node(_SEQ, children=extensions)]


# -- operators -------------------------------------------------------------------------------

Rng = random.Random
Op = Callable[[Node, Rng], None]

_TAGS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x14, 0x16, 0x17, 0x18, 0x1C, 0x1E, 0x1F]
_TAGS += [0x30, 0x31, 0x80, 0x81, 0x82, 0x86, 0x87, 0x88, 0xA0, 0xA1, 0xA3, 0xA4, 0xA8, 0xBF, 0xFF]


def _pick(root: Node, rng: Rng, *, constructed: bool = False) -> tuple[Node | None, Node]:
    nodes = [(p, n) for p, n in root.walk() if not constructed or n.children is not None]
    if not nodes:  # an earlier operator flattened the tree: work on a detached node, no effect
        return None, Node(_SEQ, children=[])
    return nodes[rng.randrange(len(nodes))]


def op_retag(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng)
    node.tag = rng.choice(_TAGS) if rng.random() < 0.8 else rng.randrange(256)


def op_relength(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng)
    size = len(encode(node)) - 2  # about right; exactness does not matter here
    node.header = rng.choice(
        [
            _length(max(size + 1, 0)),
            _length(max(size - 1, 0)),
            b"\x00",
            b"\x80",  # indefinite length: not DER
            b"\x84\xff\xff\xff\xff",  # 4 GiB
            b"\x85\x01\x00\x00\x00\x00",  # a 5-byte length
            b"\x88" + b"\xff" * 8,
            b"\x81\x05",  # a long form for a short length: not minimal
            b"\x82\x00" + bytes([min(size, 255) & 0x7F]),
            b"\xff",
        ]
    )


def op_truncate_node(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng)
    data = encode(node)
    cut = data[: rng.randrange(len(data))]
    node.tag, node.children, node.header = (cut[0] if cut else 0x05), None, b""
    node.content = cut[1:]


def op_drop(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng, constructed=True)
    if node.children:
        del node.children[rng.randrange(len(node.children))]


def op_duplicate(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng, constructed=True)
    if node.children:
        i = rng.randrange(len(node.children))
        node.children.insert(i, node.children[i].copy())


def op_splice(root: Node, rng: Rng) -> None:
    donor = decode(rng.choice(seeds()))
    _, part = _pick(donor, rng)
    _, node = _pick(root, rng, constructed=True)
    assert node.children is not None
    position = rng.randrange(len(node.children) + 1)
    if rng.random() < 0.5 and position < len(node.children):
        node.children[position] = part.copy()
    else:
        node.children.insert(position, part.copy())


def op_swap_siblings(root: Node, rng: Rng) -> None:
    _, node = _pick(root, rng, constructed=True)
    if node.children and len(node.children) > 1:
        i, j = rng.sample(range(len(node.children)), 2)
        node.children[i], node.children[j] = node.children[j], node.children[i]


_VERSIONS = [b"\x05", b"\xff", b"\x00", b"\x01", b"\x03", b"\x7f", b"\x01" + b"\x00" * 20, b"", b"\x00\x02"]


def op_version(root: Node, rng: Rng) -> None:
    tbs = _tbs(root)
    if not tbs:
        return
    value = Node(_INTEGER, rng.choice(_VERSIONS))
    if rng.random() < 0.15:
        value = Node(rng.choice([_OCTET, _BOOL, 0x05]), b"\x02")
    if tbs[0].tag == 0xA0:
        tbs[0].children = [value]
    else:
        tbs.insert(0, Node(0xA0, children=[value]))


_SERIALS = [b"", b"\x00", b"\x80", b"\xff\x01", b"\x00\x01", b"\x7f" + b"\xff" * 20, b"\x01" * 64]


def op_serial(root: Node, rng: Rng) -> None:
    serial = tbs_field(root, "serial")
    if serial is None:
        return
    serial.children = None
    if rng.random() < 0.3:
        serial.content = bytes([rng.randrange(1, 128)]) + rng.randbytes(rng.randrange(21, 2000))
    else:
        serial.content = rng.choice(_SERIALS)


_TIMES = [
    (_UTC, b"991332000000Z"),
    (_UTC, b"000000000000Z"),
    (_UTC, b"9912312359Z"),
    (_UTC, b"991231235959+0100"),
    (_UTC, b"991231235959"),
    (_UTC, b"491231235960Z"),
    (_UTC, b""),
    (_UTC, b"99123123595\xffZ"),
    (_GEN, b"00000101000000Z"),
    (_GEN, b"99991231235959Z"),
    (_GEN, b"99991231235960Z"),
    (_GEN, b"20241231235959.123Z"),
    (_GEN, b"2024123123595Z"),
    (_GEN, b"abcdefghijklmnZ"),
    (_GEN, b"19500101000000Z"),
    (_GEN, b"20240229000000Z"),
    (_GEN, b"20230229000000Z"),
    (_GEN, b"-0010101000000Z"),
    (0x05, b""),
    (_INTEGER, b"\x01"),
]


def op_time(root: Node, rng: Rng) -> None:
    validity = tbs_field(root, "validity")
    if validity is None or not validity.children:
        return
    slot = validity.children[rng.randrange(len(validity.children))]
    slot.tag, slot.content = rng.choice(_TIMES)
    slot.children = None


# (tag, content) of string values a Name attribute may hold, most of them broken
_STRINGS = [
    (0x1E, b"\x00a\x00"),  # BMPString of odd length
    (0x1E, b"\xd8\x00\x00a"),  # BMPString with a lone surrogate
    (0x1C, b"\x00\x00\x00a\x00"),  # UniversalString not a multiple of 4
    (0x1C, b"\x00\x11\x00\x00"),  # UniversalString beyond U+10FFFF
    (0x0C, b"\xff\xfe"),  # UTF8String that is not UTF-8
    (0x0C, b""),  # empty
    (0x0C, b"x" * 300),  # over the 64-character bound
    (0x13, b"eui48_0004A3"),  # PrintableString with '_' (as in Microchip certificates)
    (0x16, b"\x80\x81"),  # IA5String outside ASCII
    (0x14, b"t61 \xe9"),  # T61String
    (0x12, b"12ab"),  # NumericString with letters
    (0x1A, b"visible"),
    (0x03, b"\x07\x80"),  # BIT STRING with unused bits
    (0x03, b""),
    (0x04, b"octets"),
    (0x02, b"\x01"),
    (0x01, b"\xff"),
    (0x05, b""),
    (0x1F, b"\x1f"),
    (0x30, b""),
]


def _attributes(name: Node) -> list[Node]:
    out = []
    for rdn in name.children or []:
        for atv in rdn.children or []:
            if atv.children and len(atv.children) >= 2:
                out.append(atv)
    return out


def op_name(root: Node, rng: Rng) -> None:
    name = tbs_field(root, rng.choice(["subject", "issuer"]))
    if name is None or name.children is None:
        return
    choice = rng.random()
    atvs = _attributes(name)
    if choice < 0.6 and atvs:
        atv = rng.choice(atvs)
        assert atv.children is not None
        tag, content = rng.choice(_STRINGS)
        atv.children[1] = Node(tag, content)
        if rng.random() < 0.3:  # as the CN, the country or an unknown attribute
            atv.children[0] = Node(_OID, oid(rng.choice(["2.5.4.3", "2.5.4.6", "2.5.4.5", "1.2.3.99"])))
    elif choice < 0.75:
        name.children.append(Node(_SET, children=[]))  # an empty RDN
    elif choice < 0.9 and atvs:
        filled = [r for r in name.children if r.children]
        if filled:
            rdn = rng.choice(filled)
            assert rdn.children is not None
            rdn.children.append(rdn.children[0].copy())  # the same attribute twice in one RDN
    else:
        atv = Node(_SEQ, children=[Node(_OID, oid("2.5.4.6")), Node(0x13, b"DEU")])
        name.children.append(Node(_SET, children=[atv]))  # a three-letter country


def _general_name(rng: Rng) -> Node:
    kind = rng.randrange(14)
    if kind == 0:
        return Node(0xA0, children=[Node(_OID, oid("1.3.6.1.4.1.1")), Node(0x0C, b"no [0] wrapper")])
    if kind == 1:
        return Node(0x81, b"\xff@x")  # rfc822Name that is not IA5
    if kind == 2:
        return Node(0x82, b"\xe9.example")  # dNSName with a non-ASCII byte
    if kind == 3:
        return Node(0xA3, children=[Node(_SEQ, children=[])])  # x400Address: unsupported
    if kind == 4:
        return Node(0xA4, b"\x30\x03\x31\x01")  # directoryName that is not a Name
    if kind == 5:
        return Node(0xA5, children=[Node(0x80, b"party")])  # ediPartyName: unsupported
    if kind == 6:
        return Node(0x86, b"ht\x00tp://x")
    if kind == 7:
        return Node(0x87, rng.choice([b"\x01\x02\x03", b"\x01" * 5, b"\x01" * 32, b"\x01" * 33, b""]))
    if kind == 8:
        return Node(0x88, rng.choice([b"", b"\x80", b"\x2a\x80"]))  # registeredID, bad OID
    if kind == 9:
        return Node(0x89, b"nine")  # no such GeneralName
    if kind == 10:
        return Node(0x13, b"eui48_000000000000")  # a bare PrintableString
    if kind == 11:
        return Node(0xA4, children=[Node(_SEQ, children=[Node(_SET, children=[])])])
    if kind == 12:
        return Node(0xA0, b"")
    return Node(rng.randrange(256), rng.randbytes(rng.randrange(8)))


_GN_EXTENSIONS = ["2.5.29.17", "2.5.29.18"]  # subjectAltName, issuerAltName


def op_general_name(root: Node, rng: Rng) -> None:
    names = Node(_SEQ, children=[_general_name(rng) for _ in range(rng.randrange(1, 4))])
    extensions = list(extension_list(root) or [])
    if rng.random() < 0.2:
        # authorityCertIssuer inside AuthorityKeyIdentifier
        value = Node(_SEQ, children=[Node(0x80, b"\x01" * 20), Node(0xA1, children=names.children)])
        extensions.append(extension("2.5.29.35", value))
    else:
        extensions.append(extension(rng.choice(_GN_EXTENSIONS), names, critical=rng.random() < 0.3))
    set_extensions(root, extensions)


_EXTENSION_OIDS = [
    "2.5.29.19",  # basicConstraints
    "2.5.29.15",  # keyUsage
    "2.5.29.37",  # extKeyUsage
    "2.5.29.14",  # subjectKeyIdentifier
    "2.5.29.35",  # authorityKeyIdentifier
    "2.5.29.17",  # subjectAltName
    "2.5.29.31",  # cRLDistributionPoints
    "2.5.29.32",  # certificatePolicies
    "2.5.29.30",  # nameConstraints
    "2.5.29.36",  # policyConstraints
    "1.3.6.1.5.5.7.1.1",  # authorityInfoAccess
    "1.3.6.1.5.5.7.1.24",  # TLS feature
    "1.3.6.1.4.1.11129.2.4.2",  # SCT list
]


def op_duplicate_extension(root: Node, rng: Rng) -> None:
    extensions = list(extension_list(root) or [])
    if extensions:
        extensions.insert(rng.randrange(len(extensions) + 1), rng.choice(extensions).copy())
    else:
        basic = extension("2.5.29.19", Node(_SEQ, children=[Node(_BOOL, b"\xff")]), critical=True)
        extensions = [basic, basic.copy()]
    set_extensions(root, extensions)


def op_extension_value(root: Node, rng: Rng) -> None:
    extensions = list(extension_list(root) or [])
    dotted = rng.choice(_EXTENSION_OIDS)
    value: bytes | Node
    pick = rng.random()
    if pick < 0.4:
        value = rng.randbytes(rng.randrange(12))
    elif pick < 0.7 and extensions:
        donor = rng.choice(extensions)
        inner = next((c for c in donor.children or [] if c.tag == _OCTET), None)
        value = encode(inner)[2:] if inner is not None else b""  # another extension's value
    else:
        tag, content = rng.choice(_STRINGS)
        value = Node(_SEQ, children=[Node(tag, content), Node(_BOOL, rng.choice([b"\x01", b"\x00\x00"]))])
    added = extension(dotted, value, critical=rng.random() < 0.5)
    if rng.random() < 0.2 and added.children:
        added.children.insert(1, Node(_BOOL, rng.choice([b"\x01", b"\x00", b"", b"\xff\xff"])))
    extensions.append(added)
    set_extensions(root, extensions)


def op_nesting_bomb(root: Node, rng: Rng) -> None:
    # built as bytes, inside out: a tree this deep would overflow the encoder's recursion
    inner = b""
    for _ in range(rng.choice([64, 200, 1000, 4000])):
        inner = b"\x30" + _length(len(inner)) + inner
    bomb = Node(_SEQ, inner)
    if rng.random() < 0.3:
        bomb = Node(_SEQ, b"\x30\x84\x7f\xff\xff\xff\x30")  # a child claiming 2 GiB
    target = rng.random()
    if target < 0.4:
        extensions = list(extension_list(root) or [])
        extensions.append(extension(rng.choice(_EXTENSION_OIDS), bomb))
        set_extensions(root, extensions)
    elif target < 0.7:
        name = tbs_field(root, "subject")
        if name is not None and name.children is not None:
            atv = Node(_SEQ, children=[Node(_OID, oid("2.5.4.3")), bomb])
            name.children.append(Node(_SET, children=[atv]))
    else:
        parent, node = _pick(root, rng)
        if parent is not None and parent.children is not None:
            parent.children[parent.children.index(node)] = bomb


_KEY_OIDS = ["1.2.840.10045.2.1", "1.2.840.113549.1.1.1", "1.3.101.112", "1.3.101.110", "1.2.840.10040.4.1"]
_CURVES = ["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.10", "1.2.3.4", "1.3.132.0.1"]
_SIG_OIDS = ["1.2.840.10045.4.3.2", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.4", "1.3.101.112"]
_SIG_OIDS += ["1.2.840.113549.1.1.10", "1.2.3.4.5"]


def op_public_key(root: Node, rng: Rng) -> None:
    spki = tbs_field(root, "spki")
    if spki is None or not spki.children or len(spki.children) < 2:
        return
    pick = rng.random()
    if pick < 0.4 and spki.children[0].children:
        algorithm = spki.children[0].children
        algorithm[0] = Node(_OID, oid(rng.choice(_KEY_OIDS)))
        if len(algorithm) > 1 and rng.random() < 0.6:
            algorithm[1] = Node(_OID, oid(rng.choice(_CURVES)))
    elif pick < 0.7:
        key = spki.children[1]
        key.children = None
        key.content = rng.choice(
            [b"", b"\x07\x04", b"\x00\x04" + rng.randbytes(64), b"\x00" + rng.randbytes(9)]
        )
    else:
        spki.children[0] = Node(_SEQ, children=[Node(_OID, oid(rng.choice(_KEY_OIDS))), Node(0x05, b"")])


def op_signature_algorithm(root: Node, rng: Rng) -> None:
    identifier = Node(_OID, oid(rng.choice(_SIG_OIDS)))
    params = [Node(0x05, b"")] if rng.random() < 0.5 else []
    algorithm = Node(_SEQ, children=[identifier, *params])
    tbs = _tbs(root)
    where = rng.random()
    if where < 0.5 and root.children and len(root.children) > 1:
        root.children[1] = algorithm
    elif tbs:
        signature = tbs_field(root, "signature")
        if signature is not None and signature in tbs:
            tbs[tbs.index(signature)] = algorithm


def op_unique_ids(root: Node, rng: Rng) -> None:
    tbs = _tbs(root)
    ext = tbs_field(root, "extensions")
    at = tbs.index(ext) if ext is not None and ext in tbs else len(tbs)
    tbs.insert(at, Node(rng.choice([0x81, 0x82, 0xA1]), rng.choice([b"\x00\x01", b"", b"\x09\xff"])))


STRUCTURED: dict[str, Op] = {
    "retag": op_retag,
    "relength": op_relength,
    "truncate_node": op_truncate_node,
    "drop": op_drop,
    "duplicate": op_duplicate,
    "splice": op_splice,
    "swap": op_swap_siblings,
    "version": op_version,
    "serial": op_serial,
    "time": op_time,
    "name": op_name,
    "general_name": op_general_name,
    "duplicate_extension": op_duplicate_extension,
    "extension_value": op_extension_value,
    "nesting_bomb": op_nesting_bomb,
    "public_key": op_public_key,
    "signature_algorithm": op_signature_algorithm,
    "unique_ids": op_unique_ids,
}
_NAMES = sorted(STRUCTURED)


@dataclass(frozen=True)
class Mutant:
    """One mutated certificate: ``case`` and ``ops`` say how to make it again."""

    case: int
    seed_index: int
    ops: tuple[str, ...]
    der: bytes

    def __str__(self) -> str:
        return f"case {self.case} (seed {self.seed_index}, {'+'.join(self.ops)}, {len(self.der)} bytes)"


def apply(seed_index: int, ops: Sequence[tuple[str, int]], flips: Sequence[tuple[int, int]] = ()) -> bytes:
    """Seed certificate ``seed_index`` after each ``(operator, random seed)`` and byte flip.

    The building block for hypothesis, which draws (and shrinks) the arguments.
    """
    pool = seeds()
    root = decode(pool[seed_index % len(pool)])
    for name, op_seed in ops:
        STRUCTURED[name](root, random.Random(op_seed))
    der = bytearray(encode(root))
    for position, mask in flips:
        if der:
            der[position % len(der)] ^= mask
    return bytes(der)


def mutant(case: int, *, seed: int = DEFAULT_SEED) -> Mutant:
    """The mutant number ``case`` of the run seeded ``seed`` (the same bytes on every machine)."""
    rng = random.Random(f"{seed}:{case}")
    pool = seeds()
    index = rng.randrange(len(pool))
    root = decode(pool[index])
    ops: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        name = rng.choice(_NAMES)
        STRUCTURED[name](root, rng)
        ops.append(name)
    der = encode(root)
    tail = rng.random()
    if tail < 0.15:
        flips = bytearray(der)
        for _ in range(rng.randrange(1, 5)):
            flips[rng.randrange(len(flips))] ^= rng.randrange(1, 256)
        der = bytes(flips)
        ops.append("flip")
    elif tail < 0.22:
        der = der[: rng.randrange(1, len(der))]
        ops.append("truncate")
    return Mutant(case, index, tuple(ops), der)


def mutants(count: int, *, seed: int = DEFAULT_SEED, start: int = 0) -> Iterator[Mutant]:
    """``count`` mutants, cases ``start`` .. ``start + count - 1``."""
    for case in range(start, start + count):
        yield mutant(case, seed=seed)


def pem(der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def encodings(der: bytes) -> Sequence[tuple[str, bytes | str]]:
    """The forms `load_certificates` accepts, each holding ``der``: DER, PEM, base64, legacy."""
    text = pem(der)
    return (
        ("der", der),
        ("pem", text),
        ("pem-str", text.decode("ascii")),
        ("base64-der", base64.b64encode(der)),
        ("base64-pem", base64.b64encode(text)),
        ("legacy", b"b'" + base64.b64encode(text) + b"'"),
    )


_OPS = st.tuples(st.sampled_from(sorted(STRUCTURED)), st.integers(0, 2**32 - 1))
MUTATED_DER: st.SearchStrategy[bytes] = st.builds(
    apply,
    st.integers(0, 10_000),
    st.lists(_OPS, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 4096), st.integers(1, 255)), max_size=2),
)
"""Mutated certificates (DER) for hypothesis, which draws and shrinks the seed, the operators
with their random seeds, and a few byte flips."""
