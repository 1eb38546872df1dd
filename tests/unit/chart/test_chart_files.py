"""The chart's static files: Chart.yaml, CRDs, values.yaml against the seed's table, the generated README,
the values schema, and the dashboards. No helm needed (tests/integration/chart renders the templates)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

import algorun
from algorun.api.crds import crd_file_name, generate_crds
from algorun.cli.spec_commands import render_crd
from tests.support.chart_files import IMAGE_KEYS, chart_meta, lookup, parse_table, seed_rows, values
from tests.support.paths import CHART, REPO
from tools import chart_readme


def test_chart_yaml_names_the_chart_the_seed_version_and_algoruns_version() -> None:
    meta = chart_meta()

    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "pipeline-operator"
    assert meta["version"] == "0.1.1"
    assert meta["appVersion"] == algorun.__version__


def test_chart_crds_are_what_algorun_crds_generates() -> None:
    generated = {crd_file_name(crd): render_crd(crd) for crd in generate_crds()}
    on_disk = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}

    assert sorted(on_disk) == sorted(generated), "charts/pipeline-operator/crds has other files than `algorun crds`"
    stale = [name for name, text in generated.items() if on_disk[name] != text]
    assert not stale, (
        f"stale CRDs in the chart (run `algorun crds --output-dir charts/pipeline-operator/crds`): {stale}"
    )


def test_chart_crds_equal_the_committed_deploy_crds() -> None:
    for path in (CHART / "crds").glob("*.yaml"):
        assert path.read_text() == (REPO / "deploy" / "crds" / path.name).read_text(), path.name


@pytest.mark.parametrize("key", sorted(seed_rows()))
def test_every_seed_key_exists_with_the_seed_type_and_default(key: str) -> None:
    seed = seed_rows()[key]
    ours = {row.key: row for row in chart_readme.parse_rows((CHART / "values.yaml").read_text())}
    value = lookup(values(), key)

    assert key in ours, f"{key} is not documented in values.yaml"
    assert ours[key].type == seed.type
    if key in IMAGE_KEYS:
        return
    assert ours[key].default == seed.default
    assert chart_readme.default_text(value) == seed.default


def test_image_defaults_point_at_algoruns_image_and_version() -> None:
    v = values()
    version = chart_meta()["appVersion"]
    for key in ("image", "algoRunnerImage", "endpointImage", "eventHookImage"):
        assert v[key]["repository"] == "algorun/algorun", key
        assert v[key]["tag"] == version, key
        assert v[key]["pullPolicy"] == "IfNotPresent", key


def test_image_default_is_the_operators_default_image() -> None:
    from algorun.operator.settings import DEFAULT_IMAGE

    v = values()
    assert f"{v['algoRunnerImage']['repository']}:{v['algoRunnerImage']['tag']}" == DEFAULT_IMAGE


def test_readme_is_generated_from_values_and_current() -> None:
    assert (CHART / "README.md").read_text() == chart_readme.render(CHART), (
        "charts/pipeline-operator/README.md is stale: run `python tools/chart_readme.py`"
    )


def test_readme_table_has_every_seed_row() -> None:
    readme = parse_table((CHART / "README.md").read_text().split("## Chart Values", 1)[1])
    seed = seed_rows()

    missing = sorted(set(seed) - set(readme))
    assert not missing, f"README rows missing: {missing}"
    for key, row in seed.items():
        assert readme[key].type == row.type, key
        assert readme[key].description, key
        if key not in IMAGE_KEYS:
            assert readme[key].default == row.default, key


def test_readme_generator_refuses_an_undocumented_value() -> None:
    text = (CHART / "values.yaml").read_text() + "\nsneaky: 1\n"

    with pytest.raises(chart_readme.ValuesDocError, match="sneaky"):
        chart_readme.parse_rows(text)


def test_readme_generator_reads_type_and_default_overrides() -> None:
    text = "# -- (int) How many\ncount:\n# @default -- computed\n# -- The name\nname: x\n"

    rows = {r.key: r for r in chart_readme.parse_rows(text)}

    assert rows["count"].type == "int"
    assert rows["count"].default == "`nil`"
    assert rows["count"].description == "How many"
    assert rows["name"].type == "string"


# ----- values.schema.json -----------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert isinstance(schema, dict)
    return schema


def _errors(data: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_schema_is_a_valid_draft7_schema_and_accepts_the_defaults() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())

    assert _errors(values()) == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("replicaCount", "two"),
        ("kafka.tls.enabled", "yes"),
        ("metrics.algoServiceMonitor.honorLabels", "false"),
        ("metrics.endpointServiceMonitor.relabellings", "drop"),
        ("autoscaling.maxReplicas", 1.5),
        ("tolerations", {}),
        ("scope.type", "galaxy"),
        ("image.pullPolicy", "Sometimes"),
        ("notifications.url", "ftp://example.com"),
    ],
)
def test_schema_rejects_a_wrong_type_or_value(path: str, bad: Any) -> None:
    data = copy.deepcopy(values())
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = bad

    errors = _errors(data)

    assert any(e.startswith(path.replace(".", "/")) for e in errors), errors


@pytest.mark.parametrize("auth", ["oauth", "scram-sha-256", "TLS", "none"])
def test_schema_rejects_an_unknown_kafka_auth_type(auth: str) -> None:
    data = copy.deepcopy(values())
    data["kafka"]["auth"]["type"] = auth

    assert any(e.startswith("kafka/auth/type") for e in _errors(data))


@pytest.mark.parametrize("auth", ["", None, "tls", "scram-sha-512", "plain"])
def test_schema_accepts_every_supported_kafka_auth_type(auth: str | None) -> None:
    data = copy.deepcopy(values())
    data["kafka"]["auth"]["type"] = auth

    assert _errors(data) == []


def test_schema_rejects_a_misspelt_key_but_allows_global() -> None:
    data = copy.deepcopy(values())
    data["kafka"]["tls"]["enable"] = True
    data["global"] = {"imageRegistry": "example.com"}

    errors = _errors(data)

    assert len(errors) == 1 and errors[0].startswith("kafka/tls"), errors


# ----- dashboards --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["algos", "endpoint", "hooks", "operator"])
def test_dashboard_is_grafana_json_on_a_selectable_prometheus_data_source(name: str) -> None:
    dashboard = json.loads((CHART / "dashboards" / f"{name}.json").read_text())

    assert dashboard["uid"] == f"algorun-{name}"
    assert dashboard["panels"], name
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["expr"] for t in panel["targets"]), panel["title"]


def test_algos_dashboard_uses_the_original_runner_metric_names() -> None:
    text = (CHART / "dashboards" / "algos.json").read_text()

    for metric in (
        "algorunner_run_duration_seconds_count",
        "algorunner_algo_duration_seconds_bucket",
        "algorunner_data_bytes_input_total",
        "algorunner_msg_bytes_output_total",
    ):
        assert metric in text
