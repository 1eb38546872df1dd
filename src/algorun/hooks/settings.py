"""The hook runner's settings (`HookOptions`: how it delivers) and `HookSettings`, what the hook runner takes:
those settings resolved against the pipeline's `HookConfig` (the webhooks to deliver to), as `algorun.settings`
defines both words.

Signing secrets, retry budgets and limits are not fields of the API's hook config, so they are settings:
environment variables `ALGORUN_HOOK_*` (secrets only from the environment or a mounted file, never from the config
map), listed in docs/settings.md. `ALGORUN_HOOK_SECRETS` (inline JSON, as a Kubernetes Secret key arrives) and
`ALGORUN_HOOK_SECRETS_FILE` (a JSON file) map a hook id (`{input}-{n}`) or a webhook URL to its secret; the inline
entries win, and `ALGORUN_HOOK_SECRET` signs every hook without its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from algorun.api.configs import HookConfig
from algorun.settings import ComponentSettings, SettingsError
from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.delivery import Webhook

PREFIX = "ALGORUN_HOOK_"

__all__ = ["HookOptions", "HookSettings", "HookTarget", "SettingsError", "build_settings"]


def _seconds(default: float, variable: str) -> Any:
    """A duration field: finite, not negative, read from `ALGORUN_HOOK_{variable}` (its name in the chart)."""
    return Field(default=default, ge=0, allow_inf_nan=False, validation_alias=PREFIX + variable)


class HookOptions(ComponentSettings):
    """How the hook runner delivers; every field is an `ALGORUN_HOOK_*` variable, the CLI's options win."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    secret: SecretStr | None = None
    """Signing secret of every hook without its own."""
    secrets_file: Path | None = None
    """JSON file: hook id (`{input}-{n}`) or webhook URL -> secret."""
    secrets: SecretStr | None = None
    """The same JSON object inline (its entries win over the file's)."""
    max_attempts: int = Field(default=0, ge=0)
    """Attempts per message and hook before dead-lettering (0: only the retry budget limits them)."""
    retry_budget_seconds: float = _seconds(600.0, "RETRY_BUDGET")
    """Time per message and hook, from when it is read, before dead-lettering."""
    backoff_base_seconds: float = _seconds(0.5, "BACKOFF_BASE")
    """First delay between attempts."""
    backoff_max_seconds: float = _seconds(30.0, "BACKOFF_MAX")
    """Largest delay between attempts."""
    timeout_seconds: float = _seconds(10.0, "TIMEOUT")
    """Time per request (0: the default)."""
    concurrency: int = Field(default=8, ge=0)
    """Concurrent requests per hook (messages waiting to retry do not count; 0 counts as 1)."""
    max_backlog: int = Field(default=1000, ge=0)
    """Messages a hook may owe before the topics feeding it are paused (0 counts as 1)."""
    verify_tls: bool = True
    """Verify webhook TLS certificates against the system's trust store (false: any certificate is accepted)."""
    circuit_fails: int = Field(default=10, ge=0)
    """Failed requests in a row that open a hook's circuit (`algorun.webhook.circuit`; 0: no circuit)."""
    circuit_open_seconds: float = _seconds(10.0, "CIRCUIT_OPEN")
    """Time an open circuit sends nothing before one probe request."""
    health_port: int = Field(default=10080, ge=0, le=65535)
    """Port of /health, /ready and /metrics (0: any free port)."""
    health_host: str = "0.0.0.0"
    """Address the health server listens on."""
    log_level: str = "info"
    """debug, info, warning or error."""


@dataclass(frozen=True)
class HookTarget:
    """One webhook of one hook input. `id` is `{pipelineHookInputName}-{n}` (n counts the webhooks of that input
    in config order): stable across restarts, bounded, so it labels metrics, dead letters and secrets."""

    id: str
    input_name: str
    webhook: Webhook
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HookSettings:
    """The `HookOptions` resolved against the config: what the hook runner takes (`build_settings` makes it)."""

    targets: list[HookTarget]
    policy: RetryPolicy
    concurrency: int
    max_backlog: int
    circuit_fails: int
    """Failed requests in a row that open a webhook's circuit (`algorun.webhook.circuit`); 0 turns it off."""
    circuit_open_s: float
    monitoring_port: int
    monitoring_host: str
    log_level: str


def _secrets(options: HookOptions) -> dict[str, str]:
    """Per-hook secrets: the file's entries, then the inline ones (which win)."""
    found: dict[str, str] = {}
    path = options.secrets_file
    if path:
        try:
            text = path.read_text()
        except OSError as e:
            raise SettingsError(f"{PREFIX}SECRETS_FILE: cannot read {str(path)!r}: {e.strerror}") from e
        found.update(_secret_map(text, f"{PREFIX}SECRETS_FILE {str(path)!r}"))
    inline = options.secrets.get_secret_value() if options.secrets else ""
    if inline.strip():
        found.update(_secret_map(inline, f"{PREFIX}SECRETS"))
    return found


def _secret_map(text: str, where: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{where} is not JSON: {e.msg}") from e
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SettingsError(f"{where} must be a JSON object of hook id or URL to secret")
    return {str(k): v for k, v in data.items()}


def build_settings(
    config: HookConfig,
    env: Mapping[str, str] | None = None,
    *,
    monitoring_port: int | None = None,
    log_level: str | None = None,
) -> HookSettings:
    """The settings from `env` (default: the process environment) and the CLI's options, resolved against
    `config`; SettingsError names a variable or option that cannot work."""
    options = HookOptions.from_env(env, health_port=monitoring_port, log_level=log_level)
    default_secret = options.secret.get_secret_value() if options.secret else None
    secrets = _secrets(options)
    timeout = options.timeout_seconds or HookOptions.model_fields["timeout_seconds"].default
    counts: dict[str, int] = {}
    targets = []
    for hook in config.web_hooks:
        n = counts.get(hook.pipeline_hook_input_name, 0)
        counts[hook.pipeline_hook_input_name] = n + 1
        hook_id = f"{hook.pipeline_hook_input_name}-{n}"
        secret = secrets.get(hook_id) or secrets.get(hook.web_hook_url) or default_secret
        targets.append(
            HookTarget(
                hook_id,
                hook.pipeline_hook_input_name,
                Webhook(
                    url=hook.web_hook_url,
                    method=(hook.http_verb or "POST").upper(),
                    secret=secret.encode() if secret else None,
                    timeout_s=timeout,
                    verify_tls=options.verify_tls,
                    name=hook_id,
                ),
                dict(hook.headers),
            )
        )
    try:
        policy = RetryPolicy(
            max_attempts=options.max_attempts,
            budget_s=options.retry_budget_seconds,
            base_s=options.backoff_base_seconds,
            max_delay_s=options.backoff_max_seconds,
        )
    except ValueError as err:
        raise SettingsError(str(err)) from err
    return HookSettings(
        targets=targets,
        policy=policy,
        concurrency=max(1, options.concurrency),
        max_backlog=max(1, options.max_backlog),
        circuit_fails=options.circuit_fails,
        circuit_open_s=options.circuit_open_seconds,
        monitoring_port=options.health_port,
        monitoring_host=options.health_host,
        log_level=options.log_level,
    )
