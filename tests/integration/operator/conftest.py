"""Every operator integration test runs twice: against an API server serving a current Strimzi's CRDs (1.x,
kafka.strimzi.io/v1 only) and against one serving the last 0.x's (v1beta2 and v1)."""

from __future__ import annotations

import pytest

from tests.support import strimzi_crds
from tests.support.kube import KubeAPI


@pytest.fixture(params=[strimzi_crds.CURRENT, strimzi_crds.LAST_0X], ids=lambda r: f"strimzi-{r}")
def kube(request: pytest.FixtureRequest, kube: KubeAPI) -> KubeAPI:
    if request.param == strimzi_crds.LAST_0X:
        served: KubeAPI = request.getfixturevalue("kube_strimzi0")
        return served
    return kube
