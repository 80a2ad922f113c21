"""Bases for configuration classes: pydantic's typed constructor, `ConfigurationError` at run time.

Type checkers see the constructor pydantic builds from the fields (pyright through pydantic's
``dataclass_transform``, mypy through the ``pydantic.mypy`` plugin), so a misspelt or mistyped
setting is an error before anything runs. At run time the same calls raise
[`ConfigurationError`][thingpress_core.errors.ConfigurationError] (a ``ValueError``) instead of pydantic's
``ValidationError``, which stays attached as ``__cause__``. The run-time ``__init__`` and
``model_validate*`` live under ``if not TYPE_CHECKING:`` so no checker sees a ``**values: Any``
signature.

- `ConfigSettings` (a pydantic-settings ``BaseSettings``) reads the environment. Errors name
  the variable: ``env_prefix`` + field path in capitals joined by ``__``
  (``THINGPRESS_RESILIENCE__QUOTA_SHARE``). A variable that cannot be parsed at all (a
  dictionary that is not JSON) is a `ConfigurationError` too.
- `ConfigModel` (a pydantic ``BaseModel``) is a plain value: it reads no environment, and
  errors name the class and the dotted field path (``CircuitBreakerSettings:
  failure_threshold``).

Where a `ConfigSettings` or `ConfigModel` sits inside another one (``ResilienceSettings`` in
``ThingpressSettings``), pydantic validates it as part of its parent: the error names the full
path from the outermost class, and a nested settings class does not read the environment a
second time (the parent's sources already hold its variables). ``model_validate`` and
``model_validate_json`` raise `ConfigurationError` as the constructor does; on a
`ConfigSettings` they read the environment too (the data given wins), as the constructor does.

How to use it::

    from typing import ClassVar

    from pydantic import Field
    from pydantic_settings import SettingsConfigDict

    from thingpress_core._config import ConfigModel, ConfigSettings


    class LambdaSettings(ConfigSettings):
        model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
            env_prefix="THINGPRESS_LAMBDA_", extra="forbid", frozen=True, case_sensitive=False
        )

        per_message: int = Field(default=1, ge=1, le=500)


    LambdaSettings(per_mesage=2)  # mypy and pyright: no parameter named "per_mesage"
    LambdaSettings(per_message=0)  # ConfigurationError: ... THINGPRESS_LAMBDA_PER_MESSAGE=0: ...


    class ImportOptions(ConfigModel):  # a value, not read from the environment
        model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")
        concurrency: int = Field(default=8, ge=1)

Delete the class's own ``def __init__(self, **values: Any)`` (or a hand-written keyword
``__init__``): it would hide the typed constructor from both checkers, and the base already
turns ``ValidationError`` into `ConfigurationError`. Keep ``extra="forbid"`` so unknown
keywords also fail at run time. The mypy side needs ``plugins = ["pydantic.mypy"]`` with
``init_typed`` and ``init_forbid_extra`` (see ``[tool.pydantic-mypy]`` in ``pyproject.toml``).
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsError

from thingpress_core.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ConfigModel", "ConfigSettings"]

_T = TypeVar("_T")

# True while a ConfigSettings reads its sources and validates: a settings class validated inside
# it is a nested field, whose variables the outer sources already read.
_SOURCES_READ: ContextVar[bool] = ContextVar("thingpress_config_sources_read", default=False)
# True between model_validate* and the __init__ pydantic calls for it: that __init__ is the
# outermost one, but must hand its error back to model_validate* instead of raising it into
# pydantic-core (which would wrap a ValueError into a new ValidationError).
_FROM_VALIDATE: ContextVar[bool] = ContextVar("thingpress_config_from_validate", default=False)

_SETTINGS_FIELD = re.compile(r'field "([^"]+)"')


class _Escape(Exception):
    """Carries a `ConfigurationError` through pydantic-core, which only lets non-ValueErrors pass."""

    def __init__(self, error: ConfigurationError) -> None:
        super().__init__(str(error))
        self.error = error


def _settings_error(cls: type[BaseSettings], error: SettingsError) -> ConfigurationError:
    """A variable pydantic-settings could not even parse (a dictionary that is not JSON)."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    found = _SETTINGS_FIELD.search(str(error))
    field = found.group(1) if found else None
    variable = prefix + field.upper() if field else prefix.rstrip("_") or cls.__name__
    info = cls.model_fields.get(field) if field else None
    nested = info is not None and isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    where = f"{variable} or a {variable}__* variable" if nested else variable
    reason = str(error.__cause__) if error.__cause__ is not None else str(error)
    return ConfigurationError(
        f"invalid configuration: cannot parse {where} (dictionaries and lists are JSON): {reason}",
        variable=variable,
    )


def _configuration_error(cls: type[BaseModel], error: Exception) -> ConfigurationError:
    """The `ConfigurationError` for ``error``, with ``error`` as its ``__cause__``."""
    if isinstance(error, ValidationError):
        if issubclass(cls, BaseSettings):
            prefix = cls.model_config.get("env_prefix") or ""
            result = ConfigurationError.from_validation_error(
                error, env_prefix=prefix.upper(), model=cls.__name__
            )
        else:
            result = ConfigurationError.from_validation_error(error, model=cls.__name__)
    elif isinstance(error, SettingsError) and issubclass(cls, BaseSettings):
        result = _settings_error(cls, error)
    else:  # pragma: no cover - only the two above are caught
        raise TypeError(f"not a validation error: {type(error).__name__}")
    result.__cause__ = error
    return result


def _validate(cls: type[BaseModel], call: Callable[[], _T]) -> _T:
    """Run a ``model_validate*`` call; raise its failure as a `ConfigurationError`."""
    token = _FROM_VALIDATE.set(True)
    try:
        return call()
    except _Escape as escape:  # raised by a ConfigSettings.__init__ pydantic called
        raise escape.error from escape.error.__cause__
    except ValidationError as exc:  # a ConfigModel, or input that is not a mapping at all
        raise _configuration_error(cls, exc) from exc
    finally:
        _FROM_VALIDATE.reset(token)


def _model_init(model: BaseModel, values: dict[str, Any]) -> None:
    try:
        BaseModel.__init__(model, **values)
    except ValidationError as exc:
        raise _configuration_error(type(model), exc) from exc


def _settings_init(settings: BaseSettings, values: dict[str, Any]) -> None:
    if _SOURCES_READ.get():
        # Nested in another settings class: validate what the parent gathered; a
        # ValidationError goes back to pydantic, which prefixes the parent's path to it.
        BaseModel.__init__(settings, **values)
        return
    from_validate = _FROM_VALIDATE.get()
    read = _SOURCES_READ.set(True)
    validate = _FROM_VALIDATE.set(False)
    try:
        BaseSettings.__init__(settings, **values)
    except (ValidationError, SettingsError) as exc:
        error = _configuration_error(type(settings), exc)
        if from_validate:
            raise _Escape(error) from None
        raise error from exc
    finally:
        _FROM_VALIDATE.reset(validate)
        _SOURCES_READ.reset(read)


class ConfigModel(BaseModel):
    """A configuration value that reads no environment; invalid input raises `ConfigurationError`.

    Errors name the class and the dotted field path. Nested in a `ConfigSettings`, the field
    is named by its environment variable instead (the outer class translates the error).
    """

    if not TYPE_CHECKING:
        # Hidden from type checkers, which build the typed constructor from the fields.
        def __init__(self, /, **values: Any) -> None:
            _model_init(self, values)

        # pydantic calls a custom __init__ for every nested instance it validates; this marker
        # says ours adds nothing there, so nested values keep pydantic's own error path.
        __init__.__pydantic_base_init__ = True

        @classmethod
        def model_validate(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigModel, cls).model_validate(*args, **kwargs))

        @classmethod
        def model_validate_json(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigModel, cls).model_validate_json(*args, **kwargs))

        @classmethod
        def model_validate_strings(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigModel, cls).model_validate_strings(*args, **kwargs))


class ConfigSettings(BaseSettings):
    """Configuration read from keyword arguments and ``<env_prefix><FIELD>`` variables.

    Keyword arguments (or the data given to ``model_validate``) win over the environment.
    Invalid values raise `ConfigurationError` naming the variable and the value.
    pydantic-settings' private keywords (``_env_file``, ``_env_prefix``, ...) still work at
    run time; mypy's pydantic plugin accepts them, pyright's synthesized constructor does not.
    """

    if not TYPE_CHECKING:
        # Hidden from type checkers, which build the typed constructor from the fields. No
        # __pydantic_base_init__ marker: pydantic must call this __init__ from model_validate
        # too, so that reads the environment as the constructor does.
        def __init__(self, /, **values: Any) -> None:
            _settings_init(self, values)

        @classmethod
        def model_validate(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigSettings, cls).model_validate(*args, **kwargs))

        @classmethod
        def model_validate_json(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigSettings, cls).model_validate_json(*args, **kwargs))

        @classmethod
        def model_validate_strings(cls, *args: Any, **kwargs: Any) -> Any:
            return _validate(cls, lambda: super(ConfigSettings, cls).model_validate_strings(*args, **kwargs))
