"""RedactingFilter: no credential or certificate body reaches a log, whichever library wrote it."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.logging import (
    RedactingFilter,
    install_redaction,
    redact,
    redact_event_dict,
    redaction,
)

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

ACCESS_KEY_ID = "AKIAMARKER0000000001"
SECRET_KEY = "MarkerSecretAccessKey/0000000000000000001"
SESSION_TOKEN = "FwoGZXIvYXdzEMARKER/session+token0000000001=="
_WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged anywhere at DEBUG, as ``logging.basicConfig(level=DEBUG)`` would print it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in _WIRE_LOGGERS}
    root_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def marked_credentials(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # set after mock_aws started: moto puts its own FOOBARKEY in the environment
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_SECURITY_TOKEN", SESSION_TOKEN)  # botocore reads this name first


def _pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _iot_calls(factory: ClientFactory) -> tuple[list[str], str]:
    """Real IoT calls against moto; returns the certificate and key body lines, and the id."""
    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.services import IoTService

    cert = next(generate_device_certificates(1))
    iot = IoTService(factory)
    registration = iot.register_certificate(cert)
    assert iot.register_certificate(cert).created is False  # a 409 answer in the log too
    iot.describe_certificate(registration.certificate_id)  # its answer carries certificatePem
    keys = factory.iot().create_keys_and_certificate(setAsActive=False)  # and this a private key
    bodies = [
        *_pem_body_lines(cert.pem),
        *_pem_body_lines(keys["certificatePem"]),
        *_pem_body_lines(keys["keyPair"]["PrivateKey"]),
    ]
    return bodies, registration.certificate_id


@pytest.mark.usefixtures("marked_credentials")
def test_without_the_filter_botocore_logs_secrets(factory: ClientFactory, captured: io.StringIO) -> None:
    bodies, _ = _iot_calls(factory)
    text = captured.getvalue()
    assert SESSION_TOKEN in text
    assert ACCESS_KEY_ID in text
    assert bodies[0] in text  # the certificate body, in the request of RegisterCertificateWithoutCA
    assert any(line in text for line in _pem_body_lines("\n".join(bodies[-3:])))  # the private key


@pytest.mark.usefixtures("marked_credentials")
def test_with_the_filter_no_secret_reaches_the_log(factory: ClientFactory, captured: io.StringIO) -> None:
    with redaction():
        bodies, certificate_id = _iot_calls(factory)
    text = captured.getvalue()
    for secret in (SESSION_TOKEN, ACCESS_KEY_ID, SECRET_KEY, *bodies):
        assert secret not in text
    assert "BEGIN" not in text
    assert re.search(r"(?<![A-Za-z0-9+/])MI[A-Za-z0-9+/]{40}", text) is None  # no DER run either
    assert "'X-Amz-Security-Token': b'[REDACTED]'" in text
    assert "[REDACTED CERTIFICATE]" in text or '"certificatePem": "[REDACTED]"' in text
    assert certificate_id in text  # what is not secret stays: ids, operations, status codes
    assert "RegisterCertificateWithoutCA" in text


def test_a_logger_filter_misses_child_records_and_a_handler_filter_does_not() -> None:
    parent = logging.getLogger("tp_test_parent")
    child = logging.getLogger("tp_test_parent.child")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    logger_filter = RedactingFilter()
    parent.addFilter(logger_filter)
    try:
        child.debug("key id %s", ACCESS_KEY_ID)
        assert ACCESS_KEY_ID in stream.getvalue()  # why install_redaction uses handlers
        with redaction(child):
            child.debug("key id %s", ACCESS_KEY_ID)
        assert stream.getvalue().splitlines()[-1] == "key id [REDACTED ACCESS KEY ID]"
    finally:
        parent.removeFilter(logger_filter)
        parent.removeHandler(handler)
        parent.setLevel(logging.NOTSET)


def test_install_reaches_ancestor_handlers_once_and_redaction_undoes_itself() -> None:
    parent = logging.getLogger("tp_test_install")
    child = logging.getLogger("tp_test_install.child")
    mine, theirs = logging.NullHandler(), logging.NullHandler()
    child.addHandler(mine)
    parent.addHandler(theirs)
    try:
        with redaction(child) as redactor:
            assert redactor in mine.filters
            assert redactor in theirs.filters
            assert redactor in logging.getLogger().handlers[0].filters or not logging.getLogger().handlers
            if logging.lastResort is not None:
                assert redactor in logging.lastResort.filters
            installed = install_redaction(child)  # idempotent: every handler has one already
            assert installed not in mine.filters
            assert len([f for f in mine.filters if isinstance(f, RedactingFilter)]) == 1
        assert mine.filters == []
        assert theirs.filters == []
        if logging.lastResort is not None:
            assert not any(isinstance(f, RedactingFilter) for f in logging.lastResort.filters)
        child.propagate = False
        installed = install_redaction(child)
        assert installed in mine.filters
        assert theirs.filters == []  # records of child never reach its parent's handlers
        mine.removeFilter(installed)
    finally:
        child.propagate = True
        child.removeHandler(mine)
        parent.removeHandler(theirs)


def _record(msg: object, *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.getLogger("tp_test").makeRecord(
        "tp_test", logging.DEBUG, __file__, 1, msg, args or None, None, extra=extra or None
    )
    return record


def test_a_clean_record_is_left_untouched() -> None:
    args = ("device-000123", 3)
    record = _record("registered %s after %d attempts", *args, certificate_id="ab" * 32, attempt=3)
    before = dict(vars(record))
    assert RedactingFilter().filter(record) is True
    assert vars(record) == before
    assert record.args == args


def test_message_arguments_extras_exception_and_stack_are_redacted() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUe\n-----END CERTIFICATE-----\n"
    try:
        raise ValueError(f"bad body {pem}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.getLogger("tp_test").makeRecord(
        "tp_test",
        logging.ERROR,
        __file__,
        1,
        "sending %s with %r",
        ({"certificatePem": pem}, b"X-Amz-Security-Token: " + SESSION_TOKEN.encode()),
        exc_info,
        extra={
            "body": pem,
            "session_token": "abc",
            "nested": {"headers": [f"Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/x"]},
            "count": 2,
        },
        sinfo=f"Stack (most recent call last):\n  key {ACCESS_KEY_ID}",
    )
    assert RedactingFilter().filter(record) is True
    formatted = logging.Formatter("%(message)s %(body)s %(session_token)s %(nested)s").format(record)
    for secret in ("MIIBszCCAVmgAwIBAgIUe", SESSION_TOKEN, ACCESS_KEY_ID, "abc"):
        assert secret not in formatted
    assert record.args == ()
    assert record.getMessage().startswith("sending {'certificatePem': '[REDACTED CERTIFICATE]")
    assert record.exc_info is None
    assert record.exc_text is not None
    assert "ValueError: bad body [REDACTED CERTIFICATE]" in record.exc_text
    assert record.stack_info == "Stack (most recent call last):\n  key [REDACTED ACCESS KEY ID]"
    assert vars(record)["count"] == 2
    assert vars(record)["session_token"] == "[REDACTED]"


def test_extras_named_like_secrets_are_redacted_even_in_a_clean_record() -> None:
    record = _record("registered %s", "thing-1", session_token="plain", payload={"privateKey": "k"})
    RedactingFilter().filter(record)
    assert record.getMessage() == "registered thing-1"
    assert record.args == ("thing-1",)
    assert vars(record)["session_token"] == "[REDACTED]"
    assert vars(record)["payload"] == {"privateKey": "[REDACTED]"}


def test_a_clean_exception_keeps_its_exc_info() -> None:
    try:
        raise KeyError("thing-1")
    except KeyError:
        record = logging.getLogger("tp_test").makeRecord(
            "tp_test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    RedactingFilter().filter(record)
    assert record.exc_info is not None
    assert record.exc_text is None  # the formatter renders it as it likes


def test_a_record_already_formatted_by_an_earlier_handler_is_redacted_too() -> None:
    record = _record("key %s", ACCESS_KEY_ID)
    logging.Formatter().format(record)  # an earlier handler without the filter
    RedactingFilter().filter(record)
    assert record.message == "key [REDACTED ACCESS KEY ID]"


def test_an_unformattable_message_is_kept_redacted_instead_of_printed_raw(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.handle(_record("token %d", SESSION_TOKEN))  # %d of a str: logging would print the args
    assert SESSION_TOKEN not in stream.getvalue()
    assert stream.getvalue() == "[unformattable log message] token %d [arguments of type str]\n"
    assert SESSION_TOKEN not in capsys.readouterr().err


def test_the_filter_never_raises_and_withholds_what_it_could_not_check() -> None:
    # exc_info that is no exception triple makes rendering the traceback fail inside the filter
    record = _record("key %s", ACCESS_KEY_ID, extra_field=ACCESS_KEY_ID)
    record.exc_info = ("not", "an", "exception")  # type: ignore[assignment]  # the broken input is the test
    assert RedactingFilter().filter(record) is True
    assert ACCESS_KEY_ID not in record.getMessage()
    assert "could not be checked" in record.getMessage()
    assert vars(record)["extra_field"] == "[REDACTED]"


def test_an_object_whose_str_raises_does_not_break_logging() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

        __repr__ = __str__

    record = _record(Hostile())
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "[unformattable log message] <unprintable Hostile>"


def test_structlog_processor_redacts_values_and_secret_keys() -> None:
    event = {
        "event": f"signed with {ACCESS_KEY_ID}",
        "private_key": "anything at all",
        "response": {"certificatePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
        "thing_name": "device-1",
    }
    out = redact_event_dict(None, "info", event)
    assert out == {
        "event": "signed with [REDACTED ACCESS KEY ID]",
        "private_key": "[REDACTED]",
        "response": {"certificatePem": "[REDACTED]"},
        "thing_name": "device-1",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "'body': b'{\"certificatePem\": \"-----BEGIN CERTIFICATE-----\\\\nMIIB7jCC\\\\n"
            '-----END CERTIFICATE-----\\\\n", "status": "ACTIVE"}\'',
            '\'body\': b\'{"certificatePem": "[REDACTED CERTIFICATE]\\\\n", "status": "ACTIVE"}\'',
        ),
        (
            "{'X-Amz-Security-Token': b'IQoJb3Jp', 'Authorization': b'AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iot/aws4_request, "
            "SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef'}",
            "{'X-Amz-Security-Token': b'[REDACTED]', 'Authorization': b'[REDACTED]'}",
        ),
        (
            "x-amz-security-token:IQoJb3Jp\n\nhost;x-amz-date",
            "x-amz-security-token:[REDACTED]\n\nhost;x-amz-date",
        ),
        (
            "Signature:\na42838bfb82729869c086bb1b84abc131df37a28930445ffc6222d47eb2e0773",
            "Signature:\n[REDACTED]",
        ),
        ("Authorization: Bearer abc.def\nnext line", "Authorization: [REDACTED]\nnext line"),
        (
            "GET /k?X-Amz-Credential=AKIA%2F20240101&X-Amz-Security-Token=IQo%2F&"
            "X-Amz-Signature=0123456789abcdef0123 HTTP/1.1",
            "GET /k?X-Amz-Credential=[REDACTED]&X-Amz-Security-Token=[REDACTED]&"
            "X-Amz-Signature=[REDACTED] HTTP/1.1",
        ),
        (
            '{"AccessKeyId": "ASIAABCDEFGHIJKLMNOP", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG", '
            '"SessionToken": "FwoGZX"}',
            '{"AccessKeyId": "[REDACTED ACCESS KEY ID]", "SecretAccessKey": "[REDACTED]", '
            '"SessionToken": "[REDACTED]"}',
        ),
        (
            "aws_secret_access_key = wJalrX/K7MDENG\naws_session_token=FwoG",
            "aws_secret_access_key = [REDACTED]\naws_session_token=[REDACTED]",
        ),
        (
            '{\\"SessionToken\\": \\"FwoGZX\\", \\"n\\": 1}',
            '{\\"SessionToken\\": \\"[REDACTED]\\", \\"n\\": 1}',
        ),
        (
            "{'keyPair': {'PublicKey': 'p', 'PrivateKey': 'k'}, 'certificateId': 'ab12'}",
            "{'keyPair': {[REDACTED]}, 'certificateId': 'ab12'}",
        ),
        ("cut: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nAwEHoUQDQgAE", "cut: [REDACTED EC PRIVATE KEY]"),
        ("cut short: -----BEGIN CERTIF", "cut short: [REDACTED CERTIF]"),
        ("der=MIIB" + "Qw" * 40 + "== rest", "der=[REDACTED DER] rest"),
        ("b'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUI=' rest", "b'[REDACTED BASE64 PEM]' rest"),
        ("manifest signature: verified; signature=valid", "manifest signature: verified; signature=valid"),
        ('nextToken: abc; password: ""', 'nextToken: abc; password: ""'),
    ],
)
def test_redact_known_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected


# -- properties ---------------------------------------------------------------------------------

_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,!?()\n", max_size=40)
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_LINE = st.text(alphabet=_BASE64, min_size=16, max_size=64)
_LABELS = st.sampled_from(
    ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
)
_BREAKS = st.sampled_from(["\n", "\r\n", "\\n", "\\\\n", "\\r\\n"])


@st.composite
def _pem(draw: st.DrawFn) -> tuple[str, list[str]]:
    label, brk = draw(_LABELS), draw(_BREAKS)
    lines = draw(st.lists(_LINE, min_size=1, max_size=5))
    text = f"-----BEGIN {label}-----{brk}" + brk.join(lines) + f"{brk}-----END {label}-----"
    return text, lines


@st.composite
def _named_secret(draw: st.DrawFn) -> tuple[str, list[str]]:
    value = draw(st.text(alphabet=_BASE64 + "=", min_size=20, max_size=60))
    form = draw(
        st.sampled_from(
            [
                "X-Amz-Security-Token: {}",
                "x-amz-security-token:{}",
                "'X-Amz-Security-Token': b'{}'",
                '"SessionToken": "{}"',
                "aws_session_token={}",
                "AWS_SECRET_ACCESS_KEY={}",
                '"SecretAccessKey": "{}"',
                '"privateKey": "{}"',
                "Signature={}",
                "Authorization: Bearer {}",
                "'Authorization': b'AWS4-HMAC-SHA256 Credential=x/y, Signature={}'",
            ]
        )
    )
    return form.format(value), [value]


@st.composite
def _key_id(draw: st.DrawFn) -> tuple[str, list[str]]:
    key = draw(st.sampled_from(["AKIA", "ASIA"])) + draw(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16)
    )
    return key, [key]


@st.composite
def _der(draw: st.DrawFn) -> tuple[str, list[str]]:
    body = "MI" + draw(st.text(alphabet=_BASE64, min_size=58, max_size=300))
    return body + draw(st.sampled_from(["", "=", "=="])), [body]


_SECRETS = st.one_of(_pem(), _named_secret(), _key_id(), _der())


@given(before=_PLAIN, secret=_SECRETS, after=_PLAIN)
def test_an_embedded_secret_is_removed_and_the_rest_kept(
    before: str, secret: tuple[str, list[str]], after: str
) -> None:
    text, parts = secret
    # an unquoted Authorization value runs to the end of its line
    gap = "\n" if text.startswith("Authorization: ") else " "
    out = redact(f"{before} {text}{gap}{after}")
    for part in parts:
        assert part not in out[len(before) : len(out) - len(after)]
    assert out.startswith(f"{before} ")
    assert out.endswith(f"{gap}{after}")
    assert "[REDACTED" in out


@given(before=_PLAIN, pem=_pem(), cut=st.integers(min_value=0))
def test_a_pem_block_cut_short_leaves_no_body_line(before: str, pem: tuple[str, list[str]], cut: int) -> None:
    text, lines = pem
    end = text.index("-----END")
    truncated = text[: len("-----BEGIN") + cut % (end - len("-----BEGIN") + 1)]
    out = redact(f"{before} {truncated}")
    assert out.startswith(f"{before} ")
    for line in lines:
        if line in truncated:
            assert line not in out[len(before) :]


_FRAGMENTS = st.sampled_from(
    [
        "token", "Token", "TOKEN", "session_", "Security-", "x-amz-", "secret", "SECRET_ACCESS_", "key",
        "Key", "Pair", "Authorization", "credential", "Signature", "certificatePem", "private_",
        "password", "PassPhrase", ":", "=", " ", '"', "'", "b'", "\\", "\\n", "\n", "{", "}",
        "-----BEGIN ", "-----END ", "CERTIFICATE", "-----", "M", "MII", "AKIA", "ASIA",
        "LS0tLS1CRUdJTi", "İ", "ſ", " " * 70, "\n" * 63,
    ]
)  # fmt: skip
_MIXED = st.lists(_FRAGMENTS | st.text(alphabet=_BASE64 + "=", max_size=70), max_size=12).map("".join)


@given(text=_MIXED)
def test_the_fast_check_never_passes_text_that_redaction_would_change(text: str) -> None:
    from thingpress_core.logging import _redact_all, _suspect

    if not _suspect(text):
        assert _redact_all(text) == text


@given(text=st.text(max_size=200) | _MIXED)
def test_redact_is_idempotent_and_never_raises(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    "hostile",
    [
        "-----BEGIN CERTIFICATE-----\n",  # BEGINs without an END
        'password: "',  # quotes without an end
        "M" + "A" * 58 + " ",  # DER runs one character short
        "Authorization: ",
    ],
)
def test_redact_costs_linear_time(hostile: str) -> None:
    from tests._support.scaling import growth_ratio

    # a backtracking pattern would make these quadratic; 4x the text must cost about 4x
    assert growth_ratio(lambda n: redact(hostile * n), 100_000 // len(hostile), repeat=5) < 8
