"""`algorun run` with `spec.endpoint.auth`: the Secret it names does not exist on one machine, so the credentials
must come from the environment; without them the pipeline does not start (its endpoint would accept anyone)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from algorun.api import load_pipeline
from algorun.api.pipeline import EndpointAuth
from algorun.api.topology import Topology
from algorun.local.runtime import RunFailed, check_endpoint_credentials
from tests.unit.operator.conftest import example_files


def _topology(auth: EndpointAuth | None) -> Topology:
    _, topology = load_pipeline(example_files("text-transform"))
    endpoint = topology.spec.endpoint.model_copy(update={"auth": auth})
    return replace(topology, spec=topology.spec.model_copy(update={"endpoint": endpoint}))


def test_auth_without_credentials_in_the_environment_does_not_start() -> None:
    with pytest.raises(RunFailed, match=r"Secret .clients. on Kubernetes.*ALGORUN_ENDPOINT_BEARER_TOKENS"):
        check_endpoint_credentials(_topology(EndpointAuth(secret_name="clients")), {"ALGORUN_ENDPOINT_API_KEYS": ""})


@pytest.mark.parametrize(
    "variable", ["ALGORUN_ENDPOINT_BEARER_TOKENS", "ALGORUN_ENDPOINT_API_KEYS_FILE", "ALGORUN_ENDPOINT_CREDENTIALS_DIR"]
)
def test_any_credential_variable_satisfies_it(variable: str) -> None:
    check_endpoint_credentials(_topology(EndpointAuth(secret_name="clients")), {variable: "x"})


def test_without_auth_nothing_is_asked() -> None:
    check_endpoint_credentials(_topology(None), {})
