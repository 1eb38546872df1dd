"""The hook runner's settings: the pipeline's `HookConfig` plus what it does not carry yet.

Signing secrets, retry budgets and limits are not (yet) fields of the API's hook config, so they come from
environment variables; secrets only from the environment or a mounted file, never from the config map.

| variable | default | meaning |
|---|---|---|
| `ALGORUN_HOOK_SECRET` | - | signing secret of every hook without its own |
| `ALGORUN_HOOK_SECRETS_FILE` | - | JSON object: hook id (`{input}-{n}`) or webhook URL -> secret |
| `ALGORUN_HOOK_SECRETS` | - | the same JSON object inline (its entries win) |
| `ALGORUN_HOOK_MAX_ATTEMPTS` | 0 | attempts per message and hook before dead-lettering (0: only the budget) |
| `ALGORUN_HOOK_RETRY_BUDGET` | 600 | seconds per message and hook, from when it is read, before dead-lettering |
| `ALGORUN_HOOK_BACKOFF_BASE`, `_BACKOFF_MAX` | 0.5, 30 | first and largest delay between attempts (seconds) |
| `ALGORUN_HOOK_TIMEOUT` | 10 | seconds per request |
| `ALGORUN_HOOK_CONCURRENCY` | 8 | concurrent requests per hook (messages waiting to retry do not count) |
| `ALGORUN_HOOK_MAX_BACKLOG` | 1000 | messages a hook may owe before the topics feeding it are paused |
| `ALGORUN_HOOK_VERIFY_TLS` | true | verify webhook TLS certificates (the original's notifier did not) |
| `ALGORUN_HOOK_CIRCUIT_FAILS` | 10 | failed requests in a row that open a hook's circuit (0: no circuit) |
| `ALGORUN_HOOK_CIRCUIT_OPEN` | 10 | seconds an open circuit sends nothing before one probe request |
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from algorun.api.configs import HookConfig
from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.delivery import Webhook

PREFIX = "ALGORUN_HOOK_"


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable."""


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
    targets: list[HookTarget] = field(default_factory=list)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 8
    max_backlog: int = 1000
    circuit_fails: int = 10
    """Failed requests in a row that open a webhook's circuit (`algorun.webhook.circuit`); 0 turns it off."""
    circuit_open_s: float = 10.0
    monitoring_port: int = 10080
    monitoring_host: str = "0.0.0.0"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{PREFIX}{name} must be a finite number >= 0")
    return value


def _secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Per-hook secrets: ALGORUN_HOOK_SECRETS (inline JSON, as a Kubernetes Secret key arrives) and
    ALGORUN_HOOK_SECRETS_FILE (a JSON file); the inline entries win."""
    found: dict[str, str] = {}
    path = env.get(PREFIX + "SECRETS_FILE")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SettingsError(f"{PREFIX}SECRETS_FILE: cannot read {path!r}: {e.strerror}") from e
        found.update(_secret_map(text, f"{PREFIX}SECRETS_FILE {path!r}"))
    inline = env.get(PREFIX + "SECRETS")
    if inline and inline.strip():
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
    config: HookConfig, env: Mapping[str, str] | None = None, *, monitoring_port: int = 10080
) -> HookSettings:
    e = os.environ if env is None else env
    default_secret = e.get(PREFIX + "SECRET") or None
    secrets = _secrets(e)
    timeout = _number(e, "TIMEOUT", 10.0) or 10.0
    verify = (e.get(PREFIX + "VERIFY_TLS") or "true").strip().lower() not in ("0", "false", "no", "off")
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
                    verify_tls=verify,
                    name=hook_id,
                ),
                dict(hook.headers),
            )
        )
    try:
        policy = RetryPolicy(
            max_attempts=int(_number(e, "MAX_ATTEMPTS", 0)),
            budget_s=_number(e, "RETRY_BUDGET", 600.0),
            base_s=_number(e, "BACKOFF_BASE", 0.5),
            max_delay_s=_number(e, "BACKOFF_MAX", 30.0),
        )
    except ValueError as err:
        raise SettingsError(str(err)) from err
    return HookSettings(
        targets=targets,
        policy=policy,
        concurrency=max(1, int(_number(e, "CONCURRENCY", 8))),
        max_backlog=max(1, int(_number(e, "MAX_BACKLOG", 1000))),
        circuit_fails=int(_number(e, "CIRCUIT_FAILS", 10)),
        circuit_open_s=_number(e, "CIRCUIT_OPEN", 10.0),
        monitoring_port=monitoring_port,
    )
