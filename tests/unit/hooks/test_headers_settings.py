"""What a webhook request carries (payload, content type, metadata, configured headers), how the original's
`httpHeaders` string becomes those configured headers, and the settings read from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algorun.api.configs import HookConfig, HookTarget, Identity
from algorun.api.headers import parse_http_headers
from algorun.bus import contract
from algorun.bus.types import Message
from algorun.hooks.message import HookHeaders, request_headers, trace_id
from algorun.hooks.settings import SettingsError, build_settings
from algorun.webhook.delivery import ATTEMPT_HEADER, Webhook
from algorun.webhook.delivery import request_headers as sent_headers
from algorun.webhook.signing import SIGNATURE_HEADER, verify


def _msg(headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message("algorun.acme.x.algo.out", 2, 41, b"k", b'{"ok":true}', headers or [], 1_700_000_000_000)


def test_metadata_and_content_type_come_from_the_message() -> None:
    first = contract.first_hop(trace_id="abc123", content_type="application/json", endpoint_params="a=1&b=2")
    msg = _msg([*first, (contract.FILE_NAME, b"in.csv")])
    h = request_headers(msg, hook_id="results-0", input_name="results", configured={"Authorization": "Bearer t"})
    assert h["Content-Type"] == "application/json"
    assert h["Authorization"] == "Bearer t"
    assert h["X-Algorun-Trace-Id"] == "abc123"
    assert h["X-Algorun-Delivery-Id"] == "algorun.acme.x.algo.out/2/41"
    assert h["X-Algorun-Topic"] == "algorun.acme.x.algo.out"
    assert h["X-Algorun-Hook"] == "results-0"
    assert h["X-Algorun-Hook-Input"] == "results"
    assert h["X-Algorun-Endpoint-Params"] == "a=1&b=2"
    assert h["X-Algorun-File-Name"] == "in.csv"
    assert h["X-Algorun-Message-Data-Type"] == "Embedded"
    assert h["X-Algorun-Timestamp"] == "1700000000000"
    assert h["traceparent"].startswith("00-") and len(h["traceparent"].split("-")) == 4


def test_a_configured_content_type_wins_whatever_its_case() -> None:
    msg = _msg(contract.first_hop(trace_id="t", content_type="application/json"))
    h = request_headers(msg, hook_id="h-0", input_name="h", configured={"content-type": "text/plain"})
    assert [k for k in h if k.lower() == "content-type"] == ["content-type"]
    assert h["content-type"] == "text/plain"


def test_configured_headers_cannot_spoof_metadata() -> None:
    msg = _msg(contract.first_hop(trace_id="real", content_type=None))
    h = request_headers(msg, hook_id="h-0", input_name="h", configured={"x-algorun-trace-id": "fake"})
    assert "x-algorun-trace-id" not in h
    assert h["X-Algorun-Trace-Id"] == "real"


def test_a_message_without_headers_gets_defaults_and_a_stable_trace_id() -> None:
    msg = _msg()
    h = request_headers(msg, hook_id="h-0", input_name="h", configured={})
    assert h["Content-Type"] == "application/octet-stream"
    assert (
        h["X-Algorun-Trace-Id"]
        == trace_id(msg)
        == request_headers(msg, hook_id="h-1", input_name="h", configured={})["X-Algorun-Trace-Id"]
    )
    assert "X-Algorun-Endpoint-Params" not in h


def test_one_webhook_s_headers_carry_each_message_s_own_values() -> None:
    """A webhook's headers are built once and reused: nothing of one message may leak into the next."""
    headers = HookHeaders(
        hook_id="h-0", input_name="h", configured={"x-algorun-endpoint-params": "configured", "A": "b"}
    )
    with_params = _msg(contract.first_hop(trace_id="one", content_type="text/csv", endpoint_params="p=1"))
    plain = Message("other.topic", 0, 7, None, b"", contract.first_hop(trace_id="two"), 5)
    first, second = headers.of(with_params), headers.of(plain)
    assert first["X-Algorun-Endpoint-Params"] == "p=1"
    assert [k for k in first if k.lower() == "x-algorun-endpoint-params"] == ["X-Algorun-Endpoint-Params"]
    assert second["x-algorun-endpoint-params"] == "configured"  # a message without parameters keeps the webhook's
    assert (second["X-Algorun-Trace-Id"], second["X-Algorun-Topic"]) == ("two", "other.topic")
    assert (second["X-Algorun-Delivery-Id"], second["X-Algorun-Timestamp"]) == ("other.topic/0/7", "5")
    assert second["Content-Type"] == "application/octet-stream" and second["A"] == "b"
    assert first["Content-Type"] == "text/csv"


def test_line_breaks_in_message_headers_cannot_inject_request_headers() -> None:
    msg = _msg([(contract.TRACE_ID, b"t"), (contract.FILE_NAME, b"a.txt\r\nX-Evil: 1")])
    h = request_headers(msg, hook_id="h-0", input_name="h", configured={})
    assert "\r" not in h["X-Algorun-File-Name"] and "\n" not in h["X-Algorun-File-Name"]


def test_signature_and_attempt_are_added_and_cannot_be_spoofed() -> None:
    hook = Webhook("http://x/", secret=b"k")
    sent = sent_headers(hook, b"body", {"x-algorun-signature": "sha256=00", "X-ALGORUN-ATTEMPT": "9", "A": "b"}, 3)
    assert {k for k in sent if k.lower() == SIGNATURE_HEADER.lower()} == {SIGNATURE_HEADER}
    assert verify(b"k", b"body", sent[SIGNATURE_HEADER])
    assert sent[ATTEMPT_HEADER] == "3" and sent["A"] == "b"
    assert SIGNATURE_HEADER not in sent_headers(Webhook("http://x/"), b"body", {}, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("Authorization: Bearer abc", {"Authorization": "Bearer abc"}),
        ("A: 1; B: two words\nC:3", {"A": "1", "B": "two words", "C": "3"}),
        ('{"X-Api-Key": "k", "X-N": 5}', {"X-Api-Key": "k", "X-N": "5"}),
        ("X-Url: http://a/b?c=d", {"X-Url": "http://a/b?c=d"}),
    ],
)
def test_http_headers_string_formats(text: str, expected: dict[str, str]) -> None:
    assert parse_http_headers(text) == expected


@pytest.mark.parametrize("text", ["no colon here", "Bad Name: x", "[1, 2]", "{not json"])
def test_bad_http_headers_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="httpHeaders"):
        parse_http_headers(text)


def _config() -> HookConfig:
    return HookConfig(
        identity=Identity(deployment_owner="o", deployment_name="d", pipeline_owner="o", pipeline_name="p"),
        consumer_group="g",
        dead_letter_topic="dlq",
        inputs={"results": ["t1"], "audit": ["t2"]},
        web_hooks=[
            HookTarget(pipeline_hook_input_name="results", web_hook_url="http://a/", http_verb="put"),
            HookTarget(pipeline_hook_input_name="results", web_hook_url="http://b/", headers={"X": "1"}),
            HookTarget(pipeline_hook_input_name="audit", web_hook_url="http://c/"),
        ],
    )


def test_hook_ids_secrets_and_policy_from_the_environment(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"results-1": "for-b", "http://c/": "for-c"}))
    env = {
        "ALGORUN_HOOK_SECRET": "default",
        "ALGORUN_HOOK_SECRETS_FILE": str(secrets),
        "ALGORUN_HOOK_RETRY_BUDGET": "60",
        "ALGORUN_HOOK_MAX_ATTEMPTS": "5",
        "ALGORUN_HOOK_VERIFY_TLS": "false",
    }
    s = build_settings(_config(), env)
    assert [t.id for t in s.targets] == ["results-0", "results-1", "audit-0"]
    assert [t.webhook.secret for t in s.targets] == [b"default", b"for-b", b"for-c"]
    assert s.targets[0].webhook.method == "PUT"
    assert s.targets[1].headers == {"X": "1"}
    assert not s.targets[0].webhook.verify_tls
    assert (s.policy.budget_s, s.policy.max_attempts) == (60.0, 5)


def test_inline_secrets_win_over_the_file(tmp_path: Path) -> None:
    """On Kubernetes the Secret's `secrets.json` key arrives inline, in ALGORUN_HOOK_SECRETS."""
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"results-0": "from-file", "http://c/": "for-c"}))
    env = {"ALGORUN_HOOK_SECRETS_FILE": str(secrets), "ALGORUN_HOOK_SECRETS": '{"results-0": "inline"}'}
    assert [t.webhook.secret for t in build_settings(_config(), env).targets] == [b"inline", None, b"for-c"]


def test_the_circuit_is_on_by_default_and_can_be_tuned_or_turned_off() -> None:
    default = build_settings(_config(), {})
    assert (default.circuit_fails, default.circuit_open_s) == (10, 10.0)
    tuned = build_settings(_config(), {"ALGORUN_HOOK_CIRCUIT_FAILS": "3", "ALGORUN_HOOK_CIRCUIT_OPEN": "2.5"})
    assert (tuned.circuit_fails, tuned.circuit_open_s) == (3, 2.5)
    assert build_settings(_config(), {"ALGORUN_HOOK_CIRCUIT_FAILS": "0"}).circuit_fails == 0


def test_no_secret_means_unsigned() -> None:
    assert all(t.webhook.secret is None for t in build_settings(_config(), {}).targets)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"ALGORUN_HOOK_RETRY_BUDGET": "soon"}, "ALGORUN_HOOK_RETRY_BUDGET"),
        ({"ALGORUN_HOOK_TIMEOUT": "-1"}, "ALGORUN_HOOK_TIMEOUT"),
        ({"ALGORUN_HOOK_BACKOFF_MAX": "nan"}, "ALGORUN_HOOK_BACKOFF_MAX"),
        ({"ALGORUN_HOOK_BACKOFF_BASE": "0"}, "retry policy"),
        ({"ALGORUN_HOOK_SECRETS_FILE": "/nonexistent/secrets.json"}, "cannot read"),
        ({"ALGORUN_HOOK_SECRETS": "{not json"}, "ALGORUN_HOOK_SECRETS is not JSON"),
        ({"ALGORUN_HOOK_SECRETS": '{"results-0": 7}'}, "JSON object of hook id or URL to secret"),
        ({"ALGORUN_HOOK_CIRCUIT_FAILS": "-3"}, "ALGORUN_HOOK_CIRCUIT_FAILS"),
        ({"ALGORUN_HOOK_CIRCUIT_OPEN": "off"}, "ALGORUN_HOOK_CIRCUIT_OPEN"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        build_settings(_config(), env)
