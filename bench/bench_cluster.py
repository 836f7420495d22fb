"""``python -m bench.bench_cluster``: Ray Tune over 1, 2 and 3 nodes of one machine, and a node's death.

Both parts run on one multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a
head without CPUs, where the driver sits, and worker nodes added and removed as needed, each its
own raylet, object store and worker processes).

**Throughput.** The same N tiny trials (a function trainable: ``--reports`` reports, each after a
``--sleep`` of seconds and a small torch matmul, no checkpoint; 1 CPU per trial,
``reuse_actors=True``, as many trials at once as there are CPUs) on layouts with the same total
CPUs: 1 node with all of them, 2 nodes sharing them, ... (``--total-cpus`` 3 -> 1x3, 2+1, 1+1+1).
Only ``Tuner.fit`` is timed, not the nodes' start, after ``--warmup`` untimed runs of the 1-node
layout (the first Tuner of a process pays several seconds more). The layouts run one after the other in each
repeat, in reversed order every other repeat (ABC CBA ...), so load from other processes hits them
alike; a layout's figure is the median over repeats of its trials per minute, and its ratio the
median of the per-repeat ratios to the 1-node layout of the same repeat (> 1: faster than 1 node).

**Recovery.** One trial (1 CPU, a checkpoint with every report) on a layout of two 1-CPU worker
nodes. After its ``--kill-after``-th report the node running it is killed outright (SIGKILL of its
raylet and agents: ``Cluster.remove_node(node, allow_graceful=False)``; its worker processes die
with their raylet). Tune (``FailureConfig(max_failures=2)``) restarts the trial on the other node
from its last checkpoint. Measured from the kill: until Ray marks the node dead (``ray.nodes()``
polled), until Tune knows the trial failed and schedules it again (``on_trial_recover``), until the
trial's function runs again (its own clock, after loading the checkpoint), and until its next report
reaches the driver. The trial reports the step whose checkpoint it loaded: at least the last step
whose report reached the driver before the kill (a report in flight at the kill may be newer),
never 0 (from scratch).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.common import provenance, render, write_json
from trainables.cli import OneLineParser, run_main

__all__ = ["Layout", "Recovery", "build_parser", "layouts", "main", "tiny_trial"]

PROG = "python -m bench.bench_cluster"
NODE_STORE = 100 << 20  # object store per node: the trials pass nothing through it
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 4, "health_check_initial_delay_ms": 0}
# the flags --quick changes, and to what
FULL = {"trials": 12, "repeats": 3, "kills": 2, "kill_reports": 30}
QUICK = {"trials": 6, "repeats": 2, "kills": 1, "kill_reports": 20}


@dataclass(frozen=True)
class Layout:
    """Worker nodes by their CPUs, e.g. (2, 1): two nodes, 3 CPUs in all."""

    cpus: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{len(self.cpus)} node{'s' if len(self.cpus) > 1 else ''} ({'+'.join(map(str, self.cpus))} CPU)"


def layouts(total_cpus: int, max_nodes: int) -> list[Layout]:
    """1..max_nodes worker nodes sharing ``total_cpus`` as evenly as they can, larger shares first."""
    if total_cpus < 1 or max_nodes < 1:
        raise ValueError(f"--total-cpus and --max-nodes must be >= 1, got {total_cpus=}, {max_nodes=}")
    out = []
    for n in range(1, min(max_nodes, total_cpus) + 1):
        share, extra = divmod(total_cpus, n)
        out.append(Layout(tuple(share + (i < extra) for i in range(n))))
    return out


def tiny_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: ``reports`` steps of a sleep and a small matmul, resuming from its checkpoint."""
    import ray
    from ray import tune

    began = time.time()
    torch.set_num_threads(1)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = json.loads((Path(folder) / "state.json").read_text())["step"]
    node = ray.get_runtime_context().get_node_id()
    x = torch.randn(64, 64)
    for step in range(start + 1, config["reports"] + 1):
        time.sleep(config["sleep_s"])
        x = torch.tanh(x @ x.T / 64)
        metrics = {"step": step, "start_step": start, "began_at": began, "at": time.time(), "node": node,
                   "pid": os.getpid()}
        if not config["checkpoint"]:
            tune.report(metrics)
            continue
        folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        (folder / "state.json").write_text(json.dumps({"step": step}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)))  # persisted before it returns
        shutil.rmtree(folder, ignore_errors=True)


class _Nodes:
    """The cluster's worker nodes: add a layout's, wait until the driver sees their CPUs, remove them."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def add(self, cpus: Sequence[int], timeout: float = 120) -> list[Any]:
        import ray

        nodes = [self.cluster.add_node(num_cpus=c, object_store_memory=NODE_STORE) for c in cpus]
        self.cluster.wait_for_nodes()
        deadline = time.monotonic() + timeout
        total = sum(cpus)
        while ray.cluster_resources().get("CPU", 0) != total or ray.available_resources().get("CPU", 0) != total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the driver does not see {total} free CPUs within {timeout:g} s")
            time.sleep(0.2)
        return nodes

    def remove(self, nodes: Sequence[Any]) -> None:
        import ray

        for node in nodes:
            if node in self.cluster.worker_nodes:
                self.cluster.remove_node(node)
        deadline = time.monotonic() + 60
        while ray.cluster_resources().get("CPU", 0) and time.monotonic() < deadline:
            time.sleep(0.2)


def _tuner(storage: Path, name: str, param_space: dict[str, Any], max_concurrent: int, max_failures: int,
           callbacks: Sequence[Any] = ()) -> Any:
    from ray import tune

    return tune.Tuner(
        tune.with_resources(tiny_trial, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0, callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def _fit(tuner: Any) -> Any:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # Tune's experiment banner, even at verbose=0
        grid = tuner.fit()
    if grid.num_errors:
        raise RuntimeError(f"{grid.num_errors} of {len(grid)} trials failed: {grid.errors[0]}")
    return grid


@dataclass
class LayoutRun:
    """One layout in one repeat: the wall seconds of ``fit`` and the nodes its trials ran on."""

    layout: str
    repeat: int
    wall_s: float
    trials: int
    nodes_used: int

    @property
    def per_minute(self) -> float:
        return 60 * self.trials / self.wall_s


def run_layout(nodes: _Nodes, layout: Layout, repeat: int, args: Any, storage: Path) -> LayoutRun:
    """Add the layout's nodes, time the N trials through Tune, remove the nodes."""
    from ray import tune

    added = nodes.add(layout.cpus)
    try:
        space = {"reports": args.reports, "sleep_s": args.sleep, "checkpoint": False,
                 "index": tune.grid_search(list(range(args.trials)))}
        tuner = _tuner(storage, f"throughput-{len(layout.cpus)}-{repeat}", space, sum(layout.cpus), 0)
        began = time.perf_counter()
        grid = _fit(tuner)
        wall = time.perf_counter() - began
        used = len({r.metrics["node"] for r in grid})
    finally:
        nodes.remove(added)
    return LayoutRun(layout.name, repeat, wall, args.trials, used)


@dataclass
class Recovery:
    """One node killed under a running trial, and the trial going on elsewhere from its checkpoint."""

    killed_after_step: int = 0  # the step whose report made the driver kill the node
    last_step_seen: int = 0  # the last step whose report reached the driver before the kill
    resumed_from_step: int = -1  # the checkpoint the restarted trial loaded (0: from scratch)
    kill_to_node_dead_s: float = float("nan")
    kill_to_retry_s: float = float("nan")  # Tune learned that the trial failed and schedules it again
    kill_to_restored_s: float = float("nan")  # the trial's function running again, checkpoint loaded
    kill_to_next_report_s: float = float("nan")  # its first report after the restore, at the driver
    other_node: bool = False
    final_step: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


class _Killer:
    """Kills the node of the trial once it reported ``kill_after`` steps, and times the trial's recovery.

    A Tune callback (``tune.Callback`` is mixed in by :func:`_killer`); Tune pickles its callbacks with
    the experiment's state, so the live objects are left out of the pickle.
    """

    def __init__(self, cluster: Any, kill_after: int, record: Recovery) -> None:
        self.cluster, self.kill_after, self.record = cluster, kill_after, record
        self.killed_at: float | None = None
        self.done = threading.Event()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def _kill(self, node_id: str) -> None:
        import ray

        node = next(n for n in self.cluster.worker_nodes if n.node_id == node_id)
        self.killed_at = time.time()
        self.cluster.remove_node(node, allow_graceful=False)
        while any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes()):
            time.sleep(0.05)
        self.record.kill_to_node_dead_s = time.time() - self.killed_at
        self.done.set()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        now, record = time.time(), self.record
        keep = {k: result[k] for k in ("step", "start_step", "began_at", "at", "node", "pid")}
        record.results.append(keep | {"received_at": now})
        if self.killed_at is None and result["step"] >= self.kill_after:
            record.killed_after_step = result["step"]
            self.killed_at = now  # until the thread sets the exact moment
            threading.Thread(target=self._kill, args=(result["node"],), daemon=True).start()
        elif self.killed_at is not None and result["began_at"] > self.killed_at and record.resumed_from_step < 0:
            record.resumed_from_step = result["start_step"]
            record.kill_to_restored_s = result["began_at"] - self.killed_at
            record.kill_to_next_report_s = now - self.killed_at
            before = [r for r in record.results if r["at"] < self.killed_at]
            record.last_step_seen = max(r["step"] for r in before)
            record.other_node = result["node"] != before[-1]["node"]

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.killed_at is not None and math.isnan(self.record.kill_to_retry_s):  # its first retry only
            self.record.kill_to_retry_s = time.time() - self.killed_at


def _killer(cluster: Any, kill_after: int, record: Recovery) -> Any:
    """A :class:`_Killer` that is a ``tune.Callback``."""
    from ray import tune

    return type("Killer", (_Killer, tune.Callback), {})(cluster, kill_after, record)


def run_recovery(nodes: _Nodes, kill: int, args: Any, storage: Path) -> Recovery:
    """Two 1-CPU nodes, one checkpointing trial, its node killed after ``--kill-after`` reports."""
    added = nodes.add([1, 1])
    record = Recovery()
    killer = _killer(nodes.cluster, args.kill_after, record)
    try:
        space = {"reports": args.kill_reports, "sleep_s": args.kill_sleep, "checkpoint": True}
        grid = _fit(_tuner(storage, f"recovery-{kill}", space, 1, 2, [killer]))
        killer.done.wait(timeout=120)
        record.final_step = int(grid[0].metrics["step"])
    finally:
        nodes.remove(added)
    if record.resumed_from_step < 0:
        raise RuntimeError(f"the trial was not restored after its node was killed: {record.results[-3:]}")
    return record


def throughput_rows(runs: Sequence[LayoutRun], names: Sequence[str]) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    """Per layout: median wall, trials/min, ratio to the first layout (median of per-repeat ratios) and range."""
    reference = {r.repeat: r.per_minute for r in runs if r.layout == names[0]}
    rows, figures = [], {}
    for name in names:
        mine = [r for r in runs if r.layout == name]
        ratios = [r.per_minute / reference[r.repeat] for r in mine]
        figures[name] = {"wall_s": [r.wall_s for r in mine], "trials_per_min": [r.per_minute for r in mine],
                         "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                         "nodes_used": [r.nodes_used for r in mine]}
        rows.append((name, f"{statistics.median(r.wall_s for r in mine):.1f} s",
                     f"{statistics.median(r.per_minute for r in mine):.1f}", f"{statistics.median(ratios):.2f}",
                     f"{min(ratios):.2f}-{max(ratios):.2f}", ", ".join(str(r.nodes_used) for r in mine)))
    return rows, figures


def recovery_rows(records: Sequence[Recovery]) -> list[tuple[str, ...]]:
    """One row per kill, the times from the kill, and whether the trial resumed from its checkpoint."""
    return [(str(i + 1), str(r.last_step_seen), str(r.resumed_from_step), "yes" if r.resumed_from_step == 0 else "no",
             "yes" if r.other_node else "no", f"{r.kill_to_retry_s:.1f} s", f"{r.kill_to_restored_s:.1f} s",
             f"{r.kill_to_next_report_s:.1f} s", f"{r.kill_to_node_dead_s:.1f} s", str(r.final_step))
            for i, r in enumerate(records)]


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="Ray Tune on 1..3 nodes of this machine with the same CPUs, and the "
                                             "time a trial takes to go on elsewhere after its node is killed.")
    quick = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in QUICK.items())
    p.add_argument("--quick", action="store_true", help=f"a short run: {quick}")
    p.add_argument("--only", choices=("throughput", "recovery"), default=None, help="run one part only")
    p.add_argument("--total-cpus", type=int, default=3, help="CPUs of every layout, in all (logical: trials sleep)")
    p.add_argument("--max-nodes", type=int, default=3, help="layouts of 1..max-nodes worker nodes")
    p.add_argument("--trials", type=int, default=None, help=f"trials per layout (default {FULL['trials']})")
    p.add_argument("--reports", type=int, default=4, help="reports per throughput trial")
    p.add_argument("--sleep", type=float, default=0.25, help="seconds before each report of a throughput trial")
    p.add_argument("--repeats", type=int, default=None, help=f"throughput repeats (default {FULL['repeats']})")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of the 1-node layout first (the first Tuner "
                                                         "of a process pays several seconds more)")
    p.add_argument("--kills", type=int, default=None, help=f"recovery repeats (default {FULL['kills']})")
    p.add_argument("--kill-reports", type=int, default=None,
                   help=f"reports of the recovery trial (default {FULL['kill_reports']})")
    p.add_argument("--kill-after", type=int, default=5, help="kill the trial's node after this many reports")
    p.add_argument("--kill-sleep", type=float, default=0.5, help="seconds between the recovery trial's reports")
    p.add_argument("--fast-health-check", action="store_true",
                   help="Ray notices a dead node after 4 failed checks 0.5 s apart (the tests' setting) instead of "
                        "its defaults")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    return p


def _settings(args: Any) -> Any:
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.trials, args.repeats, args.kills, args.reports) < 1 or min(args.sleep, args.kill_sleep) < 0:
        raise ValueError(f"--trials, --repeats, --kills and --reports must be >= 1 and the sleeps >= 0, got "
                         f"{args.trials=}, {args.repeats=}, {args.kills=}, {args.reports=}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup=}")
    if not 1 <= args.kill_after < args.kill_reports:
        raise ValueError(f"--kill-after must be in [1, --kill-reports), got {args.kill_after=}, {args.kill_reports=}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start the cluster, run the parts asked for, print the tables, write the JSON."""
    args = _settings(build_parser().parse_args(argv))
    plan = layouts(args.total_cpus, args.max_nodes)
    import ray
    from ray.cluster_utils import Cluster

    header = provenance(torch.device("cpu"), quick=args.quick, total_cpus=args.total_cpus,
                        layouts=[layout.name for layout in plan], trials=args.trials, reports=args.reports,
                        sleep_s=args.sleep, warmup=args.warmup, repeats=args.repeats, kills=args.kills,
                        kill_reports=args.kill_reports,
                        kill_after=args.kill_after, kill_sleep_s=args.kill_sleep,
                        health_check=FAST_HEALTH if args.fast_health_check else "Ray's defaults")
    storage = Path(tempfile.mkdtemp(prefix="robustune-bench-cluster-"))
    began = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE_STORE,
        "_system_config": FAST_HEALTH if args.fast_health_check else {}})
    runs: list[LayoutRun] = []
    records: list[Recovery] = []
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        nodes = _Nodes(cluster)
        if args.only in (None, "throughput"):
            for warmup in range(args.warmup):
                run_layout(nodes, plan[0], -1 - warmup, args, storage)
            for repeat in range(args.repeats):
                for layout in plan if repeat % 2 == 0 else plan[::-1]:
                    runs.append(run_layout(nodes, layout, repeat, args, storage))
        if args.only in (None, "recovery"):
            for kill in range(args.kills):
                records.append(run_recovery(nodes, kill, args, storage))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    header |= {"wall_s": round(time.perf_counter() - began, 1), "loadavg_after": provenance(torch.device("cpu"))[
        "loadavg_1_5_15"]}
    payload: dict[str, Any] = {"benchmark": "cluster", "provenance": header,
                               "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    shown = False
    if runs:
        rows, figures = throughput_rows(runs, [layout.name for layout in plan])
        render(f"robustune bench: {args.trials} tiny Tune trials on layouts of {args.total_cpus} CPUs "
               f"(ratio = trials/min over 1 node's, median of paired repeats)", header, [], rows,
               ("layout", "wall (median)", "trials/min", "ratio", "range", "nodes used"))
        payload["throughput"] = {"runs": [asdict(r) | {"trials_per_min": r.per_minute} for r in runs],
                                 "figures": figures}
        shown = True
    if records:
        render("robustune bench: a worker node SIGKILLed under a running trial (times from the kill)",
               {} if shown else header, [], recovery_rows(records),
               ("kill", "last step seen", "resumed from", "from scratch", "other node", "Tune retries",
                "trial restored", "next report", "node dead", "final step"))
        payload["recovery"] = [asdict(r) for r in records]
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
