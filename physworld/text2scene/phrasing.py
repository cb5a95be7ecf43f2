"""Prompt -> scene pairs for the seq2seq parser, generated from physworld's scenario library.

Each scene comes from a scenario family named after the 2D library's types (tower, ramp_roll,
dominos, bowling, ...; worlds/registry.py) filled with knowledge-base objects, then is written as a
prompt with one of several phrasings per relation, motion and sentence frame. Every phrasing has an
id; HELDOUT ids never appear in training (`split="train"`) and only in `split="heldout"`, so the
evaluation measures phrasings the model never saw. Deterministic from the seed.
"""

from __future__ import annotations

import numpy as np

from physworld.text2scene.kb import plural
from physworld.text2scene.schema import COLOURS, SIZES, check_scene, new_object

# Object names by role (all knowledge-base objects)
ROLLERS = ["ball", "rubber ball", "basketball", "football", "tennis ball", "golf ball", "bowling ball",
           "billiard ball", "marble", "cannonball", "sphere", "orange", "apple", "melon", "rock", "globe",
           "can", "barrel", "log", "tire"]  # fmt: skip
BLOCKS = ["block", "cube", "brick", "crate", "box", "book", "tile", "jenga block", "lego brick", "dice",
          "weight", "gold bar", "laptop", "suitcase", "pillow"]  # fmt: skip
UPRIGHTS = ["domino", "bottle", "can", "candle", "book", "jar", "pillar", "block"]
CONTAINERS = ["bucket", "bowl", "basket", "bin", "tray"]
PLATFORMS = ["table", "desk", "bench", "shelf", "stool"]
RAMPS = ["ramp", "slope", "incline"]
PLANKS = ["plank", "beam", "ruler"]
SMALL = ["ball", "tennis ball", "marble", "apple", "orange", "cube", "dice", "block", "golf ball", "coin"]
MATERIALS = ["rubber", "wood", "wooden", "steel", "metal", "glass", "plastic", "foam", "ice", "stone",
             "iron", "gold", "aluminium", "concrete", "clay", "cork"]  # fmt: skip
MATERIAL_CANON = {"wooden": "wood", "metal": "steel"}
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}

# Phrasings. "{a}" and "{b}" are object phrases; ids ending in "h" are held out of training.
RELATION_PHRASES = {
    "on": [("on0", "{a} on {b}"), ("on1", "{a} on top of {b}"), ("on2", "{a} resting on {b}"),
           ("on3", "{a} sitting on {b}"), ("on4", "{b} with {a} on it"), ("on5h", "{a} placed atop {b}"),
           ("on6h", "{a} lying upon {b}")],
    "under": [("un0", "{a} under {b}"), ("un1", "{a} underneath {b}"), ("un2h", "{a} beneath {b}"),
              ("un3h", "{a} below {b}")],
    "left_of": [("lo0", "{a} to the left of {b}"), ("lo1", "{a} left of {b}"),
                ("lo2h", "{a} on the left side of {b}")],
    "right_of": [("ro0", "{a} to the right of {b}"), ("ro1", "{a} right of {b}"),
                 ("ro2h", "{a} on the right side of {b}")],
    "next_to": [("nt0", "{a} next to {b}"), ("nt1", "{a} beside {b}"), ("nt2h", "{a} alongside {b}")],
    "inside": [("in0", "{a} inside {b}"), ("in1", "{a} in {b}"), ("in2h", "{a} within {b}")],
    "leaning_on": [("le0", "{a} leaning on {b}"), ("le1", "{a} leaning against {b}"),
                   ("le2h", "{a} propped against {b}")],
    # group relations: {n} is the count, {x} the plural noun phrase
    "stacked": [("st0", "a tower of {n} {x}"), ("st1", "{n} {x} stacked"), ("st2", "a stack of {n} {x}"),
                ("st3h", "a pile of {n} {x}"), ("st4h", "{n} {x} piled up")],
    "in_a_row": [("rw0", "{n} {x} in a row"), ("rw1", "a row of {n} {x}"), ("rw2h", "a line of {n} {x}"),
                 ("rw3h", "{n} {x} lined up")],
}  # fmt: skip
# motions: {a} the mover, {r} a ramp it goes down, {t} its target
MOTION_PHRASES = {
    "roll_ramp": [("rr0", "{a} rolls down {r}"), ("rr1", "{a} rolling down {r}"), ("rr2h", "{a} rolls off {r}")],
    "slide_ramp": [("sr0", "{a} slides down {r}"), ("sr1h", "{a} sliding down {r}")],
    "target": {
        "roll": [("tr0", "into {t}"), ("tr1", "towards {t}"), ("tr2h", "and hits {t}")],
        "slide": [("ts0", "into {t}"), ("ts1h", "and hits {t}")],
    },
    "roll": [("ro0", "{a} rolls into {t}"), ("ro1", "{a} rolls towards {t}"), ("ro2h", "{a} rolling at {t}")],
    "push": [("pu0", "{a} is pushed into {t}"), ("pu1", "{a} hits {t}"), ("pu2", "{a} crashes into {t}"),
             ("pu3h", "{a} smashes into {t}")],
    "fall": [("fa0", "{a} falls onto {t}"), ("fa1", "{a} dropped onto {t}"), ("fa2h", "{a} drops on {t}")],
    "throw": [("th0", "{a} thrown at {t}"), ("th1", "{a} is thrown towards {t}"), ("th2h", "{a} tossed at {t}")],
}  # fmt: skip
FRAMES = [("f0", "{s}"), ("f1", "there is {s}"), ("f2", "a scene with {s}"), ("f3", "simulate {s}"),
          ("f4h", "imagine {s}"), ("f5h", "show me {s}")]  # fmt: skip
DIMS3 = [("d0", "{s} in 3d"), ("d1", "a 3d scene: {s}"), ("d2h", "{s}, in three dimensions")]
JOINS = [("j0", ", and "), ("j1", " and "), ("j2", ", "), ("j3h", "; ")]


def is_heldout(phrase_id: str) -> bool:
    return phrase_id.endswith("h")


class _Writer:
    """Picks phrasings for one split and writes object phrases, first mention in full, later 'the x'."""

    def __init__(self, rng, split: str):
        self.rng, self.split = rng, split
        self.mentioned: set[int] = set()
        self.order: list[int] = []  # object ids by first mention

    def pick(self, options):
        usable = [o for o in options if is_heldout(o[0]) == (self.split == "heldout")] or options
        return usable[int(self.rng.integers(len(usable)))][1]

    def phrase(self, objects, i: int, group: bool = False) -> str:
        o = objects[i]
        if i in self.mentioned:
            return "the " + (plural(o["name"]) if o["count"] > 1 else o["name"])
        self.mentioned.add(i)
        self.order.append(i)
        adjs = [v for v in (o["size"], o["colour"], o["_material_word"]) if v]
        noun = plural(o["name"]) if o["count"] > 1 else o["name"]
        words = " ".join([*adjs, noun])
        if group:
            return words
        if o["count"] > 1:
            n = o["count"]
            return f"{NUMBERS[n] if self.rng.random() < 0.8 else n} {words}"
        det = "the" if self.rng.random() < 0.15 else ("an" if words[0] in "aeiou" else "a")
        return f"{det} {words}"


_WORDS: dict = {}


def _kb_words() -> dict:
    if not _WORDS:
        from physworld.text2scene.kb import KnowledgeBase

        _WORDS.update(KnowledgeBase().words)
    return _WORDS


def _obj(rng, names, count=1, p_attr=0.35):
    name = names[int(rng.integers(len(names)))]
    colour = COLOURS[int(rng.integers(len(COLOURS)))] if rng.random() < p_attr else None
    size = SIZES[int(rng.integers(len(SIZES)))] if rng.random() < p_attr * 0.6 else None
    mword = MATERIALS[int(rng.integers(len(MATERIALS)))] if rng.random() < p_attr else None
    if mword and (name.split()[0] in MATERIALS or mword in name or f"{mword} {name}" in _kb_words()):
        mword = None  # no "gold gold bar", "glass rubber ball", "stone ball" (the KB's rock)
    o = new_object(name, MATERIAL_CANON.get(mword, mword), colour, size, count)
    o["_material_word"] = mword
    return o


def _distinct(rng, pools, counts=None):
    """Objects with different names, one drawn from each pool."""
    out, used = [], set()
    for k, pool in enumerate(pools):
        names = [n for n in pool if n not in used]
        o = _obj(rng, names, (counts or [1] * len(pools))[k])
        used.add(o["name"])
        out.append(o)
    return out


def _count(rng, low=3, high=6) -> int:
    return int(rng.integers(low, high + 1))


def sample_scene(rng, split: str = "train") -> tuple[str, dict]:
    """(prompt, scene) from one scenario family, in one split's phrasings."""
    w = _Writer(rng, split)
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    objects, clauses, relations, motion = family(rng, w)
    # objects not yet mentioned (extras) get a clause of their own
    text = w.pick(JOINS).join(c for c in clauses if c)
    text = w.pick(FRAMES).format(s=text)
    dims = 3 if rng.random() < 0.25 else 2
    if dims == 3:
        text = w.pick(DIMS3).format(s=text)
    # re-index by first mention, as a reader (and the rules parser) numbers them
    new = {old: k for k, old in enumerate(w.order)}
    scene = {
        "dims": dims,
        "objects": [{k: v for k, v in objects[old].items() if not k.startswith("_")} for old in w.order],
        "relations": [
            {"relation": r, "subject": new[a], "object": None if b is None else new[b]} for r, a, b in relations
        ],
        "motion": None if motion is None else {
            "action": motion[0], "object": new[motion[1]], "target": None if motion[2] is None else new[motion[2]]
        },
    }  # fmt: skip
    return text, check_scene(scene)


# ---------------------------------------------------------------- scenario families


def _group(rng, w, objects, i, relation):
    o = objects[i]
    n = NUMBERS[o["count"]] if rng.random() < 0.8 else str(o["count"])
    template = w.pick(RELATION_PHRASES[relation])
    text = template.format(n=n, x=w.phrase(objects, i, group=True))
    return text


def tower(rng, w):
    """tower / pyramid: a stack, sometimes something knocked into it"""
    objects = _distinct(rng, [BLOCKS, ROLLERS], [_count(rng, 2, 6), 1])
    relations = [("stacked", 0, None)]
    clauses = [_group(rng, w, objects, 0, "stacked")]
    motion = None
    if rng.random() < 0.5:
        motion = ("push", 1, 0)
        clauses.append(w.pick(MOTION_PHRASES["push"]).format(a=w.phrase(objects, 1), t=w.phrase(objects, 0)))
    else:
        objects = objects[:1]
    return objects, clauses, relations, motion


def ramp_roll(rng, w):
    """ramp_roll / ski_jump: something rolls or slides down a ramp, maybe into a target"""
    action = "roll" if rng.random() < 0.7 else "slide"
    mover_pool = ROLLERS if action == "roll" else BLOCKS
    has_target = rng.random() < 0.6
    target_rel = "stacked" if rng.random() < 0.5 else "in_a_row"
    pools = [mover_pool, RAMPS] + ([BLOCKS if target_rel == "stacked" else UPRIGHTS] if has_target else [])
    counts = [1, 1] + ([_count(rng)] if has_target else [])
    objects = _distinct(rng, pools, counts)
    relations = [("on", 0, 1)]
    text = w.pick(MOTION_PHRASES[f"{action}_ramp"]).format(a=w.phrase(objects, 0), r=w.phrase(objects, 1))
    motion = (action, 0, None)
    if has_target:
        tgt = w.pick(MOTION_PHRASES["target"][action])
        text += " " + tgt.format(t=_group(rng, w, objects, 2, target_rel))
        relations.append((target_rel, 2, None))
        motion = (action, 0, 2)
    return objects, [text], relations, motion


def dominos(rng, w):
    """dominos / bowling: a row of uprights, a ball rolled or pushed into them"""
    objects = _distinct(rng, [UPRIGHTS, ROLLERS], [_count(rng, 3, 8), 1])
    relations = [("in_a_row", 0, None)]
    clauses = [_group(rng, w, objects, 0, "in_a_row")]
    action = "roll" if rng.random() < 0.5 else "push"
    clauses.append(w.pick(MOTION_PHRASES[action]).format(a=w.phrase(objects, 1), t=w.phrase(objects, 0)))
    return objects, clauses, relations, (action, 1, 0)


def stack_pair(rng, w):
    """a thing on another (tower of two), maybe both on a platform"""
    on_platform = rng.random() < 0.4
    pools = [BLOCKS + ROLLERS, BLOCKS] + ([PLATFORMS] if on_platform else [])
    objects = _distinct(rng, pools)
    relations = [("on", 0, 1)]
    clauses = [w.pick(RELATION_PHRASES["on"]).format(a=w.phrase(objects, 0), b=w.phrase(objects, 1))]
    if on_platform:
        relations.append(("on", 1, 2))
        clauses.append(w.pick(RELATION_PHRASES["on"]).format(a=w.phrase(objects, 1), b=w.phrase(objects, 2)))
    return objects, clauses, relations, None


def side_by_side(rng, w):
    """two or three things beside each other on the floor"""
    rel = ["left_of", "right_of", "next_to"][int(rng.integers(3))]
    objects = _distinct(rng, [BLOCKS + ROLLERS + UPRIGHTS, BLOCKS + ROLLERS + UPRIGHTS])
    clauses = [w.pick(RELATION_PHRASES[rel]).format(a=w.phrase(objects, 0), b=w.phrase(objects, 1))]
    relations = [(rel, 0, 1)]
    if rng.random() < 0.4:
        objects += _distinct(rng, [[n for n in BLOCKS + ROLLERS if n not in {o["name"] for o in objects}]])
        rel2 = ["left_of", "right_of", "next_to"][int(rng.integers(3))]
        if rel2 == rel:  # both of 0 on one side keeps the layout solvable
            rel2 = "next_to"
        clauses.append(w.pick(RELATION_PHRASES[rel2]).format(a=w.phrase(objects, 2), b=w.phrase(objects, 1)))
        relations.append((rel2, 2, 1))
    return objects, clauses, relations, None


def container(rng, w):
    """funnel / basketball: something inside a container"""
    objects = _distinct(rng, [SMALL, CONTAINERS])
    clauses = [w.pick(RELATION_PHRASES["inside"]).format(a=w.phrase(objects, 0), b=w.phrase(objects, 1))]
    return objects, clauses, [("inside", 0, 1)], None


def under(rng, w):
    objects = _distinct(rng, [BLOCKS + ROLLERS, PLATFORMS])
    clauses = [w.pick(RELATION_PHRASES["under"]).format(a=w.phrase(objects, 0), b=w.phrase(objects, 1))]
    return objects, clauses, [("under", 0, 1)], None


def leaning(rng, w):
    objects = _distinct(rng, [PLANKS, ["crate", "box", "barrel", "pillar", "suitcase", "block"]])
    clauses = [w.pick(RELATION_PHRASES["leaning_on"]).format(a=w.phrase(objects, 0), b=w.phrase(objects, 1))]
    return objects, clauses, [("leaning_on", 0, 1)], None


def drop(rng, w):
    """projectile / avalanche: something falls onto or is thrown at something"""
    action = "fall" if rng.random() < 0.6 else "throw"
    targets = BLOCKS + PLATFORMS + ([] if action == "fall" else CONTAINERS)
    objects = _distinct(rng, [ROLLERS + BLOCKS, targets])
    relations = [("on", 0, 1)] if action == "fall" else []
    clauses = [w.pick(MOTION_PHRASES[action]).format(a=w.phrase(objects, 0), t=w.phrase(objects, 1))]
    return objects, clauses, relations, (action, 0, 1)


FAMILIES = [tower, ramp_roll, dominos, stack_pair, side_by_side, container, under, leaning, drop]


def corpus(n: int, seed: int, split: str = "train") -> list[tuple[str, dict]]:
    """n (prompt, scene) pairs of one split, deterministic from the seed."""
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "heldout": 2}[split]])
    return [sample_scene(rng, split) for _ in range(n)]
