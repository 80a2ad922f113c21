"""Keep credentials and certificate bodies out of logs, whichever library wrote the record.

thingpress-core logs certificate ids, never certificate bodies, keys or credentials. The
libraries under it are not so careful. At DEBUG, botocore logs each request it makes (the body
of ``RegisterCertificateWithoutCA`` is the certificate's PEM), the headers it signs
(``X-Amz-Security-Token``, ``Authorization: AWS4-HMAC-SHA256 Credential=AKIA.../...,
Signature=...``), its canonical request and signature, and whole response bodies
(``certificatePem``, ``keyPair``). A program that turns on DEBUG for the root logger, for
example with ``logging.basicConfig(level=logging.DEBUG)``, prints all of that.

`RedactingFilter` rewrites each log record that passes through it so that none of it
survives. `install_redaction` attaches one to the handlers that records reach:

```python
import logging

from thingpress_core.logging import install_redaction

logging.basicConfig(level=logging.DEBUG)
install_redaction()  # every handler of the root logger: botocore's records too
```

What is replaced with a ``[REDACTED ...]`` marker (see `redact`):

- PEM blocks, ``-----BEGIN <label>-----`` up to the next ``-----END <label>-----``, with real
  line breaks or with ``\\n`` escapes (JSON, a Python repr), and a BEGIN without an END up to
  the end of what could be its body;
- base64 of a PEM text (thingpress' transport encoding, ``LS0tLS1CRUdJTi...``) and base64 DER
  bodies (a run of at least 60 base64 characters starting with ``M``, as every DER SEQUENCE
  does: ``MII...``);
- AWS access key ids (``AKIA``/``ASIA`` and 16 more characters);
- the value after a secret's name and ``:`` or ``=``, quoted or not: session and security
  tokens (``X-Amz-Security-Token``, ``SessionToken``, ``aws_session_token``), secret access
  keys, ``Credential=`` and ``Signature=`` parts, ``certificatePem``, ``privateKey``,
  ``keyPair``, passwords; the whole value of an ``Authorization`` header.

Secrets with no such shape or name around them (a bare 40-character secret key in free text)
cannot be told from other text and are not found.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Generator, Mapping, MutableMapping
from typing import Any

__all__ = [
    "RedactingFilter",
    "install_redaction",
    "redact",
    "redact_event_dict",
    "redaction",
]

_REDACTED = "[REDACTED]"

# -- what a secret looks like ---------------------------------------------------------------

_BEGIN = re.compile(r"-----BEGIN ?([A-Z0-9 ]{0,48}?) ?(?:-----|(?=[^A-Z0-9 ])|\Z)")
_END = re.compile(r"-----END[A-Z0-9 ]{0,48}-----")
# What an unterminated PEM body may hold: base64, whitespace, escaped line breaks ("\n"), and
# the "Proc-Type"/"DEK-Info" headers of an encrypted legacy key. One character class: the
# regular expression engine repeats that in a tight loop, where a group would cost far more.
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,\\-]*")
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]*={0,2}")
_ACCESS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")
# A DER SEQUENCE starts with 0x30, which base64 writes as "M"; certificate and key bodies are
# hundreds of characters long. Line breaks (real or escaped) continue a run. The pattern starts
# with the literal "M" (the look-behind comes after it) so the engine can skip ahead to each M.
_DER = re.compile(
    r"M(?<![A-Za-z0-9+/]M)[A-Za-z0-9+/]{59,}"
    r"(?:(?:\\+[rn])+[A-Za-z0-9+/]+|(?:\r?\n)+[A-Za-z0-9+/]{16,})*={0,2}"
)

# Names of secrets, lowercase: they are matched against a lowercased copy of the text.
_NAMES = (
    r"s(?:e(?:curity|ssion)[-_]?token|ecret[-_]?(?:access[-_]?)?key|ignature)"
    r"|c(?:redential|ertificate[-_]?pem)|p(?:rivate[-_]?key|ass(?:word|phrase))|key[-_]?pair"
)
# After the name: an optional closing quote (JSON, repr, escaped JSON), then ":" or "=".
_SEPARATOR = r"(?P<sep>(?:\\*[\"'])?\s*[:=]\s*)"
_QUOTED = (
    r"b?\"[^\"\\]*(?:\\[\s\S][^\"\\]*)*(?:\"|\Z)"  # "..." (JSON, repr); unterminated: to the end
    r"|b?'[^'\\]*(?:\\[\s\S][^'\\]*)*(?:'|\Z)"  # '...' or b'...' (repr)
    r"|\\+\"[^\"\\]*(?:\\+\")?"  # \"...\" (JSON inside a JSON string)
)
_KEY_VALUE = rf"(?P<name>{_NAMES}){_SEPARATOR}(?P<value>{_QUOTED}|\{{[^{{}}]*\}}|[^\s,;&'\"{{}}\[\]<>\\]+)"
# An Authorization header's value has spaces in it ("Bearer x", "AWS4-HMAC-SHA256 Credential=
# ..."): unquoted, it runs to the end of the line.
_AUTHORIZATION = rf"(?P<name>authorization){_SEPARATOR}(?P<value>{_QUOTED}|[^\r\n\"'\\]*[^\s\"'\\])"
# (pattern for lowercased ASCII text, pattern for any text): see _sub_named.
_NAMED = tuple(
    (re.compile(pattern), re.compile(pattern, re.IGNORECASE | re.ASCII))
    for pattern in (_AUTHORIZATION, _KEY_VALUE)
)
_OPENING_QUOTE = re.compile(r"b?(?:\\*\"|')")
_SECRET_NAME_ENDINGS = (
    "securitytoken",
    "sessiontoken",
    "secretkey",
    "secretaccesskey",
    "credential",
    "signature",
    "certificatepem",
    "privatekey",
    "keypair",
    "password",
    "passphrase",
    "authorization",
)
# How every name in _NAMES and "authorization" ends; what _suspect looks for before a separator.
_NAME_ENDINGS = ("token", "key", "credential", "signature", "pem", "pair", "word", "phrase", "authorization")
_NAME_WINDOW = 64
_SIGNATURE_VALUE = re.compile(r"[A-Za-z0-9+/=%_-]{16,}")
_MARKER = re.compile(r"\[REDACTED[A-Z0-9 ]*\](?:\\+[rn]|\s)*")


def _suspect(text: str) -> bool:
    """Could ``text`` hold a secret? Cheap, and never False when `redact` would change it.

    Plain substring tests are several times faster than a regular expression with
    alternatives, and almost every log line fails all of them. A named secret needs a name
    right before a ":" or "=" (quotes and spaces may come between), so only the text before
    each separator is looked at.
    """
    if "-----" in text or "LS0tLS1" in text or "AKIA" in text or "ASIA" in text:
        return True
    if "M" in text and _DER.search(text) is not None:
        return True
    for separator in ":=":
        at = text.find(separator)
        while at >= 0:
            window = text[max(0, at - _NAME_WINDOW) : at]
            head = window.rstrip()
            if not head and len(window) == _NAME_WINDOW:
                return True  # a long run of spaces: whatever precedes it, play safe
            if head.rstrip("\"'\\").lower().endswith(_NAME_ENDINGS):
                return True
            at = text.find(separator, at + 1)
    return False


def redact(text: str) -> str:
    """``text`` with every credential and certificate body replaced by a ``[REDACTED ...]`` marker.

    What counts is listed in the module docstring. The rest of ``text`` is kept as it was.
    Runs in time linear in ``len(text)``.
    """
    return _redact_all(text) if _suspect(text) else text


def _redact_all(text: str) -> str:
    text = _redact_pem(text)
    text = _BASE64_PEM.sub("[REDACTED BASE64 PEM]", text)
    for lowercase, any_case in _NAMED:
        text = _sub_named(text, lowercase, any_case)
    text = _ACCESS_KEY_ID.sub("[REDACTED ACCESS KEY ID]", text)
    return _DER.sub("[REDACTED DER]", text)


def _sub_named(text: str, lowercase: re.Pattern[str], any_case: re.Pattern[str]) -> str:
    """Redact the values of named secrets, finding the names in any letter case.

    A case-insensitive regular expression is several times slower than a plain one on a
    lowercased copy; for ASCII text the copy has the same length, so a match's positions
    are the original's. Other text takes the slow way.
    """
    if text.isascii():
        matches = lowercase.finditer(text.lower())
    else:
        matches = any_case.finditer(text)
    parts: list[str] = []
    pos = 0
    for match in matches:
        replacement = _redacted_value(text, match)
        if replacement is not None:
            parts.append(text[pos : match.start()])
            parts.append(replacement)
            pos = match.end()
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def _redact_pem(text: str) -> str:
    """Replace PEM blocks, each BEGIN up to the first END after it.

    Linear: each search for an END starts after the previous block, and once no END is left
    the remaining BEGINs are cut at the end of their body instead of searching again.
    """
    if "-----BEGIN" not in text:
        return text
    parts: list[str] = []
    pos = 0
    ends_left = True
    while (begin := _BEGIN.search(text, pos)) is not None:
        label = " ".join(begin.group(1).split()) or "PEM"
        stop = -1
        if ends_left:
            end = _END.search(text, begin.end())
            if end is None:
                ends_left = False
            else:
                stop = end.end()
        if stop < 0:
            body = _PEM_BODY.match(text, begin.end())
            stop = body.end() if body is not None else begin.end()
        parts.append(text[pos : begin.start()])
        parts.append(f"[REDACTED {label}]")
        pos = stop
    parts.append(text[pos:])
    return "".join(parts)


def _redacted_value(text: str, match: re.Match[str]) -> str | None:
    """The named secret at ``match``'s position in ``text`` with its value redacted, or None.

    The name, separator and quotes stay as they were; what is between the quotes goes.
    """
    name = text[match.start("name") : match.end("name")]
    sep = text[match.start("sep") : match.end("sep")]
    value = text[match.start("value") : match.end("value")]
    if value.startswith("{"):
        prefix, inner, suffix = "{", value[1:-1], "}"
    elif (opening := _OPENING_QUOTE.match(value)) is not None:
        prefix = opening.group(0)
        quote = prefix.lstrip("b")
        closed = len(value) > len(prefix) and value.endswith(quote)
        inner = value[len(prefix) : len(value) - len(quote) if closed else len(value)]
        suffix = quote if closed else ""
    else:
        prefix, inner, suffix = "", value, ""
    if not inner or _MARKER.fullmatch(inner):
        return None  # nothing there, or already redacted (a PEM inside certificatePem)
    if name.lower() == "signature" and _SIGNATURE_VALUE.fullmatch(inner) is None:
        return None  # "signature: verified" is a word, not a signature
    return f"{name}{sep}{prefix}{_REDACTED}{suffix}"


def _is_secret_name(key: str) -> bool:
    """Is a field called ``key`` (``session_token``, ``privateKey``, ``X-Amz-Security-Token``) a secret?"""
    folded = key.lower().replace("-", "").replace("_", "").removesuffix("s")
    return folded.endswith(_SECRET_NAME_ENDINGS)


# -- records --------------------------------------------------------------------------------

_PLAIN_RECORD_KEYS = tuple(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
# Attributes a formatter adds to a record; never extra fields.
_STANDARD_ATTRIBUTES = frozenset(_PLAIN_RECORD_KEYS) | {"message", "asctime"}
_PLAIN_RECORD_SIZE = len(_PLAIN_RECORD_KEYS)
_EXCEPTION_FORMATTER = logging.Formatter()
_MAX_DEPTH = 4
_NAME_CACHE_SIZE = 1024
# extra field names of a record -> those that are secrets; records of one call site repeat them
_secret_names: dict[tuple[str, ...], tuple[str, ...]] = {}


class RedactingFilter(logging.Filter):
    """A `logging.Filter` that removes credentials and certificate bodies from every record.

    It rewrites, in place, the record's message (the text its message and arguments format
    to), the exception text (``exc_text``, and the traceback of ``exc_info``), ``stack_info``,
    and string values (also inside dicts, lists and tuples) of ``extra`` fields; an ``extra``
    field named like a secret (``session_token``, ``privateKey``) is replaced whole. A record
    with nothing to remove is left untouched, and costs a few substring tests.

    When something is removed, the message becomes the redacted text with no arguments, and
    an exception whose text held a secret is kept as redacted ``exc_text`` only
    (``exc_info`` becomes None), since a formatter could render it again from ``exc_info``.
    A message that cannot be formatted (arguments that do not fit it) is replaced by its
    redacted template and the types of its arguments, so logging's own error report, which
    prints the raw arguments, never runs.

    The filter never raises and never drops a record: if checking fails, the record keeps
    only a note that it was withheld.

    Put it on handlers (see `install_redaction`), not on loggers: a logger's filters see only
    the records made by that logger, not those propagated from its children such as
    ``botocore.endpoint``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            _redact_record(record)
        except Exception:  # a filter that raises loses the record and prints it raw
            return _withhold(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    fields = vars(record)
    try:
        message = record.getMessage()
    except Exception:
        _replace_unformattable(record)
        message = ""
    extras: tuple[str, ...] = ()
    others: list[str] = []
    text = message
    if len(fields) > _PLAIN_RECORD_SIZE:
        extras = _extra_names(fields)
        others.extend(_secret_named(extras))
        # One suspicion test for the message and every string extra: almost all records fail it.
        texts = [message]
        for key in extras:
            value = fields[key]
            if isinstance(value, str):
                texts.append(value)
            elif not (value is None or isinstance(value, (int, float))):
                others.append(key)
        text = "\n".join(texts)
    if _suspect(text):
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = ()
        others = list(extras)
    for key in others:
        value = fields[key]
        clean_value = _redact_field(key, value, 0)
        if clean_value is not value:
            fields[key] = clean_value
    if "message" in fields:  # set by the formatter of an earlier handler
        cached = fields["message"]
        if isinstance(cached, str) and _suspect(cached):
            record.message = redact(cached)
    if record.exc_info and not record.exc_text:
        rendered = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if _suspect(rendered) and redact(rendered) != rendered:
            record.exc_text = redact(rendered)
            record.exc_info = None  # a formatter could render the secret again from exc_info
    elif record.exc_text and _suspect(record.exc_text):
        clean = redact(record.exc_text)
        if clean != record.exc_text:
            record.exc_text = clean
            record.exc_info = None
    if record.stack_info and _suspect(record.stack_info):
        record.stack_info = redact(record.stack_info)


def _extra_names(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The record's ``extra`` field names.

    `logging.Logger.makeRecord` adds them after the attributes every record has, so comparing
    that prefix is enough, and cheaper than a set difference; a record built another way gets
    the set difference.
    """
    names = tuple(fields)
    if names[:_PLAIN_RECORD_SIZE] == _PLAIN_RECORD_KEYS:
        tail = names[_PLAIN_RECORD_SIZE:]
        if "message" not in tail and "asctime" not in tail:
            return tail
    return tuple(fields.keys() - _STANDARD_ATTRIBUTES)


def _secret_named(names: tuple[str, ...]) -> tuple[str, ...]:
    """Which of a record's ``extra`` names are secrets; remembered, since records repeat them."""
    known = _secret_names.get(names)
    if known is None:
        known = tuple(name for name in names if _is_secret_name(name))
        if len(_secret_names) < _NAME_CACHE_SIZE:
            _secret_names[names] = known
    return known


def _redact_field(key: object, value: Any, depth: int) -> Any:
    """``value`` redacted (the same object when nothing changed); ``key`` is its name."""
    if isinstance(key, str) and value and _is_secret_name(key):
        return _REDACTED
    if isinstance(value, str):
        return redact(value) if _suspect(value) else value
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
        return redact(text) if _suspect(text) and redact(text) != text else value
    if isinstance(value, Mapping | list | tuple):
        if depth >= _MAX_DEPTH:
            return _REDACTED if _suspect(_safe_text(value)) else value
        if isinstance(value, Mapping):
            items: Mapping[Any, Any] = value
            new = {k: _redact_field(k, v, depth + 1) for k, v in items.items()}
            changed = any(new[k] is not v for k, v in items.items())
            return new if changed else value
        sequence: list[Any] | tuple[Any, ...] = value
        cleaned = [_redact_field(None, v, depth + 1) for v in sequence]
        if all(c is v for c, v in zip(cleaned, sequence, strict=True)):
            return value
        return tuple(cleaned) if isinstance(value, tuple) else cleaned
    return value


def _safe_text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _replace_unformattable(record: logging.LogRecord) -> None:
    """A message whose arguments do not fit it: keep the redacted template and the argument types.

    The values are left out: apart from their template, nothing tells a token from a word.
    """
    text = f"[unformattable log message] {redact(_safe_text(record.msg))}"
    args = record.args
    if args:
        values = args.values() if isinstance(args, Mapping) else args
        text += f" [arguments of type {', '.join(type(v).__name__ for v in values)}]"
    record.msg = text
    record.args = ()


def _withhold(record: logging.LogRecord) -> bool:
    try:
        record.msg = "[REDACTED: this log record could not be checked for secrets]"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        fields = vars(record)
        fields.pop("message", None)
        for key in fields.keys() - _STANDARD_ATTRIBUTES:
            fields[key] = _REDACTED
    except Exception:
        return False  # dropping the record is better than printing it unchecked
    return True


# -- installing -----------------------------------------------------------------------------


def _handlers_reached(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record logged on ``logger`` can reach, as `logging.Logger.callHandlers` walks."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    reached_root = False
    while current is not None:
        handlers.extend(current.handlers)
        if current.parent is None:
            reached_root = True
        if not current.propagate:
            break
        current = current.parent
    if reached_root and logging.lastResort is not None:
        handlers.append(logging.lastResort)  # used when no other handler is configured
    return handlers


def _install(logger: logging.Logger | str | None, redactor: RedactingFilter) -> list[logging.Handler]:
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    added: list[logging.Handler] = []
    for handler in _handlers_reached(target):
        if any(isinstance(f, RedactingFilter) for f in handler.filters) or handler in added:
            continue
        handler.addFilter(redactor)
        added.append(handler)
    return added


def install_redaction(logger: logging.Logger | str | None = None) -> RedactingFilter:
    """Attach a `RedactingFilter` to every handler that records logged on ``logger`` reach.

    ``logger`` is a logger or its name; None (the default) is the root logger, where
    botocore's and urllib3's records end up when they propagate. The handlers are those of
    ``logger`` and of its ancestors as far as records propagate, plus `logging.lastResort`
    when that walk reaches the root. Handlers that already have a `RedactingFilter` are
    skipped, so calling this twice is harmless.

    Why handlers: a filter on a logger applies only to records created on that very logger,
    not to records that propagate to it from child loggers (``botocore.endpoint`` and
    ``urllib3.connectionpool`` never pass the root logger's filters). A handler's filters see
    every record the handler is about to emit, wherever it came from.

    Call it after the handlers are configured (after ``logging.basicConfig`` or
    ``dictConfig``): handlers added later are not covered. Returns the filter attached.
    """
    redactor = RedactingFilter()
    _install(logger, redactor)
    return redactor


@contextlib.contextmanager
def redaction(logger: logging.Logger | str | None = None) -> Generator[RedactingFilter, None, None]:
    """`install_redaction` for a ``with`` block: the filter is removed again on exit.

    Handlers that already had a `RedactingFilter` keep theirs. Meant for tests.
    """
    redactor = RedactingFilter()
    added = _install(logger, redactor)
    try:
        yield redactor
    finally:
        for handler in added:
            handler.removeFilter(redactor)


def redact_event_dict(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: redact every value of the event dict (nested ones too).

    Put it before the renderer: ``structlog.configure(processors=[..., redact_event_dict,
    structlog.processors.JSONRenderer()])``. A key named like a secret (``session_token``,
    ``private_key``) has its value replaced whole.
    """
    for key, value in list(event_dict.items()):
        clean = _redact_field(key, value, 0)
        if clean is not value:
            event_dict[key] = clean
    return event_dict
