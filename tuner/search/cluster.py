"""Start a local Ray or join a cluster, failing fast with one clear line when it is unreachable."""

from __future__ import annotations

import socket

__all__ = ["connect_ray", "parse_address"]


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


def connect_ray(address: str, *, num_cpus: int | None = None, num_gpus: int | None = None,
                object_store_memory: int | None = None, dashboard: bool = False, timeout: float = 5.0) -> None:
    """``ray.init`` for a local instance (address '') or an existing cluster ('auto', host:port).

    ``dashboard`` starts a local instance with its dashboard, whose State API Ray Train needs to
    free the workers of a trial that Tune stopped early (its placement-group cleaner asks it
    whether the trial's Train controller is still alive); on 127.0.0.1 only.
    """
    import ray

    target = parse_address(address)
    if target is not None:
        _check_reachable(*target, timeout)
    if ray.is_initialized():
        return
    if address == "":
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=object_store_memory,
                 include_dashboard=dashboard, dashboard_host="127.0.0.1", configure_logging=True,
                 logging_level="ERROR", log_to_driver=False)
        return
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise ConnectionError(f"cannot join the Ray cluster at {address!r}: {str(exc).splitlines()[0]}") from None
