"""Captions and questions: events on hand-built scenes with known outcomes, and answers checked
against fresh simulations written independently of physworld.data.captions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from physworld.data import captions
from physworld.data.captions import describe_scene, extract_events, remove_body
from physworld.data.generate import make_record
from physworld.data.render import PALETTE, PALETTE_NAMES, body_color_names, body_colors, render_frames
from physworld.data.store import records_to_table, table_to_records
from physworld.worlds.engine import simulate
from physworld.worlds.spec import arena, box, circle, new_spec, pin, segment

G = 981.0


def record_of(spec: dict, frames: int, seed: int = 0) -> dict:
    run = simulate(spec, frames)
    return {
        "spec": spec,
        "states": run["states"],
        "events": run["events"],
        "seed": seed,
        "scenario_type": "hand",
    }


def kinds(events, kind):
    return [e for e in events if e["kind"] == kind]


# ---------------------------------------------------------------- events on scenes with known outcomes


def test_dropped_ball_falls_hits_the_ground_once_and_comes_to_rest():
    spec = new_spec("drop")
    spec["statics"] = arena(elasticity=0.0)
    spec["bodies"] = [circle((400, 300), 20, elasticity=0.0)]
    out = describe_scene(record_of(spec, 120))
    hits = kinds(out["events"], "collide")
    assert len(hits) == 1 and hits[0]["with_static"] and hits[0]["objects"] == [0]
    assert captions.static_names(spec)[0][hits[0]["static"]] == "ground"
    # free fall from 280 px above contact: t = sqrt(2 h / g)
    predicted = math.sqrt(2 * 280 / G) * 60
    assert abs(hits[0]["frame"] - predicted) <= 1.5
    assert hits[0]["strength"] == pytest.approx(math.sqrt(2 * G * 280) / 100, rel=0.05)  # m/s
    (fall,) = kinds(out["events"], "fall")
    assert fall["frame"] < 10 and fall["drop"] == pytest.approx(2.8, abs=0.1)
    (rest,) = kinds(out["events"], "come_to_rest")
    assert hits[0]["frame"] <= rest["frame"] <= hits[0]["frame"] + 5
    assert out["caption"] == (
        "There is one object: a red ball. The red ball falls, then the red ball hits the ground, "
        "then the red ball comes to rest."
    )


def test_head_on_balls_collide_at_the_predicted_frame():
    spec = new_spec("head on", gravity=(0, 0))
    spec["statics"] = arena()
    spec["bodies"] = [circle((200, 300), 20, velocity=(200, 0)), circle((600, 300), 20, velocity=(-250, 0))]
    events = extract_events(spec, *simulate(spec, 90).values())
    (hit,) = kinds(events, "collide")
    # the gap of 360 px closes at 450 px/s; the faster blue ball is the one that hits
    assert abs(hit["frame"] - 360 / 450 * 60) <= 1
    assert hit["objects"] == [1, 0]
    # equal masses, elasticity 0.25: the relative velocity 4.5 m/s changes by (1 + e) * 4.5
    assert hit["strength"] == pytest.approx(1.25 * 4.5, rel=0.05)
    assert not kinds(events, "fall") and not kinds(events, "topple")


def test_a_tipped_block_topples_and_a_resting_square_does_nothing():
    spec = new_spec("topple")
    spec["statics"] = arena()
    spec["bodies"] = [box((300, 60.5), 20, 120, angular_velocity=-2.0), box((600, 20.5), 40, 40)]
    events = extract_events(spec, *simulate(spec, 120).values())
    assert [e["objects"] for e in kinds(events, "topple")] == [[0]]
    assert all(e["objects"] == [0] for e in events), events  # the square only settles: no event
    topple = kinds(events, "topple")[0]
    assert topple["angle"] >= 45
    assert any(e["kind"] == "come_to_rest" and e["frame"] > topple["frame"] for e in events)


def test_a_ball_thrown_in_an_arc_does_not_fall_but_one_pushed_off_a_ledge_does():
    spec = new_spec("ledge")
    spec["statics"] = arena() + [segment((0, 295), (400, 295))]
    spec["bodies"] = [
        circle((100, 320.5), 20, velocity=(500, 0), friction=0.0),
        box((380, 315.5), 30, 30, friction=0.2),
        circle((600, 30), 20, velocity=(0, 500), elasticity=0.0),
    ]
    events = extract_events(spec, *simulate(spec, 180).values())
    fell = {e["objects"][0] for e in kinds(events, "fall")}
    assert fell == {0, 1}  # the thrown ball (2) rises and comes down: not a fall
    push = kinds(events, "collide")[0]
    assert sorted(push["objects"]) == [0, 1]
    assert min(e["frame"] for e in kinds(events, "fall") if e["objects"] == [1]) > push["frame"]


def test_enter_and_exit_the_view():
    spec = new_spec("fly through", gravity=(0, 0))
    spec["bodies"] = [circle((-50, 300), 10, velocity=(600, 0))]
    events = extract_events(spec, *simulate(spec, 120).values())
    # the centre is at x = 0 in frame 5 and at x = 800 in frame 85: the view's edges belong to it
    assert [(e["kind"], e["frame"]) for e in events] == [("enter", 5), ("exit", 86)]


def test_explanatory_answer_names_the_cause_found_by_removing_it():
    spec = new_spec("ledge")
    spec["statics"] = arena() + [segment((0, 295), (400, 295))]
    spec["bodies"] = [circle((100, 320.5), 20, velocity=(500, 0), friction=0.0), box((380, 315.5), 30, 30)]
    out = describe_scene(record_of(spec, 180))
    (q,) = [
        q
        for q in out["questions"]
        if q["question"] == "Which object's collision caused the blue square to fall?"
    ]
    assert q["answer"] == "red ball" and "red ball" in q["choices"]
    # the ball rolls off on its own: removing the square does not stop its fall
    (q,) = [
        q
        for q in out["questions"]
        if q["question"] == "Which object's collision caused the red ball to fall?"
    ]
    assert q["answer"] == "none of them"


# ---------------------------------------------------------------- names follow the renderer


def test_colour_names_are_the_colours_the_renderer_draws():
    assert body_color_names(3) == ["red", "blue", "green"]
    names = body_color_names(40)
    assert names[:20] == list(PALETTE_NAMES) and len(names) == 40
    assert len(body_colors(40)) == 40
    spec = make_record(0, "billiards", 1, 3, 1)["spec"]
    rgb, masks = render_frames(spec, simulate(spec, 0)["states"], width=128)
    named, _ = captions.body_names(spec)
    for i, name in enumerate(named):
        pixels = rgb[0][masks[0] == i + 1]
        assert (pixels == PALETTE[i]).all(
            axis=-1
        ).mean() > 0.5  # mostly its fill (a rotation line crosses it)
        assert name == f"{PALETTE_NAMES[i]} ball"


def test_bodies_that_share_colour_and_shape_are_told_apart_by_size_or_not_asked_about():
    spec = new_spec("many", gravity=(0, 0))
    spec["bodies"] = [circle((40 + 25 * i, 300), 8 if i != 22 else 16) for i in range(30)]
    colours = body_color_names(30)
    assert colours[22] == colours[5] == "dark green"  # beyond the palette, names repeat
    names, unique = captions.body_names(spec)
    assert (names[5], names[22], unique[5], unique[22]) == (
        "small dark green ball",
        "large dark green ball",
        True,
        True,
    )
    # same size: told apart by where they start, left to right
    spec["bodies"][22] = circle((40 + 25 * 22, 300), 8)
    names, unique = captions.body_names(spec)
    assert (names[5], names[22]) == ("left dark green ball", "right dark green ball") and unique[22]
    # same size and place (they share a group, so they pass through each other): no name for either
    spec["bodies"][5] = circle((40 + 25 * 22, 303), 8, group=1)
    spec["bodies"][22] = circle((40 + 25 * 22, 300), 8, group=1)
    names, unique = captions.body_names(spec)
    assert names[5] == names[22] == "dark green ball" and not unique[5] and not unique[22]
    out = describe_scene(record_of(spec, 10))
    assert out["questions"] and all("dark green ball" not in q["question"] for q in out["questions"])


# ---------------------------------------------------------------- determinism and interface


SAMPLE = [
    ("head_on", 2, 1),
    ("dominos", 1, 1),
    ("projectile", 2, 0),
    ("chain_reaction", 1, 2),
    ("pendulum", 2, 5),
]


@pytest.fixture(scope="module")
def described():
    out = []
    for scenario_type, difficulty, seed in SAMPLE:
        record = make_record(0, scenario_type, difficulty, seed, 150)
        out.append((record, describe_scene(record, horizon_frames=120, predict_frames=90)))
    return out


def test_same_record_same_json_and_store_round_trip(described):
    for record, out in described:
        again = describe_scene(record, horizon_frames=120, predict_frames=90)
        assert json.dumps(out, sort_keys=True) == json.dumps(again, sort_keys=True)
    records = [r for r, _ in described]
    for stored, (_, out) in zip(table_to_records(records_to_table(records)), described, strict=True):
        assert describe_scene(stored, horizon_frames=120, predict_frames=90) == out


def test_interface_shape(described):
    types = set()
    for _, out in described:
        assert set(out) >= {"caption", "events", "questions"} and out["caption"]
        frames = [e["frame"] for e in out["events"]]
        assert frames == sorted(frames) and all(f <= 120 for f in frames)
        for e in out["events"]:
            assert e["kind"] in captions.KIND_ORDER and all(isinstance(i, int) for i in e["objects"])
        for q in out["questions"]:
            assert q["type"] in ("descriptive", "explanatory", "predictive", "counterfactual")
            assert isinstance(q["answer"], str) and q["question"].endswith("?") and "evidence" in q
            if "choices" in q:
                assert q["answer"] in q["choices"]
            types.add(q["type"])
    assert types == {"descriptive", "explanatory", "predictive", "counterfactual"}


def test_yes_no_answers_are_balanced_in_every_scene(described):
    for _, out in described:
        by_template: dict[str, list[str]] = {}
        for q in out["questions"]:
            if q["answer"] in ("yes", "no"):
                by_template.setdefault(q["template"], []).append(q["answer"])
        for answers in by_template.values():
            assert answers.count("yes") == answers.count("no")


def test_bad_horizon_is_refused():
    record = make_record(0, "head_on", 1, 0, 30)
    with pytest.raises(ValueError, match="horizon_frames"):
        describe_scene(record, horizon_frames=31)
    with pytest.raises(ValueError, match="predict_frames"):
        describe_scene(record, predict_frames=0)


# ---------------------------------------------------------------- answers against fresh simulations


def strong_onset(spec, run, a, b, first, last):
    """Independent of captions.py: is there a contact onset between bodies a and b (b = -1: static)
    in frames first..last whose impulse / reduced mass reaches the collision threshold?"""
    ev = run["events"]
    masses = [bd["mass"] for bd in spec["bodies"]]
    for f, x, y, j in zip(ev["frame"], ev["body_a"], ev["body_b"], ev["impulse"], strict=True):
        if not first <= f <= last or sorted((int(x), int(y))) != sorted((a, b)):
            continue
        if b >= 0 and masses[a] > 0 and masses[b] > 0:
            m = masses[a] * masses[b] / (masses[a] + masses[b])
        else:
            m = masses[a] or masses[b]
        if j / m / 100.0 >= captions.COLLIDE_MIN_DV:
            return True
    return False


def body_index(spec, name):
    names, _ = captions.body_names(spec)
    return names.index(name.removeprefix("the "))


def test_predictive_and_counterfactual_answers_match_fresh_simulations(described):
    checked = {"predictive": 0, "counterfactual": 0}
    for record, out in described:
        spec = record["spec"]
        for q in out["questions"]:
            if q["template"] not in ("will_hit", "hit_without") or " hit the " not in q["question"]:
                continue
            text = q["question"]
            target = text.split(" hit ")[1].split(" in the ")[0].rstrip("?")
            subject = text.split(" would " if q["template"] == "hit_without" else "Will ")[1].split(" hit ")[
                0
            ]
            names, _ = captions.body_names(spec)
            if target.removeprefix("the ") not in names:
                continue  # static targets: checked through extract_events elsewhere
            a, b = body_index(spec, subject), body_index(spec, target)
            if q["template"] == "will_hit":
                spec_used, run, lo, hi = spec, simulate(spec, 120 + 90), 121, 210
            else:
                removed = q["evidence"]["removed"]
                # remove the body by hand: delete it and every joint that names it, renumber the rest
                keep = [i for i in range(len(spec["bodies"])) if i != removed]
                cf = json.loads(json.dumps(spec))
                cf["bodies"] = [spec["bodies"][i] for i in keep]
                cf["constraints"] = [
                    dict(
                        c,
                        a=keep.index(c["a"]) if c["a"] >= 0 else -1,
                        b=keep.index(c["b"]) if c["b"] >= 0 else -1,
                    )
                    for c in spec["constraints"]
                    if removed not in (c["a"], c["b"])
                ]
                run = simulate(cf, 120)
                spec_used, a, b, lo, hi = cf, keep.index(a), keep.index(b), 1, 120
            truth = strong_onset(spec_used, run, a, b, lo, hi)
            assert (q["answer"] == "yes") == truth, (text, q)
            checked[q["type"]] += 1
    assert checked["predictive"] >= 2 and checked["counterfactual"] >= 2, checked


def test_remove_body_removes_it_and_its_joints():
    spec = make_record(0, "chain", 1, 0, 1)["spec"]
    spec["constraints"].append(pin(0, 3))
    k = 2
    out, old_to_new = remove_body(spec, k)
    assert len(out["bodies"]) == len(spec["bodies"]) - 1 and old_to_new[k] == -1
    assert out["bodies"] == [b for i, b in enumerate(spec["bodies"]) if i != k]
    expected = [
        (old_to_new[c["a"]] if c["a"] >= 0 else -1, old_to_new[c["b"]] if c["b"] >= 0 else -1)
        for c in spec["constraints"]
        if k not in (c["a"], c["b"])
    ]
    assert [(c["a"], c["b"]) for c in out["constraints"]] == expected
    assert len(out["constraints"]) < len(spec["constraints"])
    assert simulate(out, 5)["states"].shape == (6, len(spec["bodies"]) - 1, 6)
    # controllers' targets follow the renumbering (pong paddles track the balls)
    pong = make_record(0, "pong", 3, 0, 1)["spec"]
    targets = [b["controller"]["targets"] for b in pong["bodies"] if b.get("controller")]
    first = targets[0][0]
    out, old_to_new = remove_body(pong, first)
    for b in out["bodies"]:
        if b.get("controller"):
            assert b["controller"]["targets"] == [old_to_new[t] for t in targets[0] if t != first]
    simulate(out, 5)
    with pytest.raises(ValueError, match="out of range"):
        remove_body(spec, len(spec["bodies"]))


def test_predictive_run_reproduces_the_clip(described):
    for _, out in described:
        for q in out["questions"]:
            if q["type"] == "predictive":
                assert q["evidence"]["reproduces_clip"] is True


def test_every_2d_type_is_described():
    from physworld.worlds.registry import SCENARIOS

    for scenario_type in SCENARIOS:
        out = describe_scene(make_record(0, scenario_type, 1, 0, 60))
        assert out["caption"] and json.loads(json.dumps(out)) == out
        assert np.isfinite([e["time"] for e in out["events"]]).all()


# ---------------------------------------------------------------- 3D scenes (PyBullet)


def spec_3d(gravity=(0.0, 0.0, -9.81)):
    from physworld.worlds import spec3d

    spec = spec3d.new_spec("hand", gravity=gravity)
    spec["statics"] = [spec3d.floor()]
    return spec


def test_3d_dropped_sphere_falls_hits_the_floor_once_and_comes_to_rest():
    from physworld.worlds import spec3d

    spec = spec_3d()
    spec["bodies"] = [spec3d.sphere((0.0, 0.0, 2.0), 0.25, color="red", material="metal", restitution=0.0)]
    out = describe_scene(record_of(spec, 48))
    assert out["objects"][0]["name"] == "red sphere"
    (hit,) = kinds(out["events"], "collide")
    assert hit["with_static"] and captions.static_names(spec)[0][hit["static"]] == "floor"
    assert abs(hit["frame"] - math.sqrt(2 * 1.75 / 9.81) * 24) <= 1.5
    assert [e["objects"] for e in kinds(out["events"], "fall")] == [[0]]
    (rest,) = kinds(out["events"], "come_to_rest")
    assert rest["frame"] >= hit["frame"]
    assert out["caption"].startswith(
        "There is one object: a red sphere. The red sphere falls, then the red sphere hits the floor"
    )


def test_3d_head_on_spheres_collide_at_the_predicted_frame_and_counterfactual_removes_the_hit():
    from physworld.worlds import spec3d

    spec = spec_3d(gravity=(0.0, 0.0, 0.0))
    spec["bodies"] = [
        spec3d.sphere((-2.0, 0.0, 1.0), 0.25, velocity=(2.0, 0.0, 0.0), color="red"),
        spec3d.sphere((2.0, 0.0, 1.0), 0.25, velocity=(-2.0, 0.0, 0.0), color="blue"),
        spec3d.box((0.0, 3.0, 1.0), (0.5, 0.5, 0.5), color="green"),
    ]
    record = record_of(spec, 36)
    events = extract_events(spec, record["states"], record["events"])
    (hit,) = kinds(events, "collide")
    assert sorted(hit["objects"]) == [0, 1] and abs(hit["frame"] - 3.5 / 4.0 * 24) <= 1
    out = describe_scene(record)
    assert json.dumps(out) == json.dumps(describe_scene(record))
    for q in out["questions"]:
        if q["template"] == "hit_without" and q["question"].endswith("hit the blue sphere?"):
            assert q["answer"] == "no" and q["evidence"]["removed"] == 0  # only removing red removes the hit
    without_red, _ = remove_body(spec, 0)
    run = simulate(without_red, 36)
    assert not [
        e for e in extract_events(without_red, run["states"], run["events"]) if e["kind"] == "collide"
    ]


def test_3d_names_use_material_then_size_only_when_needed():
    from physworld.worlds import spec3d

    spec = spec_3d()
    spec["bodies"] = [
        spec3d.sphere((0, 0, 1), 0.3, color="red", material="metal"),
        spec3d.sphere((1, 0, 1), 0.3, color="red", material="rubber"),
        spec3d.box((2, 0, 1), (0.4, 0.4, 0.4), color="blue"),
        spec3d.box((3, 0, 1), (0.8, 0.8, 0.8), color="blue"),
        spec3d.box((4, 0, 1), (0.4, 0.4, 1.2), color="green"),
    ]
    names, unique = captions.body_names(spec)
    assert names == [
        "metal red sphere",
        "rubber red sphere",
        "small blue cube",
        "large blue cube",
        "green block",
    ]
    assert all(unique)


def test_3d_movi_answers_match_fresh_simulations():
    record = make_record(0, "movi_a", 2, 3, 36)
    out = describe_scene(record, predict_frames=24)
    spec = record["spec"]
    names, _ = captions.body_names(spec)
    checked = 0
    for q in out["questions"]:
        if q["template"] != "hit_without":
            continue
        subject = q["question"].split(" would the ")[1].split(" hit ")[0]
        target = q["question"].split(" hit the ")[1].rstrip("?")
        cf, old_to_new = remove_body(spec, q["evidence"]["removed"])
        assert len(cf["bodies"]) == len(spec["bodies"]) - 1
        run = simulate(cf, 36)
        a = old_to_new[names.index(subject)]
        b = old_to_new[names.index(target)] if target in names else -1
        onsets = [
            (int(f), int(x), int(y))
            for f, x, y in zip(
                run["events"]["frame"], run["events"]["body_a"], run["events"]["body_b"], strict=True
            )
            if sorted((int(x), int(y))) == sorted((a, b))
        ]
        # "no" needs no contact onset at all; "yes" one the extraction judged strong enough
        if q["answer"] == "no":
            assert not [o for o in onsets if o[0] > 0 and strong_3d(cf, run, o)], q
        else:
            assert onsets, q
        checked += 1
    assert checked >= 2


def strong_3d(spec, run, onset):
    """A contact onset in a 3D run (of a scene whose only static is the floor) that is a collision:
    its impulse over the reduced mass, or the speed the two approached along the line of centres
    (the floor's normal) in the frame before, reaches the threshold."""
    f, a, b = onset
    if a < 0:
        a, b = b, a
    masses = [body["mass"] for body in spec["bodies"]]
    m = masses[a] * masses[b] / (masses[a] + masses[b]) if b >= 0 else masses[a]
    j = [i for i, (g, x, y) in enumerate(zip(*(run["events"][k] for k in ("frame", "body_a", "body_b")), strict=True))
         if (g, sorted((x, y))) == (f, sorted((a, b)))]  # fmt: skip
    impulse = float(run["events"]["impulse"][j[0]])
    s = run["states"][max(f - 1, 0)].astype(np.float64)
    if b >= 0:
        normal, rel = s[a, 0:3] - s[b, 0:3], s[a, 7:10] - s[b, 7:10]
    else:
        normal, rel = np.array([0.0, 0.0, 1.0]), s[a, 7:10]
    approach = -(rel @ normal) / np.linalg.norm(normal)
    return max(impulse / m, approach) >= captions.COLLIDE_MIN_DV


# ---------------------------------------------------------------- physworld captions (a dataset's captions on disk)


def test_captions_verb_is_resumable_and_independent_of_workers(tmp_path, capsys):
    from physworld.cli import main

    data = tmp_path / "data"
    assert main(["generate", "--output-dir", str(data), "--scenario-types", "head_on", "tower",
                 "--num-scenes-per-type", "2", "--frames-per-scene", "40", "--scenes-per-shard", "2",
                 "--quiet"]) == 0  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        main(["captions", "--data-dir", str(data), "--output-dir", str(one), "--num-workers", "1", "--quiet"])
        == 0
    )
    assert (
        main(["captions", "--data-dir", str(data), "--output-dir", str(two), "--num-workers", "2", "--quiet"])
        == 0
    )
    files = sorted(p.name for p in one.iterdir())
    assert files == ["captions.json", "captions_00000.jsonl", "captions_00001.jsonl"]
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    lines = [json.loads(line) for f in files[1:] for line in (one / f).read_text().splitlines()]
    assert sorted(r["scene_id"] for r in lines) == [0, 1, 2, 3] and all(r["caption"] for r in lines)
    # an interrupted run resumes: a lost file is rewritten byte for byte, the others are kept
    before = (one / files[1]).read_bytes()
    (one / files[2]).unlink()
    (one / ".captions_00001.jsonl.tmp123").write_text("half written")
    assert main(["captions", "--data-dir", str(data), "--output-dir", str(one), "--quiet"]) == 0
    assert (one / files[2]).read_bytes() == (two / files[2]).read_bytes() and (
        one / files[1]
    ).read_bytes() == before
    assert sorted(p.name for p in one.iterdir()) == files
    capsys.readouterr()
    # mistakes: one line, exit 2, nothing written is lost
    assert (
        main(["captions", "--data-dir", str(data), "--output-dir", str(one), "--horizon-frames", "20"]) == 2
    )
    assert "differs in: horizon_frames" in capsys.readouterr().err
    assert (
        main(
            [
                "captions",
                "--data-dir",
                str(data),
                "--output-dir",
                str(tmp_path / "x"),
                "--horizon-frames",
                "41",
            ]
        )
        == 2
    )
    assert "--horizon-frames 41" in capsys.readouterr().err
    assert (one / files[1]).read_bytes() == before
