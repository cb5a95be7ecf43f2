"""Generation on Ray: a real two-node cluster started here (a head and a second node, one CPU each,
separate raylet processes with their own resources), tasks on both nodes, the same bytes as a local
run, resume after a partial run and after the driver is killed (SIGKILL), and one-line errors where
Ray cannot be used."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.data.ray_shards import RayUnavailable, connect, start_local_cluster, stop_local_cluster

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
CONFIG = GenerateConfig(
    ("projectile", "pendulum"), num_scenes_per_type=4, frames_per_scene=20, scenes_per_shard=1
)


@pytest.fixture(scope="module")
def two_node_cluster():
    temp = Path(tempfile.mkdtemp(prefix="/tmp/pwray"))  # short: Ray's socket paths must fit 107 bytes
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), old]))  # nodes import this checkout
    try:
        address, procs = start_local_cluster(2, temp, timeout_s=90)
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)
    try:
        # `ray start` says "started" before the node is registered and has a worker: on a loaded machine
        # the head could then run every shard alone. One task pinned to each node first.
        connect(address)
        ready = ray.remote(num_cpus=1)(lambda: ray.get_runtime_context().get_node_id())
        nodes = ray.get([ready.options(resources={f"node_{i}": 1}).remote() for i in range(2)], timeout=120)
        assert len(set(nodes)) == 2, nodes
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop_local_cluster(procs)
        shutil.rmtree(temp, ignore_errors=True)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_two_node_cluster_runs_shards_on_both_nodes_with_local_bytes(two_node_cluster, tmp_path):
    local = tmp_path / "local"
    generate(CONFIG, local, num_workers=1, progress=False)

    # A partial earlier run: two shards exist, a temporary is left behind; Ray finishes the rest.
    on_ray = tmp_path / "ray"
    generate(CONFIG, on_ray, num_workers=1, progress=False)
    for shard in sorted((on_ray / "shards").glob("*.parquet"))[2:]:
        shard.unlink()
    (on_ray / "manifest.json").unlink()
    (on_ray / "shards" / ".shard-00003.tmp.parquet").write_bytes(b"half")

    nodes: dict = {}
    deadline = time.monotonic() + 90
    generate(CONFIG, on_ray, progress=False, ray_address=two_node_cluster, ray_nodes=nodes)
    assert time.monotonic() < deadline
    assert sum(nodes.values()) == CONFIG.num_shards - 2  # only the missing shards were computed
    assert len(nodes) == 2, f"tasks ran on {len(nodes)} node(s): {nodes}"
    assert len(ray.nodes()) == 2
    assert _files(on_ray) == _files(local)


def test_a_killed_driver_resumes_to_the_same_bytes(two_node_cluster, tmp_path):
    import signal
    import subprocess

    config = GenerateConfig(("pendulum",), num_scenes_per_type=24, frames_per_scene=100, scenes_per_shard=3)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "physworld.cli", "generate", "--output-dir", str(out), "--quiet"]
    cmd += ["--scenario-types", "pendulum", "--num-scenes-per-type", "24", "--frames-per-scene", "100"]
    cmd += ["--scenes-per-shard", "3", "--ray", two_node_cluster]
    driver = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("shards/shard-*.parquet")) and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before writing a shard"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and nothing else: its own process group
        driver.wait(timeout=10)
    written = len(list(out.glob("shards/shard-*.parquet")))
    assert 1 <= written < config.num_shards and not (out / "manifest.json").exists()
    nodes: dict = {}
    generate(config, out, progress=False, ray_address=two_node_cluster, ray_nodes=nodes)
    assert sum(nodes.values()) == config.num_shards - written
    generate(config, tmp_path / "local", progress=False)
    assert _files(out) == _files(tmp_path / "local")


def test_render_clips_on_the_cluster_match_local(two_node_cluster, tmp_path):
    from physworld.data.clips import ClipConfig, render_clips

    data = tmp_path / "data"
    generate(
        GenerateConfig(("projectile",), 2, frames_per_scene=20, scenes_per_shard=1), data, progress=False
    )
    clip = ClipConfig(resolution=32, frames=4, fps=15.0, captions=False)
    render_clips(data, clip, tmp_path / "local", progress=False)
    render_clips(data, clip, tmp_path / "ray", progress=False, ray_address=two_node_cluster)
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


def test_an_address_that_does_not_answer_is_one_line(tmp_path, capsys):
    ray.shutdown()  # a driver connected by an earlier test would be reused by connect()
    started = time.monotonic()
    with pytest.raises(RayUnavailable, match="no Ray head answers"):
        connect("127.0.0.1:9")
    assert time.monotonic() - started < 15
    code = main(
        [
            "generate", "--output-dir", str(tmp_path / "d"), "--scenario-types", "projectile",
            "--num-scenes-per-type", "1", "--frames-per-scene", "5", "--quiet", "--ray", "nonsense",
        ]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ray nonsense" in err


def test_without_ray_installed_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ModuleNotFoundError
    with pytest.raises(RayUnavailable, match=r"physworld\[ray\]"):
        connect("auto")
