"""Reliability and security of the search: locks, resources, ranges, exports as data, integrity, the study."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.cluster.integrity import RECORD_FILE, protected_files, sign, verify
from tuner.cluster.lock import LOCK_FILE, experiment_lock
from tuner.cluster.resources import TrialResources, placeable, wait_until_placeable
from tuner.trials import TrialReport
from tuner.trials import trial_outcome as outcome_of

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- lock
def test_a_second_search_on_a_locked_experiment_gets_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "exp"
    with experiment_lock(str(folder), "first"):
        with pytest.raises(FileExistsError, match=f"in use by process {os.getpid()}.*first"):
            with experiment_lock(str(folder), "second"):
                pass
        other = subprocess.run([sys.executable, "-c", "from tuner.cluster.lock import experiment_lock\n"
                                f"with experiment_lock({str(folder)!r}, 'other'): pass"],
                               capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert other.returncode != 0 and "is in use by process" in other.stderr
    with experiment_lock(str(folder), "third"):  # released on exit
        pass
    assert (folder / LOCK_FILE).read_text() == ""


def test_the_lock_of_a_killed_search_is_taken_over_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom tuner.cluster.lock import experiment_lock\n"
                               f"with experiment_lock({str(folder)!r}, 'doomed'):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FileExistsError):
            with experiment_lock(str(folder), "meanwhile"):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait()
    with pytest.warns(UserWarning, match=f"process {holder.pid}.*ended without releasing"):
        with experiment_lock(str(folder), "next"):
            pass


# ------------------------------------------------------------------------------------------ resources
def _node(cpu: float, gpu: float = 0.0, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpu, **({"GPU": gpu} if gpu else {})}}


def test_trials_are_checked_against_each_node() -> None:
    two_cores = [_node(2)]
    assert placeable(TrialResources(1, 1.0, 0.0), two_cores)
    assert not placeable(TrialResources(1, 8.0, 0.0), two_cores)
    assert not placeable(TrialResources(1, 1.0, 1.0), two_cores)
    assert not placeable(TrialResources(1, 3.0, 0.0), [_node(2), _node(2)])  # no single node has 3
    assert placeable(TrialResources(2, 1.0, 1.0), [_node(4, 1), _node(4, 1)])  # one GPU worker per node
    assert not placeable(TrialResources(2, 1.0, 1.0), [_node(4, 1), _node(4, 1, alive=False)])


def test_a_cluster_that_does_not_grow_is_refused_after_the_bounded_wait() -> None:
    asked = []
    began = time.monotonic()
    with pytest.raises(ValueError, match=r"8 CPU.*1 node\(s\): 2 CPU 0 GPU after waiting 0.3 s"):
        wait_until_placeable(TrialResources(1, 8.0, 0.0), lambda: [_node(2)], timeout_s=0.3, poll_s=0.1,
                             request=asked.append)
    assert asked == [TrialResources(1, 8.0, 0.0)] and time.monotonic() - began < 5
    growing = iter([[_node(2)], [_node(2)], [_node(2), _node(8)], [_node(2), _node(8)]])
    wait_until_placeable(TrialResources(1, 8.0, 0.0), lambda: next(growing), timeout_s=5, poll_s=0.01)


# ------------------------------------------------------------------------------------------ integrity
def test_resume_refuses_an_experiment_folder_changed_or_not_written_here(tmp_path: Path, monkeypatch) -> None:
    experiment = tmp_path / "exp"
    (experiment / "trial_0").mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"tune's pickle")
    (experiment / "experiment_state-1.json").write_text("{}")
    (experiment / "trial_0" / "params.pkl").write_bytes(b"params")
    (experiment / "results.parquet").write_bytes(b"data, not code")
    assert {str(p.relative_to(experiment)) for p in protected_files(experiment)} == {
        "experiment_state-1.json", "tuner.pkl", "trial_0/params.pkl"}
    with pytest.raises(ValueError, match="no readable integrity record"):
        verify(experiment)
    sign(experiment)
    verify(experiment)
    (experiment / "results.parquet").write_bytes(b"changed data")
    verify(experiment)  # data files are not unpickled
    (experiment / "trial_0" / "params.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(ValueError, match="params.pkl changed since"):
        verify(experiment)
    sign(experiment)
    (experiment / "evil.pkl").write_bytes(b"new")
    with pytest.raises(ValueError, match="evil.pkl changed"):
        verify(experiment)
    (experiment / "evil.pkl").unlink()
    monkeypatch.setenv("ROBUSTUNE_KEY_FILE", str(tmp_path / "another-machine.key"))
    with pytest.raises(ValueError, match="not made with this machine's key"):
        verify(experiment)
    record = json.loads((experiment / RECORD_FILE).read_text())
    assert set(record["files"]) == {"experiment_state-1.json", "tuner.pkl", "trial_0/params.pkl"}


def test_the_record_is_renewed_as_the_last_part_of_every_save_of_tunes_state(tmp_path: Path) -> None:
    from tuner.cluster.integrity import IntegrityRecorder

    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "experiment_state-1.json").write_text('{"trials": 1}')
    recorder = IntegrityRecorder(str(experiment))
    assert recorder.get_state() is None  # Tune's save asks for it: signed, and no callback pickle written after
    verify(experiment)
    (experiment / "experiment_state-1.json").write_text('{"trials": 2}')  # the next save; the driver dies after it
    recorder.get_state()
    verify(experiment)


# ---------------------------------------------------------------------------------------- outcomes
def trial_outcome(status: str, last: dict, study_state: str | None = None) -> str:
    return outcome_of(status, TrialReport.from_metrics(last), study_state)


def test_an_interrupted_trial_is_not_called_pruned() -> None:
    last = {"final_evaluated": 0.0, "objective": 0.3}
    assert trial_outcome("TERMINATED", last) == "pruned"  # no study to ask: Tune's word
    assert trial_outcome("TERMINATED", last, "PRUNED") == "pruned"
    assert trial_outcome("TERMINATED", last, "RUNNING") == "interrupted"
    assert trial_outcome("TERMINATED", {"final_evaluated": 1.0, "objective": math.nan}, "FAIL") == "failed"


# -------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_stops_a_command_as_ctrl_c_does_with_one_line(sigint: str, capsys) -> None:
    from trainables.cli import run_main

    cleaned: list[str] = []

    def main(argv) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill`, `timeout` or a batch scheduler stop a job
            time.sleep(5)
            return 0
        finally:
            cleaned.append("done")  # the command's clean-up runs

    before_int, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    if sigint == "ignored":  # a job started in the background by a shell
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = run_main(main, [], prog="prog", interrupted="interrupted; run again with --resume")
        assert signal.getsignal(signal.SIGTERM) == before_term  # put back
    finally:
        signal.signal(signal.SIGINT, before_int)
    assert code == 130 and cleaned == ["done"]
    assert capsys.readouterr().err == "prog: interrupted; run again with --resume\n"


def test_a_search_stopped_outside_tunes_run_reads_interrupted_in_its_status(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C or SIGTERM while the export scores (Tune's own handler covers its run): --status says interrupted."""
    from trainables.evaluation import SuiteOverrides
    from tuner.console.progress import SearchProgress, read_progress, write_progress
    from tuner.search import SearchConfig, run_search
    from tuner.search import run as search_run

    def scoring_when_stopped(cfg, *args, **kwargs):
        (Path(cfg.folder.path) / "tuner.pkl").write_bytes(b"")  # Tune's state, saved by then: the folder is kept
        write_progress(cfg.folder.progress, SearchProgress(num_samples=1, max_epochs=1, phase="scoring for export"))
        raise KeyboardInterrupt

    monkeypatch.setattr(search_run, "_ranked_and_exported", scoring_when_stopped)
    cfg = SearchConfig(space="lwta", storage_path=str(tmp_path / "runs"), export_dir=str(tmp_path / "exports"),
                       screen=0, num_samples=1, epochs=1, train_limit=200, val_limit=50, test_limit=50, live=False,
                       suite=SuiteOverrides())
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg)
    assert read_progress(cfg.folder.progress)["phase"] == "interrupted"


@pytest.mark.ray
def test_the_local_ray_a_search_starts_requires_its_token_and_lets_sigterm_stop_as_ctrl_c(monkeypatch) -> None:
    from trainables.cli import sigterm_as_ctrl_c
    from tuner.cluster.connect import connect_ray, disconnect_ray

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with sigterm_as_ctrl_c():
        connect_ray("", num_cpus=1)
        _stops_as_ctrl_c_on_sigterm()  # ray.init's own handler dies at once, with a C stack dump
        try:
            _check_token_and_ports()
        finally:
            disconnect_ray()
        _stops_as_ctrl_c_on_sigterm()  # ray.shutdown left the default action (death) under Python's handler


def _stops_as_ctrl_c_on_sigterm() -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def _check_token_and_ports() -> None:
    import grpc
    import ray
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = grpc.insecure_channel(ray.get_runtime_context().gcs_address)
    with pytest.raises(grpc.RpcError) as refused:  # a request without the token is refused
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(),
                                                                          timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = Path.home() / ".ray" / "auth_token"
    assert (token.stat().st_mode & 0o777) == 0o600
    import http.client
    import urllib.request

    # no per-node metrics exporter answers; the dashboard's and the autoscaler's own endpoints remain
    # (documented in docs/clusters.md: Ray binds them to every interface whatever the node's address)
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    for port in _listening_ports(ray.get_runtime_context().gcs_address) - {DASHBOARD_METRIC_PORT, 44217}:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                assert b"ray_" not in reply.read(), f"port {port} serves Ray's metrics without the token"
        except (OSError, http.client.HTTPException):  # gRPC servers (token checked) and closed ports
            pass


def _listening_ports(gcs_address: str) -> set[int]:
    """TCP ports the processes of this driver's Ray session listen on (not those of a session still shutting down)."""
    import psutil
    import ray

    session = ray._private.worker.global_worker.node.session_name  # noqa: SLF001 - a test's look inside
    ours = set()
    for process in psutil.Process().children(recursive=True):
        try:
            line = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if session in line or gcs_address in line or process.name() == "gcs_server":
            ours.add(process.pid)
    return {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.pid in ours}


# ------------------------------------------------------------------------------------------- study
def _searcher(tmp_path: Path):
    import optuna

    from search_spaces import PRESETS
    from tuner.trials.strategy import DefineBySpace
    from tuner.trials.study import HonestOptunaSearch

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = HonestOptunaSearch(space=DefineBySpace("lwta", PRESETS["quick"]), metric="objective", mode="max",
                                  sampler=optuna.samplers.TPESampler(seed=0), study_name="s",
                                  storage=optuna.storages.RDBStorage(storage))
    return searcher, storage


def test_the_study_records_finished_pruned_failed_and_suspect_trials_as_such(tmp_path: Path) -> None:
    from tuner.trials.study import study_states

    searcher, storage = _searcher(tmp_path)
    for tid in ("done", "stopped", "nan", "crash", "masked"):
        assert searcher.suggest(tid)
    epoch = {"objective": 0.3, "final_evaluated": 0.0, "training_iteration": 1}
    for tid in ("done", "stopped", "masked"):
        searcher.on_trial_result(tid, epoch)
    searcher.on_trial_complete("done", {"objective": 0.42, "final_evaluated": 1.0, "training_iteration": 2})
    searcher.on_trial_complete("stopped", {"objective": 0.2, "final_evaluated": 0.0, "training_iteration": 2})
    searcher.on_trial_complete("nan", {"objective": math.nan, "diverged": 1.0, "training_iteration": 1})
    searcher.on_trial_complete("crash", None, error=True)
    searcher.on_trial_complete("masked", {"objective": 0.9, "final_evaluated": 1.0, "suspect": 1.0,
                                          "training_iteration": 2})
    assert study_states(storage, "s") == {"done": "COMPLETE", "stopped": "PRUNED", "nan": "FAIL", "crash": "FAIL",
                                          "masked": "FAIL"}
    import optuna

    trials = {t.user_attrs["tune_trial_id"]: t for t in optuna.load_study(study_name="s", storage=storage).trials}
    assert trials["done"].value == pytest.approx(0.42)
    assert trials["stopped"].intermediate_values == {1: 0.3, 2: 0.2}  # its epochs, not a final value
    assert trials["masked"].user_attrs["outcome"] == "suspect"


def test_trials_a_dead_driver_left_running_are_failed_when_the_search_ends(tmp_path: Path) -> None:
    from tuner.trials.study import LOST, settle_study, study_states

    searcher, storage = _searcher(tmp_path)
    searcher.suggest("kept")
    searcher.suggest("lost")  # asked, then the driver died before its state was saved
    searcher.suggest("live")
    searcher.on_trial_complete("kept", {"objective": 0.4, "final_evaluated": 1.0, "training_iteration": 1})
    assert settle_study(storage, "s", live={"live"}) == [1]
    states = study_states(storage, "s")
    assert states == {"kept": "COMPLETE", "lost": "FAIL", "live": "RUNNING"}
    import optuna

    lost = [t for t in optuna.load_study(study_name="s", storage=storage).trials if t.number == 1][0]
    assert lost.user_attrs["outcome"] == LOST


def test_a_trial_that_finished_as_the_driver_stopped_is_told_to_the_study(tmp_path: Path) -> None:
    # Ctrl-C after the trial's last report, before Tune handed its end to the searcher
    from tuner.trials.outcome import Outcome
    from tuner.trials.record import TrialRecord
    from tuner.trials.study import study_states, tell_finished

    searcher, storage = _searcher(tmp_path)
    for tid in ("ended", "stopped", "told"):
        searcher.suggest(tid)
    searcher.on_trial_complete("told", {"objective": 0.5, "final_evaluated": 1.0, "training_iteration": 2})
    scored = {"objective": 0.42, "final_evaluated": 1.0, "objective_natural": 0.8}
    records = [TrialRecord("ended", Outcome.FINISHED, {}, final=scored),
               TrialRecord("stopped", Outcome.INTERRUPTED, {}, final={"objective": 0.3}),
               TrialRecord("told", Outcome.FINISHED, {}, final=scored | {"objective": 0.5})]
    assert tell_finished(storage, "s", records, ("objective",)) == [0]
    assert study_states(storage, "s") == {"ended": "COMPLETE", "stopped": "RUNNING", "told": "COMPLETE"}
    import optuna

    values = {t.user_attrs["tune_trial_id"]: t.value for t in optuna.load_study(study_name="s", storage=storage).trials}
    assert values == {"ended": pytest.approx(0.42), "stopped": None, "told": pytest.approx(0.5)}
    assert tell_finished(storage, "s", records, ("objective",)) == []  # told once


def test_a_searcher_restored_from_before_its_last_tell_does_not_tell_the_study_again(tmp_path: Path) -> None:
    import pickle

    from tuner.trials.study import study_states

    searcher, storage = _searcher(tmp_path)
    searcher.suggest("a")
    searcher.on_trial_result("a", {"objective": 0.3, "final_evaluated": 0.0, "training_iteration": 1})
    saved = pickle.dumps(searcher.__dict__)  # Tune's last save of the searcher; then the trial finished
    searcher.on_trial_complete("a", {"objective": 0.42, "final_evaluated": 1.0, "training_iteration": 2})
    restored = type(searcher).__new__(type(searcher))  # the driver was killed; --resume restores the old save
    restored.__dict__.update(pickle.loads(saved))
    assert "a" not in restored._completed_trials
    restored.on_trial_result("a", {"objective": 0.42, "final_evaluated": 1.0, "training_iteration": 2})
    restored.on_trial_complete("a", {"objective": 0.42, "final_evaluated": 1.0, "training_iteration": 2})
    restored.on_trial_complete("a", None, error=True)  # told already: neither fails nor changes the study
    assert study_states(storage, "s") == {"a": "COMPLETE"} and "a" in restored._completed_trials


def test_joining_a_token_cluster_without_the_token_mode_is_one_line(monkeypatch) -> None:
    from tuner.cluster.connect import _check_token_mode

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ConnectionError, match="requires its auth token: run with RAY_AUTH_MODE=token") as caught:
        _check_token_mode("127.0.0.1", 6379)
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    assert _check_token_mode("127.0.0.1", 6379).source == "$RAY_AUTH_TOKEN"  # what Ray will send


@pytest.fixture
def token_gcs():
    """A stand-in GCS on loopback that answers GetClusterId only to the bearer of the token 'right'."""
    from concurrent import futures

    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    class NodeInfo(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):
        def GetClusterId(self, request, context):  # noqa: N802 - the gRPC method's name
            if ("authorization", "Bearer right") not in tuple(context.invocation_metadata()):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid authentication token")
            return gcs_service_pb2.GetClusterIdReply()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(NodeInfo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


@pytest.mark.parametrize(("token", "needle"), [
    (None, "requires its auth token, and none was found ($RAY_AUTH_TOKEN, or the file "),
    ("wrong", "refused the auth token from $RAY_AUTH_TOKEN_PATH ("),
    ("right", None),
])
def test_joining_with_a_missing_or_wrong_token_is_one_line_within_seconds(token_gcs, tmp_path: Path, monkeypatch,
                                                                          token: str | None,
                                                                          needle: str | None) -> None:
    from tuner.cluster.connect import probe_gcs

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    if token is not None:
        (tmp_path / "auth_token").write_text(token + "\n")
    began = time.time()
    if needle is None:
        probe_gcs("127.0.0.1", token_gcs, timeout=5)
        return
    with pytest.raises(ConnectionError) as caught:
        probe_gcs("127.0.0.1", token_gcs, timeout=5)
    assert needle in str(caught.value) and "\n" not in str(caught.value) and time.time() - began < 5
