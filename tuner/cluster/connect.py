"""Start a local Ray or join a cluster, failing fast with one clear line when it is unreachable.

Joining is bounded in time: before ``ray.init`` (which retries a non-Ray address forever) the
address must answer a Ray GCS request within the timeout. A local Ray keeps its dashboard on
127.0.0.1 and, as Ray does by default for clusters it starts, token authentication on.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainables.cli import keeping_sigterm

__all__ = ["GCS_TIMEOUT_S", "AuthToken", "auth_token", "check_address", "connect_ray", "disconnect_ray",
           "parse_address", "probe_gcs"]

GCS_TIMEOUT_S = 10.0


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for '' and 'auto'."""
    if address in ("", "auto"):
        return None
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address must be empty, 'auto' or host:port, got {address!r}")
    return host, int(port)


def _check_reachable(host: str, port: int, timeout: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise ConnectionError(f"cannot reach a Ray cluster at {host}:{port} ({exc.strerror or exc})") from None


def probe_gcs(host: str, port: int, timeout: float = GCS_TIMEOUT_S) -> None:
    """ConnectionError unless a Ray GCS answers at ``host:port`` within ``timeout`` seconds.

    A GCS that refuses the request for want of the cluster's auth token is still a Ray cluster:
    joining then needs the token (``ray get-auth-token`` on the head node) and ``RAY_AUTH_MODE=token``
    in this process's environment (Ray reads it when imported), else ConnectionError says so.
    """
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)

        def ask(metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode | None:
            try:
                stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[attr-defined]
            return None

        code = ask()
        if code == grpc.StatusCode.UNAUTHENTICATED:  # a Ray cluster that wants its token
            token = _check_token_mode(host, port)
            if ask((("authorization", f"Bearer {token.value}"),)) == grpc.StatusCode.UNAUTHENTICATED:
                raise ConnectionError(f"the Ray cluster at {host}:{port} refused the auth token from {token.source}: "
                                      "it is another cluster's (`ray get-auth-token` on its head node gives its own)")
            return
        if code is not None:
            raise ConnectionError(f"no Ray cluster answers at {host}:{port} within {timeout:g} s ({code.name}): is it "
                                  "the head node's GCS port (6379 by default)?")
    finally:
        channel.close()


@dataclass(frozen=True)
class AuthToken:
    """The token Ray sends to a cluster, and where it was read."""

    value: str
    source: str


def auth_token() -> AuthToken | None:
    """The token Ray will send, in Ray's order: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return AuthToken(os.environ["RAY_AUTH_TOKEN"].strip(), "$RAY_AUTH_TOKEN")
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named) if named else Path.home() / ".ray" / "auth_token"
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return AuthToken(value, f"$RAY_AUTH_TOKEN_PATH ({path})" if named else str(path)) if value else None


def _check_token_mode(host: str, port: int) -> AuthToken:
    """The token this process will send (ConnectionError, one line, when it sends none)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        raise ConnectionError(f"the Ray cluster at {host}:{port} requires its auth token: run with RAY_AUTH_MODE=token "
                              "and the cluster's token in ~/.ray/auth_token (`ray get-auth-token` on its head node)")
    token = auth_token()
    if token is None:
        where = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
        raise ConnectionError(f"the Ray cluster at {host}:{port} requires its auth token, and none was found "
                              f"($RAY_AUTH_TOKEN, or the file {where}): `ray get-auth-token` on its head node gives it")
    return token


def _token_auth_on() -> None:
    """Warn when the user turned off the token authentication Ray gives the local clusters it starts.

    Left unset, ``RAY_AUTH_MODE`` means token authentication for a new local Ray (Ray >= 2.5x turns
    it on itself, and must: setting the variable here would not reach its already-loaded config).
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        warnings.warn(f"RAY_AUTH_MODE={mode}: the local Ray starts without token authentication, and its ports "
                      "listen on every interface", stacklevel=3)


def _join_loopback_as_loopback(address: str) -> None:
    """Join a cluster on 127.0.0.1 (``cluster/local.sh``) as 127.0.0.1, not as this host's primary address.

    Ray on Linux rewrites a loopback address to the primary interface's, where a cluster bound to
    loopback does not answer (``ray.init`` then retries forever). Its switch for that,
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, is read when Ray is imported, before this runs: the
    constant it sets is set here (for this process, and the variable for the processes it starts).
    """
    target = parse_address(address)
    if target is None or target[0] not in ("127.0.0.1", "localhost", "::1"):
        return
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def check_address(address: str, timeout: float = 5.0,
                  probe: Callable[[str, int, float], None] = probe_gcs) -> None:
    """ConnectionError (one line, in seconds) unless ``address`` is '' or 'auto' or a Ray GCS answers there."""
    target = parse_address(address)
    if target is not None:
        _check_reachable(*target, timeout)
        if not address.startswith("ray://"):  # Ray Client's port is no GCS
            probe(*target, max(timeout, GCS_TIMEOUT_S))


def connect_ray(address: str, *, num_cpus: int | None = None, num_gpus: int | None = None,
                object_store_memory: int | None = None, dashboard: bool = False, timeout: float = 5.0,
                probe: Callable[[str, int, float], None] = probe_gcs, log_to_driver: bool = False) -> None:
    """``ray.init`` for a local instance (address '') or an existing cluster ('auto', host:port).

    ``dashboard`` starts a local instance with its dashboard, whose State API Ray Train needs to
    free the workers of a trial that Tune stopped early (its placement-group cleaner asks it
    whether the trial's Train controller is still alive); on 127.0.0.1 only. ``log_to_driver``
    brings the workers' own output to this terminal. SIGTERM's handler is kept (``ray.init`` sets its own, which
    dies at once with a C stack dump): a command stops as it does on Ctrl-C (:mod:`trainables.cli`).
    """
    import ray

    check_address(address, timeout, probe)
    if ray.is_initialized():
        return
    if address == "":
        _token_auth_on()
        try:  # bounded by Ray's own start-up timeouts
            # "local": a new instance even where a `ray start` cluster runs on this machine (plain
            # ray.init() would join it; --address says when to join)
            # no metrics collection: its Prometheus exporter listens on every interface and answers
            # without the token; nothing here reads it
            with keeping_sigterm():
                ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=object_store_memory,
                         include_dashboard=dashboard, dashboard_host="127.0.0.1", configure_logging=True,
                         logging_level="ERROR", log_to_driver=log_to_driver,
                         _system_config={"enable_metrics_collection": False})
        except (RuntimeError, ConnectionError) as exc:  # e.g. "Failed to start GCS": the machine, not a bug here
            raise ConnectionError(f"cannot start a local Ray: {str(exc).splitlines()[0]}") from None
        token = Path.home() / ".ray" / "auth_token"
        if token.is_file() and token.stat().st_mode & 0o077:
            token.chmod(0o600)  # Ray writes it readable by everyone; it is the key to the cluster
        return
    _join_loopback_as_loopback(address)
    try:
        with keeping_sigterm():
            ray.init(address=address, logging_level="ERROR", log_to_driver=log_to_driver)
    except (ConnectionError, RuntimeError) as exc:
        raise ConnectionError(f"cannot join the Ray cluster at {address!r}: {str(exc).splitlines()[0]}") from None


def disconnect_ray() -> None:
    """``ray.shutdown()``, SIGTERM's handler kept: Ray's shutdown leaves the signal's default action (an
    immediate death) in place of the handler Python still reports."""
    import ray

    with keeping_sigterm():
        ray.shutdown()
