"""The optional APIs a cluster serves, as far as what the operator writes depends on them. Pure.

Strimzi is the one that changes the rendered objects: Strimzi 1.x serves only `kafka.strimzi.io/v1`, 0.x serves
`v1beta2` (0.49 to 0.51 serve v1 as well). The operator writes the most preferred version the cluster serves;
when it serves neither, no pipeline can run, and the status and an Event say so (`STRIMZI_MISSING`).

The operator learns what is served from the cluster (`algorun.operator.discovery`); `algorun render` takes it from
`--api-versions GROUP/VERSION` (like `helm template --api-versions`), and assumes a current Strimzi (v1) for a
group that no flag names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STRIMZI_GROUP = "kafka.strimzi.io"
STRIMZI_VERSIONS = ("v1", "v1beta2")
"""The Strimzi API versions the operator can write, most preferred first."""

STRIMZI_MISSING = (
    f"the cluster serves no Strimzi API ({STRIMZI_GROUP} {' or '.join(STRIMZI_VERSIONS)}): install Strimzi (its "
    "KafkaTopic, KafkaUser, KafkaConnect and KafkaConnector CRDs) so the pipeline's topics and users can be "
    "created; nothing was changed"
)

_GROUP_VERSION = re.compile(r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+[a-z0-9]*$")


@dataclass(frozen=True)
class ServedApis:
    """The `group/version`s a cluster serves (only those of the optional groups matter)."""

    group_versions: frozenset[str]

    def serves(self, group_version: str) -> bool:
        return group_version in self.group_versions

    def preferred(self, group: str, versions: Sequence[str]) -> str | None:
        """The first of `versions` (most preferred first) that `group` is served in, or None."""
        return next((v for v in versions if self.serves(f"{group}/{v}")), None)

    @property
    def strimzi_version(self) -> str | None:
        """The Strimzi API version to write, or None when the cluster serves none the operator can write."""
        return self.preferred(STRIMZI_GROUP, STRIMZI_VERSIONS)


CURRENT = ServedApis(frozenset({f"{STRIMZI_GROUP}/{STRIMZI_VERSIONS[0]}"}))
"""What is assumed of a cluster nobody described: a current Strimzi."""


def assumed(api_versions: Iterable[str]) -> ServedApis:
    """What `--api-versions` says a cluster serves: the given `GROUP/VERSION`s, and for each optional group none of
    them names, the `CURRENT` assumption. A value that is not `GROUP/VERSION` (or a core `VERSION`) is a
    ValueError naming it."""
    given: set[str] = set()
    for value in api_versions:
        text = value.strip()
        if not _GROUP_VERSION.match(text):
            raise ValueError(f'"{value}" is not GROUP/VERSION (for example {STRIMZI_GROUP}/{STRIMZI_VERSIONS[1]})')
        given.add(text)
    named = {gv.rpartition("/")[0] for gv in given}
    defaults = {gv for gv in CURRENT.group_versions if gv.rpartition("/")[0] not in named}
    return ServedApis(frozenset(given | defaults))
