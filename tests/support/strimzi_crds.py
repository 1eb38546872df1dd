"""Strimzi's CustomResourceDefinitions for the test bed, generated the way Strimzi generates the ones it publishes.

Strimzi's CRD YAML is the output of its CRD generator (`io.strimzi:crd-generator`) run over its API classes
(`io.strimzi:api`); both are on Maven Central. For every release in `testbin/strimzi/releases.json` the recipe
fetches that release's API jar and the listed generator with `mvn dependency:copy-dependencies` on
`testbin/strimzi/pom.xml`, and runs the generator with the arguments the release's own build uses, into
`$ALGORUN_TESTBIN/crds/strimzi/<release>/` (files named as Strimzi names them). The result is byte-identical to
the release's published files; nothing is written by hand.

The generator of the 1.x releases is compiled for Java 21, so the recipe runs it with the first Java 21 or newer
it finds: `$JAVA_HOME`, `java` on PATH, then the JDKs under `/usr/lib/jvm` (Debian's place for them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.paths import TESTBIN

if TYPE_CHECKING:
    from tests.support.testbin import Part

INPUTS = TESTBIN / "strimzi"
RELEASES_FILE = INPUTS / "releases.json"
GENERATOR_MAIN = "io.strimzi.crdgenerator.CrdGenerator"
JAVA_MIN = 21


def releases() -> dict[str, Any]:
    """The parsed releases.json."""
    data: dict[str, Any] = json.loads(RELEASES_FILE.read_text())
    return data


def output(cache: Path) -> Path:
    """Where the generated CRDs go: one folder per release."""
    return cache / "crds" / "strimzi"


CURRENT = "1.2.0"
"""A current Strimzi: kafka.strimzi.io/v1 only."""
LAST_0X = "0.51.0"
"""The last 0.x release: v1beta2 (its storage version) and v1."""


def crd_files(generated: Path, release: str) -> list[Path]:
    """The CRD files of `release` in the part's output `generated`, in Strimzi's install order."""
    return sorted((generated / release).glob("*.yaml"))


def _java_major(java: str) -> int:
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)', proc.stderr + proc.stdout)
    return int(found.group(1)) if found else 0


def find_java() -> str | None:
    """A `java` of version JAVA_MIN or newer, or None."""
    candidates: list[str] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java"))
    return next((c for c in candidates if Path(c).exists() and _java_major(c) >= JAVA_MIN), None)


def recipe(part: Part, cache: Path, log: Path) -> None:
    """Fetch each release's API jar with the generator, and generate its CRDs into `part.output(cache)`."""
    from tests.support import testbin

    java = find_java()
    if java is None:
        raise testbin.MissingToolchain(
            f"Java {JAVA_MIN} or newer is needed to run Strimzi's CRD generator (set JAVA_HOME to one)"
        )
    spec = releases()
    out = part.output(cache)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for release, runs in spec["releases"].items():
        libs = tmp / "libs" / release
        testbin._run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(INPUTS / "pom.xml"),
                "dependency:copy-dependencies",
                f"-Dstrimzi.version={release}",
                f"-Dstrimzi.generator.version={spec['generator']}",
                f"-DoutputDirectory={libs}",
            ],
            log,
            cwd=tmp.parent,
        )
        classpath = os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))
        target = tmp / release
        target.mkdir(parents=True)
        for run in runs:
            outputs = [f"{cls}={target / name}" for name, cls in run["classes"].items()]
            argv = [java, "-cp", classpath, GENERATOR_MAIN, *spec["common"], *run["args"], *outputs]
            testbin._run(argv, log, cwd=tmp)
    shutil.rmtree(tmp / "libs")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
