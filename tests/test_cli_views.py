"""`physworld gallery` and `physworld heldout-examples`: real files from real simulations."""

from __future__ import annotations

import numpy as np
import pytest

from physworld.cli import main


def test_gallery_writes_a_gif_per_type_and_a_grid(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    out = tmp_path / "gallery"
    assert (
        main(
            [
                "gallery",
                "--output-dir",
                str(out),
                "--scenario-types",
                "pendulum",
                "billiards",
                "--difficulty",
                "2",
                "--fps",
                "15",
                "--frames-per-scene",
                "40",
                "--width",
                "96",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["billiards.gif", "gallery.png", "pendulum.gif"]
    gif = iio.imread(out / "pendulum.gif")
    assert gif.ndim == 4 and gif.shape[1:] == (72, 96, 3)
    assert len(gif) > 1 and not np.array_equal(gif[0], gif[-1]), "the pendulum must move"
    sheet = iio.imread(out / "gallery.png")
    assert sheet.shape[0] == 72 and sheet.shape[1] == 2 * 96 + 4
    assert (sheet < 200).any(), "the grid holds drawn bodies, not a blank page"


def test_gallery_rejects_bad_flags(tmp_path, capsys):
    assert main(["gallery", "--output-dir", str(tmp_path), "--difficulty", "9", "--quiet"]) == 2
    assert "--difficulty must be one of" in capsys.readouterr().err


def test_heldout_examples_from_simulation_and_from_a_dataset(tmp_path):
    out = tmp_path / "ex.txt"
    assert (
        main(
            [
                "heldout-examples",
                "--output",
                str(out),
                "--num-examples",
                "2",
                "--scenario-types",
                "pong",
                "bowling",
                "--frames-per-scene",
                "30",
                "--every",
                "10",
            ]
        )
        == 0
    )
    text = out.read_text()
    assert text.count("=== scene") == 4 and "| pong (minigame)" in text and "| bowling (collision)" in text
    assert "frame body" in text and "\n   30 " in text  # the last frame is always shown
    data = tmp_path / "data"
    assert (
        main(
            [
                "generate",
                "--output-dir",
                str(data),
                "--scenario-types",
                "pong",
                "--num-scenes-per-type",
                "2",
                "--frames-per-scene",
                "20",
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "heldout-examples",
                "--output",
                str(out),
                "--data-dir",
                str(data),
                "--num-examples",
                "1",
                "--scenario-types",
                "pong",
            ]
        )
        == 0
    )
    assert out.read_text().count("=== scene") == 1
