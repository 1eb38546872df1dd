"""Acceptance tests proving the helm part of the test bed is the real helm 3 CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helm import Helm

pytestmark = pytest.mark.integration


def test_helm_version(helm: Helm) -> None:
    out = helm.run("version", "--short").stdout

    assert out.startswith("v3."), out


def test_helm_lint_and_template_a_trivial_chart(helm: Helm, tmp_path: Path) -> None:
    chart = tmp_path / "trivial"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: trivial\ndescription: A trivial chart\nversion: 0.1.0\nappVersion: '1.0'\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )

    lint = helm.run("lint", str(chart))
    rendered = helm.run("template", "demo", str(chart), "--set", "greeting=hi").stdout

    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout
    assert "name: demo-cm" in rendered
    assert 'greeting: "hi"' in rendered


def test_helm_lint_reports_a_broken_chart(helm: Helm, tmp_path: Path) -> None:
    chart = tmp_path / "broken"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (chart / "templates" / "bad.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.key }}\n")

    lint = helm.run("lint", str(chart), check=False)

    assert lint.returncode != 0
    assert "1 chart(s) failed" in lint.stdout + lint.stderr
    assert "nil pointer evaluating" in lint.stdout
