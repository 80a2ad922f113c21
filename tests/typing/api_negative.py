"""Type-checked only (mypy --strict, pyright strict), never run: calls that must NOT type-check.

Each line below is a mistake a type checker has to catch: a misspelt setting, a value outside
a Literal, a keyword read_manifest does not take. Each carries ``# type: ignore[<code>]``;
mypy (``warn_unused_ignores``, part of --strict) and pyright (``reportUnnecessaryTypeIgnoreComment``,
on for tests/typing in pyproject's ``[tool.pyright] executionEnvironments``) report an ignore
that suppresses nothing. So if one of these calls ever type-checks (a settings class hides
pydantic's typed constructor behind ``**values: Any`` again, say), the typing session fails.
"""

from __future__ import annotations

from thingpress_core import ImportOptions, ThingpressSettings
from thingpress_core.manifests import read_manifest
from thingpress_core.resilience import CircuitBreakerRegistry, CircuitBreakerSettings, ResilienceSettings


def misspelt_settings() -> None:
    ThingpressSettings(regoin="eu-west-1")  # type: ignore[call-arg]  # must fail: no field "regoin"
    CircuitBreakerSettings(failure_threshhold=3)  # type: ignore[call-arg]  # must fail: misspelt field
    ResilienceSettings(quota_shar=0.5)  # type: ignore[call-arg]  # must fail: misspelt field


def misspelt_import_options() -> None:
    ImportOptions(polices=("P",))  # type: ignore[call-arg]  # must fail: misspelt field
    ImportOptions(thing_name="certificate_id")  # type: ignore[call-arg]  # must fail: the option is `naming`
    ImportOptions(naming="cn")  # type: ignore[arg-type]  # must fail: one spelling, "common_name"
    ImportOptions(status="REVOKED")  # type: ignore[arg-type]  # must fail: ACTIVE or INACTIVE only


def mistyped_settings() -> None:
    ThingpressSettings(retry_mode="bogus")  # type: ignore[arg-type]  # must fail: not "standard"/"adaptive"
    ThingpressSettings(total_max_attempts="five")  # type: ignore[arg-type]  # must fail: not an int
    CircuitBreakerSettings(recovery_timeout="soon")  # type: ignore[arg-type]  # must fail: not a number


def wrong_registry_settings() -> None:
    CircuitBreakerRegistry(CircuitBreakerSettings())  # type: ignore[arg-type]  # must fail: one breaker's settings


def wrong_manifest_options() -> None:
    read_manifest("x", formt="pem")  # type: ignore[call-overload]  # must fail: no keyword "formt"
    read_manifest("x", naming=3)  # type: ignore[call-overload]  # must fail: not a naming
    read_manifest("x", naming="serial")  # type: ignore[call-overload]  # must fail: not a naming
    read_manifest("x", naming="cn")  # type: ignore[call-overload]  # must fail: the old spelling of "common_name"
    read_manifest("x", thing_name="mac")  # type: ignore[call-overload]  # must fail: the option is naming=
    read_manifest("x", on_error="ignore")  # type: ignore[call-overload]  # must fail: not raise/skip/yield
    read_manifest("x", max_members="many")  # type: ignore[call-overload]  # must fail: not an int


def yielded_items_are_not_all_entries() -> None:
    for item in read_manifest("x", on_error="yield"):
        print(item.certificate)  # type: ignore[union-attr]  # must fail: a ManifestError has no certificate
