"""What the cluster serves of the optional APIs, read from the cluster and cached until it changes.

The versions of `kafka.strimzi.io` the cluster serves are those every installed CRD of the Strimzi kinds the
operator writes (KafkaTopic, KafkaUser, KafkaConnect, KafkaConnector) has `served: true`: the same data the API
server's discovery document is made of, read with the `list` on CRDs the operator has for kopf already.

The answer is cached and read again after `invalidate()`: the operator calls it when a CRD of the group is added,
changed or removed (a Strimzi install or upgrade), and when an apply finds a kind not served. So a Strimzi
upgrade takes effect at the next reconcile, without restarting the operator; an unchanged cluster costs no
request per reconcile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from algorun.operator import kinds
from algorun.operator.apis import STRIMZI_GROUP, ServedApis
from algorun.operator.apply import Cluster


def served_versions(crd: dict[str, Any]) -> set[str]:
    """The versions a CustomResourceDefinition serves."""
    versions = (crd.get("spec") or {}).get("versions") or []
    return {str(v["name"]) for v in versions if v.get("served")}


def strimzi_apis(crds: list[dict[str, Any]]) -> ServedApis:
    """What the installed Strimzi CRDs serve: the versions all of them serve (none when none is installed)."""
    common: set[str] | None = None
    for crd in crds:
        served = served_versions(crd)
        common = served if common is None else common & served
    return ServedApis(frozenset(f"{STRIMZI_GROUP}/{v}" for v in common or ()))


class Discovery:
    """The cluster's served optional APIs, cached until `invalidate()`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._epoch = 0
        self._cached: tuple[int, ServedApis] | None = None
        self._lock = asyncio.Lock()
        self.reads = 0

    def invalidate(self) -> None:
        """Forget the answer: the next `served()` reads the cluster again (also when a read is under way)."""
        self._epoch += 1

    async def served(self) -> ServedApis:
        async with self._lock:
            if self._cached is not None and self._cached[0] == self._epoch:
                return self._cached[1]
            epoch = self._epoch
            crds: list[dict[str, Any]] = []
            for kind in kinds.STRIMZI_KINDS:
                crds += await self.cluster.list(kinds.CRD, None, fields={"metadata.name": str(kind.crd)})
            self.reads += 1
            apis = strimzi_apis(crds)
            self._cached = (epoch, apis)
            return apis
