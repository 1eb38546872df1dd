"""The operator's notifier takes its URL and signing secret from the chart's environment variables."""

from __future__ import annotations

from algorun.operator.notify import Notifier
from algorun.operator.settings import OperatorSettings


def test_notif_secret_signs_notifications() -> None:
    settings = OperatorSettings(notif_url="http://n.example/hooks", notif_secret="s3cret")  # type: ignore[arg-type]
    notifier = Notifier.from_settings(settings)
    assert notifier.base_url == "http://n.example/hooks" and notifier.secret == b"s3cret"
    assert "s3cret" not in repr(settings)  # a secret never reaches a log line through the settings


def test_without_a_secret_notifications_are_unsigned() -> None:
    assert Notifier.from_settings(OperatorSettings(notif_url="http://n.example/hooks")).secret is None
