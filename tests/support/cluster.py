"""A real single-node Kubernetes cluster: pods run, Services route, images come from this machine.

    python -m tests.support.cluster        # what `make cluster` runs: start, print the kubeconfig, Ctrl-C stops

Parts (all built by `make testbin`, nothing pulled): etcd and kube-apiserver (tests.support.kube), the node's
kubelet, kube-controller-manager, kube-scheduler and kube-proxy (iptables mode) from the Kubernetes Go module,
containerd v2 with Debian's runc and CNI plugins (bridge + host-local), and the images of
tests.support.images imported into containerd (pods use them with `imagePullPolicy: IfNotPresent` or `Never`).

Network: a bridge `algorun0` with the gateway address 10.244.77.1/24 carries the pods (10.244.77.0/24). The
API server listens on the gateway address, so pods reach it through the `kubernetes` Service; anything else a
pod must reach on this machine (the test-bed broker, a webhook receiver) listens on that address too
(`Cluster.host_address`). ClusterIP Services route through kube-proxy, which masquerades all Service traffic so
replies from a pod on the same bridge come back through the host. CoreDNS (tests.support.cluster_dns) answers
for `cluster.local` at the `kube-dns` Service: Service names resolve in pods, and `host_service` gives a
service on this machine (the test-bed broker) a name in the cluster.

One cluster per machine at a time: kubelet, containerd and CNI use machine-wide paths (/run/netns,
/var/log/containers, the `kubepods` cgroups, iptables, the bridge). A lock file serialises test runs; each
start first removes what a previous run that died left behind (recorded in a state file under /run), and
`stop()` removes everything the cluster created: pods (through the API, so the kubelet tears down their
networks), processes (the shims by their containerd address), mounts, network namespaces, cgroups, the bridge,
kube-proxy's rules, and the sysctls it changed are restored.

What is not like a production cluster: one node named `localhost` (its kubelet listens on 127.0.0.1), every
component authenticates with the admin certificate, DNS for cluster names only (no upstream resolver), no cloud
provider, no storage class.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import cluster_dns, images, testbin
from tests.support.kube import KubeAPI, _kubeconfig, start_kube
from tests.support.procs import ManagedProcess, StartError, free_ports, wait_for

BRIDGE = "algorun0"
POD_SUBNET = "10.244.77.0/24"
GATEWAY = "10.244.77.1"
NODE_NAME = "localhost"
STATE_DIR = Path("/run/algorun-testbed")
LOCK_FILE = STATE_DIR / "cluster.lock"
STATE_FILE = STATE_DIR / "cluster.json"
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
CNI_BIN_DIR = "/usr/lib/cni"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINER_LOGS = Path("/var/log/containers")
NETNS_DIR = Path("/run/netns")
# The kubelet and kube-proxy add a filter chain that `kube-proxy --cleanup` leaves behind.
FIREWALL_CHAIN = "KUBE-FIREWALL"
PARTS = (
    "etcd",
    *testbin.KUBERNETES_COMMANDS,
    "containerd",
    "node-packages",
    "pause-image",
    "image",
    "examples-image",
    "coredns-image",
)
IMAGE_PARTS = ("pause-image", "image", "examples-image", "coredns-image")


class ClusterBusy(StartError):
    """Another process on this machine holds the cluster lock."""


@dataclass
class Cluster:
    """A running cluster: its API (a KubeAPI), the address pods reach the host at, and how to stop it."""

    api: KubeAPI
    workdir: Path
    host_address: str = GATEWAY
    processes: list[ManagedProcess] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _lock: Any = None
    _cleanup: Cleanup | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    def usage(self) -> dict[str, str]:
        """Memory and disk the cluster uses now: its processes' resident memory (control plane, node, runtime),
        the pods' (the kubepods memory cgroup, page cache included), and its working directory on disk
        (containerd's unpacked images and the pods' state)."""
        rss = 0
        for proc in self.processes:
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        pods = CGROUP_ROOT / "memory" / "kubepods" / "memory.usage_in_bytes"
        pods_mb = int(pods.read_text()) / 2**20 if pods.exists() else 0.0
        du = subprocess.run(["du", "-sm", str(self.workdir)], capture_output=True, text=True, check=False)
        disk = du.stdout.split()[0] if du.returncode == 0 and du.stdout else "?"
        return {
            "cluster processes' memory (RSS)": f"{rss / 1024:.0f} MB",
            "pods' memory (kubepods cgroup)": f"{pods_mb:.0f} MB",
            "cluster's disk (workdir)": f"{disk} MB",
        }

    def stop(self) -> None:
        """Delete every pod, stop every process, and remove what the cluster left on the machine."""
        try:
            if self._cleanup is not None:
                self._cleanup.run(self.api, self.processes)
        finally:
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise StartError(f"`{' '.join(argv)}` exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


@dataclass
class Cleanup:
    """What one cluster changed on the machine, recorded in STATE_FILE as it happens, so a later start can
    undo it when the run that made it died before it could."""

    workdir: str
    containerd_address: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)
    bridge: bool = False
    netns_before: list[str] = field(default_factory=list)
    logs_dir_existed: bool = True
    pids: list[int] = field(default_factory=list)
    kube_proxy: str = ""
    firewall_chains: list[str] = field(default_factory=list)
    """The iptables commands (iptables, ip6tables) whose KUBE-FIREWALL chain the cluster made."""

    def save(self) -> None:
        STATE_FILE.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls) -> Cleanup | None:
        try:
            return cls(**json.loads(STATE_FILE.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def run(self, api: KubeAPI | None, processes: list[ManagedProcess]) -> None:
        """Undo everything; each step goes on when an earlier one fails, and the first failure is raised."""
        errors: list[str] = []

        def step(what: str, fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        controllers = [p for p in processes if p.name in ("kube-controller-manager", "kube-scheduler")]
        for proc in controllers:  # nothing recreates a pod once deleted
            step(f"stopping {proc.name}", proc.stop)
        if api is not None and all(p.alive() for p in processes if p.name in ("kubelet", "kube-apiserver")):
            step("deleting the pods", _delete_all_pods, api)
        for proc in reversed(processes):
            if proc not in controllers:
                step(f"stopping {proc.name}", proc.stop)
        for pid in self.pids:  # a previous run's processes, by the ids it recorded
            step(f"ending process {pid}", _kill_if_ours, pid, self.workdir)
        if self.containerd_address:
            step("ending the containerd shims", _kill_shims, self.containerd_address)
        step("unmounting", _unmount_under, Path(self.workdir))
        step("removing network namespaces", _remove_netns, set(self.netns_before))
        step("removing cgroups", _remove_cgroups)
        if self.kube_proxy:
            step("removing kube-proxy's rules", _sh, self.kube_proxy, "--cleanup", "--proxy-mode=iptables")
        for command in self.firewall_chains:
            step(f"removing {command}'s {FIREWALL_CHAIN}", _remove_chain, command, FIREWALL_CHAIN)
        if self.bridge:
            step("removing the bridge", _sh, "ip", "link", "delete", BRIDGE)
        for name, value in self.sysctls.items():
            step(f"restoring {name}", _write_sysctl, name, value)
        if not self.logs_dir_existed:
            step("removing /var/log/containers", shutil.rmtree, CONTAINER_LOGS, True)
        step("removing the state file", STATE_FILE.unlink, True)
        if errors:
            raise RuntimeError("cluster cleanup incomplete: " + "; ".join(errors))


def _has_chain(command: str, chain: str) -> bool:
    return _sh(command, "-w", "-S", chain, check=False).returncode == 0


def _remove_chain(command: str, chain: str) -> None:
    """Unhook `chain` from the built-in chains that jump to it, then flush and delete it."""
    for builtin in ("INPUT", "OUTPUT", "FORWARD"):
        while _sh(command, "-w", "-D", builtin, "-j", chain, check=False).returncode == 0:
            pass
    _sh(command, "-w", "-F", chain, check=False)
    _sh(command, "-w", "-X", chain, check=False)


def _delete_all_pods(api: KubeAPI, timeout: float = 60.0) -> None:
    """Stop the controllers' work (scale every Deployment to zero would race them, so the controller manager is
    stopped first by the caller), delete every pod at once and wait until the kubelet has torn them down, so
    their network namespaces, veths and mounts go the kubelet's way."""
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 1}
    _, pods = api.request("GET", "/api/v1/pods", timeout=10)
    for pod in (pods or {}).get("items", []):
        meta = pod["metadata"]
        api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", options, timeout=10)

    def left() -> list[str]:
        _, pods = api.request("GET", "/api/v1/pods", timeout=10)
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in (pods or {}).get("items", [])]

    deadline = time.monotonic() + timeout
    while left():
        if time.monotonic() > deadline:
            raise RuntimeError(f"pods still there after {timeout:.0f}s: {', '.join(left())}")
        time.sleep(0.5)  # the poll interval of a condition wait


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_if_ours(pid: int, workdir: str) -> None:
    """SIGKILL `pid` if it still runs with the recorded cluster's directory on its command line."""
    if workdir in _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_shims(containerd_address: str) -> None:
    """containerd's shims outlive it (they are their own sessions); ours name its socket on their command line."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(int(entry.name))
            if "containerd-shim" in line and containerd_address in line:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    """Lazily unmount every mount point under `root`, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_netns(before: set[str]) -> None:
    """Remove the CNI network namespaces the cluster made (those not there before it started)."""
    if not NETNS_DIR.exists():
        return
    for entry in NETNS_DIR.iterdir():
        if entry.name.startswith("cni-") and entry.name not in before:
            subprocess.run(["umount", "-l", str(entry)], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                entry.unlink()


def _remove_cgroups() -> None:
    """Remove the kubelet's `kubepods` cgroup trees (every hierarchy), leaves first."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


@contextlib.contextmanager
def _locked(timeout: float) -> Iterator[Any]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    handle = open(LOCK_FILE, "w")  # noqa: SIM115 - held for the cluster's lifetime
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise ClusterBusy(
                    f"another test run on this machine holds the cluster ({LOCK_FILE}) after {timeout:.0f}s"
                ) from None
            time.sleep(1)  # the poll interval of the lock wait
    yield handle


def _containerd_config(workdir: Path, socket: Path) -> str:
    cni_conf = workdir / "cni" / "net.d"
    return f"""version = 3
root = '{workdir / "containerd" / "root"}'
state = '{workdir / "containerd" / "state"}'

[grpc]
  address = '{socket}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{images.PAUSE_IMAGE}'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{CNI_BIN_DIR}']
    conf_dir = '{cni_conf}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""


def _cni_config(workdir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "algorun-testbed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(workdir / "cni" / "ipam"),
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }
        ],
    }


def _kubelet_config(workdir: Path, socket: Path, ca_file: Path, port: int, healthz: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "readOnlyPort": 0,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "podLogsDir": str(workdir / "pod-logs"),
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False,
        "localStorageCapacityIsolation": False,
        "serializeImagePulls": False,
        # Nothing is evicted and no image is collected: the images cannot be pulled again.
        "evictionHard": {"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "nodeStatusUpdateFrequency": "4s",
        "clusterDNS": [cluster_dns.DNS_SERVICE_IP],
        "clusterDomain": cluster_dns.CLUSTER_DOMAIN,
    }


def _binary(name: str) -> str:
    return str(testbin.PARTS[name].path() if name in testbin.PARTS else testbin.root() / "bin" / name)


def _node_ready(api: KubeAPI) -> bool:
    """Ready, and without taints: the node lifecycle controller lifts `not-ready` once it sees Ready."""
    status, node = api.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=5)
    if status != 200:
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready and not (node.get("spec") or {}).get("taints")


def _exists(api: KubeAPI, path: str) -> bool:
    return api.request("GET", path, timeout=5)[0] == 200


def start(workdir: Path, *, lock_timeout: float = 1800.0, timeout: float = 120.0) -> Cluster:
    """Start the cluster in `workdir` (short paths: unix sockets live there) and return it once the node is
    Ready, the default ServiceAccount exists and the images are imported. Needs root and the built parts."""
    if os.geteuid() != 0:
        raise StartError("the single-node cluster needs root (kubelet, containerd, network devices, cgroups)")
    began = time.monotonic()
    workdir = workdir.resolve()
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(_locked(lock_timeout))
        stale = Cleanup.load()
        if stale is not None:
            stale.run(None, [])
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        cleanup = Cleanup(
            workdir=str(workdir),
            netns_before=sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.exists() else [],
            logs_dir_existed=CONTAINER_LOGS.exists(),
            firewall_chains=[c for c in ("iptables", "ip6tables") if not _has_chain(c, FIREWALL_CHAIN)],
        )
        cleanup.save()
        cluster = Cluster(api=None, workdir=workdir, _lock=lock, _cleanup=cleanup)  # type: ignore[arg-type]
        stack.callback(cluster.stop)  # undone on any failure below; popped once the cluster is up

        for name, value in SYSCTLS.items():
            cleanup.sysctls[name] = _read_sysctl(name)
            _write_sysctl(name, value)
        cleanup.save()
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        cleanup.bridge = True
        cleanup.save()
        _sh("ip", "addr", "add", f"{GATEWAY}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")

        mark = time.monotonic()
        api = start_kube(
            Path(_binary("etcd")),
            Path(_binary("kube-apiserver")),
            workdir / "control-plane",
            address=GATEWAY,
            with_node=True,
            timeout=timeout,
        )
        cluster.api = api
        cluster.processes += [api.etcd, api.apiserver]
        cleanup.pids += [api.etcd.pid, api.apiserver.pid]
        cleanup.save()
        cluster.timings["control plane"] = time.monotonic() - mark

        mark = time.monotonic()
        socket = workdir / "containerd" / "containerd.sock"
        (workdir / "cni" / "net.d").mkdir(parents=True)
        (workdir / "cni" / "net.d" / "10-algorun-testbed.conflist").write_text(json.dumps(_cni_config(workdir)))
        config = workdir / "containerd" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(_containerd_config(workdir, socket))
        bin_dir = testbin.root() / "bin"
        containerd = _spawn(
            cluster,
            "containerd",
            [_binary("containerd"), "--config", str(config), "--log-level", "warn"],
            env={"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"},
        )
        cleanup.containerd_address = str(socket)
        cleanup.save()
        ctr = [str(bin_dir / "ctr"), "--address", str(socket), "--namespace", "k8s.io"]
        wait_for(lambda: _sh(*ctr, "version", check=False).returncode == 0, timeout=timeout, what="containerd",
                 proc=containerd)  # fmt: skip
        for part in IMAGE_PARTS:
            archive = testbin.PARTS[part].path()
            _sh(*ctr, "images", "import", "--snapshotter", "overlayfs", str(archive))
        cluster.timings["containerd and images"] = time.monotonic() - mark

        mark = time.monotonic()
        pki = workdir / "control-plane" / "pki"
        ca_file = pki / "ca.crt"
        kubelet_id = api.ca.issue(f"system:node:{NODE_NAME}", organizations=("system:nodes",), client=True)
        kubelet_kubeconfig = workdir / "kubelet" / "kubeconfig"
        kubelet_kubeconfig.parent.mkdir(parents=True)
        kubelet_kubeconfig.write_text(
            yaml.safe_dump(_kubeconfig(api.server, api.ca.cert_pem, kubelet_id.cert_pem, kubelet_id.key_pem))
        )
        kubelet_port, healthz_port, *ports = free_ports(8)
        kubelet_config = workdir / "kubelet" / "config.yaml"
        kubelet_config.write_text(yaml.safe_dump(_kubelet_config(workdir, socket, ca_file, kubelet_port, healthz_port)))
        kubelet = _spawn(
            cluster,
            "kubelet",
            [
                _binary("kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={workdir / 'kubelet' / 'root'}",
                f"--cert-dir={workdir / 'kubelet' / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
        )
        admin = str(api.kubeconfig)
        _spawn(
            cluster,
            "kube-controller-manager",
            [
                _binary("kube-controller-manager"),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[0]}",
                f"--service-account-private-key-file={api.service_account_key}",
                f"--root-ca-file={ca_file}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                "--v=1",
            ],
        )
        _spawn(
            cluster,
            "kube-scheduler",
            [
                _binary("kube-scheduler"),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[1]}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        cleanup.kube_proxy = _binary("kube-proxy")
        cleanup.save()
        _spawn(
            cluster,
            "kube-proxy",
            [
                _binary("kube-proxy"),
                f"--kubeconfig={admin}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_SUBNET}",
                "--masquerade-all",
                "--conntrack-max-per-core=0",
                f"--metrics-bind-address=127.0.0.1:{ports[2]}",
                f"--healthz-bind-address=127.0.0.1:{ports[3]}",
                "--v=1",
            ],
        )
        wait_for(lambda: _node_ready(api), timeout=timeout, what=f"node {NODE_NAME} Ready", proc=kubelet)
        wait_for(
            lambda: (
                _exists(api, "/api/v1/namespaces/default/serviceaccounts/default")
                and _exists(api, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            ),
            timeout=timeout,
            what="the default ServiceAccount and the root CA ConfigMap",
        )
        cluster.timings["node Ready"] = time.monotonic() - mark
        mark = time.monotonic()
        cluster_dns.install(api, images.COREDNS_IMAGE)
        cluster_dns.wait_ready(api, timeout)
        cluster.timings["cluster DNS ready"] = time.monotonic() - mark
        cluster.timings["total"] = time.monotonic() - began
        stack.pop_all()
        return cluster
    raise AssertionError("unreachable")


def _spawn(cluster: Cluster, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
    proc = ManagedProcess(name, argv, cluster.workdir / "logs" / f"{name}.log", env=env)
    cluster.processes.append(proc)
    assert cluster._cleanup is not None
    cluster._cleanup.pids.append(proc.pid)
    cluster._cleanup.save()
    return proc


def ensure_parts() -> None:
    """Build every part the cluster needs (raises testbin.MissingToolchain or BuildError)."""
    for part in PARTS:
        testbin.ensure(part)


def main() -> int:
    """`make cluster`: the cluster, a broker pods reach with Strimzi's stand-in, and the chart installed; runs
    until Ctrl-C or SIGTERM, then removes everything it created."""
    from tests.support.chart_install import install_operator
    from tests.support.e2e import name_broker
    from tests.support.helm import Helm
    from tests.support.kafka import start_kafka
    from tests.support.strimzi import StrimziStandIn

    ensure_parts()
    for part in ("helm", "kafka", "crds", "strimzi-crds"):
        testbin.ensure(part)
    workdir = Path(os.environ.get("ALGORUN_CLUSTER_DIR", "/tmp/algorun-cluster"))
    print(f"cluster: starting in {workdir} ...", flush=True)
    stop = False

    def request_stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    cluster = start(workdir, lock_timeout=5)
    broker = standin = None
    try:
        kafka_libs = testbin.PARTS["kafka"].path()
        broker = start_kafka(kafka_libs, workdir / "kafka", host=cluster.host_address)
        bootstrap_name = name_broker(cluster, broker)
        standin = StrimziStandIn(cluster.api, broker, kafka_libs=kafka_libs, workdir=workdir / "connect").start()
        helm = Helm(binary=testbin.PARTS["helm"].path(), home=workdir / "helm")
        install_operator(cluster.api, helm, workdir / "chart")
        print(
            f"cluster: ready in {cluster.timings['total']:.1f}s, images {images.algorun_image()} and "
            f"{images.EXAMPLES_IMAGE} loaded, the pipeline-operator chart installed (release "
            f"algorun, namespace algorun-system).\n"
            f"  export KUBECONFIG={cluster.kubeconfig}\n"
            f"  export KAFKA={broker.bootstrap()}     # the broker, for spec.kafkaBrokers; in pods also"
            f" {bootstrap_name}, the examples' address\n"
            f"Pods reach this machine at {cluster.host_address}: a webhook receiver must listen there.\n"
            "Ctrl-C stops the cluster and removes everything it created.",
            flush=True,
        )
        while not stop:
            signal.pause()
    finally:
        print("cluster: stopping ...", flush=True)
        if standin is not None:
            standin.stop()
        cluster.stop()
        if broker is not None:
            broker.stop()
        print("cluster: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
