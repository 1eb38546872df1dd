"""Container images built on this machine without a daemon or a registry: buildah, and a base from Debian.

Nothing is ever pulled from a container registry. The images the single-node cluster runs are made here:

- `pause`: the pod sandbox image, a static `pause` built with gcc from `testbin/pause/pause.c`.
- `base`: the `FROM` of `images/Dockerfile` (`python:3.11-slim-bookworm` by name), bootstrapped with debootstrap
  from the Debian mirror apt is configured with: Python 3.11, pip, venv, binutils (PyInstaller reads shared
  libraries with objdump) and CA certificates.
- `algorun`: `images/Dockerfile` built with `buildah bud --pull=never`.
- `examples`: `images/examples.Dockerfile`, algorun's image plus every example's algos (one image for all).

buildah keeps its layers in a storage of its own under the cache (`$ALGORUN_TESTBIN/buildah`), not in the
machine's `/var/lib/containers`; each image is also written to the cache as a docker-archive tarball, which is
what the cluster's containerd imports and what survives the buildah storage being removed. Outgoing HTTPS from
a build (pip, uv) must trust this machine's CA bundle: it is mounted into the build's RUN steps and named by
build arguments (`SSL_CERT_FILE`, `PIP_CERT`), never copied into an image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.support.paths import REPO

DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-pip", "python3-venv", "libpython3.11", "binutils",
                 "ca-certificates")  # fmt: skip
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
PAUSE_IMAGE = "localhost/algorun-testbed/pause:1"
COREDNS_IMAGE = "localhost/algorun-testbed/coredns:1.15.0"  # the version pinned in testbin/go/coredns
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_CA_IN_BUILD = "/run/algorun-build/ca-certificates.crt"


def algorun_version() -> str:
    text = (REPO / "src" / "algorun" / "__init__.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise RuntimeError("no __version__ in src/algorun/__init__.py")
    return match.group(1)


def algorun_image() -> str:
    """The image name the chart's defaults resolve to (`algorun/algorun:<version>`, on docker.io)."""
    return f"docker.io/algorun/algorun:{algorun_version()}"


EXAMPLES_IMAGE = "docker.io/algorun/examples:1"


class ImageBuildError(RuntimeError):
    """A build step failed; the message says which and carries the tail of its log."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def run(argv: Sequence[str], log: Path, *, cwd: Path | None = None, capture: bool = False) -> str:
    """Run one build command, its output appended to `log` (and returned when `capture`)."""
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(argv)}\n".encode())
        f.flush()
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else f,
            stderr=f,
            check=False,
        )
    if proc.returncode != 0:
        raise ImageBuildError(f"`{' '.join(argv)}` exited with {proc.returncode}; log {log}:\n{_tail(log)}")
    return proc.stdout.decode().strip() if capture else ""


class Buildah:
    """buildah with its storage under `root` (so the machine's own container storage is never touched)."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log

    def argv(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]

    def __call__(self, *args: str, capture: bool = False, cwd: Path | None = None) -> str:
        return run(self.argv(*args), self.log, capture=capture, cwd=cwd)

    def has_image(self, name: str) -> bool:
        proc = subprocess.run(self.argv("inspect", "--type", "image", name), capture_output=True, check=False)
        return proc.returncode == 0

    def ensure_loaded(self, name: str, archive: Path) -> None:
        """Make `name` present in this storage, from its docker-archive in the cache when it is not."""
        if not self.has_image(name):
            self("pull", "--quiet", f"docker-archive:{archive}")
            if not self.has_image(name):
                raise ImageBuildError(f"{archive} did not hold {name}")

    def save(self, name: str, archive: Path) -> None:
        """Write `name` as a docker-archive tarball, replacing `archive` only once it is complete."""
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_name(archive.name + ".tmp")
        tmp.unlink(missing_ok=True)
        self("push", "--quiet", name, f"docker-archive:{tmp}:{name}")
        tmp.replace(archive)

    def commit_rootfs(self, rootfs: Path, name: str, config: Sequence[str]) -> None:
        """An image of one layer holding the directory `rootfs`, with `buildah config` options `config`."""
        container = self("from", "scratch", capture=True)
        try:
            mountpoint = self("mount", container, capture=True)
            run(["cp", "-a", f"{rootfs}/.", mountpoint + "/"], self.log)
            self("umount", container)
            if config:
                self("config", *config, container)
            self("commit", "--quiet", "--rm", container, name)
        except BaseException:
            subprocess.run(self.argv("rm", container), capture_output=True, check=False)
            raise


def debian_mirror() -> str:
    """The URI apt is configured with for Debian's main archive (deb822 or one-line format)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources" or "URIs:" in text:
            for stanza in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and DEBIAN_SUITE in suites.group(1).split():
                    return uris.group(1)
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == DEBIAN_SUITE:
                return words[1]
    raise ImageBuildError(f"apt has no source for Debian {DEBIAN_SUITE}; debootstrap needs its mirror")


def build_pause(buildah: Buildah, source: Path, archive: Path, log: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="algorun-pause-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        run(["gcc", "-static", "-Os", "-o", str(rootfs / "pause"), str(source)], log)
        run(["strip", str(rootfs / "pause")], log)
        buildah.commit_rootfs(rootfs, PAUSE_IMAGE, ["--entrypoint", '["/pause"]', "--user", "65535:65535"])
    buildah.save(PAUSE_IMAGE, archive)


def build_single_binary(buildah: Buildah, binary: Path, image: str, archive: Path) -> None:
    """An image of one static binary at /<name>, its entrypoint (nothing else: no shell, no libc)."""
    with tempfile.TemporaryDirectory(prefix="algorun-binary-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        shutil.copy2(binary, rootfs / binary.name)
        buildah.commit_rootfs(rootfs, image, ["--entrypoint", f'["/{binary.name}"]'])
    buildah.save(image, archive)


def build_base(buildah: Buildah, archive: Path, log: Path) -> None:
    """debootstrap a minimal bookworm with Python 3.11 and commit it under the name the Dockerfile uses.

    Made to stand where the official slim image would: `python`, `python3` and `pip` on PATH in /usr/local/bin,
    Debian's EXTERNALLY-MANAGED marker removed (the image is a build base, as the official one is), the apt
    lists and caches emptied."""
    with tempfile.TemporaryDirectory(prefix="algorun-base-", dir=archive.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                debian_mirror(),
            ],
            log,
        )
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        local_bin = rootfs / "usr" / "local" / "bin"
        local_bin.mkdir(parents=True, exist_ok=True)
        for name, target in (("python", "/usr/bin/python3.11"), ("python3", "/usr/bin/python3.11"),
                             ("pip", "/usr/bin/pip3"), ("pip3", "/usr/bin/pip3")):  # fmt: skip
            link = local_bin / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        dev = rootfs / "dev"
        shutil.rmtree(dev, ignore_errors=True)
        dev.mkdir()
        buildah.commit_rootfs(
            rootfs,
            BASE_IMAGE,
            ["--env", "LANG=C.UTF-8", "--cmd", '["python3"]'],
        )
    buildah.save(BASE_IMAGE, archive)


def build_dockerfile(
    buildah: Buildah,
    dockerfile: Path,
    name: str,
    archive: Path,
    *,
    needs: Sequence[tuple[str, Path]] = (),
    build_args: dict[str, str] | None = None,
) -> None:
    """`buildah bud` a Dockerfile from the repository root with nothing pulled, and save the result.

    `needs` are (image, archive) pairs the Dockerfile's FROM lines name, loaded from the cache when the
    storage lacks them."""
    for image, image_archive in needs:
        buildah.ensure_loaded(image, image_archive)
    args = ["bud", "--pull=never", "--layers", "--network", "host", "-f", str(dockerfile), "-t", name]
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if ignore.exists():
        args += ["--ignorefile", str(ignore)]
    if HOST_CA_BUNDLE.exists():
        args += [
            "-v",
            f"{HOST_CA_BUNDLE}:{HOST_CA_IN_BUILD}:ro",
            "--build-arg",
            f"SSL_CERT_FILE={HOST_CA_IN_BUILD}",
            "--build-arg",
            f"PIP_CERT={HOST_CA_IN_BUILD}",
        ]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    buildah(*args, ".", cwd=REPO)
    buildah.save(name, archive)


def is_root() -> bool:
    return os.geteuid() == 0
