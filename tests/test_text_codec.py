"""The text codec (physworld/data/text.py): exact round trips at the formats' precision, a parser that
never raises on what a model might write, prompts that carry the whole scene, and tokenizers."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from physworld.data import text as T
from physworld.data.generate import make_record
from physworld.data.jsonl import read_scene_file
from physworld.data.store import canonical_json
from physworld.worlds.registry import SCENARIOS

FRAMES = 24
GUIDE_FILES = sorted((Path(__file__).parent / "data" / "physicsllmengine").glob("*/scene_*.jsonl"))
# Types that between them have every static kind, constraint kind, force field, controller and shape.
PROMPT_TYPES = ("pinball", "bridge", "seesaw", "chain", "wind", "gravity_well", "pong", "angry_birds")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [make_record(j, name, 1 + j % 5, 7 + j, FRAMES) for j, name in enumerate(SCENARIOS)]


@pytest.fixture(scope="module")
def by_type(records) -> dict:
    return {r["scenario_type"]: r for r in records}


def _random_states(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Finite float32 states of every kind: ordinary, tiny, huge, exact rounding ties, signed zeros."""
    n = rows * 6
    parts = [
        rng.uniform(-1000, 1000, n),
        rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-12, 38.5, n),
        (rng.integers(-(10**6), 10**6, n) + 0.5) / 10.0 ** rng.integers(0, 7, n),  # ties at every precision
        rng.integers(-1000, 1000, n) / 8.0,  # exactly representable ties (x.125, x.375, ...)
        rng.choice([0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 1.1754944e-38], n),
        rng.uniform(-0.006, 0.006, n),  # rounds to (negative) zero at the coarser quanta
    ]
    vals = np.concatenate(parts)
    vals = np.clip(vals, -3.4028235e38, 3.4028235e38).astype(np.float32)
    rng.shuffle(vals)
    return vals[: (vals.size // 6) * 6].reshape(-1, 6)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- round trip and precision


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_round_trip_is_exact_on_random_states(fmt):
    rng = np.random.default_rng(1)
    states = _random_states(rng, 1500)  # 9000 values
    for block in np.array_split(states, 30):
        text = T.frame_text(block, fmt)
        got = T.parse_frame(text, len(block), fmt)
        assert got.complete and got.errors == []
        assert _same_bits(got.states, T.quantize(block, fmt))
        assert not np.signbit(got.states[got.states == 0]).any()  # zero is always +0
        if fmt == "compact":
            assert not re.search(r"(^| )-0\.0*( |$)", text, re.M), "negative zero written"
            assert not re.search(r"[eE+]", text)


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_round_trip_is_exact_on_real_states(records, fmt):
    guide_states = [read_scene_file(p)["states"] for p in GUIDE_FILES]
    for r_states, spec in [(r["states"], r["spec"]) for r in records] + [(s, None) for s in guide_states]:
        n = r_states.shape[1]
        for s in r_states:
            got = T.parse_frame(T.frame_text(s, fmt, spec=spec), n, fmt)
            assert got.complete, got.errors
            assert _same_bits(got.states, T.quantize(s, fmt))


def test_compact_spelling_is_fixed_per_field(records):
    s = records[0]["states"][5]
    for line in T.frame_text(s).splitlines()[:-1]:
        index, *values = line.split(" ")
        assert index.isdigit()
        for v, d in zip(values, T.DECIMALS["compact"], strict=True):
            assert re.fullmatch(rf"-?(0|[1-9][0-9]*)\.[0-9]{{{d}}}", v), (v, d)


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_precision_bounds_per_field(records, fmt):
    rng = np.random.default_rng(2)
    states = np.concatenate(
        [r["states"].reshape(-1, 6) for r in records] + [rng.uniform(-2e3, 2e3, (3000, 6))]
    )
    states = states.astype(np.float32)
    q = T.quantize(states, fmt)
    err = np.abs(q.astype(np.float64) - states.astype(np.float64))
    half = 0.5 * 10.0 ** -np.array(T.DECIMALS[fmt], dtype=np.float64)
    # The decimal's own rounding, plus float32's rounding of the decimal (the guide's 4 decimals are
    # finer than float32 resolves at a few hundred px).
    bound = half + np.spacing(np.abs(q)).astype(np.float64)
    assert (err <= bound).all()
    assert (err <= half + 1e-4).all()
    if fmt == "compact":
        assert (err.max(axis=0) >= 0.9 * half).all()  # the quanta are what limits precision


def test_quantized_states_write_the_same_text(records):
    """A rollout feeds parsed states back into the prompt: they must spell exactly as the originals."""
    for r in records:
        for s in r["states"][::4]:
            assert T.frame_text(T.quantize(s)) == T.frame_text(s)
    limits = np.array([131072, 131072, 1024, 2**20, 2**20, 16384], dtype=np.float64)  # documented range
    s = (np.random.default_rng(5).uniform(-1, 1, (20000, 6)) * limits).astype(np.float32)
    s = s[(np.abs(s) < limits).all(axis=1)]
    q = T.quantize(s)
    assert _same_bits(T.quantize(q), q)


def test_negative_zero_and_non_finite():
    s = np.zeros((2, 6), np.float32)
    s[0] = [-0.0, -0.004, -0.00004, -0.04, -0.0004, -1e-30]
    text = T.frame_text(s)
    assert text.splitlines()[0] == "0 0.00 0.00 0.0000 0.0 0.0 0.000"
    assert not np.signbit(T.quantize(s)).any()
    for fmt in T.FORMATS:
        bad = s.copy()
        bad[1, 4] = np.nan
        with pytest.raises(ValueError, match="body 1: vy"):
            T.frame_text(bad, fmt)
        with pytest.raises(ValueError, match="shape"):
            T.frame_text(np.zeros((3, 5), np.float32), fmt)
    with pytest.raises(ValueError, match="format"):
        T.frame_text(s, "yaml")


# ---------------------------------------------------------------- the parser on what models write


def _frame(by_type, name="pinball", t=3) -> tuple[np.ndarray, str]:
    s = by_type[name]["states"][t]
    return s, T.frame_text(s)


def _check(got: T.FrameParse, n: int) -> None:
    assert isinstance(got, T.FrameParse)
    assert got.states.shape == (n, 6) and got.states.dtype == np.float32
    assert all(isinstance(e, str) for e in got.errors)
    assert got.complete == (not got.errors)
    if got.complete:
        assert np.isfinite(got.states).all()
    else:
        assert got.errors


def test_parse_missing_extra_repeated_and_malformed(by_type):
    s, text = _frame(by_type)
    q, n = T.quantize(s), len(s)
    lines = text.splitlines()

    missing = "\n".join(lines[:2] + lines[3:]) + "\n"
    got = T.parse_frame(missing, n)
    _check(got, n)
    assert "body 2: missing" in got.errors and not got.complete
    assert np.isnan(got.states[2]).all()
    assert _same_bits(np.delete(got.states, 2, 0), np.delete(q, 2, 0))

    extra = text.replace(";", f"{n} 1.00 2.00 0.0000 0.0 0.0 0.000\n;")
    got = T.parse_frame(extra, n)
    assert any(f"body index {n} is not in 0..{n - 1}" in e for e in got.errors)
    assert _same_bits(got.states, q) and not got.complete

    repeated = lines[1] + "\n" + text
    got = T.parse_frame(repeated, n)
    assert any("body 1 repeated" in e for e in got.errors)
    assert np.isnan(got.states[1]).all() and np.isfinite(np.delete(got.states, 1, 0)).all()

    parts = lines[3].split(" ")
    parts[4] = "1.2.3"
    garbled = text.replace(lines[3], " ".join(parts))
    got = T.parse_frame(garbled, n)
    assert "line 4: body 3: cannot parse vx '1.2.3'" in got.errors
    assert np.isnan(got.states[3, 3]) and np.isfinite(np.delete(got.states[3], 3)).all()

    for bad in ("1e5", "nan", "inf", "+1.0", "0x10", "١٢", "1,5", ""):
        p = lines[0].split(" ")
        p[1] = bad
        got = T.parse_frame(text.replace(lines[0], " ".join(p)), n)
        _check(got, n)
        assert not got.complete and np.isnan(got.states[0]).any(), bad

    short = text.replace(lines[2], " ".join(lines[2].split(" ")[:4]))
    got = T.parse_frame(short, n)
    assert any("body 2 has 3 values, expected 6" in e for e in got.errors)
    assert np.isnan(got.states[2]).all()

    got = T.parse_frame(text.replace(";\n", ""), n)
    assert _same_bits(got.states, q) and not got.complete
    assert any("no frame terminator" in e for e in got.errors)

    huge = text.replace(lines[0].split(" ")[1], "9" * 50, 1)
    got = T.parse_frame(huge, n)
    assert any("out of float32 range" in e for e in got.errors)

    # A model running on into the next frame: only the first frame is read.
    got = T.parse_frame(text + text.replace("0", "7"), n)
    assert got.complete and _same_bits(got.states, q)


def test_parse_garbage_never_raises(by_type):
    rng = np.random.default_rng(3)
    _, text = _frame(by_type)
    n = 5
    inputs = [None, 123, b"", "", ";", "\n\n;", "0" * 100000, "[" * 100000, "{" * 5000, "\x00" * 50]
    inputs += [rng.bytes(int(rng.integers(1, 400))) for _ in range(40)]
    inputs += [rng.bytes(300).decode("latin-1") for _ in range(40)]
    inputs += [text[:k] for k in range(0, len(text), 7)]  # truncated everywhere
    for fmt in T.FORMATS:
        for x in inputs:
            got = T.parse_frame(x, n, fmt)
            _check(got, n)
            assert not got.complete
    assert T.parse_frame("", 0).errors == ["no frame terminator ';': the text is truncated or not a frame"]
    assert T.parse_frame(";", 0).complete


def _mutate(rng: np.random.Generator, text: str) -> str:
    alphabet = list('0123456789.- \n;abcxyz{}[]":,') + ["\u00e9", "\t", "1.2.3", "nan", "-0"]
    kind = int(rng.integers(0, 7))
    k = int(rng.integers(0, max(1, len(text))))
    if kind == 0:  # delete a span
        return text[:k] + text[k + int(rng.integers(1, 8)) :]
    if kind == 1:  # insert
        return text[:k] + str(rng.choice(alphabet)) + text[k:]
    if kind == 2:  # replace a character
        return text[:k] + str(rng.choice(alphabet)) + text[k + 1 :]
    if kind == 3:  # truncate
        return text[:k]
    lines = text.split("\n")
    j = int(rng.integers(0, len(lines)))
    if kind == 4:  # duplicate a line
        return "\n".join(lines[: j + 1] + lines[j:])
    if kind == 5:  # drop a line
        return "\n".join(lines[:j] + lines[j + 1 :])
    i = int(rng.integers(0, len(lines)))  # swap two lines
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_parse_random_mutations_of_real_frames(by_type, fmt):
    rng = np.random.default_rng(4)
    names = ("pinball", "chain", "billiards", "seesaw")
    incomplete = 0
    for trial in range(400):
        r = by_type[names[trial % len(names)]]
        s = r["states"][int(rng.integers(0, FRAMES + 1))]
        text = T.frame_text(s, fmt, spec=r["spec"])
        mutated = text
        for _ in range(int(rng.integers(1, 4))):
            mutated = _mutate(rng, mutated)
        got = T.parse_frame(mutated, len(s), fmt)
        _check(got, len(s))
        incomplete += not got.complete
        if mutated.split(";")[0] == text.split(";")[0] and ";" in mutated:
            assert got.complete and _same_bits(got.states, T.quantize(s, fmt))
    assert incomplete > 200  # the mutations do break frames, and the parser says so


def test_guide_parse_recovers_whole_objects_from_a_cut_frame(by_type):
    r = by_type["chain"]
    s, n = r["states"][6], r["states"].shape[1]
    text = T.frame_text(s, "guide", spec=r["spec"])
    cut = text[: text.index('{"id": 5,') + 30]
    got = T.parse_frame(cut, n, "guide")
    assert _same_bits(got.states[:5], T.quantize(s, "guide")[:5])
    assert np.isnan(got.states[5:]).all()
    assert any(e.startswith("frame JSON: cannot parse") for e in got.errors)
    assert "body 5: missing" in got.errors and f"body {n - 1}: missing" in got.errors

    obj = json.loads(text.split("\n")[0])
    obj["objects"][2]["velocity"]["y"] = "fast"
    del obj["objects"][3]["angle"]
    obj["objects"][4]["id"] = 1
    got = T.parse_frame(json.dumps(obj) + "\n;\n", n, "guide")
    assert "object 2: body 2: velocity.y not a number ('\"fast\"')" in got.errors
    assert "object 3: body 3: angle missing" in got.errors
    assert any("body 1 repeated" in e for e in got.errors) and "body 4: missing" in got.errors
    assert np.isnan(got.states[2, 4]) and np.isnan(got.states[3, 2]) and np.isnan(got.states[1]).all()
    # The guide's own full frame line (with "frame" and "description") reads too.
    obj = json.loads(text.split("\n")[0])
    line = json.dumps({"frame": 7, "description": "Frame 7: all objects are in motion.", **obj})
    assert T.parse_frame(line + "\n;", n, "guide").complete


# ---------------------------------------------------------------- frames, prompts, examples


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_frame_end_is_present_and_unique(records, fmt):
    for r in records[::5]:
        for s in r["states"][::6]:
            text = T.frame_text(s, fmt, spec=r["spec"])
            assert text.endswith(T.FRAME_END) and text.count(";") == 1
        prompt = T.scene_prompt(r["spec"], fmt)
        assert ";" not in prompt and prompt.endswith("\n")
        p, c = T.training_example(r, 10, 4, fmt)
        assert p.count(T.FRAME_END) == 4 and c.count(T.FRAME_END) == 1


def test_compact_frame_layout(by_type):
    s, text = _frame(by_type)
    lines = text.split("\n")
    assert lines[-2:] == [";", ""] and len(lines) == len(s) + 2
    assert [ln.split(" ")[0] for ln in lines[: len(s)]] == [str(i) for i in range(len(s))]


@pytest.mark.parametrize("name", PROMPT_TYPES)
def test_compact_scene_prompt_has_every_property_and_is_deterministic(by_type, name):
    spec = by_type[name]["spec"]
    prompt = T.scene_prompt(spec)
    assert prompt == T.scene_prompt(copy.deepcopy(spec))
    assert prompt == T.scene_prompt(json.loads(canonical_json(spec)))  # as the store gives it back
    lines = prompt.splitlines()
    assert lines[-1] == T.LEGEND
    w = spec["world"]
    assert lines[0].split(" ") == [
        "world", T._pnum(w["width"]), T._pnum(w["height"]), "g", *map(T._pnum, w["gravity"]),
        "dt", T._pnum(w["dt"]), "sub", str(w["substeps"]), "it", str(w["iterations"]), "damp", T._pnum(w["damping"]),
    ]  # fmt: skip
    assert sum(ln.startswith("static ") for ln in lines) == len(spec["statics"])
    assert sum(ln.startswith("joint ") for ln in lines) == len(spec["constraints"])
    assert sum(ln.startswith("field ") for ln in lines) == sum(bool(v) for v in spec["fields"].values())
    for i, b in enumerate(spec["bodies"]):
        (line,) = [ln for ln in lines if ln.startswith(f"body {i} ")]
        toks = line.split(" ")
        assert toks[2] == b["shape"]

        def after(key, count=1, toks=toks):
            j = toks.index(key, 3)
            return toks[j + 1 : j + 1 + count]

        if b["shape"] == "circle":
            assert after("r") == [T._pnum(b["radius"])]
        elif b["shape"] == "box":
            assert after("w") == [T._pnum(b["width"])] and after("h") == [T._pnum(b["height"])]
        else:
            verts = [T._pnum(c) for v in b["vertices"] for c in v]
            assert toks[3 : 4 + len(verts)] == [str(len(b["vertices"])), *verts]
        assert after("m") == [T._pnum(b["mass"])] and after("I") == [T._pnum(b["moment"])]
        assert after("f") == [T._pnum(b["friction"])] and after("e") == [T._pnum(b["elasticity"])]
        assert after("kin") == ["1" if b["kinematic"] else "0"] and after("grp") == [str(b["group"])]
        assert (f"ctrl {i} " in prompt) == bool(b.get("controller"))


def test_prompt_numbers_are_plain():
    assert [T._pnum(v) for v in (1 / 60, -981.0, 0.0, -0.0, 1e20, 2.5e-7, 72.0000001, None, True)] == [
        "0.0166667", "-981", "0", "0", "100000000000000000000", "0.00000025", "72", "none", "1",
    ]  # fmt: skip


def test_guide_prompt_and_frame(by_type):
    r = by_type["bridge"]
    spec = r["spec"]
    head = json.loads(T.scene_prompt(spec, "guide"))
    assert head["type"] == "scene_header" and head["object_count"] == len(spec["bodies"])
    assert len(head["constraints"]) == len(spec["constraints"]) > 0
    assert len(head["static_geometry"]) == len(spec["statics"])
    for i, (o, b) in enumerate(zip(head["objects"], spec["bodies"], strict=True)):
        assert o["id"] == i and o["material"]["mass"] == pytest.approx(b["mass"], rel=1e-5)
        assert o["moment"] == pytest.approx(b["moment"], rel=1e-5) and o["kinematic"] == b["kinematic"]
    frame = json.loads(T.frame_text(r["states"][3], "guide", spec=spec).split("\n")[0])
    o = frame["objects"][1]
    assert list(o) == ["id", "type", "position", "velocity", "angle", "angular_velocity", "material"]
    assert (
        o["type"] == {"circle": "circle", "box": "rectangle", "poly": "polygon"}[spec["bodies"][1]["shape"]]
    )
    assert o["position"]["x"] == round(float(r["states"][3, 1, 0]), 4)
    # Without a spec the objects carry id and state only.
    bare = json.loads(T.frame_text(r["states"][3], "guide").split("\n")[0])
    assert list(bare["objects"][0]) == ["id", "position", "velocity", "angle", "angular_velocity"]


@pytest.mark.parametrize("fmt", T.FORMATS)
def test_training_example_and_rollout_prompt(by_type, fmt):
    r = by_type["chain"]
    s, spec = r["states"], r["spec"]
    prompt, completion = T.training_example(r, 10, 3, fmt)
    head = T.scene_prompt(spec, fmt)
    frames = [T.frame_text(s[t], fmt, spec=spec) for t in (8, 9, 10)]
    assert prompt == head + "".join(frames)
    assert prompt.endswith(T.frame_text(s[10], fmt, spec=spec))
    assert completion == T.frame_text(s[11], fmt, spec=spec)
    assert T.rollout_prompt(spec, s[8:11], fmt) == prompt
    # Parsed (predicted) frames give back the same prompt.
    parsed = np.stack([T.parse_frame(f, s.shape[1], fmt).states for f in frames])
    if fmt == "compact":
        assert T.rollout_prompt(spec, parsed, fmt) == prompt
    # Early frames: the context is clipped at frame 0, like the rollout's window.
    prompt, completion = T.training_example(r, 1, 5, fmt)
    assert prompt == T.rollout_prompt(spec, s[0:2], fmt) and completion == T.frame_text(s[2], fmt, spec=spec)
    for t in (-1, FRAMES):
        with pytest.raises(ValueError, match="t must be"):
            T.training_example(r, t, 3, fmt)
    with pytest.raises(ValueError, match="context_frames"):
        T.training_example(r, 3, 0, fmt)
    with pytest.raises(ValueError, match="frames must be"):
        T.rollout_prompt(spec, s[:3, :-1], fmt)


# ---------------------------------------------------------------- tokenizers


def test_char_tokenizer(records, tmp_path):
    tok = T.CharTokenizer()
    assert tok.vocab_size == len(tok) == 4 + 1 + 95
    texts = []
    for r in records:
        for fmt in T.FORMATS:
            texts.append(T.scene_prompt(r["spec"], fmt))
            texts += [T.frame_text(s, fmt, spec=r["spec"]) for s in r["states"][::8]]
        texts.append(T.training_example(r, 5, 2)[0])
    for t in texts:
        ids = tok.encode(t)
        assert tok.unk_id not in ids and max(ids) < tok.vocab_size
        assert tok.decode(ids) == t
    ids = tok.encode("1é\t🙂;", add_bos=True, add_eos=True)
    assert ids == [
        tok.bos_id,
        tok.encode("1")[0],
        tok.unk_id,
        tok.unk_id,
        tok.unk_id,
        tok.encode(";")[0],
        tok.eos_id,
    ]
    assert tok.decode(ids) == "1\ufffd\ufffd\ufffd;"
    assert tok.decode([tok.pad_id, tok.bos_id], skip_special=False) == "<pad><bos>"
    path = tok.save(tmp_path / "tok")
    assert json.loads(path.read_text())["type"] == "CharTokenizer"
    back = T.CharTokenizer.load(tmp_path / "tok")
    assert back.tokens == tok.tokens and back.encode(texts[0]) == tok.encode(texts[0])


def test_train_bpe_round_trips(records):
    texts = [T.rollout_prompt(r["spec"], r["states"][:6]) for r in records[:6]]
    tok = T.train_bpe(texts, 300)
    assert tok.get_vocab_size() <= 300 and tok.token_to_id("<pad>") == 0 and tok.token_to_id("<eos>") == 2
    for r in records[20:24]:
        for fmt in T.FORMATS:
            frame = T.frame_text(r["states"][7], fmt, spec=r["spec"])
            assert tok.decode(tok.encode(frame).ids) == frame
    assert len(tok.encode(texts[0]).ids) < len(texts[0])  # it learned merges
    with pytest.raises(ValueError, match="vocab_size"):
        T.train_bpe(texts, 100)
