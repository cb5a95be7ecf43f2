"""Render 3D scenes (spec3d.py) with PyBullet's TinyRenderer: RGB, depth and instance segmentation
from the spec's camera, plus the ground-truth clip streams built on them (clips.py calls
`render_clip_3d`).

A fresh DIRECT client per clip holds visual-only copies of the scene's bodies and statics (no
collision shapes, no physics): each frame puts every body at its stored pose and calls
getCameraImage with ER_TINY_RENDERER, a CPU rasteriser that is deterministic and needs no display.
So clips are rendered from the stored states, never by re-simulating, and the same states give the
same bytes in any process.

Camera conventions (stored with every clip):
  intrinsics K   [[f, 0, W/2], [0, f, H/2], [0, 0, 1]] in pixels, f = (H/2) / tan(fov/2), fov
                 the spec's vertical field of view; pixel (r, c) has its centre at (c + .5, r + .5)
  extrinsics     4 x 4 world-to-camera [R | t] with OpenCV axes (x right, y down, z forward), from
                 the spec's position, target and up; the camera does not move within a clip
  depth          metres along the camera's z axis (the z-buffer linearised with near and far)
The OpenGL view and projection matrices handed to PyBullet are built from the same numbers, so
projecting a point with K and the extrinsics lands where TinyRenderer draws it.

Forward flow: each body pixel is unprojected with its depth, carried by its body's rigid motion from
clip frame t to t + 1 (x' = R1 R0^T (x - p0) + p1), and projected again. Visible fraction: visible
pixels over the area, in pixels, of the body's whole silhouette, in the image or not, so a body half
out of view or half hidden reads 0.5: exact for spheres (the ellipse they project to), the convex
hull of the projected corners for boxes, of the two rims for cylinders and of dense samples of the
two end spheres for capsules (the silhouette of a convex body is the hull of its projection).
"""

from __future__ import annotations

import math

import numpy as np

from physworld.data.clip_config import SEG_STATIC, ClipConfig, ClipError, boxes_and_counts, frame_plan

BACKGROUND = (250, 250, 250)  # as the 2D renderer's
LIGHT_DIRECTION = (2.0, 1.0, 4.0)  # fixed, so every clip is lit the same way
_CAP_SAMPLES = 256  # points on each end sphere of a capsule, whose projected hull is its silhouette
_RIM_SAMPLES = 64  # points on each rim of a cylinder (the hull of the rims is the cylinder)
_DIRECTIONS = 256  # support directions sampled to find a projected hull's vertices


# ---------------------------------------------------------------- camera


def camera_3d(cam: dict, width: int, height: int) -> dict:
    """The clip's camera: intrinsics, extrinsics (OpenCV axes) and the spec's own numbers."""
    pos = np.asarray(cam["position"], dtype=np.float64)
    forward = np.asarray(cam["target"], dtype=np.float64) - pos
    if not np.linalg.norm(forward) > 0:
        raise ValueError("camera: position and target coincide; the camera must look somewhere")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(cam["up"], dtype=np.float64))
    if not np.linalg.norm(right) > 1e-9:
        raise ValueError("camera.up: parallel to the viewing direction; choose an up vector across it")
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    rot = np.stack([right, -true_up, forward])  # OpenCV: x right, y down, z forward
    ext = np.eye(4)
    ext[:3, :3] = rot
    ext[:3, 3] = -rot @ pos
    fov = float(cam["fov"])
    if not 0 < fov < 180:
        raise ValueError(f"camera.fov: {fov} degrees; need a vertical field of view in (0, 180)")
    near, far = float(cam["near"]), float(cam["far"])
    if not 0 < near < far:
        raise ValueError(f"camera.near {near}, far {far}: need 0 < near < far")
    f = 0.5 * height / math.tan(math.radians(fov) / 2)
    k = [[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]]
    return {
        "kind": "pinhole_3d",
        "width": width,
        "height": height,
        "intrinsics": k,
        "extrinsics": ext.tolist(),
        "near": near,
        "far": far,
        "fov": fov,
        "position": list(map(float, pos)),
        "target": list(map(float, cam["target"])),
        "up": list(map(float, cam["up"])),
        "note": "K and extrinsics (world to camera, OpenCV axes x right, y down, z forward); pixel (r, c) "
        "has its centre at (c + 0.5, r + 0.5); depth in metres along z",
    }


def project_points(points, camera: dict) -> np.ndarray:
    """World points [..., 3] -> continuous pixel (col, row) [..., 2]; NaN for points behind the camera."""
    p = np.asarray(points, dtype=np.float64)
    ext, k = np.asarray(camera["extrinsics"]), np.asarray(camera["intrinsics"])
    cam = p @ ext[:3, :3].T + ext[:3, 3]
    z = cam[..., 2:3]
    uv = (cam[..., :2] * np.array([k[0, 0], k[1, 1]])) / np.where(z > 0, z, np.nan) + k[:2, 2]
    return uv


def _gl_matrices(camera: dict) -> tuple[list, list]:
    """Column-major OpenGL view and projection matrices equivalent to the camera's K and extrinsics."""
    ext = np.asarray(camera["extrinsics"])
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL's (y up, looking down -z)
    view = flip @ ext
    n, f = camera["near"], camera["far"]
    t = math.tan(math.radians(camera["fov"]) / 2)
    aspect = camera["width"] / camera["height"]
    proj = np.array(
        [
            [1 / (t * aspect), 0, 0, 0],
            [0, 1 / t, 0, 0],
            [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0, 0, -1, 0],
        ]
    )
    # TinyRenderer samples pixel column c at window x = c and row r at window y = H - 1 - r
    # (measured: a sphere's mask centroid sat half a pixel off its projected centre); shifting
    # the image by half a pixel in x and y makes it sample at pixel centres, K's convention.
    proj[0, 2] += 1.0 / camera["width"]
    proj[1, 2] += 1.0 / camera["height"]
    return view.T.ravel().tolist(), proj.T.ravel().tolist()


# ---------------------------------------------------------------- the visual scene


def _rgba(item: dict) -> list[float]:
    from physworld.worlds.spec3d import COLORS

    c = item.get("color", "gray")
    rgb = COLORS[c] if isinstance(c, str) else c
    return [v / 255.0 for v in rgb] + [1.0]


def _visual(p, client, s: dict, where: str) -> int:
    kind = s.get("shape", s.get("kind"))
    rgba = _rgba(s)
    if kind == "sphere":
        return p.createVisualShape(p.GEOM_SPHERE, radius=s["radius"], rgbaColor=rgba, physicsClientId=client)
    if kind == "box":
        half = [0.5 * v for v in s["size"]]
        return p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=client)
    if kind in ("cylinder", "capsule"):
        geom = p.GEOM_CYLINDER if kind == "cylinder" else p.GEOM_CAPSULE
        return p.createVisualShape(
            geom, radius=s["radius"], length=s["height"], rgbaColor=rgba, physicsClientId=client
        )
    if kind == "plane":  # drawn as a thin square slab of the plane's `extent` half size
        e = float(s.get("extent", 10.0))
        return p.createVisualShape(
            p.GEOM_BOX, halfExtents=[e, e, 1e-3], rgbaColor=rgba, physicsClientId=client
        )
    raise ValueError(f"{where}: unknown shape {kind!r}; expected sphere, box, cylinder, capsule or plane")


def _quat_z_to(normal) -> list[float]:
    """A quaternion (x, y, z, w) turning the z axis onto `normal`."""
    n = np.asarray(normal, dtype=np.float64)
    n /= np.linalg.norm(n)
    axis = np.cross([0.0, 0.0, 1.0], n)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return [0.0, 0.0, 0.0, 1.0] if n[2] > 0 else [1.0, 0.0, 0.0, 0.0]
    angle = math.atan2(s, n[2])
    axis /= s
    return [*(axis * math.sin(angle / 2)), math.cos(angle / 2)]


def build_visual_scene(p, client, spec: dict) -> tuple[list[int], set[int]]:
    """Visual-only multibodies for the spec's bodies and statics; returns (body uids, static uids)."""
    static_ids = set()
    for i, s in enumerate(spec.get("statics", [])):
        shape = _visual(p, client, s, f"statics[{i}]")
        if s["kind"] == "plane":
            n = np.asarray(s["normal"], dtype=np.float64)
            pos = (n / np.linalg.norm(n) * (s["offset"] - 1e-3)).tolist()
            orn = _quat_z_to(n)
        else:
            pos, orn = s["position"], s["orientation"]
        static_ids.add(
            p.createMultiBody(0.0, -1, shape, pos, orn, useMaximalCoordinates=True, physicsClientId=client)
        )
    body_ids = []
    for i, b in enumerate(spec["bodies"]):
        shape = _visual(p, client, b, f"bodies[{i}]")
        body_ids.append(
            p.createMultiBody(
                0.0,
                -1,
                shape,
                b["position"],
                b["orientation"],
                useMaximalCoordinates=True,
                physicsClientId=client,
            )
        )
    return body_ids, static_ids


def render_views(spec: dict, poses: np.ndarray, camera: dict, shadows: bool = False) -> dict:
    """rgb uint8 [T, H, W, 3], depth float32 [T, H, W] (metres; far where nothing is drawn) and
    segmentation uint16 [T, H, W] for body poses [T, N, 7] (position, quaternion xyzw)."""
    from physworld.worlds.bullet import pybullet_module

    p = pybullet_module()
    w, h = camera["width"], camera["height"]
    view, proj = _gl_matrices(camera)
    n_near, n_far = camera["near"], camera["far"]
    client = p.connect(p.DIRECT)
    try:
        body_ids, static_ids = build_visual_scene(p, client, spec)
        lut_size = max([*body_ids, *static_ids, 0]) + 2
        lut = np.zeros(lut_size, dtype=np.uint16)  # uid + 1 -> label; index 0 is the background (-1)
        for k, uid in enumerate(body_ids):
            lut[uid + 1] = k + 1
        for uid in static_ids:
            lut[uid + 1] = SEG_STATIC
        t_len = len(poses)
        rgb = np.empty((t_len, h, w, 3), dtype=np.uint8)
        depth = np.empty((t_len, h, w), dtype=np.float32)
        seg = np.empty((t_len, h, w), dtype=np.uint16)
        for t in range(t_len):
            for k, uid in enumerate(body_ids):
                pose = poses[t, k].astype(np.float64)
                p.resetBasePositionAndOrientation(uid, pose[:3], pose[3:7], physicsClientId=client)
            _, _, img, zbuf, ids = p.getCameraImage(
                w, h, view, proj,
                renderer=p.ER_TINY_RENDERER, shadow=int(shadows), lightDirection=LIGHT_DIRECTION,
                physicsClientId=client,
            )  # fmt: skip
            img = np.asarray(img, dtype=np.uint8).reshape(h, w, 4)
            rgb[t] = img[..., :3]
            z = np.asarray(zbuf, dtype=np.float64).reshape(h, w)
            depth[t] = (n_far * n_near / (n_far - (n_far - n_near) * z)).astype(np.float32)
            ids = np.asarray(ids, dtype=np.int64).reshape(h, w)
            seg[t] = lut[np.clip(ids + 1, 0, lut_size - 1)]
        background = seg == 0
        rgb[background] = BACKGROUND
    finally:
        p.disconnect(physicsClientId=client)
    return {"rgb": rgb, "depth": depth, "segmentation": seg}


# ---------------------------------------------------------------- ground truth from the states


def _rotations(quat: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (x, y, z, w), normalised first."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def forward_flow_3d(seg, depth, states0, states1, camera: dict) -> np.ndarray:
    """Flow [H, W, 2] (d col, d row) of one frame: body pixels unprojected with their depth, moved
    with their body's rigid transform from states0 to states1 ([N, >=7]), projected again."""
    h, w = seg.shape
    flow = np.zeros((h, w, 2), dtype=np.float32)
    n = len(states0)
    sel = (seg >= 1) & (seg <= n)
    if not sel.any():
        return flow
    rows, cols = np.nonzero(sel)
    body = seg[rows, cols].astype(np.int64) - 1
    k, ext = np.asarray(camera["intrinsics"]), np.asarray(camera["extrinsics"])
    u, v = cols + 0.5, rows + 0.5
    z = depth[rows, cols].astype(np.float64)
    cam_pts = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], -1)
    world = (cam_pts - ext[:3, 3]) @ ext[:3, :3]  # R^T (x - t)
    r0, r1 = _rotations(states0[:, 3:7]), _rotations(states1[:, 3:7])
    p0, p1 = states0[:, :3].astype(np.float64), states1[:, :3].astype(np.float64)
    local = np.einsum("nji,nj->ni", r0[body], world - p0[body])  # R0^T (x - p0)
    moved = np.einsum("nij,nj->ni", r1[body], local) + p1[body]
    uv = project_points(moved, camera)
    flow[rows, cols, 0] = uv[:, 0] - u
    flow[rows, cols, 1] = uv[:, 1] - v
    return np.nan_to_num(flow, nan=0.0)


def _surface_samples(body: dict) -> np.ndarray:
    """Points [P, 3] in the body's frame whose convex hull is (or closely fills) the body."""
    s = body["shape"]
    if s == "box":
        half = 0.5 * np.asarray(body["size"], dtype=np.float64)
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        return signs * half
    r, half = float(body["radius"]), 0.5 * float(body["height"])
    if s == "cylinder":
        a = np.linspace(0, 2 * math.pi, _RIM_SAMPLES, endpoint=False)
        ring = np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(a)], -1)
        return np.concatenate([ring + [0, 0, half], ring - [0, 0, half]])
    if s == "capsule":
        k = np.arange(_CAP_SAMPLES) + 0.5  # a Fibonacci sphere: even cover of the unit sphere
        phi = np.arccos(1 - 2 * k / _CAP_SAMPLES)
        theta = math.pi * (1 + 5**0.5) * k
        unit = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)
        return np.concatenate([unit * r + [0, 0, half], unit * r - [0, 0, half]])
    raise ValueError(f"unknown shape {s!r}")


def _sphere_silhouette(centres: np.ndarray, radius: float, camera: dict) -> np.ndarray:
    """Exact area in pixels of the ellipse a sphere projects to, for camera-frame centres [T, 3].

    The tangent cone from the eye has half-angle a (sin a = r / d) and its axis makes angle b with
    the optical axis; its section by the image plane z = 1 has area pi sin^2 a cos a /
    (cos^2 b - sin^2 a)^(3/2), times fx fy in pixels. 0 where the sphere reaches behind the eye."""
    k = np.asarray(camera["intrinsics"])
    d = np.linalg.norm(centres, axis=-1)
    sin_a2 = np.minimum((radius / np.maximum(d, 1e-12)) ** 2, 1.0)
    cos_b2 = (centres[..., 2] / np.maximum(d, 1e-12)) ** 2
    room = cos_b2 - sin_a2
    ok = (centres[..., 2] > 0) & (room > 0)
    area = np.pi * sin_a2 * np.sqrt(1 - sin_a2) / np.where(ok, room, 1.0) ** 1.5
    return np.where(ok, area * k[0, 0] * k[1, 1], 0.0)


def _hull_areas(points: np.ndarray) -> np.ndarray:
    """Areas of the convex hulls of point sets [T, P, 2] -> [T], all at once: for _DIRECTIONS evenly
    spread directions take the point furthest along each (a hull vertex), and sum the polygon those
    vertices make in angular order (repeats add nothing). Vertices whose outward normals all fall
    between two sampled directions are skipped, which can only shrink the area, by well under 0.1%
    for 256 directions."""
    angles = np.linspace(0.0, 2 * math.pi, _DIRECTIONS, endpoint=False)
    dirs = np.stack([np.cos(angles), np.sin(angles)])  # [2, D]
    best = np.argmax(points @ dirs, axis=1)  # [T, D]
    v = np.take_along_axis(points, best[..., None], axis=1)  # [T, D, 2]
    x, y = v[..., 0], v[..., 1]
    return 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))


def silhouette_pixels(spec: dict, states: np.ndarray, camera: dict) -> np.ndarray:
    """Area in pixels of every body's whole silhouette, float64 [T, N] (0 when behind the camera)."""
    t_len, n = states.shape[:2]
    area = np.zeros((t_len, n))
    rot = _rotations(states[..., 3:7])
    ext = np.asarray(camera["extrinsics"])
    for i, b in enumerate(spec["bodies"]):
        if b["shape"] == "sphere":
            centres = states[:, i, :3].astype(np.float64) @ ext[:3, :3].T + ext[:3, 3]
            area[:, i] = _sphere_silhouette(centres, float(b["radius"]), camera)
            continue
        local = _surface_samples(b)
        pts = np.einsum("tij,pj->tpi", rot[:, i], local) + states[:, i, None, :3].astype(np.float64)
        uv = project_points(pts, camera)
        ok = np.isfinite(uv).all(axis=(1, 2))
        area[ok, i] = _hull_areas(uv[ok])
    return area


def render_clip_3d(record: dict, config: ClipConfig) -> dict:
    spec, states = record["spec"], np.asarray(record["states"])
    idx = frame_plan(record, config)
    res = config.resolution
    try:
        camera = camera_3d(spec["camera"], res, res)
    except (KeyError, TypeError, ValueError) as e:
        raise ClipError(
            f"scene {record.get('scene_id')} ({record.get('scenario_type')}): bad camera in its spec: {e}; "
            "give it position, target, up, fov (degrees, vertical), near and far as spec3d.look_at does"
        ) from e
    clip_states = np.ascontiguousarray(states[idx[:-1]], dtype=np.float32)
    views = render_views(spec, clip_states[..., :7], camera)
    seg, depth = views["segmentation"], views["depth"]
    n = states.shape[1]
    flow = np.stack(
        [
            forward_flow_3d(seg[t], depth[t], states[idx[t]], states[idx[t + 1]], camera)
            for t in range(config.frames)
        ]
    )
    counts, boxes = boxes_and_counts(seg, n)
    area = silhouette_pixels(spec, clip_states, camera)
    fraction = np.where(area > 0, np.minimum(1.0, counts / np.maximum(area, 1e-12)), 0.0)
    return {
        "rgb": views["rgb"],
        "segmentation": seg,
        "depth": depth,
        "flow": flow,
        "visible_pixels": counts,
        "visible_fraction": fraction.astype(np.float32),
        "bboxes": boxes,
        "states": clip_states,
        "frame_indices": idx[:-1].astype(np.int32),
        "fps": float(config.fps),
        "camera": camera,
    }
