"""deploy/template.yaml against the code: handlers, environment, pacing, metrics names.

cfn-lint checks the template against CloudFormation's and SAM's schemas (the lint session);
these tests check what no schema knows: that it names handlers that exist, variables the
settings read, a queue and consumer sized as docs/deployment.md explains, and metrics the
functions print.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
import re
from typing import Any

import pytest
from pydantic import BaseModel
from tests.deploy._template import ROOT, functions, parameter_defaults, resolve, template

from thingpress_core.clients import ClientFactory
from thingpress_core.integrations._metrics import CALLS_PREFIX, CONSUMER_METRICS, PRODUCER_METRICS
from thingpress_core.integrations.aws_lambda import LambdaRuntime, LambdaSettings
from thingpress_core.resilience import DEFAULT_RATE_LIMITS
from thingpress_core.settings import ThingpressSettings

LAMBDA_PREFIX = "THINGPRESS_LAMBDA_"
CLIENT_PREFIX = "THINGPRESS_"


def resources() -> dict[str, Any]:
    return template()["Resources"]


@pytest.mark.parametrize("name", sorted(functions()))
def test_every_handler_imports_and_is_callable(name: str) -> None:
    module, _, attribute = functions()[name].handler.rpartition(".")
    handler = getattr(importlib.import_module(module), attribute)
    assert callable(handler)
    assert handler.__name__ == attribute


def test_the_runtime_is_one_the_package_supports() -> None:
    runtime = template()["Globals"]["Function"]["Runtime"]
    version = re.fullmatch(r"python3\.(\d+)", runtime)
    assert version is not None, runtime
    classifiers = importlib.metadata.metadata("thingpress-core").get_all("Classifier") or []
    assert f"Programming Language :: Python :: 3.{version[1]}" in classifiers


def _field_of(model: type[BaseModel], path: list[str]) -> bool:
    """Whether ``path`` (lower-cased parts of a variable name) names a field of ``model``."""
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested = field.annotation
    return isinstance(nested, type) and issubclass(nested, BaseModel) and _field_of(nested, path[1:])


@pytest.mark.parametrize("name", sorted(functions()))
def test_every_variable_the_template_sets_is_a_setting(name: str) -> None:
    for variable in functions()[name].environment:
        if variable.startswith(LAMBDA_PREFIX):
            assert variable[len(LAMBDA_PREFIX) :].lower() in LambdaSettings.model_fields, variable
        else:
            assert variable.startswith(CLIENT_PREFIX), variable
            path = variable[len(CLIENT_PREFIX) :].lower().split("__")
            assert _field_of(ThingpressSettings, path), variable


#: What each function cannot work without, on top of the settings' own required fields.
NEEDED = {
    "Producer": {"THINGPRESS_LAMBDA_QUEUE_URL", "THINGPRESS_LAMBDA_LEDGER_TABLE", "THINGPRESS_ACCOUNT_ID"},
    "Consumer": {
        "THINGPRESS_LAMBDA_LEDGER_TABLE",
        "THINGPRESS_ACCOUNT_ID",  # without it, one STS call per cold start
        "THINGPRESS_LAMBDA_WORKERS",
        "THINGPRESS_RESILIENCE__QUOTA_SHARE",
    },
}


@pytest.mark.parametrize("name", sorted(functions()))
def test_every_required_setting_is_set(name: str) -> None:
    required = {
        LAMBDA_PREFIX + f.upper() for f, info in LambdaSettings.model_fields.items() if info.is_required()
    }
    required |= {
        CLIENT_PREFIX + f.upper() for f, info in ThingpressSettings.model_fields.items() if info.is_required()
    }
    assert required | NEEDED[name] <= set(functions()[name].environment)


@pytest.mark.parametrize("name", sorted(functions()))
def test_the_environment_builds_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    refs = {
        "ImportQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "LedgerTable": "fleet-ledger",
    }
    parameters = {"Policies": "DevicePolicy,Spare", "ThingGroups": "Fleet", "ThingType": "Sensor"}
    env = resolve(functions()[name].environment, refs, parameters)
    for variable, value in env.items():
        monkeypatch.setenv(variable, str(value))
    settings = LambdaSettings()
    client = ThingpressSettings()
    assert client.account_id == "123456789012"
    assert settings.ledger_table == "fleet-ledger"
    assert settings.pipeline == "fleet-import"
    assert settings.metrics is True
    if name == "Producer":
        assert settings.queue_url == refs["ImportQueue"]
        options = settings.import_options()
        assert (options.policies, options.thing_groups, options.thing_type) == (
            ("DevicePolicy", "Spare"),
            ("Fleet",),
            "Sensor",
        )


def test_an_empty_thing_type_is_left_out_not_set_empty() -> None:
    env = resolve(functions()["Producer"].environment)
    assert "THINGPRESS_LAMBDA_THING_TYPE" not in env
    assert LambdaSettings(policies=env["THINGPRESS_LAMBDA_POLICIES"]).policies == ()


def test_workers_set_concurrency_and_each_consumers_quota_share(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = functions()["Consumer"].properties
    assert consumer["ReservedConcurrentExecutions"] == {"Ref": "Workers"}
    event = consumer["Events"]["Imports"]["Properties"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "Workers"}
    assert "ReportBatchItemFailures" in event["FunctionResponseTypes"]
    assert event["BatchSize"] == 10

    # Workers=4 and QuotaShare=0.5: each consumer registers at 10/s x 0.5 / 4
    env = resolve(
        functions()["Consumer"].environment, {"LedgerTable": "t"}, {"Workers": "4", "QuotaShare": "0.5"}
    )
    for variable, value in env.items():
        monkeypatch.setenv(variable, str(value))
    settings = LambdaSettings(ledger_table=None)
    runtime = LambdaRuntime.from_settings(settings, ClientFactory(ThingpressSettings(region="us-east-1")))
    limiter = getattr(runtime.importer.iot, "limiter", None)
    assert limiter is not None
    rate = limiter.configured_rate("iot.RegisterCertificateWithoutCA")
    assert rate is not None
    assert math.isclose(rate, DEFAULT_RATE_LIMITS["iot.RegisterCertificateWithoutCA"] * 0.5 / 4)


def test_the_queue_is_sized_as_the_docs_explain() -> None:
    consumer = functions()["Consumer"].properties
    queue = resources()["ImportQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ImportDeadLetterQueue", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    receive = template()["Parameters"]["MaxReceiveCount"]
    assert (receive["MinValue"], receive["MaxValue"]) == (5, 10)
    # the consumer answers before its timeout: the safety margin leaves room for a record
    margin = float(resolve(functions()["Consumer"].environment)["THINGPRESS_LAMBDA_SAFETY_MARGIN"])
    assert 0 < margin < consumer["Timeout"] / 2


def test_the_ledger_table_is_keyed_as_the_ledger_expects() -> None:
    table = resources()["LedgerTable"]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"


def _our_metrics() -> set[str]:
    return set(CONSUMER_METRICS) | set(PRODUCER_METRICS)


def test_alarms_watch_metrics_the_functions_print() -> None:
    alarms = {
        name: r["Properties"] for name, r in resources().items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {
        "ImportDeadLetterQueueNotEmpty",
        "FailedImportsAlarm",
        "ThrottlingSustainedAlarm",
        "ConsumerErrorsAlarm",
    } <= set(alarms)
    for alarm in alarms.values():
        if alarm["Namespace"] == {"Ref": "MetricsNamespace"}:
            assert alarm["MetricName"] in _our_metrics()
            dimensions = {d["Name"] for d in alarm["Dimensions"]}
            assert dimensions == {"Pipeline", "Function"}
    assert alarms["ThrottlingSustainedAlarm"]["EvaluationPeriods"] >= 3


def test_the_dashboard_is_json_and_shows_metrics_the_functions_print() -> None:
    refs = {"Consumer": "fleet-import-Consumer-1", "Producer": "fleet-import-Producer-1"}
    body = json.loads(resolve(resources()["Dashboard"]["Properties"]["DashboardBody"], refs))
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for wanted in ("Import rate", "Failures", "Throttles", "Queue depth", "Age of the oldest message"):
        assert any(t.startswith(wanted) for t in titles), wanted
    names = set()
    for widget in body["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            strings = [m for m in metric if isinstance(m, str)]
            # "..." repeats the previous line's namespace (and the name too when it stands alone)
            if strings[0] in ("Thingpress", "...") and len(strings) > 1:
                names.add(strings[1])
    assert names <= _our_metrics()
    assert {"Imported", "Failed", "Throttled"} <= names


def test_the_documented_metric_table_matches_the_code() -> None:
    docs = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Za-z.<>]+)` \| (consumer|producer|both) \| (\w+) \|", docs, flags=re.M)
    documented: dict[str, dict[str, str]] = {"consumer": {}, "producer": {}}
    for name, where, unit in rows:
        for function in ("consumer", "producer") if where == "both" else (where,):
            documented[function][name] = unit
    calls = f"{CALLS_PREFIX}<operation>"
    assert documented["consumer"] == {**CONSUMER_METRICS, calls: "Count"}
    assert documented["producer"] == {**PRODUCER_METRICS, calls: "Count"}


def test_parameters_have_defaults_that_deploy() -> None:
    defaults = parameter_defaults()
    for name, parameter in template()["Parameters"].items():
        pattern = parameter.get("AllowedPattern")
        if pattern is not None:
            assert re.fullmatch(pattern, defaults[name]), name
    assert re.fullmatch(template()["Parameters"]["QuotaShare"]["AllowedPattern"], "0.25")
    assert not re.fullmatch(template()["Parameters"]["QuotaShare"]["AllowedPattern"], "1.5")
    assert not re.fullmatch(template()["Parameters"]["QuotaShare"]["AllowedPattern"], "0")
