"""ImportOptions: defaults, limits, and errors that name the option."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions, OutcomeStatus


def test_defaults() -> None:
    options = ImportOptions()
    assert options.policies == ()
    assert options.thing_groups == ()
    assert options.thing_type is None
    assert options.naming is None  # the manifest's name, else the common name
    assert options.allow_expired is False
    assert options.allow_multiple_things is False
    assert options.retry_deadline == 900.0
    assert options.status == "ACTIVE"
    assert options.concurrency == 8
    assert options.trust_store is None
    assert options.dry_run is False
    assert options.preflight is True
    assert options.transient_rounds == 3


def test_explicit_init_defaults_match_the_fields() -> None:
    # The typed __init__ repeats the defaults; they must not drift from the field definitions.
    fields = ImportOptions.model_fields
    built = ImportOptions()
    for name, info in fields.items():
        assert getattr(built, name) == info.default, name


def test_lists_become_tuples_and_the_model_is_frozen() -> None:
    options = ImportOptions(policies=["A", "B"], thing_groups=["G"])
    assert options.policies == ("A", "B")
    with pytest.raises(ValidationError, match="frozen"):
        options.concurrency = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"policies": tuple(f"P{i}" for i in range(11))}, "policies"),
        ({"thing_groups": tuple(f"G{i}" for i in range(11))}, "thing_groups"),
        ({"policies": ("A", "A")}, "policies"),
        ({"policies": ("",)}, "policies"),
        ({"concurrency": 0}, "concurrency"),
        ({"transient_rounds": -1}, "transient_rounds"),
        ({"status": "REVOKED"}, "status"),
        ({"thing_type": ""}, "thing_type"),
    ],
)
def test_invalid_values_raise_configuration_error_naming_the_option(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        ImportOptions(**kwargs)  # type: ignore[arg-type]
    assert field in str(info.value)
    assert "ImportOptions" in str(info.value)
    assert info.value.variable is not None
    assert info.value.variable.startswith(field)


def test_ten_policies_and_groups_are_allowed() -> None:
    options = ImportOptions(policies=[f"P{i}" for i in range(10)], thing_groups=[f"G{i}" for i in range(10)])
    assert options.calls_per_certificate() == 23


def test_calls_per_certificate_is_the_floor() -> None:
    assert ImportOptions(policies=("P",), thing_groups=("G",), thing_type="T").calls_per_certificate() == 5
    assert ImportOptions().calls_per_certificate() == 3


def test_a_callable_naming_strategy_is_accepted() -> None:
    options = ImportOptions(naming=lambda cert: "x")
    assert callable(options.naming)


def test_outcome_status_is_a_string_enum() -> None:
    assert OutcomeStatus("already_present") is OutcomeStatus.ALREADY_PRESENT
    assert str(OutcomeStatus.IMPORTED) == "imported"
    assert OutcomeStatus.FAILED == "failed"


@pytest.mark.parametrize("prefix", ["lab prefix", "ünit-", "x" * 111, "a/b"])
def test_a_prefix_no_thing_name_could_start_with_is_refused_at_once(prefix: str) -> None:
    from thingpress_core.operations import ExpectedState

    with pytest.raises(ConfigurationError, match="thing_name_prefix"):
        ImportOptions(thing_name_prefix=prefix)
    with pytest.raises(ConfigurationError, match="thing_name_prefix"):
        ExpectedState(thing_name_prefix=prefix)


def test_a_valid_prefix_is_kept_and_an_empty_one_means_none() -> None:
    assert ImportOptions(thing_name_prefix="lab:7_x" + "y" * 103).thing_name_prefix == "lab:7_x" + "y" * 103
    assert ImportOptions(thing_name_prefix="").thing_name_prefix is None
