"""docs/settings.md lists every setting's environment variable, so a setting added to a model is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from algorun.bus.settings import KafkaOptions
from algorun.endpoint.settings import EndpointOptions
from algorun.hooks.settings import HookOptions
from algorun.runner.config import RunnerOptions
from algorun.settings import ComponentSettings
from algorun.storage.settings import StorageOptions

DOC = Path(__file__).parents[2] / "docs" / "settings.md"


@pytest.mark.parametrize("model", [RunnerOptions, EndpointOptions, HookOptions, KafkaOptions, StorageOptions])
def test_every_variable_is_in_the_settings_doc(model: type[ComponentSettings]) -> None:
    text = DOC.read_text()
    missing = [v for name in model.model_fields for v in model.env_names(name) if f"`{v}`" not in text]
    assert not missing, f"docs/settings.md does not list {missing}"
