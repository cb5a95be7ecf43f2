"""The DeepMimic humanoid of pybullet's data package: its skeleton, poses, and forward kinematics.

A pose is DeepMimic's frame without the duration: 43 numbers, Y up, metres,

    root position (3), root rotation (4, w x y z),
    chest, neck, right hip (4 each), right knee (1), right ankle, right shoulder (4 each), right elbow (1),
    left hip (4), left knee (1), left ankle, left shoulder (4 each), left elbow (1).

Spherical joints are quaternions (w, x, y, z) relative to the parent link; knees and elbows are angles
about their link's z axis. The humanoid (pybullet_data humanoid/humanoid.urdf at globalScaling 0.25,
as pybullet's deep_mimic example loads it) faces +x; its left/right axis is z.

Forward kinematics (`forward_kinematics`, torch, differentiable) gives the world positions of the 15
links (their joint frames, as pybullet's getLinkState reports them) and of 4 foot points (heel and toe
at the sole of each foot's collision box), so that ground contact and penetration are measured at the
sole rather than at the ankle. The link offsets come from pybullet itself: the humanoid is loaded in its
rest pose (every rotation the identity) and each link's offset from its parent is read off
(`rest_offsets`); tests/test_motion.py checks the kinematics against pybullet in random poses.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

POSE_SIZE = 43
ROOT_HEIGHT = 0.889540259  # the base height pybullet's deep_mimic example loads the humanoid at
URDF = "humanoid/humanoid.urdf"
SCALE = 0.25

LINKS = (
    "root",
    "chest",
    "neck",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
PARENTS = (-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13)  # link 0 ("root") is fixed to the base
# The pose's joints in DeepMimic's order: (link index, degrees of freedom: 4 quaternion, 1 angle about z)
MOTION_JOINTS = (
    (1, 4),
    (2, 4),
    (3, 4),
    (4, 1),
    (5, 4),
    (6, 4),
    (7, 1),
    (9, 4),
    (10, 1),
    (11, 4),
    (12, 4),
    (13, 1),
)
SPHERICAL = tuple(link for link, dof in MOTION_JOINTS if dof == 4)  # 8 links
REVOLUTE = tuple(link for link, dof in MOTION_JOINTS if dof == 1)  # 4 links
# Foot points in the ankle's frame: the sole's back and front edge (foot box 0.177 x 0.055 x 0.09 m
# centred 0.045 m forward and 0.0225 m below the ankle, at scale 0.25)
FOOT_POINTS = (
    (5, (-0.0435, -0.05, 0.0)),
    (5, (0.1335, -0.05, 0.0)),
    (11, (-0.0435, -0.05, 0.0)),
    (11, (0.1335, -0.05, 0.0)),
)
POINTS = LINKS + ("right_heel", "right_toe", "left_heel", "left_toe")  # what forward_kinematics returns
FOOT = tuple(range(len(LINKS), len(POINTS)))  # indices of the foot points among POINTS
JOINT_POINTS = tuple(range(len(LINKS)))  # the links: what joint position error is measured on
# PD gains and torque limits per link, from DeepMimic's humanoid character file
KP = {1: 1000, 2: 100, 3: 500, 4: 500, 5: 400, 6: 400, 7: 300, 9: 500, 10: 500, 11: 400, 12: 400, 13: 300}
MAX_FORCE = {1: 200, 2: 50, 3: 200, 4: 150, 5: 90, 6: 100, 7: 60, 9: 200, 10: 150, 11: 90, 12: 100, 13: 60}


def _pose_slices() -> list[tuple[int, int, slice]]:
    out, i = [], 7
    for link, dof in MOTION_JOINTS:
        out.append((link, dof, slice(i, i + dof)))
        i += dof
    assert i == POSE_SIZE
    return out


POSE_SLICES = _pose_slices()
# Mirroring (left <-> right): the pose's slices swapped pairwise
MIRROR_LINKS = {3: 9, 4: 10, 5: 11, 6: 12, 7: 13, 8: 14}
MIRROR_LINKS.update({v: k for k, v in list(MIRROR_LINKS.items())})


# ---------------------------------------------------------------- pybullet


def require_pybullet():
    try:
        import pybullet
        import pybullet_data
    except ModuleNotFoundError as e:  # pragma: no cover - pybullet is a core dependency
        raise ModuleNotFoundError(
            "the humanoid needs pybullet, which ships the DeepMimic clips and URDF: pip install 'physworld[sim3d]'"
        ) from e
    return pybullet, pybullet_data


def data_path() -> str:
    return require_pybullet()[1].getDataPath()


def load_humanoid(p, client: int, fixed_base: bool = False) -> int:
    """The humanoid in a Y-up world (the way pybullet's deep_mimic example loads it)."""
    p.setAdditionalSearchPath(data_path(), physicsClientId=client)
    return p.loadURDF(
        URDF,
        [0, ROOT_HEIGHT, 0],
        globalScaling=SCALE,
        useFixedBase=fixed_base,
        flags=p.URDF_MAINTAIN_LINK_ORDER,
        physicsClientId=client,
    )


def xyzw(q) -> list[float]:
    """(w, x, y, z) -> pybullet's (x, y, z, w)."""
    return [float(q[1]), float(q[2]), float(q[3]), float(q[0])]


def set_pose(p, client: int, body: int, pose: np.ndarray, velocity: np.ndarray | None = None) -> None:
    """Put the humanoid in a pose (kinematically); `velocity` (3,) sets the base's linear velocity."""
    p.resetBasePositionAndOrientation(body, pose[:3].tolist(), xyzw(pose[3:7]), physicsClientId=client)
    if velocity is not None:
        p.resetBaseVelocity(body, velocity.tolist(), [0, 0, 0], physicsClientId=client)
    for link, dof, sl in POSE_SLICES:
        if dof == 4:
            p.resetJointStateMultiDof(body, link, xyzw(pose[sl]), [0, 0, 0], physicsClientId=client)
        else:
            p.resetJointStateMultiDof(body, link, [float(pose[sl][0])], [0], physicsClientId=client)


def link_positions(p, client: int, body: int) -> np.ndarray:
    """World positions [15, 3] of the links' joint frames (getLinkState's worldLinkFramePosition)."""
    return np.array(
        [p.getLinkState(body, j, physicsClientId=client)[4] for j in range(len(LINKS))], np.float64
    )


@functools.lru_cache(maxsize=1)
def rest_offsets() -> np.ndarray:
    """Each link's offset [15, 3] from its parent's joint frame in the rest pose (every rotation the
    identity, so parent and child frames are aligned with the world), read from pybullet."""
    p, _ = require_pybullet()
    client = p.connect(p.DIRECT)
    try:
        body = load_humanoid(p, client, fixed_base=True)
        rest = np.zeros(POSE_SIZE)
        rest[1] = ROOT_HEIGHT
        for _, dof, sl in [(None, 4, slice(3, 7))] + POSE_SLICES:
            if dof == 4:
                rest[sl.start] = 1.0
        set_pose(p, client, body, rest)
        pos = link_positions(p, client, body)
    finally:
        p.disconnect(client)
    offsets = np.zeros_like(pos)
    offsets[0] = pos[0] - rest[:3]  # the root link sits on the base
    for j in range(1, len(LINKS)):
        offsets[j] = pos[j] - pos[PARENTS[j]]
    return offsets


# ---------------------------------------------------------------- rotations (torch and numpy)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternions [..., 4] (w, x, y, z), normalised here -> rotation matrices [..., 3, 3]."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def matrix_to_6d(m: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] -> the first two columns [..., 6] (Zhou et al. 2019's continuous representation)."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def matrix_from_6d(d6: torch.Tensor) -> torch.Tensor:
    """[..., 6] -> rotation matrices [..., 3, 3] by Gram-Schmidt (any 6 numbers give a rotation)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotation_z(angle: torch.Tensor) -> torch.Tensor:
    """Angles [...] -> rotations about z [..., 3, 3] (the knees' and elbows' axis)."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).reshape(*angle.shape, 3, 3)


def matrix_to_quat_np(m: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> quaternions [..., 4] (w, x, y, z), w >= 0 (numpy)."""
    from scipy.spatial.transform import Rotation

    xyzw_ = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()
    q = np.concatenate([xyzw_[:, 3:], xyzw_[:, :3]], axis=1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(*m.shape[:-2], 4)


def slerp_np(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical interpolation of quaternions [N, 4] (w, x, y, z) by alpha [N]."""
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    dot = (q0 * q1).sum(-1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # the short way round
    dot = np.abs(dot).clip(-1.0, 1.0)
    theta = np.arccos(dot)
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    w0 = np.where(small, 1 - alpha, np.sin((1 - alpha) * theta) / sin)
    w1 = np.where(small, alpha, np.sin(alpha * theta) / sin)
    out = w0[:, None] * q0 + w1[:, None] * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


# ---------------------------------------------------------------- forward kinematics


def forward_kinematics(
    root_pos: torch.Tensor, root_rot: torch.Tensor, spherical: torch.Tensor, revolute: torch.Tensor
) -> torch.Tensor:
    """World positions of the 15 links and 4 foot points, POINTS order.

    root_pos [..., 3]; root_rot [..., 3, 3]; spherical [..., 8, 3, 3] (SPHERICAL's links, local
    rotations); revolute [..., 4] (REVOLUTE's angles) -> [..., 19, 3].
    world_rot[j] = world_rot[parent] @ local[j];  world_pos[j] = world_pos[parent] + world_rot[parent] @ offset[j]
    """
    offsets = torch.as_tensor(rest_offsets(), dtype=root_pos.dtype, device=root_pos.device)
    eye = torch.eye(3, dtype=root_pos.dtype, device=root_pos.device).expand(*root_pos.shape[:-1], 3, 3)
    local = {0: eye}
    for i, link in enumerate(SPHERICAL):
        local[link] = spherical[..., i, :, :]
    for i, link in enumerate(REVOLUTE):
        local[link] = rotation_z(revolute[..., i])
    rot, pos = [], []
    for j, parent in enumerate(PARENTS):
        if parent < 0:  # the root link: fixed to the base, which carries the root rotation
            rot.append(root_rot @ local.get(j, eye))
            pos.append(root_pos + root_rot @ offsets[j])
        else:
            rot.append(rot[parent] @ local.get(j, eye))
            pos.append(pos[parent] + (rot[parent] @ offsets[j].unsqueeze(-1)).squeeze(-1))
    for link, point in FOOT_POINTS:
        point_t = torch.tensor(point, dtype=root_pos.dtype, device=root_pos.device)
        pos.append(pos[link] + (rot[link] @ point_t.unsqueeze(-1)).squeeze(-1))
    return torch.stack(pos, dim=-2)


def pose_positions(poses: np.ndarray) -> np.ndarray:
    """Poses [..., 43] (numpy) -> world positions [..., 19, 3] (float64)."""
    poses_t = torch.as_tensor(np.asarray(poses, np.float64))
    spherical = torch.stack(
        [quat_to_matrix(poses_t[..., sl]) for _, dof, sl in POSE_SLICES if dof == 4], dim=-3
    )
    revolute = torch.stack([poses_t[..., sl][..., 0] for _, dof, sl in POSE_SLICES if dof == 1], dim=-1)
    return forward_kinematics(
        poses_t[..., :3], quat_to_matrix(poses_t[..., 3:7]), spherical, revolute
    ).numpy()


def heading(root_quat: np.ndarray) -> np.ndarray:
    """Yaw about +y [...] of root rotations [..., 4] (w, x, y, z): the angle of the body's forward
    (+x) axis projected on the ground, 0 when it faces +x."""
    m = quat_to_matrix(torch.as_tensor(np.asarray(root_quat, np.float64))).numpy()
    fwd = m[..., :, 0]
    return np.arctan2(-fwd[..., 2], fwd[..., 0])


def yaw_quat(angle: float) -> np.ndarray:
    """The rotation about +y by `angle`, as (w, x, y, z)."""
    return np.array([math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0])


def quat_mul_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions [..., 4] (w, x, y, z)."""
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )
