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
filled with its palette colour (PALETTE, extended beyond its length with deterministic colours,
see `body_colors`). Circles carry a line from centre to rim along the body's angle, in a dark shade
of their colour, so rotation is visible; boxes and polygons show it by their outline. Kinematic
bodies (paddles, flippers) are filled with diagonal stripes of their colour and its dark shade,
fixed in the body's frame. Lines (joints, rotation markers) are `line_width(width)` px wide.
Static segments are capsules of their radius (at least half a pixel, so a radius-0 segment still
shows). Polygons are drawn as the convex hull of their vertices, as pymunk builds them.

Implementation. Pure numpy and deterministic (same input, identical bytes). Bodies are grouped by
shape kind and size, and each group is rasterised for all frames at once, (body, frame) being one
batch axis: every element's pixel tile is its bounding box (tiles of a vectorised step share the
largest size), pixel centres are mapped to world coordinates (NaN outside the image, so every test
fails there), and coverage is one broadcast comparison for a disc (dy^2 <= r^2 - dx^2) and one per
edge for a convex polygon (half-plane tests with the edge normals rotated by the body's angle).
np.maximum.at then gives each pixel the highest covering label, which makes the result independent
of the order groups are drawn in; covered pixels finally take their winner's colour. Thin lines
(joints, rotation markers) are walked along their major axis with an exact distance test on a few
pixels across. bench/bench_render.py measures it against the simulator and against Pillow's
ImageDraw (slower at every size measured, and not pixel-centre exact).

Video helpers: `write_gif` and `write_mp4` (imageio; imageio-ffmpeg for MP4) write atomically;
`side_by_side` and `grid` assemble comparison videos and galleries.
"""

from __future__ import annotations

import colorsys
import importlib.util
import math

import numpy as np

from physworld.fileio import atomic_write

WORLD_WIDTH = 800.0
WORLD_HEIGHT = 600.0

BACKGROUND = (250, 250, 250)
STATIC_COLOR = (128, 128, 128)
JOINT_COLOR = (60, 60, 60)
DARK_SHADE = 0.45  # rotation lines and kinematic stripes: the body's colour times this
MASK_BACKGROUND = 0
MASK_STATIC = -1

# 20 body colours, each as far as possible from those before it: picked greedily by CIELAB distance
# (Delta E 1976) from the sRGB grid with steps of 17, leaving out greys (chroma < 30), very dark and
# very light colours, and keeping away from the background, static and joint colours. Any two
# differ by Delta E >= 39, so the first bodies of a scene are the easiest to tell apart.
PALETTE = np.array(
    [
        (0xBB, 0x00, 0x33),
        (0x00, 0x00, 0xFF),
        (0x00, 0xFF, 0x00),
        (0xFF, 0xCC, 0x00),
        (0xFF, 0x88, 0xFF),
        (0x00, 0x77, 0x00),
        (0x00, 0xFF, 0xCC),
        (0x00, 0x33, 0x99),
        (0x00, 0xAA, 0xFF),
        (0x88, 0x55, 0x00),
        (0xFF, 0x66, 0x00),
        (0xCC, 0xEE, 0x88),
        (0x88, 0x00, 0x66),
        (0xDD, 0x11, 0xFF),
        (0xFF, 0x99, 0xAA),
        (0x22, 0xCC, 0xDD),
        (0xBB, 0xEE, 0x00),
        (0xFF, 0x00, 0x99),
        (0xFF, 0xBB, 0x77),
        (0x99, 0x77, 0xBB),
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

_TILE_BUDGET = 1 << 19  # pixel centres tested per vectorised step (bounds temporary memory)
_BLOCK_PIXELS = 1 << 23  # frames are rendered in blocks of about this many pixels
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


# What a viewer would call each PALETTE colour (captions name objects by these), one per entry,
# all different, so the first len(PALETTE) bodies of a scene never share a colour name.
PALETTE_NAMES = (
    "red",
    "blue",
    "green",
    "yellow",
    "pink",
    "dark green",
    "turquoise",
    "navy",
    "sky blue",
    "brown",
    "orange",
    "pale green",
    "purple",
    "violet",
    "salmon",
    "cyan",
    "lime",
    "magenta",
    "peach",
    "lavender",
)
assert len(PALETTE_NAMES) == len(PALETTE) == len(set(PALETTE_NAMES))

# Hue ranges (degrees, upper bounds) for naming the generated colours beyond the palette.
_HUE_NAMES = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (160, "green"),
    (200, "cyan"),
    (260, "blue"),
    (290, "purple"),
    (335, "pink"),
    (360, "red"),
)


def body_color_names(n: int) -> list[str]:
    """The colour name of bodies 0..n-1 as drawn by `body_colors`: PALETTE_NAMES, then a basic hue
    name with "dark"/"light" for the generated colours (these may repeat; captions then tell the
    bodies apart by shape and size, or not at all)."""
    names = list(PALETTE_NAMES[:n])
    for rgb in body_colors(n)[len(PALETTE_NAMES) :]:
        hue, light, _ = colorsys.rgb_to_hls(*(c / 255.0 for c in rgb))
        word = next(name for top, name in _HUE_NAMES if hue * 360.0 < top)
        names.append(f"{'dark' if light < 0.5 else 'light'} {word}")
    return names


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


class _Raster:
    """The image grid: pixel <-> world mapping and tiles of pixel centres."""

    def __init__(self, width: int, height: int):
        self.w, self.h = int(width), int(height)
        self.sx = self.w / WORLD_WIDTH
        self.sy = self.h / WORLD_HEIGHT

    def tiles(self, xmin, xmax, ymin, ymax):
        """Pixel tiles covering world boxes (arrays [B]), clipped to the image.

        Returns (elements, c0, r0, ncols, nrows): the indices of the boxes that touch the image, and
        their tiles' first column and row and sizes (arrays over those elements).
        """
        finite = np.isfinite(xmin) & np.isfinite(xmax) & np.isfinite(ymin) & np.isfinite(ymax)

        def clean(a):
            return np.clip(np.where(finite, a, 0.0), -_COORD_LIMIT, _COORD_LIMIT)

        xmin, xmax, ymin, ymax = clean(xmin), clean(xmax), clean(ymin), clean(ymax)
        # Half a pixel of slack on each side: boundary pixels are decided by the exact tests.
        c_first = np.floor(xmin * self.sx - 0.5).astype(np.int64)
        c_last = np.ceil(xmax * self.sx - 0.5).astype(np.int64)
        r_first = np.floor((WORLD_HEIGHT - ymax) * self.sy - 0.5).astype(np.int64)
        r_last = np.ceil((WORLD_HEIGHT - ymin) * self.sy - 0.5).astype(np.int64)
        keep = finite & (c_last >= 0) & (c_first < self.w) & (r_last >= 0) & (r_first < self.h)
        elements = np.flatnonzero(keep)
        c0 = np.maximum(c_first[elements], 0)
        r0 = np.maximum(r_first[elements], 0)
        ncols = np.minimum(c_last[elements], self.w - 1) - c0 + 1
        nrows = np.minimum(r_last[elements], self.h - 1) - r0 + 1
        return elements, c0, r0, ncols, nrows

    def centres(self, c0, r0, nc: int, nr: int):
        """World x [E, 1, nc] and y [E, nr, 1] of tile pixel centres; NaN outside the image.

        NaN makes every coverage test below false, so tiles may run over the image's edge.
        """
        cols = c0[:, None] + np.arange(nc)
        rows = r0[:, None] + np.arange(nr)
        x = (cols + 0.5) / self.sx
        y = WORLD_HEIGHT - (rows + 0.5) / self.sy
        x[cols >= self.w] = np.nan
        y[rows >= self.h] = np.nan
        return x[:, None, :], y[:, :, None]


# ---------------------------------------------------------------- shapes


class _Group:
    """Shapes of one kind and similar size, rasterised together: (instance, frame) is one batch axis.

    kind "circle" (radius), "poly" (convex, CCW vertices with inward half-planes n . p >= d, in the
    shape's own frame) or "capsule" (static segments: ends a, b and radius, in world coordinates).
    """

    def __init__(self, kind: str, ids, radius=None, vertices=None, a=None, b=None, stripes=False):
        self.kind = kind
        self.ids = np.asarray(ids, dtype=np.int64)
        self.stripes = stripes
        if kind in ("circle", "capsule"):
            self.radius = np.asarray(radius, dtype=np.float64)
        if kind == "poly":
            self.vertices = np.asarray(vertices, dtype=np.float64)  # [G, k, 2]
            edges = np.roll(self.vertices, -1, axis=1) - self.vertices
            self.normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)
            self.offsets = (self.normals * self.vertices).sum(-1)  # [G, k]
        if kind == "capsule":
            self.a, self.b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def boxes(self, inst, x, y, c, s):
        """World bounding boxes [B] of instances `inst` at poses x, y, (cos c, sin s)."""
        if self.kind == "circle":
            r = self.radius[inst]
            return x - r, x + r, y - r, y + r
        if self.kind == "capsule":
            r, a, b = self.radius[inst], self.a[inst], self.b[inst]
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            return x + lo[:, 0] - r, x + hi[:, 0] + r, y + lo[:, 1] - r, y + hi[:, 1] + r
        u, v = self.vertices[inst, :, 0], self.vertices[inst, :, 1]
        wx = x[:, None] + c[:, None] * u - s[:, None] * v
        wy = y[:, None] + s[:, None] * u + c[:, None] * v
        return wx.min(1), wx.max(1), wy.min(1), wy.max(1)

    def cover(self, inst, dx, dy, c, s):
        """Coverage [E, nr, nc] from pixel-centre offsets to the poses, dx [E, 1, nc], dy [E, nr, 1]."""
        if self.kind == "circle":
            r2 = (self.radius[inst] ** 2)[:, None, None]
            return dy * dy <= r2 - dx * dx  # one full-tile operation
        if self.kind == "capsule":
            r2 = (self.radius[inst] ** 2)[:, None, None]
            a, e = self.a[inst], self.b[inst] - self.a[inst]
            ax, ay = dx - a[:, 0, None, None], dy - a[:, 1, None, None]
            ex, ey = e[:, 0, None, None], e[:, 1, None, None]
            len2 = ex * ex + ey * ey
            t = np.clip((ax * ex + ay * ey) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
            qx, qy = ax - t * ex, ay - t * ey
            return qx * qx + qy * qy <= r2
        normals, offsets = self.normals[inst], self.offsets[inst]
        cover = None
        for k in range(normals.shape[1]):
            nx, ny = normals[:, k, 0], normals[:, k, 1]
            # n_world . (dx, dy) >= d with n_world = R(angle) n_local, arranged so that the only
            # full-tile operation is the comparison itself.
            nwx = (c * nx - s * ny)[:, None, None]
            nwy = (s * nx + c * ny)[:, None, None]
            inside = nwy * dy >= offsets[:, k, None, None] - nwx * dx
            if cover is None:
                cover = inside
            else:
                cover &= inside
        return cover


def _bucket(pixels: float) -> int:
    return int(math.ceil(math.log2(max(pixels, 1.0))))


def _body_groups(bodies: list[dict], scale: float) -> list[_Group]:
    """Bodies grouped by kind, vertex count, kinematic flag and size (within a factor of two)."""
    members: dict[tuple, list] = {}
    for i, b in enumerate(bodies):
        shape = b["shape"]
        if shape == "circle":
            key, geo = ("circle", 0), float(b["radius"])
            extent = geo
        elif shape in ("box", "poly"):
            if shape == "box":
                hw, hh = 0.5 * b["width"], 0.5 * b["height"]
                verts = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
            else:
                verts = b["vertices"]
            geo = _convex_hull(np.asarray(verts, dtype=np.float64))
            if len(geo) < 3:
                continue  # a degenerate polygon has no area: it covers no pixel centre
            key, extent = ("poly", len(geo)), float(np.hypot(geo[:, 0], geo[:, 1]).max())
        else:
            raise ValueError(f"bodies[{i}].shape: unknown shape {shape!r}; expected circle, box or poly")
        key = key + (bool(b.get("kinematic")), _bucket(extent * scale))
        members.setdefault(key, []).append((i, geo))
    groups = []
    for (kind, _, kinematic, _), items in members.items():
        ids = [i for i, _ in items]
        geos = [g for _, g in items]
        if kind == "circle":
            groups.append(_Group("circle", ids, radius=geos, stripes=kinematic))
        else:
            groups.append(_Group("poly", ids, vertices=np.stack(geos), stripes=kinematic))
    return groups


def _static_groups(statics: list[dict], raster: _Raster) -> list[tuple[_Group, np.ndarray]]:
    """Static shapes grouped by kind and bounding-box size, each with its instances' positions [G, 2]."""
    members: dict[tuple, list] = {}
    half_px = 0.5 / min(raster.sx, raster.sy)
    for i, s in enumerate(statics):
        kind = s.get("kind")
        if kind == "segment":
            a, b = np.asarray(s["a"], dtype=np.float64), np.asarray(s["b"], dtype=np.float64)
            r = max(float(s["radius"]), half_px)
            size = np.abs(b - a) + 2 * r
            key, item = ("capsule", 0), (r, a, b, (0.0, 0.0))
        elif kind == "poly":
            hull = _convex_hull(np.asarray(s["vertices"], dtype=np.float64))
            if len(hull) < 3:
                continue
            size = hull.max(0) - hull.min(0)
            key, item = ("poly", len(hull)), (hull, (0.0, 0.0))
        elif kind == "circle":
            r = float(s["radius"])
            size = np.array([2 * r, 2 * r])
            key, item = ("circle", 0), (r, tuple(s["center"]))
        else:
            raise ValueError(
                f"statics[{i}].kind: unknown static kind {kind!r}; expected segment, poly or circle"
            )
        key = key + (_bucket(size[0] * raster.sx), _bucket(size[1] * raster.sy))
        members.setdefault(key, []).append(item)
    groups = []
    for (kind, *_), items in members.items():
        pos = np.asarray([it[-1] for it in items], dtype=np.float64)
        if kind == "capsule":
            group = _Group(
                "capsule",
                np.arange(len(items)),
                radius=[it[0] for it in items],
                a=[it[1] for it in items],
                b=[it[2] for it in items],
            )
        elif kind == "poly":
            group = _Group("poly", np.arange(len(items)), vertices=np.stack([it[0] for it in items]))
        else:
            group = _Group("circle", np.arange(len(items)), radius=[it[0] for it in items])
        groups.append((group, pos))
    return groups


def _rasterise(raster: _Raster, group: _Group, x, y, angle, stripe_period: float = 0.0):
    """Covered pixels of a group's instances over frames; poses x, y, angle are [G, F].

    Yields chunks (flat indices into an [F, H, W] canvas, the instance of each index, dark flags
    per index or None): with stripe_period > 0 (world units) dark marks diagonal stripes fixed in
    the shape's frame.
    """
    n_inst, n_frames = x.shape
    inst = np.repeat(np.arange(n_inst), n_frames)
    frame = np.tile(np.arange(n_frames), n_inst)
    x, y, angle = x.reshape(-1), y.reshape(-1), angle.reshape(-1)
    c, s = np.cos(angle), np.sin(angle)
    elements, c0, r0, ncols, nrows = raster.tiles(*group.boxes(inst, x, y, c, s))
    if elements.size == 0:
        return
    step = max(1, _TILE_BUDGET // int((ncols * nrows).max()))
    w = raster.w
    for k in range(0, elements.size, step):
        e = elements[k : k + step]
        ec0, er0 = c0[k : k + step], r0[k : k + step]
        nc, nr = int(ncols[k : k + step].max()), int(nrows[k : k + step].max())
        X, Y = raster.centres(ec0, er0, nc, nr)
        ei, ec, es = inst[e], c[e], s[e]
        dx = X - x[e, None, None]
        dy = Y - y[e, None, None]
        cover = group.cover(ei, dx, dy, ec, es)
        counts = np.count_nonzero(cover, axis=(1, 2))
        if not counts.any():
            continue
        # Flat canvas index of every tile pixel; indices past the image's edge are never covered.
        base = (frame[e] * raster.h + er0) * w + ec0
        flat = ((base[:, None] + np.arange(nr) * w)[:, :, None] + np.arange(nc))[cover]
        dark = None
        if stripe_period > 0:
            # u + v, the sum of the pixel centres' coordinates in the body's frame
            u_plus_v = (ec - es)[:, None, None] * dx + (ec + es)[:, None, None] * dy
            dark = (np.floor(u_plus_v * (1.0 / stripe_period)) % 2 == 1)[cover]
        yield flat, np.repeat(ei, counts), dark


def _line_pixels(p0: np.ndarray, p1: np.ndarray, hw: float, height: int, width: int):
    """Pixels whose centres lie within hw of the segments p0-p1 ([M, 2] as (column, row) pixels).

    Walks each segment along its major axis and tests a few pixels across it exactly, so the cost
    is proportional to the segment's length, not its bounding box. Returns (segment, row, col).
    """
    out_m, out_r, out_c = [], [], []
    delta = p1 - p0
    steep = np.abs(delta[:, 1]) >= np.abs(delta[:, 0])  # mostly vertical: walk the rows
    # A covered centre is at most 2 hw across from the segment's minor coordinate at its step.
    reach = int(math.ceil(2 * hw + 0.5))
    finite = np.isfinite(p0).all(1) & np.isfinite(p1).all(1)
    for major, group in ((1, steep), (0, ~steep)):
        minor = 1 - major
        lim_major, lim_minor = (height, width) if major == 1 else (width, height)
        chosen = np.flatnonzero(group & finite)
        a_all = np.clip(p0[chosen], -_COORD_LIMIT, _COORD_LIMIT)
        b_all = np.clip(p1[chosen], -_COORD_LIMIT, _COORD_LIMIT)
        lo_all = np.floor(np.minimum(a_all[:, major], b_all[:, major]) - hw - 0.5)
        hi_all = np.ceil(np.maximum(a_all[:, major], b_all[:, major]) + hw - 0.5)
        lo_all = np.maximum(lo_all, 0).astype(np.int64)
        hi_all = np.minimum(hi_all, lim_major - 1).astype(np.int64)
        on = hi_all >= lo_all  # drop segments beyond the image along their major axis
        chosen, a_all, b_all, lo_all, hi_all = chosen[on], a_all[on], b_all[on], lo_all[on], hi_all[on]
        longest = int((hi_all - lo_all).max(initial=0)) + 1
        step = max(1, _TILE_BUDGET // (longest * (2 * reach + 1)))
        for k in range(0, chosen.size, step):
            sel, a, b = chosen[k : k + step], a_all[k : k + step], b_all[k : k + step]
            lo, hi = lo_all[k : k + step], hi_all[k : k + step]
            am, an, bm, bn = a[:, major], a[:, minor], b[:, major], b[:, minor]
            m_idx = lo[:, None] + np.arange(int((hi - lo).max()) + 1)  # [S, L]
            valid = m_idx <= hi[:, None]
            dm, dn = (bm - am)[:, None], (bn - an)[:, None]
            t = np.where(
                dm == 0, 0.0, np.clip((m_idx + 0.5 - am[:, None]) / np.where(dm == 0, 1.0, dm), 0.0, 1.0)
            )
            n_line = an[:, None] + t * dn  # minor coordinate of the segment at each step
            n_idx = np.floor(n_line).astype(np.int64)[:, :, None] + np.arange(-reach, reach + 1)  # [S, L, K]
            pm = (m_idx + 0.5 - am[:, None])[:, :, None]
            pn = n_idx + 0.5 - an[:, None, None]
            dm3, dn3 = dm[:, :, None], dn[:, :, None]
            len2 = dm3 * dm3 + dn3 * dn3
            tt = np.clip((pm * dm3 + pn * dn3) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
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


def _joint_anchors(spec: dict, pose: np.ndarray):
    """World anchor points of every anchored joint: (a, b), each [F, J, 2]; None if there are none."""
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
                pts.append(np.broadcast_to(anchor, (len(pose), 2)))
            else:
                x, y, th = pose[:, i, 0], pose[:, i, 1], pose[:, i, 2]
                co, si = np.cos(th), np.sin(th)
                pts.append(
                    np.stack([x + co * anchor[0] - si * anchor[1], y + si * anchor[0] + co * anchor[1]], -1)
                )
        ends.append(np.stack(pts, axis=1))
    return ends[0], ends[1]


def _static_mask(spec: dict, raster: _Raster) -> np.ndarray:
    """Mask [H, W] of the static geometry: MASK_STATIC where it covers a pixel centre, else 0."""
    mask = np.zeros(raster.h * raster.w, dtype=np.int16)
    for group, pos in _static_groups(spec.get("statics", ()), raster):
        zero = np.zeros((len(pos), 1))
        for idx, _, _ in _rasterise(raster, group, pos[:, :1], pos[:, 1:], zero):
            mask[idx] = MASK_STATIC
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
    Mask values: 0 background, -1 static geometry, i + 1 body i; where bodies overlap the body with
    the higher index wins, in the mask and the image alike.
    """
    height = default_height(width) if height is None else int(height)
    width = int(width)
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    arr = _states_array(states)
    bodies = spec["bodies"]
    if arr.shape[1] != len(bodies):
        raise ValueError(f"states have {arr.shape[1]} bodies but the spec has {len(bodies)}")
    if len(bodies) >= np.iinfo(np.int16).max:
        raise ValueError(
            f"int16 masks hold at most {np.iinfo(np.int16).max - 1} bodies, the spec has {len(bodies)}"
        )
    idx = _frame_indices(frames, arr.shape[0])
    pose = arr[idx, :, :3].astype(np.float64)  # [F, N, 3]
    n_frames, n_bodies = pose.shape[:2]

    raster = _Raster(width, height)
    scale = min(raster.sx, raster.sy)
    static_mask = _static_mask(spec, raster)
    static_rgb = np.where(
        (static_mask == MASK_STATIC)[:, :, None],
        np.asarray(STATIC_COLOR, dtype=np.uint8),
        np.asarray(background, dtype=np.uint8),
    )
    colors = body_colors(n_bodies, palette)
    # Pixel values by mask value: body i's colour (and its dark shade) at index i + 1.
    fill_by_label = _pixels(np.concatenate([[background], colors]))
    dark_by_label = _pixels(np.concatenate([[background], np.round(colors * DARK_SHADE)]))
    hw_px = 0.5 * line_width(width)
    stripe_period = max(2.0, 2.0 * line_width(width)) / scale

    rgb = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    masks = np.empty((n_frames, height, width), dtype=np.int16)
    groups = _body_groups(bodies, scale)
    circles = np.asarray([i for i, b in enumerate(bodies) if b["shape"] == "circle"], dtype=np.int64)
    radius = np.array([bodies[i]["radius"] for i in circles], dtype=np.float64)
    joint = _pixels(JOINT_COLOR)[0]
    block = max(1, _BLOCK_PIXELS // (height * width))  # bounds the covered-pixel lists' memory
    for f0 in range(0, n_frames, block):
        p = pose[f0 : f0 + block]
        rgb_block, mask_block = rgb[f0 : f0 + block], masks[f0 : f0 + block]
        rgb_block[:] = static_rgb
        mask_block[:] = static_mask
        rgb_flat = rgb_block.view("V3").reshape(-1)  # views: writes land in rgb and masks
        mask_flat = mask_block.reshape(-1)
        frame_pixels = height * width

        anchors = _joint_anchors(spec, p)
        if anchors is not None:
            seg, rows, cols = _line_pixels(
                world_to_pixel(anchors[0], width, height).reshape(-1, 2),
                world_to_pixel(anchors[1], width, height).reshape(-1, 2),
                hw_px,
                height,
                width,
            )
            rgb_flat[(seg // anchors[0].shape[1]) * frame_pixels + rows * width + cols] = joint

        # Pass 1: each pixel's mask value is the highest index + 1 of the bodies covering it.
        flats, darks = [], []
        for group in groups:
            g = p[:, group.ids, :].transpose(1, 0, 2)  # [G, F, 3]
            stripes = stripe_period if group.stripes else 0.0
            for flat, inst, dark in _rasterise(raster, group, g[..., 0], g[..., 1], g[..., 2], stripes):
                label = (group.ids + 1).astype(np.int16)[inst]
                np.maximum.at(mask_flat, flat, label)
                flats.append(flat)
                if dark is not None:
                    darks.append((flat[dark], label[dark]))
        # Pass 2: covered pixels take their winner's colour (repeated indices write equal values).
        if flats:
            flat = np.concatenate(flats)
            rgb_flat[flat] = fill_by_label[mask_flat[flat]]
        # Dark details where their body won the pixel: kinematic stripes, then circles' rotation
        # lines (from the centre to the rim along the body's angle).
        if circles.size:
            centre = p[:, circles, :2]  # [F, C, 2]
            angle = p[:, circles, 2]
            rim = centre + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
            p0, p1 = world_to_pixel(centre, width, height), world_to_pixel(rim, width, height)
            seg, rows, cols = _line_pixels(p0.reshape(-1, 2), p1.reshape(-1, 2), hw_px, height, width)
            # Keep line pixels inside the disc (the line's round end reaches past the rim).
            f, k = np.divmod(seg, circles.size)
            wx, wy = (cols + 0.5) / raster.sx, WORLD_HEIGHT - (rows + 0.5) / raster.sy
            inside = (wx - centre[f, k, 0]) ** 2 + (wy - centre[f, k, 1]) ** 2 <= radius[k] ** 2
            darks.append(
                ((f * frame_pixels + rows * width + cols)[inside], (circles[k] + 1).astype(np.int16)[inside])
            )
        for flat, label in darks:
            won = mask_flat[flat] == label
            rgb_flat[flat[won]] = dark_by_label[label[won]]
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


def write_gif(path, rgb, fps: float = 15) -> None:
    """Write frames uint8 [F, H, W, 3] as a looping GIF (imageio with Pillow), atomically.

    GIF stores frame delays in hundredths of a second: each frame lasts 100 / fps of them, rounded
    (15 fps plays at 14.3). Pillow merges identical consecutive frames into one longer frame, so
    playback is unchanged but a scene at rest can have fewer frames in the file than given.
    """
    _require("imageio", "write_gif", "imageio")
    _require("PIL", "write_gif", "pillow")
    import imageio.v3 as iio

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _video_frames(rgb)
    duration = 10 * max(1, round(100 / fps))  # ms per frame, in whole hundredths of a second

    def write(tmp):
        iio.imwrite(tmp, frames, extension=".gif", plugin="pillow", duration=duration, loop=0)

    atomic_write(path, write)


def write_mp4(path, rgb, fps: float = 15) -> None:
    """Write frames uint8 [F, H, W, 3] as an H.264 MP4 (imageio with imageio-ffmpeg), atomically.

    yuv420p needs even sizes: an odd width or height gets one extra column or row, a copy of the
    last, and is otherwise written unscaled.
    """
    _require("imageio", "write_mp4", "imageio")
    _require("imageio_ffmpeg", "write_mp4", "imageio-ffmpeg")
    import imageio.v2 as iio2

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
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

    atomic_write(path, write)


def write_png(path, rgb) -> None:
    """Write one image uint8 [H, W, 3] as PNG (imageio with Pillow), atomically."""
    _require("imageio", "write_png", "imageio")
    _require("PIL", "write_png", "pillow")
    import imageio.v3 as iio

    image = _video_frames(rgb)
    if len(image) != 1:
        raise ValueError(f"write_png takes one image, got {len(image)} frames")
    atomic_write(path, lambda tmp: iio.imwrite(tmp, image[0], extension=".png", plugin="pillow"))


def label(rgb, text: str, color=(20, 20, 20)) -> np.ndarray:
    """A copy of an image (or every frame of a stack) with `text` in its top-left corner (Pillow)."""
    _require("PIL", "label", "pillow")
    from PIL import Image, ImageDraw

    frames = _video_frames(rgb)
    out = np.empty_like(frames)
    for k, frame in enumerate(frames):
        image = Image.fromarray(frame)
        ImageDraw.Draw(image).text((4, 3), text, fill=tuple(color))
        out[k] = np.asarray(image)
    return out if np.asarray(rgb).ndim == 4 else out[0]
