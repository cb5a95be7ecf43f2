"""Text-to-motion data: a small fixture from pybullet's DeepMimic clips, and a loader for KIT-ML /
HumanML3D's layout.

THE FIXTURE IS NOT A SUBSTITUTE FOR KIT-ML OR HUMANML3D. pybullet's data package ships 15 DeepMimic
motion-capture clips of one humanoid (walk, run, jump, kick, punch, spin, spinkick, cartwheel,
backflip, crawl, two dances, roll, two get-ups; about 34 s in all) and no text. `build_fixture` makes
windows from them, with left/right mirroring, speed changes (resampling) and several hand-written
phrasings per clip. It is enough to train and test the whole text -> motion -> physics -> playback path
on a CPU in minutes, and to compare models against a retrieval baseline on it; it is 15 actions, so
numbers on it say nothing about open-vocabulary text-to-motion.

Held-out split: per clip, windows whose start lies in the last `heldout_fraction` of the range of
window starts on the clip's own timeline (for looping clips: of its cycle) are held out, the others are for training, and every clip
has phrasings used only for the held-out windows. The clips are short (kick 1.5 s, a walk cycle 1.3 s)
against a 1.6 s window, so training windows do contain poses that held-out windows contain: the
held-out set measures new start phases and new phrasings, not unseen motion.

Motion features (`FEATURES`, 61 per frame, the model's target): root position (3, metres, Y up; the
window starts at x = z = 0 facing +x), root rotation (6D: the first two columns of the matrix), the 8
spherical joints' local rotations (6D each), and the 4 knee/elbow angles (radians).
`feature_points` turns features into world positions of the 15 links and 4 foot points through the
humanoid's forward kinematics (data/humanoid.py), differentiably.

Real data: `load_humanml3d(root, split)` reads HumanML3D's (and KIT-ML's) processed layout:

    root/new_joints/<id>.npy      [frames, joints, 3] joint positions (HumanML3D 22 joints, KIT-ML 21)
    root/texts/<id>.txt           one caption per line: "caption#tokens#start#end" (start/end in
                                  seconds, 0.0 for the whole clip)
    root/train.txt, val.txt, test.txt   ids, one per line

Its features are joint positions (root 3 + the other joints relative to the root), so the same model,
physics losses and metrics run on it (foot joints per skeleton below); PyBullet playback needs the
DeepMimic humanoid and is skipped for it. Train on it with

    physworld train motion --config configs/motion/small.yaml data.source=humanml3d data.root=/path/to/HumanML3D
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import torch

from physworld.data import humanoid as H

FIXTURE_NOTE = (
    "fixture built from pybullet's 15 DeepMimic clips (about 34 s of one humanoid) with hand-written "
    "phrasings; not a substitute for KIT-ML or HumanML3D"
)
FEATURES = 3 + 6 + 6 * len(H.SPHERICAL) + len(H.REVOLUTE)  # 61

# Per clip: phrasings (the last HELDOUT_PHRASINGS are used only for held-out windows); "{side}" is the
# side the clip's action uses ("right"/"left"), swapped in mirrored copies.
CLIPS: dict[str, dict] = {
    "walk": {"side": None, "text": ["a person walks forward", "someone walks ahead at a steady pace", "a man is walking straight", "a human takes steps forward", "a person walks", "somebody strolls forward"]},
    "run": {"side": None, "text": ["a person runs forward", "someone is running straight ahead", "a man jogs forward quickly", "a human runs", "a person is sprinting", "somebody runs ahead"]},
    "jump": {"side": None, "text": ["a person jumps forward", "someone leaps ahead with both feet", "a man jumps", "a human hops forward", "a person does a long jump", "somebody jumps ahead"]},
    "kick": {"side": "right", "text": ["a person kicks with the {side} leg", "someone kicks forward with the {side} foot", "a man does a high kick with his {side} leg", "a human kicks", "a person kicks the air with the {side} leg", "somebody kicks with the {side} foot"]},
    "punch": {"side": "right", "text": ["a person punches with the {side} hand", "someone throws a punch with the {side} arm", "a man punches forward with his {side} fist", "a human punches", "a person jabs with the {side} hand", "somebody punches with the {side} arm"]},
    "spin": {"side": None, "text": ["a person spins around", "someone turns around in place", "a man spins on the spot", "a human turns a full circle", "a person pirouettes", "somebody spins in place"]},
    "spinkick": {"side": "right", "text": ["a person does a spinning kick with the {side} leg", "someone spins and kicks with the {side} foot", "a man does a roundhouse kick with his {side} leg", "a human spins and kicks", "a person does a turning kick with the {side} leg", "somebody kicks while spinning with the {side} leg"]},
    "cartwheel": {"side": None, "text": ["a person does a cartwheel", "someone cartwheels sideways", "a man turns a cartwheel on his hands", "a human does a cartwheel", "a gymnast does a cartwheel", "somebody wheels over on the hands"]},
    "backflip": {"side": None, "text": ["a person does a backflip", "someone flips backwards", "a man does a back somersault", "a human flips over backwards", "an acrobat does a backflip", "somebody somersaults backwards"]},
    "crawl": {"side": None, "text": ["a person crawls on hands and knees", "someone crawls forward on all fours", "a man is crawling", "a human crawls", "a person creeps forward on the floor", "somebody crawls ahead"]},
    "dance_a": {"side": None, "text": ["a person dances", "someone dances in place swinging the arms", "a man is dancing", "a human dances to music", "a dancer moves to the beat", "somebody dances happily"]},
    "dance_b": {"side": None, "text": ["a person dances energetically", "someone does a lively dance", "a man dances with big steps", "a human dances wildly", "a dancer bounces energetically", "somebody dances with lots of energy"]},
    "roll": {"side": None, "text": ["a person rolls forward on the ground", "someone does a forward roll", "a man rolls over on the floor", "a human rolls forward", "a person tumbles forward", "somebody does a somersault on the ground"]},
    "getup_facedown": {"side": None, "text": ["a person gets up from lying face down", "someone stands up from lying on the stomach", "a man pushes himself up off the floor", "a human gets up from the ground", "a person rises from lying prone", "somebody gets up from lying on the belly"]},
    "getup_faceup": {"side": None, "text": ["a person gets up from lying on the back", "someone stands up from lying face up", "a man sits up and stands", "a human gets up from lying down", "a person rises from lying supine", "somebody gets up from lying on the back"]},
}  # fmt: skip
HELDOUT_PHRASINGS = 2
SPEED_WORDS = {0.8: " slowly", 1.0: "", 1.25: " quickly"}

# Foot joints of the real datasets' skeletons (HumanML3D's and KIT-ML's own choice, fid_l + fid_r)
# and their kinematic chains (for drawing)
SKELETONS = {
    22: {
        "name": "humanml3d",
        "feet": (7, 10, 8, 11),
        "fps": 20.0,
        "chains": [
            [0, 2, 5, 8, 11],
            [0, 1, 4, 7, 10],
            [0, 3, 6, 9, 12, 15],
            [9, 14, 17, 19, 21],
            [9, 13, 16, 18, 20],
        ],
    },
    21: {
        "name": "kit-ml",
        "feet": (19, 20, 14, 15),
        "fps": 12.5,
        "chains": [
            [0, 11, 12, 13, 14, 15],
            [0, 16, 17, 18, 19, 20],
            [0, 1, 2, 3, 4],
            [3, 5, 6, 7],
            [3, 8, 9, 10],
        ],
    },
}


# ---------------------------------------------------------------- DeepMimic clips


def load_clip(name: str) -> dict:
    """A DeepMimic clip: poses [frames, 43], times [frames] (s), loop (True for "wrap" clips)."""
    path = Path(H.data_path()) / "data" / "motions" / f"humanoid3d_{name}.txt"
    data = json.loads(path.read_text())
    frames = np.asarray(data["Frames"], np.float64)
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    return {"name": name, "poses": frames[:, 1:], "times": times, "loop": data.get("Loop") == "wrap"}


def sample_poses(poses: np.ndarray, times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Poses at times `at` (within times[0]..times[-1]): positions and angles linearly, quaternions by slerp."""
    at = np.clip(at, times[0], times[-1])
    i = np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 2)
    alpha = (at - times[i]) / np.maximum(times[i + 1] - times[i], 1e-9)
    a, b = poses[i], poses[i + 1]
    out = a + alpha[:, None] * (b - a)
    for _, dof, sl in [(None, 4, slice(3, 7))] + H.POSE_SLICES:
        if dof == 4:
            out[:, sl] = H.slerp_np(a[:, sl], b[:, sl], alpha)
    return out


def tile_loop(clip: dict, min_seconds: float) -> dict:
    """A looping clip repeated until it lasts min_seconds: each cycle continues from where the last one
    ended (its root shifted on the ground by the cycle's displacement and turned by its heading change,
    as DeepMimic's cycle offset does). The clip's last frame equals its first, so it is dropped per cycle."""
    poses, times = clip["poses"], clip["times"]
    period = times[-1]
    if not clip["loop"] or period <= 0 or times[-1] >= min_seconds:
        return clip
    cycle, cycle_t = poses[:-1], times[:-1]
    shift = poses[-1, [0, 2]] - poses[0, [0, 2]]
    turn = H.heading(poses[-1, 3:7]) - H.heading(poses[0, 3:7])
    out, out_t, k = [], [], 0
    offset, yaw = np.zeros(2), 0.0
    origin = poses[0, [0, 2]]
    while k * period < min_seconds + period:
        c, s = np.cos(yaw), np.sin(yaw)
        part = cycle.copy()
        rel = part[:, [0, 2]] - origin
        # rotate about +y by yaw: (x, z) -> (x c + z s, -x s + z c)
        part[:, 0] = origin[0] + offset[0] + rel[:, 0] * c + rel[:, 1] * s
        part[:, 2] = origin[1] + offset[1] - rel[:, 0] * s + rel[:, 1] * c
        part[:, 3:7] = H.quat_mul_np(np.broadcast_to(H.yaw_quat(yaw), part[:, 3:7].shape), part[:, 3:7])
        out.append(part)
        out_t.append(cycle_t + k * period)
        offset = offset + np.array([shift[0] * c + shift[1] * s, -shift[0] * s + shift[1] * c])
        yaw += turn
        k += 1
    return dict(clip, poses=np.concatenate(out), times=np.concatenate(out_t))


def mirror_poses(poses: np.ndarray) -> np.ndarray:
    """Left and right swapped and the lateral axis (z) flipped: a reflection through the x-y plane.
    Positions: z -> -z. Rotations (w, x, y, z) -> (w, -x, -y, z) (M R M with M = diag(1, 1, -1)); the
    knees' and elbows' z axis is unchanged by the reflection, so their angles stay."""
    out = poses.copy()
    out[:, 2] *= -1
    slices = {link: sl for link, _, sl in H.POSE_SLICES}
    for link, dof, sl in [(0, 4, slice(3, 7))] + H.POSE_SLICES:
        source = slices[H.MIRROR_LINKS[link]] if link in H.MIRROR_LINKS else sl
        out[:, sl] = poses[:, source]
        if dof == 4:
            out[:, sl.start + 1 : sl.start + 3] *= -1
    return out


def canonical(poses: np.ndarray) -> np.ndarray:
    """A window moved to start at x = z = 0 and turned to face +x at its first frame."""
    out = poses.copy()
    yaw = -H.heading(poses[0, 3:7])
    c, s = np.cos(yaw), np.sin(yaw)
    rel = poses[:, [0, 2]] - poses[0, [0, 2]]
    out[:, 0] = rel[:, 0] * c + rel[:, 1] * s
    out[:, 2] = -rel[:, 0] * s + rel[:, 1] * c
    out[:, 3:7] = H.quat_mul_np(np.broadcast_to(H.yaw_quat(yaw), out[:, 3:7].shape), poses[:, 3:7])
    return out


def poses_to_features(poses: np.ndarray) -> np.ndarray:
    """Poses [..., 43] -> features [..., 61] (float32)."""
    p = torch.as_tensor(np.asarray(poses, np.float64))
    parts = [p[..., :3], H.matrix_to_6d(H.quat_to_matrix(p[..., 3:7]))]
    parts += [H.matrix_to_6d(H.quat_to_matrix(p[..., sl])) for _, dof, sl in H.POSE_SLICES if dof == 4]
    parts += [p[..., sl] for _, dof, sl in H.POSE_SLICES if dof == 1]
    return torch.cat(parts, dim=-1).float().numpy()


def features_to_poses(features: np.ndarray) -> np.ndarray:
    """Features [..., 61] -> poses [..., 43] (quaternions from the Gram-Schmidt rotations)."""
    f = torch.as_tensor(np.asarray(features, np.float64))
    out = np.zeros((*f.shape[:-1], H.POSE_SIZE))
    out[..., :3] = f[..., :3].numpy()
    out[..., 3:7] = H.matrix_to_quat_np(H.matrix_from_6d(f[..., 3:9]).numpy())
    i, k = 9, 9 + 6 * len(H.SPHERICAL)
    for _, dof, sl in H.POSE_SLICES:
        if dof == 4:
            out[..., sl] = H.matrix_to_quat_np(H.matrix_from_6d(f[..., i : i + 6]).numpy())
            i += 6
        else:
            out[..., sl] = f[..., k : k + 1].numpy()
            k += 1
    return out


# ---------------------------------------------------------------- skeletons: features -> points


def deepmimic_skeleton() -> dict:
    return {
        "kind": "deepmimic",
        "features": FEATURES,
        "points": len(H.POINTS),
        "joints": list(H.JOINT_POINTS),
        "feet": list(H.FOOT),
        "fps": None,
    }


def positions_skeleton(joints: int, feet, fps: float, name: str = "positions", chains=()) -> dict:
    return {
        "kind": "positions",
        "name": name,
        "features": 3 * joints,
        "points": joints,
        "joints": list(range(joints)),
        "feet": list(feet),
        "fps": fps,
        "chains": [list(c) for c in chains],
    }


def feature_points(features: torch.Tensor, skeleton: dict, root: torch.Tensor | None = None) -> torch.Tensor:
    """Features [..., F] -> world points [..., P, 3], differentiably. `root` [..., 3] replaces the
    root position held in features[..., :3] (the PhysicsSSM constraint moves only the root).

    deepmimic: forward kinematics of the humanoid (links then foot points). positions: features are
    root (3) then the other joints relative to the root (3 each)."""
    root = features[..., :3] if root is None else root
    if skeleton["kind"] == "positions":
        rel = features[..., 3:].reshape(*features.shape[:-1], skeleton["points"] - 1, 3)
        return torch.cat([root.unsqueeze(-2), root.unsqueeze(-2) + rel], dim=-2)
    n = len(H.SPHERICAL)
    spherical = H.matrix_from_6d(features[..., 9 : 9 + 6 * n].reshape(*features.shape[:-1], n, 6))
    revolute = features[..., 9 + 6 * n :]
    return H.forward_kinematics(root, H.matrix_from_6d(features[..., 3:9]), spherical, revolute)


# ---------------------------------------------------------------- the fixture


def phrasings(name: str, mirrored: bool, speed: float) -> tuple[list[str], list[str]]:
    """(training phrasings, held-out phrasings) of a clip copy."""
    info = CLIPS[name]
    side = info["side"]
    if side and mirrored:
        side = "left" if side == "right" else "right"
    texts = [t.format(side=side) + SPEED_WORDS[speed] for t in info["text"]]
    return texts[:-HELDOUT_PHRASINGS], texts[-HELDOUT_PHRASINGS:]


@functools.lru_cache(maxsize=4)  # one build per process and arguments: callers must not modify it
def build_fixture(
    fps: float = 20.0,
    window: int = 32,
    stride: int = 4,
    speeds: tuple[float, ...] = (0.8, 1.0, 1.25),
    mirror: bool = True,
    heldout_fraction: float = 0.25,
    clips: tuple[str, ...] | None = None,
) -> dict:
    """The DeepMimic text-to-motion fixture, split into "train" and "test".

    Each part: features float32 [N, window, 61], poses float64 [N, window, 43], texts (a list of
    phrasings per window), clip (name per window), mirrored, speed, start_s (the window's start in the
    clip's own time). Non-looping clips shorter than a window are held at their last pose."""
    names = tuple(clips or CLIPS)
    unknown = [n for n in names if n not in CLIPS]
    if unknown:
        raise ValueError(f"unknown DeepMimic clip(s) {unknown}; choose from {', '.join(CLIPS)}")
    parts = {
        k: {"poses": [], "texts": [], "clip": [], "mirrored": [], "speed": [], "start_s": []}
        for k in ("train", "test")
    }
    duration = window / fps
    for name in names:
        clip = load_clip(name)
        period = clip["times"][-1]  # the clip's own timeline: the split is made on it
        for speed in speeds:
            tiled = tile_loop(clip, min_seconds=duration * speed + period * 2)
            end = tiled["times"][-1]
            for mirrored in (False, True) if mirror else (False,):
                source = mirror_poses(tiled["poses"]) if mirrored else tiled["poses"]
                train_text, test_text = phrasings(name, mirrored, speed)
                # window starts on the clip's timeline (source seconds), stride frames apart at `fps`
                step = stride * speed / fps
                span = duration * speed
                # looping clips: starts over one cycle; others: windows may run past the end (held at the last
                # pose) by up to half a window
                last_start = min(end - span, period - 1e-6) if clip["loop"] else max(end - span / 2, 0.0)
                # held out: windows starting in the last heldout_fraction of the starts' range
                cut = (1 - heldout_fraction) * (period if clip["loop"] else max(last_start, 0.0))
                for start in np.arange(0.0, max(last_start, 0.0) + 1e-9, step):
                    phase = start % period if clip["loop"] and period > 0 else start
                    part = "test" if phase >= cut - 1e-9 else "train"
                    at = start + np.arange(window) * speed / fps
                    pose = canonical(sample_poses(source, tiled["times"], at))
                    p = parts[part]
                    p["poses"].append(pose)
                    p["texts"].append(train_text if part == "train" else test_text)
                    p["clip"].append(name)
                    p["mirrored"].append(mirrored)
                    p["speed"].append(speed)
                    p["start_s"].append(float(start))
    out = {"note": FIXTURE_NOTE, "skeleton": deepmimic_skeleton(), "fps": fps, "window": window}
    for k, p in parts.items():
        if not p["poses"]:
            raise ValueError(f"the fixture has no {k} windows: lower data.window or data.heldout_fraction")
        poses = np.stack(p["poses"])
        out[k] = dict(p, poses=poses, features=poses_to_features(poses))
    return out


# ---------------------------------------------------------------- KIT-ML / HumanML3D layout


def read_captions(path: Path) -> list[tuple[str, float, float]]:
    """(caption, start_s, end_s) per line of a texts/<id>.txt file ("caption#tokens#start#end")."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("#")
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected 'caption#tokens#start#end', got {line[:60]!r}")
        start = float(fields[2]) if len(fields) > 2 and fields[2].strip() else 0.0
        end = float(fields[3]) if len(fields) > 3 and fields[3].strip() else 0.0
        start, end = (0.0, 0.0) if np.isnan(start) or np.isnan(end) else (start, end)
        out.append((fields[0].strip(), start, end))
    return out


def positions_to_features(joints: np.ndarray) -> np.ndarray:
    """Joint positions [T, J, 3] -> features [T, 3 J]: root, then the joints relative to the root;
    the window starts at x = z = 0 (its heading is kept as recorded)."""
    joints = np.asarray(joints, np.float32).copy()
    joints[:, :, [0, 2]] -= joints[:1, :1, [0, 2]]
    root = joints[:, 0]
    rel = joints[:, 1:] - root[:, None]
    return np.concatenate([root, rel.reshape(len(joints), -1)], axis=1).astype(np.float32)


def load_humanml3d(
    root, split: str, window: int = 40, stride: int = 20, max_items: int | None = None
) -> dict:
    """Windows of a HumanML3D / KIT-ML split: features [N, window, 3 J], texts per window, and the
    skeleton (joints and foot joints from the joint count: 22 HumanML3D, 21 KIT-ML). A caption with a
    start/end covers only the windows inside that span; one with 0/0 covers the whole motion."""
    root = Path(root)
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        raise ValueError(
            f"{split_file}: no such split file; a HumanML3D/KIT-ML folder holds train.txt, val.txt, test.txt"
        )
    ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if max_items:
        ids = ids[:max_items]
    feats, texts, names, skeleton = [], [], [], None
    for motion_id in ids:
        joints_file = root / "new_joints" / f"{motion_id}.npy"
        text_file = root / "texts" / f"{motion_id}.txt"
        if not joints_file.is_file() or not text_file.is_file():
            continue  # HumanML3D's split lists ids whose files its own scripts skipped, too
        joints = np.load(joints_file, allow_pickle=False)
        if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[1] not in SKELETONS:
            raise ValueError(
                f"{joints_file}: expected [frames, 22 or 21, 3] joint positions, got {joints.shape}"
            )
        info = SKELETONS[joints.shape[1]]
        if skeleton is None:
            skeleton = positions_skeleton(
                joints.shape[1], info["feet"], info["fps"], info["name"], info["chains"]
            )
        elif skeleton["points"] != joints.shape[1]:
            raise ValueError(
                f"{joints_file}: {joints.shape[1]} joints, but the split's first motion has {skeleton['points']}"
            )
        captions = read_captions(text_file)
        fps = info["fps"]
        for start in range(0, len(joints) - window + 1, stride):
            t0, t1 = start / fps, (start + window) / fps
            here = [c for c, s, e in captions if (s == 0 and e == 0) or (s <= t0 and t1 <= e)]
            if here:
                feats.append(positions_to_features(joints[start : start + window]))
                texts.append(here)
                names.append(motion_id)
    if not feats:
        raise ValueError(
            f"{root}: no {split} motion of at least {window} frames with a caption (new_joints/<id>.npy + texts/<id>.txt)"
        )
    return {"features": np.stack(feats), "texts": texts, "clip": names, "skeleton": skeleton}


def load_dataset(
    source: str, root: str | None, window: int, fps: float, stride: int, heldout_fraction: float
) -> dict:
    """{"train", "test", "skeleton", "note", "fps"} from the fixture or a HumanML3D/KIT-ML folder."""
    if source == "deepmimic":
        return build_fixture(fps=fps, window=window, stride=stride, heldout_fraction=heldout_fraction)
    if source == "humanml3d":
        if not root:
            raise ValueError(
                "data.source=humanml3d needs data.root: the folder holding new_joints/, texts/ and train.txt"
            )
        train = load_humanml3d(root, "train", window=window, stride=stride)
        test = load_humanml3d(root, "test", window=window, stride=window)
        return {
            "train": train,
            "test": test,
            "skeleton": train["skeleton"],
            "note": f"HumanML3D/KIT-ML layout at {root}",
            "fps": train["skeleton"]["fps"],
            "window": window,
        }
    raise ValueError(f"data.source must be deepmimic or humanml3d, got {source!r}")


# ---------------------------------------------------------------- text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def build_vocab(texts: list[list[str]], max_words: int = 5000) -> list[str]:
    """Words of the training phrasings by frequency (ties alphabetical), index 0 = <pad>, 1 = <unk>."""
    counts: dict[str, int] = {}
    for group in texts:
        for t in group:
            for w in words(t):
                counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max_words - 2]
    return ["<pad>", "<unk>", *ranked]


def encode_texts(texts: list[str], vocab: list[str], max_tokens: int = 24) -> torch.Tensor:
    """Token ids [B, max_tokens] (0-padded; unknown words -> 1)."""
    index = {w: i for i, w in enumerate(vocab)}
    out = torch.zeros(len(texts), max_tokens, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [index.get(w, 1) for w in words(t)][:max_tokens]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out
