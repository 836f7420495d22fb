"""cluster/local.sh: a head and worker nodes as separate ``ray start`` processes, all on 127.0.0.1.

The slow test starts a real cluster (a head and one worker node) in a temporary state folder on
free ports, checks that both nodes are alive (from the script's status and from a driver that joins
the way the README says), that no process of the cluster listens beyond loopback, and that ``down``
leaves none of its processes behind. The fast tests check bad input: one line, exit status 2.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "local.sh"
DRIVER_ENV = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # what `up` tells a driver to set


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


@pytest.mark.parametrize("args", [("up", "0"), ("up",), ("up", "two"), ("up", "-1"), ("up", "99"),
                                  ("up", "1", "--cpus", "0"), ("frob",), ()])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    state = tmp_path / "state"
    out = _run(*args, "--state", str(state)) if args else _run()
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cluster/local.sh: error: "), out.stderr
    assert not state.exists()  # refused before anything was made


def test_status_and_down_without_a_cluster(tmp_path: Path) -> None:
    state = ["--state", str(tmp_path / "none")]
    status, down = _run("status", *state), _run("down", *state)
    assert (status.returncode, down.returncode) == (3, 0)
    assert "no local cluster" in status.stdout and "no local cluster" in down.stdout


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    base = _free_base(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 107))  # worker-1's dashboard agent grpc port
        taken.listen()
        out = _run("up", "1", "--state", str(tmp_path / "state"), "--base-port", str(base))
    assert out.returncode == 1, out
    assert out.stderr.strip().splitlines() == [f"cluster/local.sh: error: port {base + 107} on 127.0.0.1 is in use "
                                               f"(Address already in use); the cluster needs {base}-{base + 199}: "
                                               "choose another --base-port or ROBUSTUNE_LOCAL_CLUSTER_PORT"]
    assert not (tmp_path / "state" / "nodes").exists()  # nothing started


def _free_base(nodes: int) -> int:
    """A base port below the ephemeral range whose ``100 * nodes`` ports nobody listens on."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(20000, low - 100 * nodes, 100)
        try:
            for port in range(base, base + 100 * nodes):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range found")


def _sessions(leaders: set[int]) -> set[int]:
    """Live (non-zombie) processes in the sessions that the nodes' ``ray start`` processes lead."""
    found = set()
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) in leaders:
                found.add(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _of_temp_root(tmproot: str) -> set[int]:
    """Live processes whose command line mentions the cluster's temp root."""
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and tmproot in " ".join(proc.info["cmdline"] or ()):
            found.add(proc.pid)
    return found - {os.getpid()}


def _listening(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP listener and bound UDP socket of ``pids``."""
    out = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid in pids and (conn.status == psutil.CONN_LISTEN or conn.type == socket.SOCK_DGRAM) and conn.laddr:
            out.append((conn.laddr.ip, conn.laddr.port, conn.pid))
    return out


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


JOIN = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
nodes = [[n["NodeManagerAddress"], n["NodeManagerPort"], n["Resources"].get("CPU", 0)] for n in ray.nodes()
         if n["Alive"]]
print(json.dumps({"nodes": nodes, "ip": ray.util.get_node_ip_address()}))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_up_status_join_down_on_loopback(tmp_path: Path) -> None:
    began = time.monotonic()
    state = tmp_path / "state"
    base = _free_base(2)
    env = os.environ | {"ROBUSTUNE_LOCAL_CLUSTER": str(state), "ROBUSTUNE_LOCAL_CLUSTER_PORT": str(base)}
    address = f"127.0.0.1:{base}"
    leaders: set[int] = set()
    started: set[int] = set()
    try:
        up = _run("up", "1", env=env, timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        assert address in up.stdout and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" in up.stdout
        nodes = [line.split() for line in (state / "nodes").read_text().splitlines()]
        assert [n[0] for n in nodes] == ["head", "worker-1"]
        leaders = {int(n[1]) for n in nodes}
        tmproot = (state / "tmp").read_text().strip()

        again = _run("up", "1", env=env)  # one cluster per state folder
        assert again.returncode == 1 and "already up" in again.stderr

        status = _run("status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = [line.split() for line in status.stdout.splitlines() if line.split()[:1] in (["head"], ["worker-1"])]
        assert [(r[0], r[-2], r[-1]) for r in rows] == [("head", "alive", "ALIVE"), ("worker-1", "alive", "ALIVE")]

        joined = subprocess.run([sys.executable, "-c", JOIN, address], capture_output=True, text=True, timeout=90,
                                env=os.environ | DRIVER_ENV, cwd=tmp_path)
        assert joined.returncode == 0, joined.stderr[-2000:]
        seen = json.loads(joined.stdout.strip().splitlines()[-1])
        assert sorted(seen["nodes"]) == [["127.0.0.1", base + 3, 0], ["127.0.0.1", base + 103, 1]]
        assert seen["ip"] == "127.0.0.1"

        started = _sessions(leaders) | _of_temp_root(tmproot)
        assert leaders <= started and len(started) >= 10  # GCS, raylets, dashboard, agents, workers...
        listening = _listening(started)
        assert ("127.0.0.1", base) in {(ip.removeprefix("::ffff:"), port) for ip, port, _ in listening}  # the GCS
        beyond = [(ip, port, psutil.Process(pid).name()) for ip, port, pid in listening if not _is_loopback(ip)]
        assert not beyond, f"listening beyond loopback: {beyond}"
    finally:
        down = _run("down", env=env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "none left" in down.stdout
    assert not _sessions(leaders) and not [p for p in started if _running(p)]
    assert not _of_temp_root(tmproot) and not Path(tmproot).exists()
    assert not (state / "nodes").exists()
    assert _run("status", env=env).returncode == 3
    print(f"local cluster up, checked and down in {time.monotonic() - began:.1f} s")
