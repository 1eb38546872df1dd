"""Fetch or build the real servers the integration tests run, into a cache outside the repository.

    python -m tests.support.testbin build [PART ...]   # what `make testbin` runs
    python -m tests.support.testbin where              # paths and state of every part

The cache is `$ALGORUN_TESTBIN` (default `~/.cache/algorun/testbin`). Each part is built from inputs kept in
the repository (testbin/pom.xml, testbin/go/*/go.mod+go.sum, testbin/crds/upstream.json) and records a hash
of those inputs in `stamps/<part>.json`; a part whose outputs exist and whose hash matches is not touched, so
a second `make testbin` downloads and compiles nothing. Outputs are written to a temporary name and renamed
into place, so an interrupted build never looks finished. The Go module and build caches are Go's defaults,
shared with the rest of the machine; Maven uses ~/.m2.

Exit status of `build`: non-zero when a part fails to build, or when a toolchain is missing and CI=true;
outside CI a missing toolchain is reported and the tests that need that part skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import images, strimzi_crds
from tests.support.paths import IMAGES, REPO, TESTBIN
from tests.support.procs import tail

INPUTS = TESTBIN
# Bump when a recipe below changes in a way the hashed input files do not show.
RECIPE_VERSION = "1"
GO_BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")


def root() -> Path:
    """The cache directory: $ALGORUN_TESTBIN or ~/.cache/algorun/testbin."""
    env = os.environ.get("ALGORUN_TESTBIN")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "algorun" / "testbin"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


class MissingToolchain(RuntimeError):
    """A program needed to build or run a part is not installed."""


class BuildError(RuntimeError):
    """A part failed to build; the message carries the tail of the build log."""


@dataclass(frozen=True)
class Part:
    """One thing the tests run, how to make it, and what it is made from."""

    name: str
    toolchains: tuple[tuple[str, str], ...]  # (executable, what to tell a developer who lacks it) to build
    inputs: tuple[Path, ...]
    output: Callable[[Path], Path]
    recipe: Callable[[Part, Path, Path], None] = field(compare=False)  # (part, cache root, log path)
    extra_key: str = ""
    run_tools: tuple[tuple[str, str], ...] = ()  # needed to run the part once built
    present: Callable[[], bool] | None = field(default=None, compare=False)  # also required to be up to date
    input_files: Callable[[], Iterable[Path]] | None = field(default=None, compare=False)  # found at build time
    after: tuple[str, ...] = ()  # parts built first, whose inputs count as this part's inputs too

    def path(self) -> Path:
        return self.output(root())

    def input_hash(self) -> str:
        h = hashlib.sha256(f"{self.name}\0{RECIPE_VERSION}\0{self.extra_key}\0".encode())
        for name in self.after:
            h.update(PARTS[name].input_hash().encode() + b"\0")
        found = self.input_files() if self.input_files else ()
        for p in (*self.inputs, *found):
            h.update(str(p.relative_to(REPO)).encode() + b"\0")
            h.update(p.read_bytes() + b"\0")
        return h.hexdigest()

    def stamp_path(self) -> Path:
        return root() / "stamps" / f"{self.name}.json"

    def log_path(self) -> Path:
        return root() / "logs" / f"{self.name}.build.log"

    def up_to_date(self) -> bool:
        try:
            stamp = json.loads(self.stamp_path().read_text())
        except (OSError, ValueError):
            return False
        if stamp.get("hash") != self.input_hash() or not self.path().exists():
            return False
        return self.present is None or self.present()

    def missing_toolchain(self, *, building: bool) -> str | None:
        """None, or a sentence naming the missing program and why it is needed."""
        needed = (*self.toolchains, *self.run_tools) if building else self.run_tools
        for exe, why in needed:
            if shutil.which(exe) is None:
                return f"`{exe}` not found on PATH: {why}"
        return None


def _run(argv: Sequence[str], log: Path, *, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a build command, appending its output to `log`; raise BuildError with the log tail on failure."""
    with open(log, "ab") as f:
        f.write(f"\n$ (cd {cwd} && {' '.join(argv)})\n".encode())
        f.flush()
        rc = subprocess.call(
            list(argv),
            cwd=cwd,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    if rc != 0:
        raise BuildError(f"`{' '.join(argv)}` exited with {rc}; log {log}, last lines:\n{tail(log)}")


def _go_env() -> dict[str, str]:
    # -mod=mod: go.mod/go.sum here are complete, so nothing is rewritten; it lets `go` resolve the `tool`
    # directive's packages without a vendor directory.
    return {"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def _go_build(module: str, *packages: str) -> Callable[[Part, Path, Path], None]:
    """Build each package of the Go module pinned in testbin/go/<module> into the cache's bin/ (named as the
    package's last element); the part's output is the first."""

    def recipe(part: Part, cache: Path, log: Path) -> None:
        for package in packages:
            out = cache / "bin" / package.rstrip("/.").rsplit("/", 1)[-1] if package != "." else part.output(cache)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            _run(
                ["go", "build", *GO_BUILD_FLAGS, "-o", str(tmp), package],
                log,
                cwd=INPUTS / "go" / module,
                env=_go_env(),
            )
            tmp.replace(out)

    return recipe


def _maven_copy(part: Part, cache: Path, log: Path) -> None:
    out = part.output(cache)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(INPUTS / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        log,
        cwd=INPUTS,
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _upstream_crds(part: Part, cache: Path, log: Path) -> None:
    """Download the pinned modules that carry upstream CRDs and copy the listed files out of them."""
    moddir = INPUTS / "go" / "crds"
    listing = json.loads((INPUTS / "crds" / "upstream.json").read_text())
    modules = sorted({f["module"] for f in listing["files"]})
    with open(log, "ab") as f:
        f.write(f"\n$ go mod download -json {' '.join(modules)}\n".encode())
    proc = subprocess.run(
        ["go", "mod", "download", "-json", *modules],
        cwd=moddir,
        capture_output=True,
        env={**os.environ, **_go_env()},
        check=False,
    )
    with open(log, "ab") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(f"go mod download failed; log {log}, last lines:\n{tail(log)}")
    dirs: dict[str, Path] = {}
    for info in json.loads("[" + proc.stdout.decode().replace("}\n{", "},\n{") + "]"):
        if info.get("Error"):
            raise BuildError(f"go mod download {info['Path']}: {info['Error']}")
        dirs[info["Path"]] = Path(info["Dir"])
    out = part.output(cache)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for entry in listing["files"]:
        src = dirs[entry["module"]] / entry["path"]
        shutil.copyfile(src, tmp / src.name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _go_inputs(name: str) -> tuple[Path, ...]:
    d = INPUTS / "go" / name
    return tuple(p for p in (d / "go.mod", d / "go.sum", d / "main.go") if p.exists())


_GO = "the Go toolchain (go 1.26 or newer, https://go.dev/dl/) is needed to build"
_BUILDAH = ("buildah", "images are built with buildah (Debian package `buildah`; no Docker daemon needed)")

# The single-node cluster: Kubernetes' commands from one module (testbin/go/kubernetes), containerd's from
# another (testbin/go/containerd), and the rest from Debian's packages.
KUBERNETES_COMMANDS = ("kube-apiserver", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")
CONTAINERD = ("containerd", "containerd-shim-runc-v2", "ctr")
NODE_PACKAGES = ("runc", "containernetworking-plugins", "iptables", "conntrack", "buildah", "debootstrap", "binutils")


def _kubernetes(name: str) -> Part:
    return Part(
        name=name,
        toolchains=(("go", f"{_GO} {name}"),),
        inputs=_go_inputs("kubernetes"),
        output=lambda r: r / "bin" / name,
        recipe=_go_build("kubernetes", f"k8s.io/kubernetes/cmd/{name}"),
        extra_key=" ".join(GO_BUILD_FLAGS),
    )


def _missing_debian_packages() -> list[str]:
    """NODE_PACKAGES that dpkg does not report as installed."""
    missing = []
    for package in NODE_PACKAGES:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True, check=False
        )
        if proc.stdout.strip() != "installed":
            missing.append(package)
    return missing


def _debian_packages(part: Part, cache: Path, log: Path) -> None:
    """Install the Debian packages the cluster and the image builds run (as root, with apt-get)."""
    missing = _missing_debian_packages()
    if missing:
        if os.geteuid() != 0:
            raise BuildError(
                f"Debian packages {', '.join(missing)} are missing and only root can install them: "
                f"run `sudo apt-get install {' '.join(missing)}`"
            )
        _run(["apt-get", "update", "-q"], log, cwd=REPO)
        _run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            log,
            cwd=REPO,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
        still = _missing_debian_packages()
        if still:
            raise BuildError(f"apt-get did not install {', '.join(still)}; log {log}")
    versions = subprocess.run(["dpkg-query", "-W", *NODE_PACKAGES], capture_output=True, text=True, check=True).stdout
    part.output(cache).write_text(versions)


def _buildah(cache: Path, log: Path) -> images.Buildah:
    return images.Buildah(cache / "buildah", log)


def _pause_image(part: Part, cache: Path, log: Path) -> None:
    _image_step(lambda: images.build_pause(_buildah(cache, log), INPUTS / "pause" / "pause.c", part.output(cache), log))


def _coredns_image(part: Part, cache: Path, log: Path) -> None:
    binary = PARTS["coredns"].path()
    _image_step(
        lambda: images.build_single_binary(_buildah(cache, log), binary, images.COREDNS_IMAGE, part.output(cache))
    )


def _base_image(part: Part, cache: Path, log: Path) -> None:
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root to bootstrap the images' base")
    out = part.output(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    _image_step(lambda: images.build_base(_buildah(cache, log), out, log))


def _algorun_image(part: Part, cache: Path, log: Path) -> None:
    base = PARTS["base-image"].path()
    _image_step(
        lambda: images.build_dockerfile(
            _buildah(cache, log),
            IMAGES / "Dockerfile",
            images.algorun_image(),
            part.output(cache),
            needs=[(images.BASE_IMAGE, base)],
        )
    )


def _examples_image(part: Part, cache: Path, log: Path) -> None:
    algorun = PARTS["image"].path()
    _image_step(
        lambda: images.build_dockerfile(
            _buildah(cache, log),
            IMAGES / "examples.Dockerfile",
            images.EXAMPLES_IMAGE,
            part.output(cache),
            needs=[(images.algorun_image(), algorun)],
            build_args={"ALGORUN_IMAGE": images.algorun_image()},
        )
    )


def _image_step(step: Callable[[], None]) -> None:
    try:
        step()
    except images.ImageBuildError as exc:
        raise BuildError(str(exc)) from None


def _context_files(dockerfile: Path) -> list[Path]:
    """The repository files a build of `dockerfile` sends (its `<name>.dockerignore` applied), for the hash.

    Tracked and untracked-but-not-ignored files, as git lists them."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and line[0] != "#"]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [dockerfile]
    for rel in sorted(filter(None, listed.split("\0"))):
        if _sent(rel, patterns) and (REPO / rel).is_file():
            files.append(REPO / rel)
    return files


def _sent(rel: str, patterns: Sequence[str]) -> bool:
    """Whether .dockerignore `patterns` leave `rel` in the context: the last pattern matching it or one of its
    parent folders decides; `!` re-includes."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, body[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, body) for prefix in prefixes)
        if hit:
            sent = negated
    return sent


PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part(
            name="kafka",
            toolchains=(("mvn", "Maven is needed to fetch the Apache Kafka jars from Maven Central"),),
            run_tools=(("java", "a Java 17+ runtime is needed to run Kafka and Kafka Connect"),),
            inputs=(INPUTS / "pom.xml",),
            output=lambda r: r / "kafka" / "libs",
            recipe=_maven_copy,
        ),
        Part(
            name="etcd",
            toolchains=(("go", f"{_GO} etcd"),),
            inputs=_go_inputs("etcd"),
            output=lambda r: r / "bin" / "etcd",
            recipe=_go_build("etcd", "."),
            extra_key=" ".join(GO_BUILD_FLAGS),
        ),
        *(_kubernetes(name) for name in KUBERNETES_COMMANDS),
        Part(
            name="containerd",
            toolchains=(("go", f"{_GO} containerd"),),
            inputs=_go_inputs("containerd"),
            output=lambda r: r / "bin" / "containerd",
            recipe=_go_build("containerd", *(f"github.com/containerd/containerd/v2/cmd/{c}" for c in CONTAINERD)),
            extra_key=" ".join((*GO_BUILD_FLAGS, *CONTAINERD)),
        ),
        Part(
            name="coredns",
            toolchains=(("go", f"{_GO} CoreDNS, the cluster's DNS"),),
            inputs=_go_inputs("coredns"),
            output=lambda r: r / "bin" / "coredns",
            recipe=_go_build("coredns", "github.com/coredns/coredns"),
            extra_key=" ".join(GO_BUILD_FLAGS),
        ),
        Part(
            name="coredns-image",
            toolchains=(_BUILDAH,),
            inputs=(Path(images.__file__),),
            output=lambda r: r / "images" / "coredns.tar",
            recipe=_coredns_image,
            extra_key=images.COREDNS_IMAGE,
            after=("coredns",),
        ),
        Part(
            name="helm",
            toolchains=(("go", f"{_GO} helm"),),
            inputs=_go_inputs("helm"),
            output=lambda r: r / "bin" / "helm",
            recipe=_go_build("helm", "helm.sh/helm/v3/cmd/helm"),
            extra_key=" ".join(GO_BUILD_FLAGS),
        ),
        Part(
            name="strimzi-crds",
            toolchains=(
                ("mvn", "Maven is needed to fetch Strimzi's API classes and CRD generator from Maven Central"),
            ),
            inputs=(strimzi_crds.INPUTS / "pom.xml", strimzi_crds.RELEASES_FILE),
            output=strimzi_crds.output,
            recipe=strimzi_crds.recipe,
        ),
        Part(
            name="node-packages",
            toolchains=(
                ("dpkg-query", "the cluster's runtime parts come from Debian's packages (a Debian machine)"),
                ("apt-get", "missing Debian packages are installed with apt-get"),
            ),
            inputs=(),
            output=lambda r: r / "node-packages.txt",
            recipe=_debian_packages,
            extra_key=" ".join(NODE_PACKAGES),
            present=lambda: not _missing_debian_packages(),
        ),
        Part(
            name="pause-image",
            toolchains=(("gcc", "gcc builds the static pause program of the pod sandbox image"), _BUILDAH),
            inputs=(INPUTS / "pause" / "pause.c", Path(images.__file__)),
            output=lambda r: r / "images" / "pause.tar",
            recipe=_pause_image,
        ),
        Part(
            name="base-image",
            toolchains=(("debootstrap", "the images' base is bootstrapped from Debian packages"), _BUILDAH),
            inputs=(Path(images.__file__),),
            output=lambda r: r / "images" / "base.tar",
            recipe=_base_image,
            extra_key=" ".join((images.DEBIAN_SUITE, *images.BASE_PACKAGES)),
        ),
        Part(
            name="image",
            toolchains=(_BUILDAH,),
            inputs=(),
            output=lambda r: r / "images" / "algorun.tar",
            recipe=_algorun_image,
            extra_key=images.algorun_image(),
            input_files=lambda: _context_files(IMAGES / "Dockerfile"),
            after=("base-image",),
        ),
        Part(
            name="examples-image",
            toolchains=(_BUILDAH,),
            inputs=(),
            output=lambda r: r / "images" / "examples.tar",
            recipe=_examples_image,
            extra_key=images.EXAMPLES_IMAGE,
            input_files=lambda: _context_files(IMAGES / "examples.Dockerfile"),
            after=("image",),
        ),
        Part(
            name="crds",
            toolchains=(
                (
                    "go",
                    "the Go toolchain (https://go.dev/dl/) is needed to fetch the pinned upstream CRDs "
                    "(ServiceMonitor, Gateway API) from the Go module proxy",
                ),
            ),
            inputs=(*_go_inputs("crds"), INPUTS / "crds" / "upstream.json"),
            output=lambda r: r / "crds" / "upstream",
            recipe=_upstream_crds,
        ),
    )
}


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise builds of one part across processes (parallel pytest runs, make -j)."""
    path = root() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure(name: str) -> tuple[Path, float | None]:
    """Make sure part `name` is built; return its path and the build time (None when it was up to date).

    Raises MissingToolchain or BuildError.
    """
    part = PARTS[name]
    for first in part.after:
        ensure(first)
    if part.up_to_date():
        missing = part.missing_toolchain(building=False)
        if missing:
            raise MissingToolchain(missing)
        return part.path(), None
    missing = part.missing_toolchain(building=True)
    if missing:
        raise MissingToolchain(missing)
    with _lock(name):
        if part.up_to_date():
            return part.path(), None
        log = part.log_path()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"# build of {name} started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        started = time.monotonic()
        part.recipe(part, root(), log)
        seconds = time.monotonic() - started
        stamp = part.stamp_path()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"hash": part.input_hash(), "seconds": round(seconds, 1), "built": time.time()}))
        return part.path(), seconds


def build(names: Sequence[str]) -> int:
    failed = False
    total = time.monotonic()
    for name in names:
        started = time.monotonic()
        try:
            path, seconds = ensure(name)
        except MissingToolchain as exc:
            level = "FAILED" if in_ci() else "skipped"
            print(f"testbin: {name:15} {level}: {exc}", flush=True)
            failed = failed or in_ci()
            continue
        except BuildError as exc:
            print(f"testbin: {name:15} FAILED after {time.monotonic() - started:.1f}s: {exc}", flush=True)
            failed = True
            continue
        if seconds is None:
            print(f"testbin: {name:15} up to date        {path}", flush=True)
        else:
            print(f"testbin: {name:15} built in {seconds:6.1f}s {path}", flush=True)
    print(f"testbin: done in {time.monotonic() - total:.1f}s (cache {root()})", flush=True)
    return 1 if failed else 0


def where() -> int:
    print(f"cache: {root()}")
    for name, part in PARTS.items():
        state = "up to date" if part.up_to_date() else "not built"
        print(f"{name:15} {state:11} {part.path()}")
    return 0


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("build", "where"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "where":
        return where()
    names = list(argv[1:]) or list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; known: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    return build(names)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
