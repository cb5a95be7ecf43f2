"""`physworld gallery`: one animated GIF per scenario type and one grid image of all of them.

2D types are drawn by render.py (the 4:3 world at `width` px); 3D types by render3d.py from their
spec's camera with PyBullet's TinyRenderer, in square `width` x `width` frames."""

from __future__ import annotations

from pathlib import Path

from physworld.data.generate import make_record, scene_seed
from physworld.data.render import grid, label, render_frames, write_gif, write_png


def render_gallery(
    output_dir,
    scenario_types,
    difficulty: int = 3,
    fps: float = 15,
    seed: int = 0,
    frames: int = 200,
    width: int = 256,
    columns: int = 7,
    progress: bool = True,
) -> list[Path]:
    """Simulate one scene per type (seeded), write <type>.gif for each and gallery.png; returns the paths.

    The GIF shows every `round(sim_fps / fps)`-th simulated frame (60 frames/s in 2D, 24 in 3D), so
    it plays at about real time.
    """
    from tqdm.auto import tqdm

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, stills = [], []
    for t in tqdm(scenario_types, unit="type", desc="gallery", disable=not progress):
        record = make_record(0, t, difficulty, scene_seed(seed, t, 0), frames)
        spec = record["spec"]
        step = max(1, round(1.0 / spec["world"]["dt"] / fps))
        if spec["world"].get("dims", 2) == 3:
            from physworld.data.render3d import camera_3d, render_views

            poses = record["states"][::step, :, :7]
            rgb = render_views(spec, poses, camera_3d(spec["camera"], width, width))["rgb"]
        else:
            rgb, _ = render_frames(spec, record["states"], width=width, frames=slice(0, None, step))
        rgb = label(rgb, f"{t} (d{difficulty})")
        path = out / f"{t}.gif"
        write_gif(path, rgb, fps=fps)
        written.append(path)
        stills.append(rgb[len(rgb) // 3])  # a frame with the action under way
    sheet = out / "gallery.png"
    write_png(sheet, grid(stills, columns=columns))
    return [*written, sheet]
