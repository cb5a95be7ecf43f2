"""The 3D half of the training view (docs/GRAPH_BATCH.md, "3D"): what `windows.py` needs to turn a
PyBullet scene (worlds/spec3d.py, states [frames + 1, bodies, 13]) into graph samples, and the
integration rule that turns a predicted acceleration into the next 3D state.

`windows.prepare`, `WindowDataset`, `graph_from_scene` and `collate_graphs` serve 2D and 3D datasets
alike; they take the widths and the static part of a scene from here when the dataset's `dims` is 3.

State (bullet.STATE_FIELDS_3D): x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz; metres, z up,
quaternions (x, y, z, w) body-to-world, velocities in the world frame.
"""

from __future__ import annotations

import numpy as np
import torch

from physworld.worlds.spec3d import body_extent

STATE_WIDTH_3D = 13
MOTION_3D = slice(7, 13)  # the velocity columns: linear (3) then angular (3)
BODY_FEATURES_3D = (
    "is_sphere",
    "is_box",
    "is_cylinder",
    "is_capsule",
    "radius",  # sphere, cylinder, capsule; 0 for a box
    "height",  # cylinder, capsule (the cylinder part); 0 otherwise
    "size_x",  # full extent along the body's own axes (every shape)
    "size_y",
    "size_z",
    "bounding_radius",  # of the smallest centred sphere containing the body
    "mass",
    "friction",
    "restitution",
    "effective_restitution",
    "rolling_friction",
    "spinning_friction",
    "linear_damping",
    "angular_damping",
    "kinematic",  # always last, as in 2D (0 for every 3D body today)
)
# Every static piece as a plane (point on it, unit normal) or an oriented box (centre, orientation,
# half extents); the columns of the other kind are zero.
STATIC_FEATURES_3D = (
    "is_plane",
    "is_box",
    "cx",
    "cy",
    "cz",
    "qx",
    "qy",
    "qz",
    "qw",
    "half_x",
    "half_y",
    "half_z",
    "nx",
    "ny",
    "nz",
    "friction",
    "restitution",
)
JOINT_KINDS_3D = ("point_to_point",)
ANCHOR_WIDTH_3D = 6  # anchor_a (x, y, z) in a's frame, anchor_b in b's frame (world frame for -1)
SCENE_FLOAT_FIELDS_3D = ("dt", "gravity_x", "gravity_y", "gravity_z")

_SHAPES = ("sphere", "box", "cylinder", "capsule")


def _body_row(b: dict) -> list[float]:
    shape = b["shape"]
    if shape not in _SHAPES:
        raise ValueError(f"body shape {shape!r}: expected one of {', '.join(_SHAPES)}")
    if shape == "box":
        radius, height = 0.0, 0.0
        size = [float(v) for v in b["size"]]
    else:
        radius = float(b["radius"])
        height = float(b.get("height", 0.0))
        if shape == "sphere":
            size = [2 * radius] * 3
        else:
            length = height + (2 * radius if shape == "capsule" else 0.0)
            size = [2 * radius, 2 * radius, length]
    kinematic = bool(b.get("kinematic", False))
    return [
        *(float(shape == s) for s in _SHAPES),
        radius,
        height,
        *size,
        float(body_extent(b)),
        0.0 if kinematic else float(b["mass"]),
        float(b["friction"]),
        float(b["restitution"]),
        float(b.get("effective_restitution", b["restitution"])),
        float(b.get("rolling_friction", 0.0)),
        float(b.get("spinning_friction", 0.0)),
        float(b.get("linear_damping", 0.0)),
        float(b.get("angular_damping", 0.0)),
        float(kinematic),
    ]


def _static_row(s: dict) -> list[float]:
    kind = s.get("kind")
    fr, re = float(s["friction"]), float(s["restitution"])
    if kind == "plane":
        n = np.asarray(s["normal"], dtype=np.float64)
        n = n / np.linalg.norm(n)
        point = n * float(s["offset"])
        return [1.0, 0.0, *point, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, *n, fr, re]
    if kind == "box":
        half = [0.5 * float(v) for v in s["size"]]
        return [
            0.0,
            1.0,
            *map(float, s["position"]),
            *map(float, s["orientation"]),
            *half,
            0.0,
            0.0,
            0.0,
            fr,
            re,
        ]
    raise ValueError(f"static kind {kind!r}: expected plane or box")


def scene_arrays_3d(spec: dict) -> dict:
    """The static part of a 3D scene's graph, from its spec: body float32 [N, 19] (BODY_FEATURES_3D),
    statics float32 [S, 17] (STATIC_FEATURES_3D), joint_index int64 [J, 2] (-1 = the world),
    joint_kind int64 [J] (JOINT_KINDS_3D), joint_anchor float32 [J, 6], gravity float32 [3],
    dt float32 [], substeps int64 []."""
    bodies = spec["bodies"]
    body = np.array([_body_row(b) for b in bodies], dtype=np.float32).reshape(
        len(bodies), len(BODY_FEATURES_3D)
    )
    statics = np.array([_static_row(s) for s in spec.get("statics", [])], dtype=np.float32)
    statics = statics.reshape(-1, len(STATIC_FEATURES_3D))
    joints = spec.get("constraints", [])
    for c in joints:
        if c.get("kind") not in JOINT_KINDS_3D:
            raise ValueError(
                f"constraint kind {c.get('kind')!r}: expected one of {', '.join(JOINT_KINDS_3D)}"
            )
    joint_index = np.array([[c["a"], c["b"]] for c in joints], dtype=np.int64).reshape(len(joints), 2)
    joint_kind = np.array([JOINT_KINDS_3D.index(c["kind"]) for c in joints], dtype=np.int64)
    joint_anchor = np.array([[*c["anchor_a"], *c["anchor_b"]] for c in joints], dtype=np.float32)
    w = spec["world"]
    return {
        "body": body,
        "statics": statics,
        "joint_index": joint_index,
        "joint_kind": joint_kind,
        "joint_anchor": joint_anchor.reshape(len(joints), ANCHOR_WIDTH_3D),
        "gravity": np.asarray(w["gravity"], dtype=np.float32).reshape(3),
        "dt": np.array(w["dt"], dtype=np.float32),
        "substeps": np.array(w["substeps"], dtype=np.int64),
    }


# ---------------------------------------------------------------- rotations (torch, quaternions x, y, z, w)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b [..., 4] (the rotation b, then a)."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        dim=-1,
    )


def quat_from_rotation_vector(phi: torch.Tensor) -> torch.Tensor:
    """exp map: rotation vectors phi [..., 3] (axis times angle, rad) -> unit quaternions [..., 4].
    sin(a/2)/a by its series near 0, so the gradient is finite at phi = 0."""
    angle = phi.norm(dim=-1, keepdim=True)
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    half_sinc = torch.where(small, 0.5 - angle.square() / 48.0, torch.sin(0.5 * safe) / safe)
    return torch.cat([phi * half_sinc, torch.cos(0.5 * angle)], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] -> rotation matrices [..., 3, 3] (body-to-world: columns are the
    body's axes in the world frame). q and -q give the same matrix."""
    x, y, z, w = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def geodesic_angle_np(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """The angle (rad, in [0, pi]) of the rotation between unit quaternions q1, q2 [..., 4]:
    2 acos |<q1, q2>| (sign-free: q and -q are the same rotation)."""
    n1 = np.linalg.norm(q1, axis=-1)
    n2 = np.linalg.norm(q2, axis=-1)
    dot = np.abs((q1 * q2).sum(-1)) / np.maximum(n1 * n2, 1e-12)
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


# ---------------------------------------------------------------- integration


def integrate_3d(state, accel, dt, substeps):
    """The next 3D state from an acceleration: linear (3) and angular (3), world frame.

    v' = v + a dt; x' = x + dt (v + c (v' - v)); w' = w + alpha dt; q' = exp(dt (w + c (w' - w))) q,
    renormalised; c = (k + 1) / (2k) for k substeps. That is PyBullet's stepping under a constant
    acceleration (each substep updates the velocity, then moves the body with the new velocity, the
    orientation by the exponential map of the world angular velocity), to first order in the
    rotation per frame; tests/test_physics_expert_3d.py checks it against PyBullet.

    state [..., 13], accel [..., 6], dt and substeps scalars or shaped like the leading dimensions;
    numpy arrays (returned as numpy, float32 at least) or torch tensors.
    """
    if not isinstance(state, torch.Tensor):
        dtype = np.result_type(np.asarray(state).dtype, np.float32)
        out = integrate_3d(
            torch.from_numpy(np.asarray(state, dtype=dtype)),
            torch.from_numpy(np.asarray(accel, dtype=dtype)),
            torch.from_numpy(np.asarray(dt, dtype=dtype)),
            torch.from_numpy(np.asarray(substeps, dtype=np.int64)),
        )
        return out.numpy()

    def trailing(x):
        x = torch.as_tensor(x, device=state.device).to(state.dtype)
        return x[..., None] if x.ndim and x.ndim == state.ndim - 1 else x

    dt, k = trailing(dt), trailing(substeps)
    c = (k + 1) / (2 * k)
    x, q, v, w = state[..., 0:3], state[..., 3:7], state[..., 7:10], state[..., 10:13]
    dv, dw = accel[..., 0:3] * dt, accel[..., 3:6] * dt
    x_next = x + dt * (v + c * dv)
    q_next = quat_multiply(quat_from_rotation_vector(dt * (w + c * dw)), q)
    q_next = q_next / q_next.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.cat([x_next, q_next, v + dv, w + dw], dim=-1)
