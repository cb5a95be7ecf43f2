"""Shards as Ray tasks: the same shard functions the local process pool calls, run on a Ray cluster.

A task is a shard, never a scene (a no-op Ray task costs about 0.7 ms; a shard is seconds of
simulation). A worker computes a shard's bytes and returns them with their sha256; the driver checks
the digest and writes the file atomically itself. So the nodes need no shared file system, the bytes
are exactly those of a local run (the shard function is the same, and depends only on its
arguments), and a driver killed mid-run resumes like a local run: finished shards are on the
driver's disk, the rest are computed again. A task whose worker dies is retried by Ray.

Nodes must be able to import physworld (install it on every node: `pip install physworld[ray]`, or
the cluster's image); the shard functions travel by reference, not by value.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections import Counter
from collections.abc import Callable

RAY_EXTRA_HINT = 'Ray is not installed: pip install "physworld[ray]" (or pip install "ray[default]")'


class RayUnavailable(ValueError):
    """Ray cannot be used (not installed, or the cluster does not answer): one line for the user."""


def _import_ray():
    try:
        import ray
    except ModuleNotFoundError as e:
        raise RayUnavailable(f"--ray: {RAY_EXTRA_HINT}") from e
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the address in the message, where ray.init would retry for a minute."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailable(
            f"--ray {address}: expected auto, local, or HOST:PORT of a Ray head (ray start --head prints it)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayUnavailable(
            f"--ray {address}: no Ray head answers there ({e.strerror or e}); start one with "
            "`ray start --head` or check RAY_ADDRESS"
        ) from None


def connect(address: str, num_cpus: int | None = None):
    """Join the cluster at `address` ("auto": the one `ray start` made on this machine or RAY_ADDRESS;
    "local": a new single-machine cluster of `num_cpus`); returns the ray module."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_ACCEPT_LOCAL_CLUSTER", "1")
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            if address != "auto":
                _check_reachable(address)
            ray.init(address=address, log_to_driver=False)
    except RayUnavailable:
        raise
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ValueError by case
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayUnavailable(
            f"--ray {address}: cannot join a Ray cluster ({first}); start one with `ray start --head` "
            "or pass its HOST:PORT"
        ) from None
    return ray


def _shard_task(fn: Callable[..., bytes], args: tuple) -> tuple[bytes, str, str]:
    import ray

    data = fn(*args)
    return data, hashlib.sha256(data).hexdigest(), ray.get_runtime_context().get_node_id()


def run_shards(
    ray,
    fn: Callable[..., bytes],
    num_jobs: int,
    job_args: Callable[[int], tuple],
    on_result: Callable[[int, bytes], None],
    max_in_flight: int | None = None,
) -> Counter:
    """Run fn(*job_args(i)) for i in range(num_jobs) as Ray tasks, calling on_result(i, bytes) on the
    driver as each finishes (in any order). Arguments are made when a task is submitted and at most
    `max_in_flight` tasks are out at once, so memory stays bounded. Returns tasks per node id."""
    # SPREAD: shards are few and long, so spread them over the nodes rather than pack the first one.
    remote = ray.remote(num_cpus=1, max_retries=3, scheduling_strategy="SPREAD")(_shard_task)
    if max_in_flight is None:
        max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict = {}
    nodes: Counter = Counter()
    next_job = 0
    try:
        while next_job < num_jobs or pending:
            while next_job < num_jobs and len(pending) < max_in_flight:
                pending[remote.remote(fn, job_args(next_job))] = next_job
                next_job += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                data, digest, node = ray.get(ref)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"shard {index} arrived damaged from node {node}; rerun to resume")
                on_result(index, data)
                nodes[node] += 1
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return nodes


# ---------------------------------------------------------------- a cluster on this machine (tests, bench)


def _free_port() -> int:
    with socket.socket() as s:  # another cluster on this machine may hold Ray's fixed default (10001)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_cluster(num_nodes: int, temp_dir, cpus_per_node: int = 1, timeout_s: float = 120) -> tuple:
    """Start a head and num_nodes - 1 more nodes on this machine, each a separate `ray start --block`
    process group with its own CPUs (and a resource `node_<i>`); returns (address, processes).
    Stop them with stop_local_cluster: that ends exactly these processes, unlike `ray stop`."""
    import re
    import subprocess
    import sys
    import time
    from pathlib import Path

    temp_dir = Path(temp_dir)  # keep it short: Ray's socket paths must fit in 107 bytes
    ray_cli = Path(sys.executable).with_name("ray")
    # One authentication setting for every node and for this process (the driver): with Ray 2.60 a token
    # file left in ~/.ray by another cluster made the head demand a token its second node did not send.
    # These nodes listen on this machine only, for a test or a bench: no token.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    procs = []

    def start(i: int, args: list[str], ready: str) -> re.Match:
        log = temp_dir / f"node{i}.log"
        cmd = [str(ray_cli), "start", "--block", f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
        cmd += [f'--resources={{"node_{i}": 1}}', *args]
        proc = subprocess.Popen(
            cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        procs.append(proc)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            match = re.search(ready, log.read_text())
            if match:
                return match
            time.sleep(0.3)
        raise RuntimeError(f"ray start did not get ready in {timeout_s:.0f}s; see {log}")

    try:
        head = ["--head", "--port=0", f"--temp-dir={temp_dir}", "--include-dashboard=false"]
        address = start(0, [*head, f"--ray-client-server-port={_free_port()}"], r"--address='([^']+)'").group(
            1
        )
        for i in range(1, num_nodes):
            start(i, [f"--address={address}"], r"Ray runtime started")
    except BaseException:
        stop_local_cluster(procs)
        raise
    return address, procs


def stop_local_cluster(procs) -> None:
    import signal
    import subprocess

    running = [p for p in procs if p.poll() is None]
    for proc in running:  # all at once: each `ray start --block` takes seconds to stop its node
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in running:
        try:  # it may linger on SIGTERM; its node's processes share its process group, so end them all
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
