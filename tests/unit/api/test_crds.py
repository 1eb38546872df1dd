"""The CRDs are generated from the models, structural, and the committed copies are current."""

from __future__ import annotations

from typing import Any

from algorun.api.crds import crd_file_name, generate_crds, structural_problems
from algorun.cli.spec_commands import render_crd
from tests.support.paths import DEPLOY_CRDS

DEPLOY = DEPLOY_CRDS


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def by_kind() -> dict[str, dict[str, Any]]:
    return {c["spec"]["names"]["kind"]: c for c in generate_crds()}


def test_every_crd_is_structural() -> None:
    for crd in generate_crds():
        assert structural_problems(schema_of(crd)) == [], crd["metadata"]["name"]
        assert "$ref" not in str(crd) and "anyOf': [{'type': 'null'" not in str(crd)


def test_committed_crds_are_current() -> None:
    for crd in generate_crds():
        path = DEPLOY / crd_file_name(crd)
        assert path.read_text() == render_crd(crd), f"{path} is stale: run `make crds`"


def test_scopes_names_subresources_and_columns() -> None:
    crds = by_kind()
    pd = crds["PipelineDeployment"]["spec"]
    assert pd["scope"] == "Namespaced" and crds["Algo"]["spec"]["scope"] == "Cluster"
    assert pd["names"]["categories"] == ["algorun"] and "pd" in pd["names"]["shortNames"]
    version = pd["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    # the API server refuses a string priority (found against the real kube-apiserver)
    assert all(isinstance(c.get("priority", 0), int) for c in version["additionalPrinterColumns"])
    assert columns["Status"] == ".status.status" and columns["Algos"] == ".status.algoCount" and "Age" in columns


def test_enums_and_defaults_reach_the_schema() -> None:
    spec = schema_of(by_kind()["PipelineDeployment"])["properties"]["spec"]["properties"]
    algo = spec["algos"]["items"]["properties"]
    assert algo["replicas"]["default"] == 1
    executor = algo["spec"]["properties"]["executor"]
    assert executor["type"] == "string" and {"Executable", "http", "grpc", "Delegated", "python"} <= set(
        executor["enum"]
    )
    strategy = algo["retryStrategy"]["properties"]["strategy"]
    assert strategy["enum"] == ["Simple", "RetryTopics", "StatefulOrdered", "StatefulUnordered"]
    quantity = algo["resources"]["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    status = schema_of(by_kind()["PipelineDeployment"])["properties"]["status"]["properties"]
    assert {"conditions", "observedGeneration", "componentStatuses", "podStatuses"} <= set(status)


def test_flat_input_keys_are_in_the_schema_so_the_server_keeps_them() -> None:
    inputs = schema_of(by_kind()["Algo"])["properties"]["spec"]["properties"]["inputs"]["items"]["properties"]
    assert {"httpVerb", "httpPort", "httpPath", "http"} <= set(inputs)
