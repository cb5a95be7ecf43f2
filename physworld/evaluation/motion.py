"""Text-to-motion evaluation: motion metrics, the nearest-clip retrieval baseline, physical playback
of a motion by the PyBullet humanoid, MP4 rendering, and the code path for a user-supplied evaluator.

Metrics (`motion_metrics`), on body points (data/motion.py's `feature_points`: for the DeepMimic
humanoid its 15 links and 4 sole points; for HumanML3D/KIT-ML its joints), Y up, the ground at y = 0.
PhysDiff (Yuan et al. 2023) defines its physics errors on SMPL mesh vertices; here they are measured on
these points instead, so the numbers are not comparable with PhysDiff's tables:
  - mpjpe_mm: mean joint position error against the held-out window, in the window's frame (root
    trajectory included), over the links / joints;
  - penetrate_mm: mean over frames of the lowest point's depth below the ground (0 above it);
  - float_mm: mean over frames of the lowest point's height above the ground beyond 5 mm (0 below);
  - skate_mm: mean ground-plane step (mm per frame) of foot points within CONTACT_HEIGHT (2 cm) of the
    ground at both frames of a step, over such steps;
  - jerk: mean |third time derivative| of joint positions, m/s^3;
  - speed_mm: mean joint speed, mm per frame: how much the body moves at all. A motion that barely
    moves has small skating and jerk for free, so read the physics errors beside it.
FID and R-precision need a pretrained text/motion evaluator (Guo et al. 2022's for HumanML3D) that
cannot be downloaded here: they are not computed unless one is given (`load_evaluator`,
`fid_and_r_precision`), and nothing reports them otherwise.

Playback (`play_back`): the motion's poses are targets of PD control (pybullet POSITION_CONTROL with
position and velocity gains, torques limited to DeepMimic's) of the free-floating humanoid on a ground
plane at 240 Hz. Nothing balances it: no root force, no policy. So even the recorded motion capture
falls within a second or two under plain PD tracking; the playback measures how far a motion is from
what the body can do unaided (tracking error, time to fall), ground truth beside every model.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from physworld.data import humanoid as H
from physworld.data.motion import feature_points, words
from physworld.models.motion_ssm import foot_contacts, jerk_per_frame, lowest_height, skate_steps

CONTACT_HEIGHT = 0.02  # m
FLOAT_TOLERANCE = 0.005  # m
FALL_DROP = 0.3  # m: the humanoid has fallen when its root is this much lower than the motion's
SUBSTEPS_HZ = 240


# ---------------------------------------------------------------- metrics


def motion_metrics(points: np.ndarray, skeleton: dict, fps: float, target: np.ndarray | None = None) -> dict:
    """points (and target) [N, T, P, 3] -> the metrics above, means over the N motions."""
    pts = torch.as_tensor(np.asarray(points, np.float64))
    joints, feet = skeleton["joints"], skeleton["feet"]
    low = lowest_height(pts)  # [N, T]
    contact = foot_contacts(pts, feet, CONTACT_HEIGHT).double()
    steps = skate_steps(pts, feet, eps=0.0)
    out = {
        "penetrate_mm": float(torch.relu(-low).mean()) * 1000,
        "float_mm": float(torch.relu(low - FLOAT_TOLERANCE).mean()) * 1000,
        "skate_mm": float((steps * contact).sum() / contact.sum().clamp_min(1.0)) * 1000,
        "jerk": float(jerk_per_frame(pts[..., joints, :], eps=0.0).mean()) * fps**3,
        "speed_mm": float((pts[..., 1:, joints, :] - pts[..., :-1, joints, :]).norm(dim=-1).mean()) * 1000,
    }
    if target is not None:
        tgt = torch.as_tensor(np.asarray(target, np.float64))
        out["mpjpe_mm"] = float((pts[..., joints, :] - tgt[..., joints, :]).norm(dim=-1).mean()) * 1000
    return out


# ---------------------------------------------------------------- the retrieval baseline


def _bag(text: str, vocab: dict) -> np.ndarray:
    v = np.zeros(len(vocab))
    for w in words(text):
        if w in vocab:
            v[vocab[w]] += 1
    n = np.linalg.norm(v)
    return v / n if n else v


def retrieve(train_texts: list[list[str]], queries: list[str]) -> np.ndarray:
    """For each query, the training window whose phrasing is nearest by bag-of-words cosine (the
    first window on ties): the nearest-clip retrieval baseline."""
    vocab: dict[str, int] = {}
    for group in train_texts:
        for t in group:
            for w in words(t):
                vocab.setdefault(w, len(vocab))
    rows, owner = [], []
    for i, group in enumerate(train_texts):
        for t in group:
            rows.append(_bag(t, vocab))
            owner.append(i)
    table = np.stack(rows)  # [phrasings, V]
    owner = np.asarray(owner)
    return np.array([owner[int(np.argmax(table @ _bag(q, vocab)))] for q in queries])


# ---------------------------------------------------------------- a user-supplied evaluator


NO_EVALUATOR = (
    "FID and R-precision not computed: they need a pretrained text/motion evaluator (e.g. Guo et al. "
    "2022's for HumanML3D), which cannot be downloaded here; pass --evaluator module:function to use one"
)


def load_evaluator(spec: str | None):
    """`module:function` -> the function, which takes (texts, features [N, T, F]) and returns
    (text embeddings [N, D], motion embeddings [N, D]); None -> None (the metrics are then skipped
    with NO_EVALUATOR)."""
    if not spec:
        return None
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--evaluator must be module:function, got {spec!r}")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"--evaluator {spec}: {module} has no function {name}")
    return fn


def fid_and_r_precision(text_emb, gen_emb, real_emb, batch: int = 32, top_k: int = 3) -> dict:
    """FID between generated and real motion embeddings, and R-precision (top 1..top_k) of generated
    motions against their texts among `batch` - 1 others (the protocol of Guo et al. 2022)."""
    from scipy import linalg

    gen, real, text = (np.asarray(x, np.float64) for x in (gen_emb, real_emb, text_emb))
    mu1, mu2 = gen.mean(0), real.mean(0)
    s1, s2 = np.cov(gen, rowvar=False), np.cov(real, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    fid = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    hits, groups = np.zeros(top_k), 0
    for i in range(0, len(gen) - batch + 1, batch):
        d = np.linalg.norm(text[i : i + batch, None] - gen[None, i : i + batch], axis=-1)  # [text, motion]
        rank = (d < np.diag(d)[:, None]).sum(1)  # motions nearer than the text's own
        hits += np.array([(rank < k + 1).sum() for k in range(top_k)])
        groups += batch
    out = {"fid": fid}
    for k in range(top_k):
        out[f"r_precision_top{k + 1}"] = float(hits[k] / groups) if groups else float("nan")
    return out


# ---------------------------------------------------------------- playback and rendering


def _world(p, client: int, plane: bool = True):
    p.setGravity(0, -9.8, 0, physicsClientId=client)
    if plane:  # the ground: a plane turned so that y is up, as in pybullet's deep_mimic example
        p.setAdditionalSearchPath(H.data_path(), physicsClientId=client)
        z2y = p.getQuaternionFromEuler([-math.pi / 2, 0, 0])
        return p.loadURDF(
            "plane_implicit.urdf", [0, 0, 0], z2y, useMaximalCoordinates=True, physicsClientId=client
        )
    return None


def _camera(p, target, width: int, height: int):
    target = [float(target[0]), 0.8, float(target[2])]
    view = p.computeViewMatrix([target[0] + 1.2, 1.6, target[2] + 3.2], target, [0, 1, 0])
    proj = p.computeProjectionMatrixFOV(50, width / height, 0.1, 20)
    return view, proj


def _snapshot(p, client: int, centre, width: int, height: int) -> np.ndarray:
    view, proj = _camera(p, centre, width, height)
    img = p.getCameraImage(width, height, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=client)
    return np.asarray(img[2], np.uint8).reshape(height, width, 4)[..., :3]


def render_poses(poses: np.ndarray, width: int = 192, height: int = 144) -> np.ndarray:
    """The poses [T, 43] shown kinematically (no physics): RGB frames [T, H, W, 3] (TinyRenderer)."""
    p, _ = H.require_pybullet()
    client = p.connect(p.DIRECT)
    try:
        _world(p, client)
        body = H.load_humanoid(p, client, fixed_base=True)
        frames = []
        for pose in poses:
            H.set_pose(p, client, body, pose)
            frames.append(_snapshot(p, client, pose[:3], width, height))
    finally:
        p.disconnect(client)
    return np.stack(frames)


def play_back(
    poses: np.ndarray,
    fps: float,
    render: bool = False,
    width: int = 192,
    height: int = 144,
    gain: float = 0.2,
) -> dict:
    """Track poses [T, 43] with PD control on the free humanoid (module docstring).

    Returns links [T, 15, 3] (simulated), tracking_error_mm (mean link distance to the motion's, over
    all frames), fell (bool), fall_frame (first frame the root is FALL_DROP below the motion's root, or
    the chest/neck touch the ground while the motion's chest is above 0.4 m; None if never), seconds
    (time to fall, or the motion's length), and frames [T, H, W, 3] with render."""
    p, _ = H.require_pybullet()
    poses = np.asarray(poses, np.float64)
    target_links = H.pose_positions(poses)[:, : len(H.LINKS)]
    client = p.connect(p.DIRECT)
    try:
        plane = _world(p, client)
        body = H.load_humanoid(p, client)
        substeps = max(1, int(round(SUBSTEPS_HZ / fps)))
        p.setTimeStep(1.0 / (fps * substeps), physicsClientId=client)
        velocity = (poses[1, :3] - poses[0, :3]) * fps if len(poses) > 1 else np.zeros(3)
        H.set_pose(p, client, body, poses[0], velocity=velocity)
        links = [H.link_positions(p, client, body)]
        frames = [_snapshot(p, client, links[0][0], width, height)] if render else []
        fall_frame = None
        for t in range(1, len(poses)):
            index, targets, target_vel, kps, kds, forces = [], [], [], [], [], []
            for link, dof, sl in H.POSE_SLICES:
                index.append(link)
                targets.append(H.xyzw(poses[t, sl]) if dof == 4 else [float(poses[t, sl][0])])
                target_vel.append([0.0] * (3 if dof == 4 else 1))
                kps.append(gain)
                kds.append(1.0)
                forces.append([float(H.MAX_FORCE[link])] * (3 if dof == 4 else 1))
            p.setJointMotorControlMultiDofArray(
                body,
                index,
                p.POSITION_CONTROL,
                targetPositions=targets,
                targetVelocities=target_vel,
                positionGains=kps,
                velocityGains=kds,
                forces=forces,
                physicsClientId=client,
            )
            for _ in range(substeps):
                p.stepSimulation(physicsClientId=client)
            now = H.link_positions(p, client, body)
            links.append(now)
            if fall_frame is None:
                dropped = target_links[t, 0, 1] - now[0, 1] > FALL_DROP
                torso = (
                    any(c[3] in (1, 2) for c in p.getContactPoints(body, plane, physicsClientId=client))
                    and target_links[t, 1, 1] > 0.4
                )
                if dropped or torso:
                    fall_frame = t
            if render:
                frames.append(_snapshot(p, client, now[0], width, height))
    finally:
        p.disconnect(client)
    links = np.stack(links)
    out = {
        "links": links,
        "tracking_error_mm": float(np.linalg.norm(links - target_links, axis=-1).mean() * 1000),
        "fell": fall_frame is not None,
        "fall_frame": fall_frame,
        "seconds_upright": (fall_frame if fall_frame is not None else len(poses)) / fps,
    }
    if render:
        out["frames"] = np.stack(frames)
    return out


def playback_summary(results: list[dict]) -> dict:
    return {
        "tracking_error_mm": float(np.mean([r["tracking_error_mm"] for r in results])),
        "fell_share": float(np.mean([r["fell"] for r in results])),
        "seconds_upright": float(np.mean([r["seconds_upright"] for r in results])),
    }


# ---------------------------------------------------------------- the evaluation


def heldout_queries(part: dict) -> list[str]:
    """One held-out phrasing per held-out window, cycling through the window's phrasings."""
    return [texts[i % len(texts)] for i, texts in enumerate(part["texts"])]


def generate_features(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """The model's motion (its gated output) for each text: features [N, T, F]."""
    out = [
        model.generate(texts[i : i + batch_size])["motion"].numpy() for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(out)


def evaluate_methods(methods: dict[str, np.ndarray], data: dict, playback: int = 0) -> dict:
    """methods: name -> features [N, T, F] for the held-out windows (data["test"]); also scores the
    ground truth. Returns {name: metrics (+ playback summary of the first `playback` windows)}."""
    skeleton, fps = data["skeleton"], float(data["fps"])
    target = data["test"]["features"]
    true_points = feature_points(torch.as_tensor(target, dtype=torch.float64), skeleton).numpy()
    rows = {}
    for name, features in {"ground truth": target, **methods}.items():
        pts = feature_points(torch.as_tensor(features, dtype=torch.float64), skeleton).numpy()
        rows[name] = motion_metrics(pts, skeleton, fps, true_points)
        if playback and skeleton["kind"] == "deepmimic":
            from physworld.data.motion import features_to_poses

            poses = features_to_poses(features[:playback])
            rows[name].update(playback_summary([play_back(p_, fps) for p_ in poses]))
    return rows


def draw_skeleton(points: np.ndarray, chains, width: int = 192, height: int = 144) -> np.ndarray:
    """A side view (x right, y up) of joint positions [T, J, 3] as lines along the kinematic chains:
    RGB frames [T, H, W, 3] (Pillow). For skeletons without a PyBullet body (HumanML3D, KIT-ML)."""
    from PIL import Image, ImageDraw

    pts = np.asarray(points, np.float64)
    scale = 0.8 * height / max(float(pts[..., 1].max() - min(pts[..., 1].min(), 0.0)), 1.0)
    frames = []
    for frame in pts:
        image = Image.new("RGB", (width, height), (245, 245, 245))
        draw = ImageDraw.Draw(image)
        ground = height - 10
        draw.line([(0, ground), (width, ground)], fill=(120, 120, 120))
        cx = frame[0, 0]

        def xy(j, frame=frame, cx=cx, ground=ground):
            return (width / 2 + (frame[j, 0] - cx) * scale, ground - frame[j, 1] * scale)

        for chain in chains:
            draw.line([xy(j) for j in chain], fill=(40, 70, 160), width=2)
        frames.append(np.asarray(image))
    return np.stack(frames)


def text_to_motion(
    prompt: str, checkpoint, out_dir, playback: bool = True, forced_gate: float | None = None, size=(192, 144)
) -> dict:
    """`physworld text2motion`: the model's motion for `prompt` (its gated output) written to out_dir:
    motion.npy (features [T, F]), points.npy (body points [T, P, 3]), poses.npy (DeepMimic poses
    [T, 43], humanoid only), motion.json (prompt, fps, gate, metrics, playback) and motion.mp4 (the
    motion; for the humanoid beside its physical playback by PD control)."""
    from pathlib import Path

    from physworld.data.motion import features_to_poses, words
    from physworld.data.render import label, side_by_side, write_mp4
    from physworld.fileio import atomic_write_json
    from physworld.models.motion_ssm import load_motion_model

    model, info = load_motion_model(checkpoint)
    if model.config.text_encoder == "words":
        known = [w for w in words(prompt) if w in set(model.vocab)]
        if not known:
            examples = ", ".join(model.vocab[2:12])
            raise ValueError(
                f"none of the prompt's words is in the model's vocabulary ({len(model.vocab) - 2} words, "
                f"e.g. {examples}); describe a motion it was trained on, such as 'a person walks'"
            )
    model.forced_gate = forced_gate
    out = model.generate([prompt])
    features = out["motion"][0].numpy()
    skeleton, fps = info["skeleton"], float(info["fps"])
    points = feature_points(torch.as_tensor(features, dtype=torch.float64), skeleton).numpy()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "motion.npy", features)
    np.save(out_dir / "points.npy", points.astype(np.float32))
    w, h = size
    result = {
        "prompt": prompt,
        "checkpoint": str(checkpoint),
        "fps": fps,
        "frames": int(features.shape[0]),
        "skeleton": skeleton.get("name", skeleton["kind"]),
        "gate": None if out["gate"] is None else float(out["gate"].mean()),
        "forced_gate": forced_gate,
        "metrics": motion_metrics(points[None], skeleton, fps),
        "data_note": info.get("data_note"),
        "fid_r_precision": NO_EVALUATOR,
    }
    if skeleton["kind"] == "deepmimic":
        poses = features_to_poses(features)
        np.save(out_dir / "poses.npy", poses)
        video = label(render_poses(poses, w, h), "motion")
        if playback:
            played = play_back(poses, fps, render=True, width=w, height=h)
            result["playback"] = {
                k: played[k] for k in ("tracking_error_mm", "fell", "fall_frame", "seconds_upright")
            }
            video = np.stack(
                [
                    side_by_side(a, b)
                    for a, b in zip(video, label(played["frames"], "PD playback"), strict=True)
                ]
            )
    else:
        video = draw_skeleton(points, skeleton.get("chains", []), w, h)
        result["playback"] = "skipped: PyBullet playback needs the DeepMimic humanoid"
    write_mp4(out_dir / "motion.mp4", video, fps=fps)
    result["files"] = sorted(
        [*(p.name for p in out_dir.iterdir() if p.suffix in (".npy", ".mp4")), "motion.json"]
    )
    atomic_write_json(out_dir / "motion.json", result)
    return result
