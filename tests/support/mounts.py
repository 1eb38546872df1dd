"""A directory laid out as the kubelet mounts a Secret, for tests of components that pick up rotated files."""

from __future__ import annotations

import os
from pathlib import Path


class MountedSecret:
    """Each visible file is a symlink `name` -> `..data/name`; `..data` points at a versioned directory that every
    update replaces in one atomic rename, as the kubelet does when the Secret changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, files: dict[str, bytes]) -> None:
        """Make `files` the Secret's whole content (names not given disappear, as removed keys do)."""
        self.version += 1
        target = self.root / f"..v{self.version}"
        target.mkdir()
        for name, data in files.items():
            (target / name).write_bytes(data)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")
        for link in self.root.iterdir():
            if link.is_symlink() and not link.name.startswith("..") and link.name not in files:
                link.unlink()
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
