"""The renderer: exact coverage, the pixel mapping, determinism, real scenes and video files."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from physworld.data import render
from physworld.data.render import (
    BACKGROUND,
    JOINT_COLOR,
    MASK_STATIC,
    PALETTE,
    STATIC_COLOR,
    body_colors,
    grid,
    render_frames,
    side_by_side,
    world_to_pixel,
    write_gif,
    write_mp4,
)
from physworld.worlds import spec as S
from physworld.worlds.engine import simulate
from physworld.worlds.registry import make_spec


def scene(*bodies, statics=(), constraints=()):
    spec = S.new_spec("test")
    spec["bodies"] = list(bodies)
    spec["statics"] = list(statics)
    spec["constraints"] = list(constraints)
    return spec


def pose(spec):
    """One frame of states [1, N, 6] from the bodies' initial positions and angles."""
    return np.array([[[*b["position"], b["angle"], 0, 0, 0] for b in spec["bodies"]]], dtype=np.float32)


def pixel_scale(width, height=None):
    height = render.default_height(width) if height is None else height
    return width / 800.0, height / 600.0


def centroid(mask):
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


# ---------------------------------------------------------------- coverage and geometry


@pytest.mark.parametrize("width", [256, 512])
@pytest.mark.parametrize("radius", [20.0, 45.5])
def test_disc_area_and_centroid(width, radius):
    sx, sy = pixel_scale(width)
    for pos in [(400.3, 300.7), (123.45, 456.78), (611.1, 97.3)]:
        spec = scene(S.circle(pos, radius, angle=0.7))
        _, masks = render_frames(spec, pose(spec), width=width)
        area = np.count_nonzero(masks[0] == 1)
        assert area == pytest.approx(math.pi * radius**2 * sx * sy, rel=0.02)
        assert np.abs(centroid(masks[0] == 1) - world_to_pixel(pos, width)).max() < 1.0


@pytest.mark.parametrize("width", [256, 512])
@pytest.mark.parametrize("angle", [0.0, 0.3, 1.0])
def test_rotated_box_area_and_centroid(width, angle):
    sx, sy = pixel_scale(width)
    pos = (351.7, 222.2)
    spec = scene(S.box(pos, 120.0, 50.0, angle=angle))
    _, masks = render_frames(spec, pose(spec), width=width)
    assert np.count_nonzero(masks[0] == 1) == pytest.approx(120 * 50 * sx * sy, rel=0.02)
    assert np.abs(centroid(masks[0] == 1) - world_to_pixel(pos, width)).max() < 1.0


@pytest.mark.parametrize("angle", [0.3, 1.0, -0.6, 2.5])
def test_rotated_box_mask_is_rotated(angle):
    width = 256
    spec = scene(S.box((400, 300), 300.0, 40.0, angle=angle))
    _, masks = render_frames(spec, pose(spec), width=width)
    rows, cols = np.nonzero(masks[0] == 1)
    x, y = cols + 0.5, -(rows + 0.5)  # y up, like the world
    cov = np.cov(np.stack([x, y]))
    axis = 0.5 * math.atan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
    diff = (axis - angle + math.pi / 2) % math.pi - math.pi / 2  # the principal axis is defined modulo pi
    assert abs(diff) < math.radians(1.5)


def test_y_up_high_bodies_appear_near_the_top_rows():
    spec = scene(S.circle((200, 540), 25), S.box((600, 60), 60, 40))
    _, masks = render_frames(spec, pose(spec), width=256)
    height = masks.shape[1]
    high_rows = np.nonzero(masks[0] == 1)[0]
    low_rows = np.nonzero(masks[0] == 2)[0]
    assert high_rows.max() < height * 0.2
    assert low_rows.min() > height * 0.8
    # x keeps its direction: the left body is in the left half.
    assert np.nonzero(masks[0] == 1)[1].max() < 128 < np.nonzero(masks[0] == 2)[1].min()


def test_poly_area_and_any_resolution():
    tri = [(-40, -30), (50, -30), (-10, 60)]
    spec = scene(S.poly((300, 250), tri, angle=0.4))
    area = 0.5 * abs((50 - -40) * (60 - -30))
    for width, height in [(97, 61), (640, 200), (300, 300)]:
        sx, sy = pixel_scale(width, height)
        rgb, masks = render_frames(spec, pose(spec), width=width, height=height)
        assert rgb.shape == (1, height, width, 3) and masks.shape == (1, height, width)
        assert np.count_nonzero(masks[0] == 1) == pytest.approx(area * sx * sy, rel=0.05)
    assert render_frames(spec, pose(spec), width=200)[1].shape == (1, 150, 200)  # 4:3 by default


def test_overlapping_bodies_later_index_wins():
    spec = scene(S.circle((300, 300), 50), S.circle((340, 300), 50), S.box((320, 300), 10, 10))
    rgb, masks = render_frames(spec, pose(spec), width=400)
    only_first = np.count_nonzero(masks[0] == 1)
    assert only_first > 0
    # The box (index 2) is drawn over both discs, the second disc over the first.
    r, c = np.round(world_to_pixel((320, 300), 400)[::-1] - 0.5).astype(int)
    assert masks[0, r, c] == 3
    r, c = np.round(world_to_pixel((330, 330), 400)[::-1] - 0.5).astype(int)
    assert masks[0, r, c] == 2
    assert (rgb[0][masks[0] == 2] == PALETTE[1]).all(-1).mean() > 0.9


def test_pixel_centres_decide_coverage():
    # A disc of radius 0.6 px centred on a pixel centre covers exactly that pixel.
    width = 800  # 1 world unit = 1 px
    spec = scene(S.circle((100.5, 599.5 - 10), 0.6))
    _, masks = render_frames(spec, pose(spec), width=width)
    assert np.count_nonzero(masks[0]) == 1
    assert masks[0, 10, 100] == 1


def test_line_pixels_match_brute_force():
    rng = np.random.default_rng(0)
    height, width = 30, 40
    p0 = rng.uniform(-5, 45, (120, 2))
    p1 = p0 + rng.normal(0, 12, (120, 2))
    p1[:10] = p0[:10]  # points
    p1[10:20, 0] = p0[10:20, 0]  # vertical
    p1[20:30, 1] = p0[20:30, 1]  # horizontal
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    for hw in (0.5, 1.0, 1.7):
        seg, rows, cols = render._line_pixels(p0, p1, hw, height, width)
        got = np.zeros((len(p0), height, width), dtype=bool)
        got[seg, rows, cols] = True
        for m, (a, b) in enumerate(zip(p0, p1, strict=True)):
            d = b - a
            ax, ay = xx - a[0], yy - a[1]
            t = np.clip((ax * d[0] + ay * d[1]) / (d @ d), 0, 1) if d @ d > 0 else 0.0
            want = (ax - t * d[0]) ** 2 + (ay - t * d[1]) ** 2 <= hw * hw
            assert (got[m] == want).all()


# ---------------------------------------------------------------- drawing


def test_statics_joints_kinematic_and_rotation_marker():
    statics = [
        S.segment((100, 500), (700, 500), 8.0),
        S.static_poly([(50, 50), (200, 50), (200, 120)]),
        S.static_circle((650, 150), 30),
    ]
    ball = S.circle((400, 300), 40, angle=0.0)
    paddle = S.box((600, 350), 120, 30, kinematic=True)
    spec = scene(ball, paddle, statics=statics, constraints=[S.pin(-1, 0, (400, 480), (0, 0))])
    width = 400
    sx, sy = pixel_scale(width)
    rgb, masks = render_frames(spec, pose(spec), width=width)
    frame, mask = rgb[0], masks[0]
    # Static geometry: -1 in the mask, grey in the image, a capsule of the segment's radius.
    segment_area = (600 * 16 + math.pi * 8**2) * sx * sy
    capsule = mask[: round(150 * sy)] == MASK_STATIC  # rows above the world's y = 450
    assert np.count_nonzero(capsule) == pytest.approx(segment_area, rel=0.03)
    assert (frame[mask == MASK_STATIC] == STATIC_COLOR).all()
    assert np.count_nonzero(mask == MASK_STATIC) == pytest.approx(
        (segment_area + 0.5 * 150 * 70 * sx * sy + math.pi * 30**2 * sx * sy), rel=0.03
    )
    # The joint: a dark line in the image between the anchor and the ball, not in the mask.
    joint = (frame == JOINT_COLOR).all(-1)
    assert np.count_nonzero(joint) >= (480 - 340) * sy * 0.9
    assert (mask[joint] == 0).all()
    # The ball: its colour plus a darker rotation line from the centre towards +x (angle 0).
    ball_px = frame[mask == 1]
    dark = np.round(PALETTE[0] * render.DARK_SHADE).astype(np.uint8)
    assert (ball_px == PALETTE[0]).all(-1).mean() > 0.8
    line = (frame == dark).all(-1) & (mask == 1)
    assert np.count_nonzero(line) >= 40 * sx * 0.8
    assert centroid(line)[0] > world_to_pixel((400, 300), width)[0]
    # The kinematic paddle: striped in its colour and its dark shade, one label in the mask.
    paddle_px = frame[mask == 2]
    dark2 = np.round(PALETTE[1] * render.DARK_SHADE).astype(np.uint8)
    fill_share = (paddle_px == PALETTE[1]).all(-1).mean()
    dark_share = (paddle_px == dark2).all(-1).mean()
    assert fill_share + dark_share == 1.0 and 0.25 < dark_share < 0.75
    # Empty space is background.
    assert (frame[(mask == 0) & ~joint] == BACKGROUND).all()


def cielab(rgb):
    """sRGB uint8 [..., 3] -> CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_palette_constant_and_body_colors():
    assert PALETTE.shape == (20, 3) and PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in PALETTE}) == 20
    reserved = {tuple(BACKGROUND), tuple(STATIC_COLOR), tuple(JOINT_COLOR)}
    assert not reserved & {tuple(c) for c in PALETTE}
    # Distinct enough to tell apart: every pair differs by Delta E (CIELAB 1976) >= 35.
    lab = cielab(PALETTE)
    delta = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    assert delta[~np.eye(20, dtype=bool)].min() >= 35
    assert (
        np.linalg.norm(
            lab - cielab(np.array([BACKGROUND, STATIC_COLOR, JOINT_COLOR]))[:, None], axis=-1
        ).min()
        >= 35
    )
    colors = body_colors(60)
    assert (colors[:20] == PALETTE).all()
    assert len({tuple(c) for c in colors}) == 60
    assert (body_colors(60) == colors).all()
    with pytest.raises(ValueError):
        PALETTE[0, 0] = 1  # read-only


# ---------------------------------------------------------------- real scenes


@pytest.fixture(scope="module")
def real_scenes():
    out = {}
    for name in ("billiards", "bowling", "head_on", "projectile", "pendulum"):
        spec = make_spec(name, 3, 7)
        out[name] = (spec, simulate(spec, 30)["states"])
    return out


def oracle_mask(spec, frame, width, height):
    """Brute-force mask of one frame: every pixel centre against every shape, in body coordinates."""
    sx, sy = width / 800.0, height / 600.0
    X, Y = np.meshgrid((np.arange(width) + 0.5) / sx, 600.0 - (np.arange(height) + 0.5) / sy)
    mask = np.zeros((height, width), dtype=np.int16)

    def in_convex(u, v, verts):
        verts = np.asarray(verts, dtype=np.float64)
        e = np.roll(verts, -1, axis=0) - verts
        cross = e[:, 0, None, None] * (v - verts[:, 1, None, None]) - e[:, 1, None, None] * (
            u - verts[:, 0, None, None]
        )
        ccw = (e[:-1, 0] * e[1:, 1] - e[:-1, 1] * e[1:, 0] > 0).any()

        return (cross >= 0).all(0) if ccw else (cross <= 0).all(0)

    for st in spec["statics"]:
        if st["kind"] == "circle":
            cov = (X - st["center"][0]) ** 2 + (Y - st["center"][1]) ** 2 <= st["radius"] ** 2
        elif st["kind"] == "poly":
            cov = in_convex(X, Y, st["vertices"])
        else:
            a, b = np.asarray(st["a"]), np.asarray(st["b"])
            d = b - a
            t = np.clip(((X - a[0]) * d[0] + (Y - a[1]) * d[1]) / (d @ d), 0, 1)
            cov = (X - a[0] - t * d[0]) ** 2 + (Y - a[1] - t * d[1]) ** 2 <= max(
                st["radius"], 0.5 / min(sx, sy)
            ) ** 2
        mask[cov] = MASK_STATIC
    for i, body in enumerate(spec["bodies"]):
        x, y, th = (float(v) for v in frame[i, :3])
        u = math.cos(th) * (X - x) + math.sin(th) * (Y - y)
        v = -math.sin(th) * (X - x) + math.cos(th) * (Y - y)
        if body["shape"] == "circle":
            cov = u * u + v * v <= body["radius"] ** 2
        elif body["shape"] == "box":
            cov = (np.abs(u) <= body["width"] / 2) & (np.abs(v) <= body["height"] / 2)
        else:
            cov = in_convex(u, v, body["vertices"])
        mask[cov] = i + 1  # later bodies win
    return mask


def test_real_scenes_render_at_128x96(real_scenes):
    for name, (spec, states) in real_scenes.items():
        rgb, masks = render_frames(spec, states, width=128, height=96)
        assert rgb.shape == (31, 96, 128, 3) and rgb.dtype == np.uint8, name
        assert masks.shape == (31, 96, 128) and masks.dtype == np.int16, name
        for f in (0, 15, 30):
            want = oracle_mask(spec, states[f], 128, 96)
            # Every body that covers a pixel centre (and is not hidden by a later one) is there.
            visible = set(np.unique(want[want > 0]).tolist())
            assert visible <= set(np.unique(masks[f]).tolist()), (name, f)
            assert len(visible) >= 0.5 * len(spec["bodies"]), (name, f)
            # Pixel for pixel, up to floating-point ties on shape boundaries.
            assert np.count_nonzero(masks[f] != want) <= 2, (name, f)
        # Every labelled pixel has its body's colour or that colour's dark shade.
        colors = body_colors(len(spec["bodies"]))
        label = masks[-1]
        on = label > 0
        fill = colors[label[on] - 1]
        dark = np.round(fill * render.DARK_SHADE).astype(np.uint8)
        px = rgb[-1][on]
        assert ((px == fill).all(-1) | (px == dark).all(-1)).all(), name


def test_masks_match_brute_force_at_several_sizes(real_scenes):
    for name in ("bowling", "pendulum"):
        spec, states = real_scenes[name]
        for width, height in [(256, 192), (200, 333), (64, 48)]:
            _, masks = render_frames(spec, states, width=width, height=height, frames=[0, 30])
            for k, f in enumerate((0, 30)):
                mismatch = np.count_nonzero(masks[k] != oracle_mask(spec, states[f], width, height))
                assert mismatch <= 2, (name, width, height, f, mismatch)


def test_rendering_is_deterministic(real_scenes):
    spec, states = real_scenes["bowling"]
    a = render_frames(spec, states, width=160)
    b = render_frames(spec, states.copy(), width=160)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    # Frame selection renders the same bytes as the full trajectory.
    part = render_frames(spec, {"states": states}, width=160, frames=[0, 7, -1])
    assert part[0].tobytes() == a[0][[0, 7, -1]].tobytes()
    assert part[1].tobytes() == a[1][[0, 7, -1]].tobytes()
    empty = render_frames(spec, states, width=160, frames=[])
    assert empty[0].shape == (0, 120, 160, 3)


def test_random_shapes_match_brute_force():
    """Any sizes, rotations and resolutions, shapes partly or wholly off the image, tiny shapes."""
    rng = np.random.default_rng(5)

    def convex(n, radius, centre=(0.0, 0.0)):
        th = np.sort(rng.uniform(0, 2 * np.pi, n))
        v = np.stack([radius * np.cos(th), radius * np.sin(th)], 1)
        return v - v.mean(0) + np.asarray(centre)

    for _ in range(15):
        bodies = []
        for _ in range(12):
            pos, angle = rng.uniform(-100, 900, 2), rng.uniform(-7, 7)
            kind = rng.integers(3)
            if kind == 0:
                bodies.append(S.circle(pos, rng.uniform(0.3, 120), angle=angle))
            elif kind == 1:
                bodies.append(S.box(pos, rng.uniform(0.5, 300), rng.uniform(0.5, 80), angle=angle))
            else:
                bodies.append(S.poly(pos, convex(int(rng.integers(3, 8)), rng.uniform(5, 90)), angle=angle))
        statics = [
            S.segment(rng.uniform(-50, 850, 2), rng.uniform(-50, 850, 2), rng.uniform(0, 10)),
            S.static_circle(rng.uniform(0, 800, 2), rng.uniform(1, 60)),
            S.static_poly(convex(5, rng.uniform(10, 200), rng.uniform(0, 800, 2))),
        ]
        spec = scene(*bodies, statics=statics)
        width, height = int(rng.integers(16, 300)), int(rng.integers(16, 300))
        _, masks = render_frames(spec, pose(spec), width=width, height=height)
        assert np.count_nonzero(masks[0] != oracle_mask(spec, pose(spec)[0], width, height)) <= 2


def test_blocks_and_tiles_do_not_change_the_result(real_scenes, monkeypatch):
    spec, states = real_scenes["pendulum"]
    whole = render_frames(spec, states, width=160)
    monkeypatch.setattr(render, "_BLOCK_PIXELS", 3 * 160 * 120)  # blocks of 3 frames
    monkeypatch.setattr(render, "_TILE_BUDGET", 64)  # one tile per vectorised step
    split = render_frames(spec, states, width=160)
    assert whole[0].tobytes() == split[0].tobytes() and whole[1].tobytes() == split[1].tobytes()


def test_bodies_off_screen_or_invalid_are_skipped():
    spec = scene(S.circle((400, 300), 30), S.circle((400, 300), 30))
    states = pose(spec).repeat(2, axis=0)
    states[0, 0, :2] = (-500, 5000)  # far outside
    states[1, 0, :2] = np.nan  # a broken trajectory must not crash the renderer
    states[:, 1, 0] = 820  # half outside on the right
    _, masks = render_frames(spec, states, width=128)
    assert not (masks == 1).any()
    assert (masks == 2).any() and not (masks[:, :, :64] == 2).any()


def test_states_must_match_the_spec():
    spec = scene(S.circle((400, 300), 30))
    with pytest.raises(ValueError, match="bodies"):
        render_frames(spec, np.zeros((3, 2, 6), dtype=np.float32))


# ---------------------------------------------------------------- composition and files


def test_side_by_side_and_grid():
    left = np.zeros((5, 20, 30, 3), dtype=np.uint8)
    right = np.full((5, 24, 10, 3), 9, dtype=np.uint8)
    both = side_by_side(left, right, gap=4)
    assert both.shape == (5, 24, 44, 3)
    assert (both[:, :20, :30] == 0).all() and (both[:, :, 34:] == 9).all()
    assert (both[:, :, 30:34] == 255).all() and (both[:, 20:, :30] == 255).all()
    with pytest.raises(ValueError):
        side_by_side(left, right[:3])
    tiles = [np.full((10, 12, 3), k, dtype=np.uint8) for k in range(5)]
    g = grid(tiles, columns=3, gap=2)
    assert g.shape == (2 * 10 + 2, 3 * 12 + 2 * 2, 3)
    assert (g[12:22, 14:26] == 4).all() and (g[12:, 28:] == 255).all()
    assert grid([left, left], columns=2).shape == (5, 20, 64, 3)


def test_write_gif_and_mp4_read_back(tmp_path, real_scenes):
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("PIL")
    spec, states = real_scenes["billiards"]
    rgb, _ = render_frames(spec, states[:12], width=96, height=72)
    gif, mp4 = tmp_path / "scene.gif", tmp_path / "scene.mp4"
    write_gif(gif, rgb, fps=12)
    write_mp4(mp4, rgb, fps=12)
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 12 and frames.shape[1:3] == (72, 96)
    assert (frames[..., :3] == rgb).all()  # few colours: the GIF palette holds them exactly
    video = iio.imread(mp4, index=None, plugin="FFMPEG")
    assert video.shape == (12, 72, 96, 3)
    assert np.abs(video.astype(int) - rgb).mean() < 8  # lossy, but the same picture
    assert sorted(os.listdir(tmp_path)) == ["scene.gif", "scene.mp4"]  # no temporary files left
    # Odd sizes are padded to even ones for H.264.
    write_mp4(mp4, rgb[:, :71, :95], fps=12)
    assert iio.imread(mp4, index=None, plugin="FFMPEG").shape == (12, 72, 96, 3)


def test_missing_video_package_is_named(tmp_path, monkeypatch):
    real_find_spec = render.importlib.util.find_spec
    hidden = set()
    monkeypatch.setattr(
        render.importlib.util,
        "find_spec",
        lambda name, *a: None if name in hidden else real_find_spec(name, *a),
    )
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    hidden.add("imageio")
    with pytest.raises(ModuleNotFoundError, match="'imageio' package"):
        write_gif(tmp_path / "x.gif", frames)
    with pytest.raises(ModuleNotFoundError, match="'imageio' package"):
        write_mp4(tmp_path / "x.mp4", frames)
    if real_find_spec("imageio") is not None:
        hidden.clear()
        hidden.add("imageio_ffmpeg")
        with pytest.raises(ModuleNotFoundError, match="'imageio-ffmpeg' package: pip install imageio-ffmpeg"):
            write_mp4(tmp_path / "x.mp4", frames)
    assert not list(tmp_path.iterdir())
