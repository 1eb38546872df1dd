"""`algorun run` with `spec.endpoint.auth`: the Secret it names does not exist on one machine, so the credentials
must come from the environment; without them the pipeline does not start (its endpoint would accept anyone)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from algorun.api import load_pipeline
from algorun.api.pipeline import EndpointAuth
from algorun.api.topology import Topology
from algorun.local.runtime import RunFailed, check_endpoint_credentials
from tests.support.operator_render import example_files


def _topology(auth: EndpointAuth | None) -> Topology:
    _, topology = load_pipeline(example_files("text-transform"))
    endpoint = topology.spec.endpoint.model_copy(update={"auth": auth})
    return replace(topology, spec=topology.spec.model_copy(update={"endpoint": endpoint}))


def test_auth_without_credentials_in_the_environment_does_not_start() -> None:
    with pytest.raises(RunFailed, match=r"Secret .clients. on Kubernetes.*ALGORUN_ENDPOINT_BEARER_TOKENS"):
        check_endpoint_credentials(_topology(EndpointAuth(secret_name="clients")), {"ALGORUN_ENDPOINT_API_KEYS": ""})


def test_variables_that_configure_no_credential_do_not_count(tmp_path: Path) -> None:
    """Set but empty of credentials: the endpoint would still run open."""
    (tmp_path / "empty").write_text("# no tokens yet\n")
    for environ in (
        {"ALGORUN_ENDPOINT_BEARER_TOKENS": " , "},
        {"ALGORUN_ENDPOINT_API_KEYS_FILE": str(tmp_path / "empty")},
    ):
        with pytest.raises(RunFailed, match="asks for credentials"):
            check_endpoint_credentials(_topology(EndpointAuth(secret_name="clients")), environ)
    with pytest.raises(RunFailed, match="no bearer token or API key"):
        check_endpoint_credentials(
            _topology(EndpointAuth(secret_name="clients")), {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(tmp_path)}
        )


def test_any_configured_credential_satisfies_it(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("key-1\n")
    (tmp_path / "bearer-tokens").write_text("token-1\n")
    for environ in (
        {"ALGORUN_ENDPOINT_BEARER_TOKENS": "token-1"},
        {"ALGORUN_ENDPOINT_API_KEYS_FILE": str(tmp_path / "keys")},
        {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(tmp_path)},
    ):
        check_endpoint_credentials(_topology(EndpointAuth(secret_name="clients")), environ)


def test_without_auth_nothing_is_asked() -> None:
    check_endpoint_credentials(_topology(None), {})
