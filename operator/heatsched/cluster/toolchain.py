"""Where the control-plane binaries are, and one clear line when one is missing.

Versions are pinned in heatsched/data/toolchain.env, the file toolchain/build.sh sources too, so the
binaries this module looks for are exactly the ones that script builds into the cache
($HEATSCHED_CACHE/toolchain/<component>-<version>/bin). Prometheus is Debian's package (found on PATH).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# binary -> (component, version key) in toolchain.env
COMPONENT_OF = {
    "etcd": ("etcd", "ETCD_VERSION"),
    "kube-apiserver": ("kubernetes", "KUBERNETES_VERSION"),
    "kube-scheduler": ("kubernetes", "KUBERNETES_VERSION"),
    "kube-controller-manager": ("kubernetes", "KUBERNETES_VERSION"),
    "kubectl": ("kubernetes", "KUBERNETES_VERSION"),
    "kwok": ("kwok", "KWOK_VERSION"),
    "helm": ("helm", "HELM_VERSION"),
}


class MissingBinary(RuntimeError):
    """A binary the control plane needs is not built yet; the message says which command builds it."""


def pinned_versions() -> dict[str, str]:
    text = resources.files("heatsched.data").joinpath("toolchain.env").read_text()
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("HEATSCHED_CACHE", Path.home() / ".cache" / "heatsched")) / "toolchain"


@dataclass(frozen=True)
class Toolchain:
    """Resolved paths of every binary (or a MissingBinary on first use of an absent one)."""

    versions: dict[str, str]
    root: Path

    @classmethod
    def discover(cls) -> Toolchain:
        return cls(pinned_versions(), cache_dir())

    def path(self, binary: str) -> Path:
        if binary == "prometheus":
            found = shutil.which("prometheus")
            if not found:
                raise MissingBinary("prometheus not found: install it with `apt-get install -y prometheus`")
            return Path(found)
        component, key = COMPONENT_OF[binary]
        version = self.versions[key]
        candidate = self.root / f"{component}-{version}" / "bin" / binary
        if not os.access(candidate, os.X_OK):
            raise MissingBinary(
                f"{binary} {version} not found at {candidate}: build it with `toolchain/build.sh {component}`"
            )
        return candidate

    def kwok_stages(self) -> Path:
        """The kwok Stage set toolchain/build.sh extracts from the kwok module (nodes Ready, pods Running)."""
        path = self.path("kwok").parent.parent / "stages.yaml"
        if not path.is_file():
            raise MissingBinary(f"kwok stages not found at {path}: run `toolchain/build.sh kwok`")
        return path

    def bin_dirs(self) -> list[Path]:
        """Directories to put first on PATH so `kubectl` and `helm` are the pinned ones."""
        dirs = []
        for binary in ("kubectl", "helm", "kwok", "etcd"):
            try:
                dirs.append(self.path(binary).parent)
            except MissingBinary:
                pass
        return list(dict.fromkeys(dirs))
