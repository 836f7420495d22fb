"""The search on a real multi-node Ray cluster: spread, a worker node killed, the driver killed, many trials.

One cluster for the module (``ray.cluster_utils.Cluster``: a head without CPUs and three 1-CPU
worker nodes, each its own raylet, object store and worker processes on this machine). Every
search runs as its own ``python -m tuner.search --address`` process, as a user would run it on a
cluster's head. Which node runs a trial is read from the process tree: a trial's worker is a
child of its node's raylet.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
import torch

from search_spaces import PRESETS, get_space
from tuner.trials.study import LOST

pytestmark = [pytest.mark.slow, pytest.mark.ray]

WORKER_NODES = 3
SMALL = ["--train-limit", "300", "--val-limit", "60", "--test-limit", "60", "--no-live", "--sampler", "random",
         "--scheduler", "fifo", "--attacks", "fgsm", "--fuse", "off"]  # --fuse auto would measure, and may bundle
TRIAL = "ray::ImplicitFunc"  # the process title of a Tune function trial's actor
TRAIN_WORKER = "ray::RayTrainWorker"  # a data-parallel trial's Ray Train worker
RAYS_OWN = {"AutoscalingCoordinator"}  # Ray Train's detached per-cluster singleton, outliving every job by design


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node (no CPUs: trials go to workers) and three 1-CPU worker nodes; all gone afterwards."""
    from ray.cluster_utils import Cluster

    # a dead node is noticed in ~2 s instead of Ray's default ~15 s
    fast = {"health_check_period_ms": 500, "health_check_failure_threshold": 4, "health_check_initial_delay_ms": 0}
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 << 20,
                                                         "_system_config": fast})
    for _ in range(WORKER_NODES):
        made.add_node(num_cpus=1, object_store_memory=100 << 20)
    made.wait_for_nodes()
    try:
        yield made
    finally:
        nodes = [made.head_node, *made.worker_nodes]
        pids = [p.process.pid for n in nodes for procs in n.all_processes.values() for p in procs]
        made.shutdown()
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _raylet(node: Any) -> int:
    return node.all_processes["raylet"][0].process.pid


def _node_of(pid: int, raylets: dict[int, Any]) -> Any | None:
    """The cluster node whose raylet started process ``pid``, if any."""
    try:
        for parent in psutil.Process(pid).parents():
            if parent.pid in raylets:
                return raylets[parent.pid]
    except psutil.NoSuchProcess:
        pass
    return None


def _placed(cluster: Any, title: str) -> dict[Any, list[int]]:
    """Node -> pids of its live processes whose title starts with ``title`` (a trial's, or Train's workers)."""
    placed: dict[Any, list[int]] = defaultdict(list)
    for node in [cluster.head_node, *cluster.worker_nodes]:
        try:
            children = psutil.Process(_raylet(node)).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if " ".join(child.cmdline()).startswith(title):
                    placed[node].append(child.pid)
            except psutil.Error:
                continue
    return placed


class Watcher:
    """Samples, while a search runs, where its trials' processes are: the most at once per node, every node used."""

    def __init__(self, cluster: Any, title: str = TRIAL, period: float = 0.2) -> None:
        self.cluster, self.title, self.period = cluster, title, period
        self.most: Counter[Any] = Counter()
        self.spread = 0  # the most nodes holding such processes at once
        self.pids: dict[int, Any] = {}  # every process seen -> its node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            placed = _placed(self.cluster, self.title)
            self.spread = max(self.spread, len(placed))
            for node, pids in placed.items():
                self.most[node] = max(self.most[node], len(pids))
                self.pids.update(dict.fromkeys(pids, node))
            time.sleep(self.period)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _search(search: Any, cluster: Any, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(search.argv("--address", cluster.address, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=search.folder)


def _wait(proc: subprocess.Popen[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _until(ready: Callable[[], bool], proc: subprocess.Popen[str], within: float = 240) -> None:
    deadline = time.time() + within
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"not ready within {within} s (exit {proc.returncode}): {err[-3000:]}")
        time.sleep(0.1)


def _results(experiment: Path) -> dict[str, dict[str, Any]]:
    return {r["trial_id"]: r for r in pq.read_table(experiment / "results.parquet").to_pylist()}


def _reports(experiment: Path) -> dict[str, list[dict[str, Any]]]:
    """Each trial's reports so far, from Tune's result.json in its folder."""
    reports = {}
    for path in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            reports[lines[0]["trial_id"]] = lines
    return reports


def _study_trials(experiment: Path) -> list[Any]:
    import optuna

    from tuner.cluster.storage import study_storage

    storage = study_storage(str(experiment))  # whichever storage the experiment's study started in
    return optuna.load_study(study_name=experiment.name, storage=storage.open()).get_trials(deepcopy=False)


def _nothing_left(cluster: Any) -> None:
    """No trial process, no live actor and no placement group of a search that ended is left on the cluster."""
    from ray._raylet import GcsClientOptions

    assert not _placed(cluster, TRIAL) and not _placed(cluster, TRAIN_WORKER)
    state = cluster.global_state
    state._initialize_global_state(GcsClientOptions.create(cluster.address, None, allow_cluster_id_nil=True,
                                                           fetch_cluster_id_if_nil=False))
    deadline = time.time() + 30  # the GCS settles a finished job's actors and groups within seconds
    while True:
        alive = [a for a in state.actor_table(None).values() if a["State"] != "DEAD" and a["Name"] not in RAYS_OWN]
        groups = [g for g in state.placement_group_table().values() if g["state"] != "REMOVED"]
        if not alive and not groups or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not alive, alive
    assert not groups, groups


def _kill_between_saves(proc: subprocess.Popen[str], experiment: Path) -> None:
    """SIGKILL the search, frozen (SIGSTOP) at a moment outside a save of Tune's state.

    A kill within the milliseconds of a save leaves files newer than the integrity record, which
    ``--resume`` refuses by design (README, "When something dies"); anywhere else it must resume.
    """
    from tuner.cluster.integrity import verify

    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        try:
            verify(experiment)
        except ValueError:
            proc.send_signal(signal.SIGCONT)  # caught inside a save: let it finish
            time.sleep(0.02)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return
    raise AssertionError("the search was inside a save at every one of 200 tries")


def test_trials_spread_over_the_nodes_within_their_resources_and_many_all_finish(search, cluster, tmp_path) -> None:
    with Watcher(cluster) as watched:
        done = _wait(_search(search, cluster, "--space", "adversarial", "--num-samples", "20", "--epochs", "1",
                             "--train-limit", "128", *SMALL[2:], "--name", "many"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _results(tmp_path / "runs" / "many")
    assert len(rows) == 20 and {r["outcome"] for r in rows.values()} == {"finished"}
    # every 1-CPU worker node ran trials, one at a time; the head (no CPU) none
    assert set(watched.most) == set(cluster.worker_nodes), watched.most
    assert max(watched.most.values()) == 1
    states = Counter(t.state.name for t in _study_trials(tmp_path / "runs" / "many"))
    assert states == {"COMPLETE": 20}
    _nothing_left(cluster)


def test_a_killed_worker_node_s_trial_goes_on_elsewhere_from_its_checkpoint(search, cluster, tmp_path) -> None:
    EPOCHS = 4  # noqa: N806
    point = tmp_path / "point.json"  # two trials of one configuration and seed: the undisturbed one is the reference
    point.write_text(json.dumps(get_space("adversarial").points_to_evaluate(PRESETS["quick"])))
    experiment = tmp_path / "runs" / "kill-node"
    proc = _search(search, cluster, "--space", "adversarial", "--num-samples", "2", "--points", str(point),
                   "--epochs", str(EPOCHS), *SMALL, "--train-limit", "1000", "--name", "kill-node")
    with Watcher(cluster) as watched:
        def running() -> list[tuple[str, list[dict[str, Any]]]]:  # trials past their first checkpoint, not done
            return [(tid, r) for tid, r in _reports(experiment).items() if 1 <= len(r) < EPOCHS]

        _until(lambda: bool(running()), proc)
        victim_trial, victim_reports = running()[0]
        raylets = {_raylet(n): n for n in cluster.worker_nodes}
        victim = _node_of(victim_reports[-1]["pid"], raylets)
        assert victim is not None
        doomed = psutil.Process(_raylet(victim)).children(recursive=True)
        cluster.remove_node(victim, allow_graceful=False)  # SIGKILL of the raylet and the node's own services
        for child in doomed:  # and of its workers, the trial's among them
            try:
                child.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        killed_at = len(victim_reports)
        done = _wait(proc)
    cluster.add_node(num_cpus=1, object_store_memory=100 << 20)  # the module's cluster keeps three workers
    cluster.wait_for_nodes()
    assert done.returncode == 0, done.stderr[-3000:]

    reports = _reports(experiment)[victim_trial]
    restored = [r for r in reports if r["training_iteration"] > killed_at]
    assert restored and restored[0]["iterations_since_restore"] == 1  # went on from its checkpoint, not from epoch 1
    assert sorted({r["training_iteration"] for r in reports}) == list(range(1, EPOCHS + 1))
    assert watched.pids.get(restored[-1]["pid"]) not in (None, victim)  # on another, live node
    rows = _results(experiment)
    assert {r["outcome"] for r in rows.values()} == {"finished"}
    reference = next(r for tid, r in rows.items() if tid != victim_trial)
    assert rows[victim_trial]["config_json"] == reference["config_json"]
    for key in ("objective", "natural", "epochs"):  # the same seed: the interrupted trial ends where the other did
        assert rows[victim_trial][key] == reference[key], key
    for key in ("train_loss", "natural_acc", "robust_acc"):  # epoch by epoch, to the last bit
        assert [h[key] for h in rows[victim_trial]["history"]] == [h[key] for h in reference["history"]], key


def test_a_search_whose_driver_was_killed_resumes_without_losing_or_rerunning_trials(search, cluster, tmp_path) -> None:
    """Fused: two bundles of two trials, one after the other; the driver dies after the first."""
    experiment = tmp_path / "runs" / "kill-driver"
    args = ["--space", "lwta", "--num-samples", "4", "--epochs", "2", "--max-concurrent", "1", *SMALL,
            "--fuse", "2", "--study-storage", "journal", "--name", "kill-driver"]
    proc = _search(search, cluster, *args)

    def one_finished() -> bool:
        try:
            return json.loads((experiment / "progress.json").read_text())["counts"].get("finished", 0) >= 1
        except (OSError, ValueError, KeyError):
            return False

    _until(one_finished, proc)
    _kill_between_saves(proc, experiment)  # no Ctrl-C, no clean-up: the machine running the driver is gone
    seen = json.loads((experiment / "progress.json").read_text())["trials"]
    before = {t["trial_id"]: t for t in seen if t["outcome"] == "finished"}
    assert 1 <= len(before) < 4

    resumed = _wait(_search(search, cluster, *args, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ended without releasing its lock" in resumed.stderr
    rows = _results(experiment)
    assert len(rows) == 4, rows
    outcomes = {tid: (r["outcome"], r["error"]) for tid, r in rows.items()}
    assert {outcome for outcome, _ in outcomes.values()} == {"finished"}, outcomes
    reports = _reports(experiment)
    assert all("." in tid for tid in rows), rows  # each trial a bundle's member: "<bundle>.<member>"
    for tid, trial in before.items():  # finished before the kill: kept; replayed from Tune's last saved checkpoint
        assert rows[tid]["objective"] == trial["objective"]  # at most, and to the same end
        bundle, member = tid.split(".")
        epochs = [r[f"member/{member}/epoch"] for r in reports[bundle] if f"member/{member}/epoch" in r]
        assert epochs[:2] == [1, 2] and set(epochs) <= {1, 2}, epochs
    trials = _study_trials(experiment)
    assert "RUNNING" not in {t.state.name for t in trials}
    counted = [t for t in trials if t.user_attrs.get("outcome") != LOST]  # lost: asked for, never started
    assert len(counted) == 4 and {t.user_attrs["tune_trial_id"] for t in counted} == set(rows)
    assert (experiment / "optuna-journal.log").is_file() and not (experiment / "optuna.db").exists()
    _nothing_left(cluster)


def test_a_data_parallel_search_runs_each_trial_over_two_nodes_exports_and_survives_a_diverging_trial(
        search, cluster, tmp_path) -> None:
    points = tmp_path / "points.json"  # diverges: NaN loss on every replica
    points.write_text(json.dumps([{"lr": 1.0e6, "mix_none": 1.0, "mix_fgsm": 0.0, "mix_pgd": 0.0}]))
    with Watcher(cluster, TRAIN_WORKER) as watched:
        done = _wait(_search(search, cluster, "--space", "adversarial", "--num-samples", "2", "--points", str(points),
                             "--epochs", "2", "--workers-per-trial", "2", "--cpus-per-trial", "2", *SMALL,
                             "--train-limit", "600", "--name", "dp"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 data-parallel workers per trial (gloo)" in " ".join(done.stderr.split()) and "best trial" in done.stdout
    # a worker takes 1 of the trial's 2 CPUs, a node has 1: one trial's workers on two nodes at once (not the
    # most per node: a worker of the trial before may still be exiting there when the next one's starts)
    assert watched.spread >= 2, watched.most
    assert set(watched.most) <= set(cluster.worker_nodes)
    experiment = tmp_path / "runs" / "dp"
    rows = list(_results(experiment).values())
    assert sorted(r["outcome"] for r in rows) == ["failed", "finished"], [(r["outcome"], r["error"]) for r in rows]
    finished = next(r for r in rows if r["outcome"] == "finished")
    assert 0.0 <= finished["objective"] <= finished["final_metric/final/natural_acc"] <= 1.0
    run = experiment / "train-runs" / f"train-{finished['trial_id']}"  # Ray Train's own storage, named for the trial
    assert (run / "checkpoint_manager_snapshot.json").exists()
    assert len(list(run.glob("checkpoint_*/checkpoint.pt"))) == 2

    from tuner.export import load_model

    model = load_model(tmp_path / "exports" / "latest")
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    metrics = json.loads((tmp_path / "exports" / "dp" / "metrics.json").read_text())
    assert metrics["search"]["trial_id"] == finished["trial_id"]
    assert 0.0 <= metrics["test"]["robust_acc"] <= metrics["test"]["natural_acc"] <= 1.0
    _nothing_left(cluster)
