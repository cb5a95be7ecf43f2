"""Render scene trajectories to RGB frames and per-pixel body masks: what every vision model sees.

    rgb, masks = render_frames(spec, simulate(spec, 120)["states"], width=128)
    write_gif("scene.gif", rgb)

Geometry. The 800 x 600 world (y up) is scaled onto a `width` x `height` image (height defaults to
`round(width * 3 / 4)`; any size works, a different aspect stretches the world). Row 0 is the world's
top edge. A world point (x, y) lies at continuous pixel coordinates
    column = x * width / 800,   row = (600 - y) * height / 600
and pixel (r, c) is the unit square whose centre is (r + 0.5, c + 0.5); see `world_to_pixel`.

Masks are exact hard-edged coverage: a pixel belongs to a shape when its centre lies inside the
shape (boundary included), tested in world coordinates. Values: 0 background, -1 static geometry
(MASK_STATIC), i + 1 for body i. Where bodies overlap, the body with the higher index wins (it is
drawn later), in the mask and in the RGB image alike. Joints appear in the RGB image only: they are
drawn as thin lines over static geometry and under bodies, and leave the mask untouched.

Drawing. Background, static geometry (grey), joints (dark grey), then bodies in index order, each
filled with its palette colour (PALETTE, cycled beyond its length with deterministic extra colours,
see `body_colors`). Circles carry a line from centre to rim along the body's angle, in a dark shade
of their colour, so rotation is visible; boxes and polygons show it by their outline. Kinematic
bodies (paddles, flippers) are filled with diagonal stripes of their colour and its dark shade,
fixed in the body's frame. Lines (joints, rotation markers) are `line_width(width)` px wide.
Static segments are capsules of their radius (at least half a pixel, so a radius-0 segment still
shows). Polygons are drawn as the convex hull of their vertices, as pymunk builds them.

Implementation. Pure numpy and deterministic (same input, identical bytes). Each body is rasterised
for a block of frames at once: its pixel tile is the largest per-frame bounding box over the
block, pixel centres are mapped to world coordinates (NaN outside the image, so every test fails
there), and coverage is a single broadcast comparison for a disc (dy^2 <= r^2 - dx^2) and one per
edge for a convex polygon (half-plane tests with the edge normals rotated by the body's angle).
Covered pixels write a small integer paint code into a uint16 canvas; two table look-ups turn the
canvas into RGB and mask. Thin lines are rasterised along their major axis with an exact distance
test on a few pixels across. bench/bench_render.py measures it against Pillow's ImageDraw and
against the simulator.

Video helpers: `write_gif` and `write_mp4` (imageio; imageio-ffmpeg for MP4) write atomically;
`side_by_side` and `grid` assemble comparison videos and galleries.
"""

from __future__ import annotations

import colorsys
import importlib.util
import math
import os
import tempfile

import numpy as np

WORLD_WIDTH = 800.0
WORLD_HEIGHT = 600.0

BACKGROUND = (250, 250, 250)
STATIC_COLOR = (128, 128, 128)
JOINT_COLOR = (60, 60, 60)
DARK_SHADE = 0.45  # rotation lines and kinematic stripes: the body's colour times this
MASK_BACKGROUND = 0
MASK_STATIC = -1

# Kelly's colours of maximum contrast without white, black and grey (they would clash with the
# background, joints and static geometry), plus teal: 20 colours, distinct from each other.
PALETTE = np.array(
    [
        (0xBE, 0x00, 0x32),  # red
        (0x00, 0x67, 0xA5),  # blue
        (0xF3, 0xC3, 0x00),  # yellow
        (0x00, 0x88, 0x56),  # green
        (0xF3, 0x84, 0x00),  # orange
        (0x87, 0x56, 0x92),  # purple
        (0xA1, 0xCA, 0xF1),  # light blue
        (0x88, 0x2D, 0x17),  # reddish brown
        (0x8D, 0xB6, 0x00),  # yellow green
        (0xE6, 0x8F, 0xAC),  # purplish pink
        (0x60, 0x4E, 0x97),  # violet
        (0xF6, 0xA6, 0x00),  # orange yellow
        (0xB3, 0x44, 0x6C),  # purplish red
        (0xDC, 0xD3, 0x00),  # greenish yellow
        (0x00, 0x96, 0x96),  # teal
        (0xF9, 0x93, 0x79),  # yellowish pink
        (0x65, 0x45, 0x22),  # yellowish brown
        (0xC2, 0xB2, 0x80),  # buff
        (0xE2, 0x58, 0x22),  # reddish orange
        (0x2B, 0x3D, 0x26),  # olive green
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

_BLOCK_PIXELS = 1 << 20  # frames are rendered in blocks of about this many pixels
_COORD_LIMIT = 1e7  # world coordinates are clipped to this before conversion to pixel indices


def default_height(width: int) -> int:
    """The height that keeps the world's 4:3 aspect at `width`."""
    return max(1, round(width * WORLD_HEIGHT / WORLD_WIDTH))


def line_width(width: int) -> float:
    """Width in pixels of joints and rotation lines: 1 px up to 256 px wide images, then growing."""
    return max(1.0, width / 256.0)


def world_to_pixel(points, width: int = 256, height: int | None = None) -> np.ndarray:
    """World (x, y) -> continuous pixel (column, row); pixel (r, c) has its centre at (c + .5, r + .5)."""
    height = default_height(width) if height is None else height
    p = np.asarray(points, dtype=np.float64)
    return np.stack(
        [p[..., 0] * (width / WORLD_WIDTH), (WORLD_HEIGHT - p[..., 1]) * (height / WORLD_HEIGHT)], -1
    )


def body_colors(n: int, palette=PALETTE) -> np.ndarray:
    """Colours of bodies 0..n-1 as uint8 [n, 3]: the palette, then deterministic extra colours.

    Beyond the palette, hues step by the golden ratio with alternating lightness, so colours stay
    distinct for a while and never depend on anything but the index.
    """
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if n <= len(pal):
        return pal[:n].copy()
    extra = []
    for k in range(n - len(pal)):
        hue = (0.13 + k * 0.6180339887498949) % 1.0
        light, sat = (0.45, 0.75) if k % 2 == 0 else (0.62, 0.65)
        extra.append([round(255 * c) for c in colorsys.hls_to_rgb(hue, light, sat)])
    return np.concatenate([pal, np.asarray(extra, dtype=np.uint8)])


# ---------------------------------------------------------------- geometry helpers


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of [n, 2] points, without repeated points."""
    pts = sorted({(float(x), float(y)) for x, y in points})
    if len(pts) <= 2:
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1], dtype=np.float64)


def _half_planes(hull: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inward normals [k, 2] and offsets [k] of a CCW convex polygon: inside iff n . p >= d."""
    e = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-e[:, 1], e[:, 0]], axis=1)
    return normals, (normals * hull).sum(1)


class _Raster:
    """The image grid: pixel <-> world mapping and tiles of pixel centres."""

    def __init__(self, width: int, height: int):
        self.w, self.h = int(width), int(height)
        self.sx = self.w / WORLD_WIDTH
        self.sy = self.h / WORLD_HEIGHT

    def tiles(self, xmin, xmax, ymin, ymax):
        """Per-frame pixel tiles covering world boxes (arrays [F]).

        Returns (frames, c0, r0, nc, nr): the frames whose box touches the image, their tiles'
        first column and row, and the common tile size (the largest box, clipped to the image).
        None when no frame's box touches the image.
        """
        finite = np.isfinite(xmin) & np.isfinite(xmax) & np.isfinite(ymin) & np.isfinite(ymax)
        lim = _COORD_LIMIT

        def clean(a):
            return np.clip(np.where(finite, a, 0.0), -lim, lim)

        xmin, xmax, ymin, ymax = clean(xmin), clean(xmax), clean(ymin), clean(ymax)
        # One pixel of slack on each side: boundary pixels are decided by the exact tests.
        c_first = np.floor(xmin * self.sx - 0.5).astype(np.int64)
        c_last = np.ceil(xmax * self.sx - 0.5).astype(np.int64)
        r_first = np.floor((WORLD_HEIGHT - ymax) * self.sy - 0.5).astype(np.int64)
        r_last = np.ceil((WORLD_HEIGHT - ymin) * self.sy - 0.5).astype(np.int64)
        keep = finite & (c_last >= 0) & (c_first < self.w) & (r_last >= 0) & (r_first < self.h)
        if not keep.any():
            return None
        frames = np.flatnonzero(keep)
        c_first = np.maximum(c_first[frames], 0)
        c_last = np.minimum(c_last[frames], self.w - 1)
        r_first = np.maximum(r_first[frames], 0)
        r_last = np.minimum(r_last[frames], self.h - 1)
        nc = int((c_last - c_first).max()) + 1
        nr = int((r_last - r_first).max()) + 1
        return frames, c_first, r_first, nc, nr

    def centres(self, c0, r0, nc, nr):
        """World x [F, 1, nc] and y [F, nr, 1] of tile pixel centres; NaN outside the image."""
        cols = c0[:, None] + np.arange(nc)
        rows = r0[:, None] + np.arange(nr)
        x = (cols + 0.5) / self.sx
        y = WORLD_HEIGHT - (rows + 0.5) / self.sy
        x[cols >= self.w] = np.nan
        y[rows >= self.h] = np.nan
        return x[:, None, :], y[:, :, None]


def _covered(cover: np.ndarray, frames, c0, r0, frame_pixels: int, width: int, dark=None):
    """Flat canvas indices of a tile stack's covered pixels, and which of them are dark (or None)."""
    f, i, j = np.nonzero(cover)
    idx = frames[f] * frame_pixels + (r0[f] + i) * width + (c0[f] + j)
    return idx, (None if dark is None else dark[f, i, j])


# ---------------------------------------------------------------- shapes


class _Shape:
    """A body's or static's geometry in its own frame, prepared for rasterising."""

    def __init__(self, kind: str, radius: float = 0.0, vertices=None, a=None, b=None):
        self.kind = kind  # "circle" | "poly" | "capsule" (static segments only)
        self.radius = float(radius)
        if kind == "poly":
            hull = _convex_hull(np.asarray(vertices, dtype=np.float64))
            self.vertices = hull
            self.normals, self.offsets = _half_planes(hull) if len(hull) >= 3 else (None, None)
        elif kind == "capsule":
            self.a = np.asarray(a, dtype=np.float64)
            self.b = np.asarray(b, dtype=np.float64)

    @classmethod
    def of_body(cls, body: dict) -> _Shape:
        kind = body["shape"]
        if kind == "circle":
            return cls("circle", radius=body["radius"])
        if kind == "box":
            hw, hh = 0.5 * body["width"], 0.5 * body["height"]
            return cls("poly", vertices=[(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)])
        if kind == "poly":
            return cls("poly", vertices=body["vertices"])
        raise ValueError(f"unknown body shape {kind!r}; expected circle, box or poly")

    @classmethod
    def of_static(cls, s: dict, min_radius: float) -> _Shape:
        kind = s["kind"]
        if kind == "segment":
            return cls("capsule", radius=max(float(s["radius"]), min_radius), a=s["a"], b=s["b"])
        if kind == "poly":
            return cls("poly", vertices=s["vertices"])
        if kind == "circle":
            shape = cls("circle", radius=s["radius"])
            shape.center = np.asarray(s["center"], dtype=np.float64)
            return shape
        raise ValueError(f"unknown static kind {kind!r}; expected segment, poly or circle")

    def boxes(self, x, y, c, s):
        """World bounding boxes [F] at positions x, y and rotations (cos c, sin s)."""
        if self.kind == "circle":
            r = self.radius
            return x - r, x + r, y - r, y + r
        if self.kind == "capsule":
            r = self.radius
            lo, hi = np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r
            return x + lo[0], x + hi[0], y + lo[1], y + hi[1]
        u, v = self.vertices[:, 0], self.vertices[:, 1]
        wx = x[:, None] + c[:, None] * u - s[:, None] * v
        wy = y[:, None] + s[:, None] * u + c[:, None] * v
        return wx.min(1), wx.max(1), wy.min(1), wy.max(1)

    def cover(self, dx, dy, c, s):
        """Coverage [F, nr, nc] from offsets to the body's position dx [F, 1, nc], dy [F, nr, 1]."""
        if self.kind == "circle":
            return dy * dy <= self.radius**2 - dx * dx
        if self.kind == "capsule":
            e = self.b - self.a
            ax, ay = dx - self.a[0], dy - self.a[1]
            len2 = float(e @ e)
            t = np.clip((ax * e[0] + ay * e[1]) / len2, 0.0, 1.0) if len2 > 0 else 0.0
            qx, qy = ax - t * e[0], ay - t * e[1]
            return qx * qx + qy * qy <= self.radius**2
        if self.normals is None:  # a degenerate polygon covers no pixel centre reliably
            return np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=bool)
        cover = None
        for (nx, ny), d in zip(self.normals, self.offsets, strict=True):
            # n_world . (dx, dy) >= d with n_world = R(angle) n_local; split so that the only
            # full-tile operation is the comparison itself.
            nwx = (c * nx - s * ny)[:, None, None]
            nwy = (s * nx + c * ny)[:, None, None]
            inside = nwy * dy >= d - nwx * dx
            if cover is None:
                cover = inside
            else:
                cover &= inside
        return cover


def _draw(raster: _Raster, shape: _Shape, x, y, angle, marker_hw=0.0, stripes=0.0):
    """Rasterise one shape for a block of frames (x, y, angle: [F]).

    Returns (flat indices into the block's [F, H, W] canvas, dark flags per index or None), or
    None when the shape covers no pixel of the block.
    marker_hw > 0 marks the rotation line (half-width in world units) of a circle as dark;
    stripes > 0 marks stripes of that period (world units), fixed in the body's frame, as dark.
    """
    c, s = np.cos(angle), np.sin(angle)
    tiles = raster.tiles(*shape.boxes(x, y, c, s))
    if tiles is None:
        return None
    frames, c0, r0, nc, nr = tiles
    X, Y = raster.centres(c0, r0, nc, nr)
    x, y, c, s = x[frames], y[frames], c[frames], s[frames]
    dx = X - x[:, None, None]
    dy = Y - y[:, None, None]
    cover = shape.cover(dx, dy, c, s)
    dark = None
    if marker_hw > 0 or stripes > 0:
        cc, ss = c[:, None, None], s[:, None, None]
        u = cc * dx + ss * dy  # body frame coordinates of the pixel centres
        v = cc * dy - ss * dx
        if stripes > 0:
            dark = np.floor((u + v) * (1.0 / stripes)) % 2 == 1
        if marker_hw > 0:
            line = (u >= 0) & (np.abs(v) <= marker_hw)
            dark = line if dark is None else dark ^ line
    return _covered(cover, frames, c0, r0, raster.h * raster.w, raster.w, dark)


def _line_pixels(p0: np.ndarray, p1: np.ndarray, hw: float, height: int, width: int):
    """Pixels whose centres lie within hw of the segments p0-p1 ([M, 2] as (column, row) pixels).

    Walks each segment along its major axis and tests a few pixels across it exactly, so the cost
    is proportional to the segment's length, not its bounding box. Returns (segment, row, col).
    """
    out_m, out_r, out_c = [], [], []
    delta = p1 - p0
    steep = np.abs(delta[:, 1]) >= np.abs(delta[:, 0])  # mostly vertical: walk the rows
    reach = int(math.ceil(hw * 1.5)) + 2
    for major, group in ((1, steep), (0, ~steep)):
        sel = np.flatnonzero(group & np.isfinite(p0).all(1) & np.isfinite(p1).all(1))
        if sel.size == 0:
            continue
        minor = 1 - major
        lim_major, lim_minor = (height, width) if major == 1 else (width, height)
        a, b = np.clip(p0[sel], -_COORD_LIMIT, _COORD_LIMIT), np.clip(p1[sel], -_COORD_LIMIT, _COORD_LIMIT)
        am, an, bm, bn = a[:, major], a[:, minor], b[:, major], b[:, minor]
        lo = np.maximum(np.floor(np.minimum(am, bm) - hw - 0.5), 0).astype(np.int64)
        hi = np.minimum(np.ceil(np.maximum(am, bm) + hw - 0.5), lim_major - 1).astype(np.int64)
        if (hi < lo).all():
            continue
        steps = int((hi - lo).max()) + 1
        m_idx = lo[:, None] + np.arange(steps)  # [S, L]
        valid = m_idx <= hi[:, None]
        dm, dn = (bm - am)[:, None], (bn - an)[:, None]
        safe_dm = np.where(dm == 0, 1.0, dm)
        t = np.where(dm == 0, 0.0, np.clip((m_idx + 0.5 - am[:, None]) / safe_dm, 0.0, 1.0))
        n_line = an[:, None] + t * dn  # minor coordinate of the segment at each step
        n_idx = np.floor(n_line).astype(np.int64)[:, :, None] + np.arange(-reach, reach + 1)  # [S, L, K]
        pm = (m_idx + 0.5 - am[:, None])[:, :, None]
        pn = n_idx + 0.5 - an[:, None, None]
        len2 = (dm * dm + dn * dn)[:, :, None]
        dm3, dn3 = dm[:, :, None], dn[:, :, None]
        tt = np.where(len2 > 0, np.clip((pm * dm3 + pn * dn3) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0), 0.0)
        qm, qn = pm - tt * dm3, pn - tt * dn3
        cover = (qm * qm + qn * qn <= hw * hw) & valid[:, :, None] & (n_idx >= 0) & (n_idx < lim_minor)
        si, li, ki = np.nonzero(cover)
        mi, ni = m_idx[si, li], n_idx[si, li, ki]
        out_m.append(sel[si])
        out_r.append(mi if major == 1 else ni)
        out_c.append(ni if major == 1 else mi)
    if not out_m:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(out_m), np.concatenate(out_r), np.concatenate(out_c)


# ---------------------------------------------------------------- rendering


def _states_array(states) -> np.ndarray:
    if isinstance(states, dict):
        states = states["states"]
    arr = np.asarray(states)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"states must be [frames, bodies, >=3] (x, y, angle, ...), got shape {arr.shape}")
    return arr


def _frame_indices(frames, total: int) -> np.ndarray:
    if frames is None:
        return np.arange(total)
    if isinstance(frames, slice):
        return np.arange(total)[frames]
    idx = np.asarray(frames, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -total or idx.max() >= total):
        raise IndexError(f"frames out of range for a trajectory of {total} frames")
    return np.where(idx < 0, idx + total, idx)


def _joint_anchors(spec: dict, states: np.ndarray):
    """World anchor points of every anchored joint: (a, b) each [F, J, 2]; None if there are none."""
    joints = [c for c in spec.get("constraints", ()) if "anchor_a" in c and "anchor_b" in c]
    if not joints:
        return None
    ends = []
    for side in ("a", "b"):
        pts = []
        for c in joints:
            i = c[side]
            anchor = np.asarray(c["anchor_" + side], dtype=np.float64)
            if i < 0:
                pts.append(np.broadcast_to(anchor, (len(states), 2)))
            else:
                x, y, th = states[:, i, 0], states[:, i, 1], states[:, i, 2]
                co, si = np.cos(th), np.sin(th)
                pts.append(
                    np.stack([x + co * anchor[0] - si * anchor[1], y + si * anchor[0] + co * anchor[1]], -1)
                )
        ends.append(np.stack(pts, axis=1))
    return ends[0], ends[1]


def _static_mask(spec: dict, raster: _Raster) -> np.ndarray:
    """Mask [H, W] of the static geometry: MASK_STATIC where it covers a pixel centre, else 0."""
    mask = np.zeros(raster.h * raster.w, dtype=np.int16)
    zero = np.zeros(1)
    half_px = 0.5 / min(raster.sx, raster.sy)
    for s in spec.get("statics", ()):
        shape = _Shape.of_static(s, half_px)
        x, y = (shape.center[:1], shape.center[1:]) if shape.kind == "circle" else (zero, zero)
        hit = _draw(raster, shape, x, y, zero)
        if hit is not None:
            mask[hit[0]] = MASK_STATIC
    return mask.reshape(raster.h, raster.w)


def _pixels(colors) -> np.ndarray:
    """uint8 [n, 3] colours as [n] 3-byte scalars, for writing whole pixels in one assignment."""
    return np.ascontiguousarray(colors, dtype=np.uint8).reshape(-1, 3).view("V3").reshape(-1)


def render_frames(
    spec: dict,
    states,
    width: int = 256,
    height: int | None = None,
    frames=None,
    background=BACKGROUND,
    palette=PALETTE,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a trajectory: (rgb uint8 [F, H, W, 3], masks int16 [F, H, W]).

    spec: the scene spec the trajectory came from (shapes, statics, joints).
    states: [T, bodies, >=3] with x, y, angle first (engine.simulate's "states", or that dict).
    width, height: the image size; height defaults to keep the 4:3 aspect.
    frames: None (all), a slice, or indices into the trajectory.
    background: RGB of empty space. palette: body colours by index (see body_colors).
    Mask values: 0 background, -1 static geometry, i + 1 body i; a later body wins where bodies overlap.
    """
    height = default_height(width) if height is None else int(height)
    width = int(width)
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    arr = _states_array(states)
    bodies = spec["bodies"]
    if arr.shape[1] != len(bodies):
        raise ValueError(f"states have {arr.shape[1]} bodies but the spec has {len(bodies)}")
    idx = _frame_indices(frames, arr.shape[0])
    pose = arr[idx, :, :3].astype(np.float64)  # [F, N, 3]
    n_frames = len(idx)

    raster = _Raster(width, height)
    static_mask = _static_mask(spec, raster)
    static_rgb = np.where(
        (static_mask == MASK_STATIC)[:, :, None],
        np.asarray(STATIC_COLOR, dtype=np.uint8),
        np.asarray(background, dtype=np.uint8),
    )
    colors = body_colors(len(bodies), palette)
    fills = _pixels(colors)
    darks = _pixels(np.round(colors * DARK_SHADE))
    joint = _pixels(JOINT_COLOR)[0]
    shapes = [_Shape.of_body(b) for b in bodies]
    scale = min(raster.sx, raster.sy)
    hw_px = 0.5 * line_width(width)
    marker_hw = hw_px / scale
    stripe_period = max(2.0, 2.0 * line_width(width)) / scale
    anchors = _joint_anchors(spec, pose)

    rgb = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    masks = np.empty((n_frames, height, width), dtype=np.int16)
    rgb[:] = static_rgb
    masks[:] = static_mask
    frame_pixels = height * width
    block = max(1, _BLOCK_PIXELS // frame_pixels)
    for f0 in range(0, n_frames, block):
        f1 = min(n_frames, f0 + block)
        rgb_flat = rgb[f0:f1].view("V3").reshape(-1)  # views: writes land in rgb and masks
        mask_flat = masks[f0:f1].reshape(-1)
        if anchors is not None:
            pa = world_to_pixel(anchors[0][f0:f1], width, height).reshape(-1, 2)
            pb = world_to_pixel(anchors[1][f0:f1], width, height).reshape(-1, 2)
            seg, rows, cols = _line_pixels(pa, pb, hw_px, height, width)
            rgb_flat[(seg // anchors[0].shape[1]) * frame_pixels + rows * width + cols] = joint
        for i, (shape, body) in enumerate(zip(shapes, bodies, strict=True)):
            hit = _draw(
                raster,
                shape,
                pose[f0:f1, i, 0],
                pose[f0:f1, i, 1],
                pose[f0:f1, i, 2],
                marker_hw=marker_hw if shape.kind == "circle" else 0.0,
                stripes=stripe_period if body.get("kinematic") else 0.0,
            )
            if hit is None:
                continue
            flat, dark = hit
            mask_flat[flat] = i + 1
            rgb_flat[flat] = fills[i]
            if dark is not None:
                rgb_flat[flat[dark]] = darks[i]
    return rgb, masks


# ---------------------------------------------------------------- composition


def _as_stack(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be an image [H, W, 3] or a frame stack [F, H, W, 3], got {arr.shape}")
    return arr


def _pad_to(arr: np.ndarray, height: int, width: int, fill) -> np.ndarray:
    """Pad [..., h, w, 3] at the bottom and right to [..., height, width, 3]."""
    h, w = arr.shape[-3], arr.shape[-2]
    if (h, w) == (height, width):
        return arr
    out = np.empty(arr.shape[:-3] + (height, width, 3), dtype=arr.dtype)
    out[...] = np.asarray(fill, dtype=arr.dtype)
    out[..., :h, :w, :] = arr
    return out


def side_by_side(left, right, gap: int = 4, fill=(255, 255, 255)) -> np.ndarray:
    """Put two images or equally long frame stacks next to each other, `gap` px of `fill` between.

    Both must have the same number of dimensions (and frames); the shorter one is padded at the
    bottom with `fill`.
    """
    a, b = _as_stack(left, "left"), _as_stack(right, "right")
    if a.ndim != b.ndim or (a.ndim == 4 and len(a) != len(b)):
        raise ValueError(f"side_by_side needs matching stacks, got {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype)
    h = max(a.shape[-3], b.shape[-3])
    a, b = (
        _pad_to(a.astype(dtype, copy=False), h, a.shape[-2], fill),
        _pad_to(b.astype(dtype, copy=False), h, b.shape[-2], fill),
    )
    spacer = np.empty(a.shape[:-2] + (gap, 3), dtype=dtype)
    spacer[...] = np.asarray(fill, dtype=dtype)
    return np.concatenate([a, spacer, b], axis=-2)


def grid(images, columns: int, gap: int = 4, fill=(255, 255, 255)) -> np.ndarray:
    """Tile images [H, W, 3] (or equally long frame stacks [F, H, W, 3]) into rows of `columns`.

    Cells are as large as the largest image (smaller ones are padded at the bottom and right), with
    `gap` px of `fill` between them; unused cells of the last row are left as `fill`.
    """
    items = [_as_stack(im, f"images[{k}]") for k, im in enumerate(images)]
    if not items:
        raise ValueError("grid needs at least one image")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if len({im.ndim for im in items}) != 1 or (items[0].ndim == 4 and len({len(im) for im in items}) != 1):
        raise ValueError("grid needs all images, or all frame stacks of one length")
    dtype = np.result_type(*[im.dtype for im in items])
    cell_h = max(im.shape[-3] for im in items)
    cell_w = max(im.shape[-2] for im in items)
    columns = min(columns, len(items))
    rows = -(-len(items) // columns)
    lead = items[0].shape[:-3]
    out = np.empty(
        lead + (rows * cell_h + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, 3), dtype=dtype
    )
    out[...] = np.asarray(fill, dtype=dtype)
    for k, im in enumerate(items):
        r, c = divmod(k, columns)
        y, x = r * (cell_h + gap), c * (cell_w + gap)
        out[..., y : y + im.shape[-3], x : x + im.shape[-2], :] = im
    return out


# ---------------------------------------------------------------- video files


def _require(module: str, purpose: str, install: str):
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(
            f"{purpose} needs the '{install}' package: pip install {install}", name=module
        )


def _video_frames(rgb) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise ValueError(f"expected frames [F, H, W, 3] with F >= 1, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _atomic_write(path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path` (same suffix), then rename it into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_gif(path, rgb, fps: float = 15) -> None:
    """Write frames uint8 [F, H, W, 3] as a looping GIF (imageio with Pillow), atomically.

    GIF stores frame delays in hundredths of a second, so the played rate is rounded accordingly.
    """
    _require("imageio", "write_gif", "imageio")
    _require("PIL", "write_gif", "pillow")
    import imageio.v3 as iio

    frames = _video_frames(rgb)
    duration = 1000.0 / fps  # ms per frame

    def write(tmp):
        iio.imwrite(tmp, frames, extension=".gif", plugin="pillow", duration=duration, loop=0)

    _atomic_write(path, write)


def write_mp4(path, rgb, fps: float = 15) -> None:
    """Write frames uint8 [F, H, W, 3] as an H.264 MP4 (imageio with imageio-ffmpeg), atomically.

    yuv420p needs even sizes: an odd width or height gets one extra column or row, a copy of the
    last, and is otherwise written unscaled.
    """
    _require("imageio", "write_mp4", "imageio")
    _require("imageio_ffmpeg", "write_mp4", "imageio-ffmpeg")
    import imageio.v2 as iio2

    frames = _video_frames(rgb)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")

    def write(tmp):
        writer = iio2.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()

    _atomic_write(path, write)
