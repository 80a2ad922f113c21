"""open_ledger: a path is a SqliteLedger, ``dynamodb://TABLE`` a DynamoDBLedger, anything else a
clear error; a file ledger loads no AWS library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.ledger._sqlite_support import T, cert, imported

from thingpress_core.errors import ConfigurationError
from thingpress_core.ledger import Ledger, SqliteLedger, open_ledger

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory


@pytest.mark.parametrize("as_text", [True, False], ids=["str", "PathLike"])
def test_a_path_opens_an_sqlite_ledger(tmp_path: Path, as_text: bool) -> None:
    path = tmp_path / "imports.ledger"
    ledger: Ledger = open_ledger(str(path) if as_text else path)
    assert isinstance(ledger, SqliteLedger)
    assert ledger.location == str(path)
    ledger.save(imported(1))
    ledger.close()
    reader = open_ledger(path, read_only=True)
    assert isinstance(reader, SqliteLedger)
    assert reader.read_only
    assert reader.device(T, cert(1)) == imported(1)
    reader.close()
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_ledger(tmp_path / "other.ledger", create=False)


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("s3://bucket/ledger", "unknown scheme s3://"),
        ("dynamodb://", "names no DynamoDB table"),
        ("dynamodb://a/b", "names no DynamoDB table"),
        ("dynamodb://x", "names no DynamoDB table"),
        ("dynamodb://bad name", "names no DynamoDB table"),
    ],
)
def test_a_location_that_is_neither_is_refused(location: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why) as caught:
        open_ledger(location)
    assert repr(location) in str(caught.value)


def test_a_dynamodb_location_opens_the_dynamodb_ledger(factory: ClientFactory) -> None:
    from thingpress_core.ledger._dynamodb import DynamoDBLedger

    DynamoDBLedger.create_table("import-ledger", factory=factory)
    ledger = open_ledger("dynamodb://import-ledger", factory=factory)
    assert isinstance(ledger, DynamoDBLedger)
    ledger.save(imported(1))
    assert ledger.device(T, cert(1)) == imported(1)
    ledger.close()


def test_a_file_ledger_loads_no_aws_library(tmp_path: Path) -> None:
    code = (
        "import sys; from thingpress_core.ledger import open_ledger\n"
        f"open_ledger({str(tmp_path / 'cold.ledger')!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
