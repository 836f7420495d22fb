"""--tracking mlflow: each trial (each bundle member) an MLflow run, the export an artifact."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")  # ./setup.sh --dev installs it

from tuner.report.tracking import TRIAL_TAG  # noqa: E402

TINY = ["--epochs", "2", "--train-limit", "600", "--val-limit", "100", "--test-limit", "100", "--no-live",
        "--max-concurrent", "2", "--attacks", "fgsm"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite store, artifacts proxied) on a free loopback port."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--artifacts-destination", str(folder / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("w"))
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-2000:]
        time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.ray
def test_a_fused_search_logs_every_member_and_its_export_to_a_tracking_server(search, tracking_server: str) -> None:
    proc = search.run("--space", "lwta", "--num-samples", "3", "--fuse", "2", *TINY, "--tracking", "mlflow",
                      "--tracking-uri", tracking_server)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MLflow: experiment lwta-quick, run " in " ".join(proc.stderr.split())

    import pyarrow.parquet as pq

    rows = {r["trial_id"]: r for r in pq.read_table(search.folder / "runs" / "lwta-quick" / "results.parquet")
            .to_pylist()}
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("lwta-quick")
    runs = {r.data.tags[TRIAL_TAG]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(rows)  # one run per trial, a bundle's members each their own
    assert any("." in trial for trial in runs)
    statuses = {"finished": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
    for trial, row in rows.items():
        run = runs[trial].info.run_id
        data = runs[trial].data
        assert data.tags["robustune.outcome"] == row["outcome"] and runs[trial].info.status == statuses[row["outcome"]]
        for name in ("lr", "competitors", "eps_scale"):  # the trial's own parameters, not its bundle's
            assert float(data.params[name]) == pytest.approx(row[f"param/{name}"])
        history = client.get_metric_history(run, "robust_acc")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, row["epochs"] + 1))
        if row["outcome"] == "finished":
            assert data.metrics["objective"] == pytest.approx(row["objective"])
    exported = [r for r in runs.values() if r.data.tags.get("robustune.exported") == "true"]
    assert len(exported) == 1
    files = {a.path for a in client.list_artifacts(exported[0].info.run_id, "export")}
    assert {"export/model.safetensors", "export/config.json", "export/metrics.json", "export/README.md"} <= files
