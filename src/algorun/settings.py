"""What every component's settings share: the base model, where values come from, and one `SettingsError`.

Two words, one meaning each, in every component:

- **config** is *what to run*: the JSON the operator writes from the pipeline (`algorun.api.configs`: a
  `RunnerConfig`, `EndpointConfig`, `HookConfig`) and mounts into the pod, or local mode writes.
- **settings** are *how the process runs it*: limits, timeouts, ports, secrets, concurrency. Each component
  declares its settings once, in one `ComponentSettings` model: each knob with its default, its unit in its name
  (`_seconds`, `_ms`, `_bytes`), its environment variable and a docstring. The CLI's options only override them.

A value comes from, lowest precedence first: the field's default, a lower layer the component passes (the
runner's config `runtime` block, what the pipeline YAML says), the environment, then the CLI's options. An empty
environment variable counts as unset. A value that cannot work is a `SettingsError` whose one line names the
variable or option and the value, so a bad deployment is told apart from a bug at a glance (the CLIs exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Self

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable, option or config field, and the value."""

    @classmethod
    def from_validation(
        cls,
        model: type[ComponentSettings],
        err: ValidationError,
        env: Mapping[str, str],
        options: Mapping[str, Any],
        lower: Mapping[str, Any],
    ) -> SettingsError:
        """One line for every refused value: `WHERE=VALUE: reason`, WHERE being the option, the environment
        variable or the lower layer's field that gave the value."""
        parts = []
        for error in err.errors():
            name = model.field_name(str(error["loc"][0])) if error["loc"] else None
            reason = _reason(error)
            if name is None:
                parts.append(reason)
                continue
            where, value = model.origin(name, env, options, lower)
            parts.append(f"{where}={value!r}: {reason}")
        return cls("; ".join(parts))


def _reason(error: Any) -> str:
    """Pydantic's message, said as the rule the value breaks."""
    if error["type"] == "literal_error":
        return "use " + str(error["ctx"]["expected"]).replace("'", "")
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


_SOURCES: ContextVar[tuple[Mapping[str, str] | None, Mapping[str, Any]]] = ContextVar(
    "algorun_settings_sources", default=(None, {})
)
"""The environment and lower layer of the `from_env` call in progress (None: the process environment)."""


class _MappingEnvSource(EnvSettingsSource):
    """The environment source over a given mapping, so tests and callers pass an environment explicitly."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (k if self.case_sensitive else k.lower()): v
            for k, v in self._mapping.items()
            if not (self.env_ignore_empty and v == "")
        }


class _LowerSource(PydanticBaseSettingsSource):
    """The layer under the environment (the runner's config `runtime` block), keyed by field name."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = dict(values)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class ComponentSettings(BaseSettings):
    """The base of each component's settings model. Subclasses set `env_prefix` (`ALGORUN_RUNNER_`...) and give a
    field a `validation_alias` only to keep a variable name the chart, the operator or the docs already use."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
        env_ignore_empty=True,
        use_attribute_docstrings=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Options (init arguments) over the environment over the lower layer; no .env file, no secrets dir."""
        env, lower = _SOURCES.get()
        environment = env_settings if env is None else _MappingEnvSource(settings_cls, env)
        return (init_settings, environment, _LowerSource(settings_cls, lower))

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, lower: Mapping[str, Any] | None = None, **options: Any
    ) -> Self:
        """The settings from `env` (default: the process environment) over `lower`, with `options` (the CLI's;
        None means not given) winning. SettingsError names what gave a value that cannot work."""
        given = {k: v for k, v in options.items() if v is not None}
        token = _SOURCES.set((env, dict(lower or {})))
        try:
            return cls(**given)
        except ValidationError as err:
            raise SettingsError.from_validation(
                cls, err, os.environ if env is None else env, given, lower or {}
            ) from None
        finally:
            _SOURCES.reset(token)

    @classmethod
    def env_names(cls, name: str) -> list[str]:
        """The environment variables of field `name`, the first found winning."""
        field = cls.model_fields[name]
        choices = getattr(field.validation_alias, "choices", None)
        if choices is not None:
            return [str(c) for c in choices]
        if isinstance(field.validation_alias, str):
            return [field.validation_alias]
        return [f"{cls.model_config.get('env_prefix', '')}{name}".upper()]

    @classmethod
    def option_name(cls, name: str) -> str:
        """The CLI option that overrides field `name` (subclasses map fields whose option is named otherwise)."""
        return "--" + name.replace("_", "-")

    @classmethod
    def field_name(cls, key: str) -> str | None:
        """The field that an error's location (a field name or one of its variables) refers to."""
        if key in cls.model_fields:
            return key
        for name in cls.model_fields:
            if key.upper() in cls.env_names(name):
                return name
        return None

    @classmethod
    def origin(
        cls, name: str, env: Mapping[str, str], options: Mapping[str, Any], lower: Mapping[str, Any]
    ) -> tuple[str, Any]:
        """Where field `name`'s value came from (option, variable or lower layer) and the value given there."""
        if name in options:
            return cls.option_name(name), options[name]
        upper = {k.upper(): v for k, v in env.items()}
        for variable in cls.env_names(name):
            if upper.get(variable):
                return variable, upper[variable]
        if name in lower:
            return f"config runtime.{name}", lower[name]
        return name, None
