"""Robot episodes at rest: the drawer_open data build, its store, and a LeRobotDataset v3 export.

Store layout (one directory)::

    episodes/ep_000000.safetensors   one episode: frames, masks, states, actions, rewards (below)
    manifest.json                    config, per-episode summary and sha256, written last

An episode file holds (T steps, T + 1 observations)::

    frames     uint8   [T + 1, H, W, 3]   rendered RGB, camera from the env config
    masks      uint8   [T + 1, H, W]      segment classes (worlds.drawer_open.SEGMENT_CLASSES)
    states     float64 [T + 1, 39]        Meta-World state vector
    actions    float32 [T, 4]
    rewards    float32 [T, 3]             task, efficiency, energy (REWARD_COMPONENTS)
    reward     float32 [T]                the weighted sum the env returned
    success    uint8   [T]
    skills     int64   [T + 1]            reach / grasp / pull signal

Episodes are safetensors (nothing unpickled, bytes independent of time), each written atomically, and
episode i is fully decided by (seed, i): a killed build resumes at the first missing file, and the same
config rebuilds the same bytes. Who acts: the scripted expert (Meta-World's policy), noisy experts
(Gaussian noise on its actions, std from the config) and uniform random actions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from physworld.fileio import atomic_write, atomic_write_json, sha256_file
from physworld.worlds.drawer_open import CONTROL_DT, EnvConfig, expert_policy, make_env

REWARD_COMPONENTS = ("task", "efficiency", "energy")
MANIFEST = "manifest.json"
TASK_TEXT = "open the drawer"


@dataclass
class DataConfig:
    expert_episodes: int = 20
    noisy_episodes: int = 20
    random_episodes: int = 10
    noise_std: float = 0.3
    seed: int = 0
    env: EnvConfig = field(default_factory=lambda: EnvConfig(obs_mode="state", image_size=64, max_steps=150))


def episode_plan(cfg: DataConfig) -> list[str]:
    """Who acts in episode i, in order: experts, then noisy experts, then random."""
    return (
        ["expert"] * cfg.expert_episodes + ["noisy"] * cfg.noisy_episodes + ["random"] * cfg.random_episodes
    )


def _run_episode(env, kind: str, seed: int, noise_std: float) -> dict[str, np.ndarray]:
    expert = expert_policy()
    rng = np.random.default_rng([seed, 1])  # the action noise stream, apart from the env's reset stream
    state, info = env.reset(seed=seed)
    frames, masks, states, skills = [env.render_rgb()], [env.segmentation()], [state], [info["skill"]]
    actions, rewards, total, success = [], [], [], []
    done = False
    while not done:
        if kind == "random":
            action = rng.uniform(-1, 1, size=4).astype(np.float32)
        else:
            action = expert(state)
            if kind == "noisy":
                action = np.clip(action + rng.normal(0, noise_std, size=4), -1, 1).astype(np.float32)
        state, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        frames.append(env.render_rgb())
        masks.append(env.segmentation())
        states.append(state)
        skills.append(info["skill"])
        actions.append(action)
        rewards.append([info["reward_components"][k] for k in REWARD_COMPONENTS])
        total.append(reward)
        success.append(info["success"])
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "masks": np.stack(masks).astype(np.uint8),
        "states": np.stack(states).astype(np.float64),
        "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "reward": np.asarray(total, dtype=np.float32),
        "success": np.asarray(success, dtype=np.uint8),
        "skills": np.asarray(skills, dtype=np.int64),
    }


def episode_path(out_dir, index: int) -> Path:
    return Path(out_dir) / "episodes" / f"ep_{index:06d}.safetensors"


def save_episode(path, episode: dict[str, np.ndarray], meta: dict) -> None:
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in episode.items()}
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata={"physworld.episode": json.dumps(meta)}))


def load_episode(path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def build_episodes(cfg: DataConfig, out_dir, progress: bool = True) -> dict:
    """Write every planned episode that is not there yet, then the manifest. Returns the manifest."""
    from tqdm.auto import tqdm

    from physworld.fileio import remove_stale_temporaries
    from physworld.training.config import config_to_dict

    out_dir = Path(out_dir)
    remove_stale_temporaries(out_dir / "episodes")
    plan = episode_plan(cfg)
    if not plan:
        raise ValueError(
            "data: the plan has no episodes; set expert_episodes, noisy_episodes or random_episodes"
        )
    env = make_env(cfg.env)
    summaries = []
    try:
        for index, kind in enumerate(tqdm(plan, desc="episodes", disable=not progress)):
            path = episode_path(out_dir, index)
            seed = cfg.seed * 1_000_003 + index
            if not path.exists():
                episode = _run_episode(env, kind, seed, cfg.noise_std)
                save_episode(path, episode, {"index": index, "kind": kind, "seed": seed})
            else:
                episode = load_episode(path)
            summaries.append(
                {
                    "index": index,
                    "kind": kind,
                    "seed": seed,
                    "steps": int(len(episode["actions"])),
                    "success": bool(episode["success"].any()),
                    "return": {
                        k: float(episode["rewards"][:, j].sum()) for j, k in enumerate(REWARD_COMPONENTS)
                    },
                    "file": str(path.relative_to(out_dir)),
                    "sha256": sha256_file(path),
                }
            )
    finally:
        env.close()
    manifest = {
        "format": "physworld-robot-episodes",
        "version": 1,
        "task": "drawer_open",
        "fps": 1.0 / CONTROL_DT,
        "reward_components": list(REWARD_COMPONENTS),
        "config": config_to_dict(cfg),
        "episodes": summaries,
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def read_manifest(data_dir) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no episode manifest; run the data step first (physworld pipeline run CONFIG --only data)"
        )
    return json.loads(path.read_text())


def load_all(
    data_dir, keys=("frames", "masks", "states", "actions", "rewards", "skills", "success")
) -> list[dict]:
    manifest = read_manifest(data_dir)
    out = []
    for ep in manifest["episodes"]:
        arrays = load_episode(Path(data_dir) / ep["file"])
        out.append({k: arrays[k] for k in keys} | {"index": ep["index"], "kind": ep["kind"]})
    return out


def split_episodes(episodes: list[dict], val_fraction: float = 0.2) -> tuple[list[dict], list[dict]]:
    """Whole episodes to validation (every k-th), so no frame of a validation episode is trained on."""
    k = max(2, int(round(1 / val_fraction))) if val_fraction > 0 else 0
    val = [e for i, e in enumerate(episodes) if k and i % k == k - 1]
    train = [e for i, e in enumerate(episodes) if not (k and i % k == k - 1)]
    return train, val


# ---------------------------------------------------------------- LeRobotDataset v3 export


def export_lerobot(data_dir, out_dir, video_key: str = "observation.images.top") -> Path:
    """Write the episodes as a LeRobotDataset v3.0 layout::

        meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-000.parquet
        data/chunk-000/file-000.parquet              one row per frame (all episodes)
        videos/<video_key>/chunk-000/file-000.mp4    all episodes' frames, concatenated

    Each row is a step: observation.state (the state before the action), action, the reward components
    as next.reward, next.done, next.success, and LeRobot's bookkeeping columns (timestamp, frame_index,
    episode_index, index, task_index). Episode t's video spans [from_timestamp, to_timestamp).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from physworld.data.render import write_mp4

    manifest = read_manifest(data_dir)
    out_dir = Path(out_dir)
    fps = int(round(manifest["fps"]))
    columns = {
        k: []
        for k in (
            "observation.state",
            "action",
            "next.reward",
            "next.reward_components",
            "next.done",
            "next.success",
            "timestamp",
            "frame_index",
            "episode_index",
            "index",
            "task_index",
        )
    }
    episode_rows, frames_all = [], []
    index = 0
    video_t = 0.0
    for ep in manifest["episodes"]:
        arrays = load_episode(Path(data_dir) / ep["file"])
        steps = len(arrays["actions"])
        frames_all.append(arrays["frames"][:steps])
        for t in range(steps):
            columns["observation.state"].append(arrays["states"][t].astype(np.float32))
            columns["action"].append(arrays["actions"][t])
            columns["next.reward"].append(float(arrays["reward"][t]))
            columns["next.reward_components"].append(arrays["rewards"][t])
            columns["next.done"].append(t == steps - 1)
            columns["next.success"].append(bool(arrays["success"][t]))
            columns["timestamp"].append(np.float32(t / fps))
            columns["frame_index"].append(t)
            columns["episode_index"].append(ep["index"])
            columns["index"].append(index + t)
            columns["task_index"].append(0)
        episode_rows.append(
            {
                "episode_index": ep["index"],
                "tasks": [TASK_TEXT],
                "length": steps,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": index,
                "dataset_to_index": index + steps,
                f"videos/{video_key}/chunk_index": 0,
                f"videos/{video_key}/file_index": 0,
                f"videos/{video_key}/from_timestamp": video_t,
                f"videos/{video_key}/to_timestamp": video_t + steps / fps,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
        )
        index += steps
        video_t += steps / fps
    frames = np.concatenate(frames_all)
    height, width = frames.shape[1:3]

    def vec(name, values, dtype):
        width_ = len(values[0])
        return pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate(values).astype(dtype)), width_)

    table = pa.table(
        {
            "observation.state": vec("observation.state", columns["observation.state"], np.float32),
            "action": vec("action", columns["action"], np.float32),
            "next.reward": pa.array(columns["next.reward"], pa.float32()),
            "next.reward_components": vec("r", columns["next.reward_components"], np.float32),
            "next.done": pa.array(columns["next.done"], pa.bool_()),
            "next.success": pa.array(columns["next.success"], pa.bool_()),
            "timestamp": pa.array(columns["timestamp"], pa.float32()),
            "frame_index": pa.array(columns["frame_index"], pa.int64()),
            "episode_index": pa.array(columns["episode_index"], pa.int64()),
            "index": pa.array(columns["index"], pa.int64()),
            "task_index": pa.array(columns["task_index"], pa.int64()),
        }
    )
    atomic_write(out_dir / "data/chunk-000/file-000.parquet", lambda tmp: pq.write_table(table, tmp))
    atomic_write(
        out_dir / "meta/episodes/chunk-000/file-000.parquet",
        lambda tmp: pq.write_table(pa.Table.from_pylist(episode_rows), tmp),
    )
    tasks = pa.table({"task_index": pa.array([0], pa.int64()), "task": [TASK_TEXT]})
    atomic_write(out_dir / "meta/tasks.parquet", lambda tmp: pq.write_table(tasks, tmp))
    write_mp4(out_dir / f"videos/{video_key}/chunk-000/file-000.mp4", frames, fps=fps)

    def stats(values):
        a = np.stack(values).astype(np.float64)
        return {
            "min": a.min(0).tolist(),
            "max": a.max(0).tolist(),
            "mean": a.mean(0).tolist(),
            "std": a.std(0).tolist(),
            "count": [len(a)],
        }

    video_stats = frames.reshape(-1, 3).astype(np.float64) / 255.0
    features = {
        "observation.state": {"dtype": "float32", "shape": [39], "names": None},
        "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "grip"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.reward_components": {"dtype": "float32", "shape": [3], "names": list(REWARD_COMPONENTS)},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
        video_key: {
            "dtype": "video",
            "shape": [int(height), int(width), 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": int(height),
                "video.width": int(width),
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v3.0",
        "robot_type": "sawyer",
        "total_episodes": len(episode_rows),
        "total_frames": index,
        "total_tasks": 1,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    atomic_write_json(
        out_dir / "meta/stats.json",
        {
            "observation.state": stats(columns["observation.state"]),
            "action": stats(columns["action"]),
            video_key: {
                "min": video_stats.min(0).reshape(3, 1, 1).tolist(),
                "max": video_stats.max(0).reshape(3, 1, 1).tolist(),
                "mean": video_stats.mean(0).reshape(3, 1, 1).tolist(),
                "std": video_stats.std(0).reshape(3, 1, 1).tolist(),
                "count": [len(frames)],
            },
        },
    )
    atomic_write_json(out_dir / "meta/info.json", info)  # last: its presence marks a whole export
    return out_dir
