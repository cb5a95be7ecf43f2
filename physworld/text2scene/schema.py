"""The parsed scene: one JSON schema both prompt parsers write, its check, and the compact text the
seq2seq parser writes instead of raw JSON.

    {
      "dims": 2 | 3,
      "objects": [{"name": "ball", "shape": null | "sphere" | ..., "material": "rubber" | null,
                   "colour": "red" | null, "size": "small" | "medium" | "large" | null, "count": 1}],
      "relations": [{"relation": "on", "subject": 0, "object": 2}],   # object indices; object null
                                                                     # for "stacked" and "in_a_row"
      "motion": {"action": "roll", "object": 0, "target": 1 | null} | null,
    }

A parser fills `name` with the noun as written (singular); `shape` stays null until the knowledge
base resolves the name (kb.py). An object with count n stands for n copies (a tower of five blocks is
one object, count 5, with the relation "stacked").

The compact target (what the T5 parser learns to write) is the same information as a short line, e.g.
"d2 ; 1 small red rubber ball ; 1 ramp ; 5 block | on 0 1 ; stacked 2 | roll 0 2", each object's words
in the order a prompt says them (count, size, colour, material, noun), an absent attribute left out
(sizes and colours are closed sets and the noun comes last, so each word's field is known from the word),
relations by subject: an alignment a small seq2seq model learns fast. An earlier form wrote "_" for each
absent attribute ("1 _ _ _ ramp"); early in training, runs of identical "_" made T5's decoder lose its
place and repeat itself (the final accuracy was the same: BENCHMARKS.md, text2scene); the line is
shorter without them, and from_compact still reads them.
"""

from __future__ import annotations

import copy

RELATIONS = ("on", "under", "left_of", "right_of", "next_to", "inside", "in_a_row", "stacked", "leaning_on")
GROUP_RELATIONS = ("in_a_row", "stacked")  # relations of one object's copies, no second object
ACTIONS = ("roll", "slide", "fall", "push", "throw")
SIZES = ("small", "medium", "large")
COLOURS = (
    "red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
    "cyan",
)  # fmt: skip
# sRGB of each colour name (the CLEVR colours where they exist, so 3D renders look like MOVi's)
COLOUR_RGB = {
    "red": [173, 35, 35], "blue": [42, 75, 215], "green": [29, 105, 20], "yellow": [255, 238, 51],
    "orange": [255, 146, 51], "purple": [129, 38, 192], "pink": [255, 205, 243], "brown": [129, 74, 25],
    "black": [30, 30, 30], "white": [235, 235, 235], "gray": [87, 87, 87], "cyan": [41, 208, 208],
}  # fmt: skip
MAX_OBJECTS = 8
MAX_COUNT = 12
OBJECT_FIELDS = ("name", "shape", "material", "colour", "size", "count")


class SceneError(ValueError):
    """A parsed scene that breaks the schema, or a prompt no parser could read: one line naming the part."""


def empty_scene(dims: int = 2) -> dict:
    return {"dims": dims, "objects": [], "relations": [], "motion": None}


def new_object(name: str, material=None, colour=None, size=None, count: int = 1) -> dict:
    return {"name": name, "shape": None, "material": material, "colour": colour, "size": size, "count": count}


def check_scene(scene, where: str = "scene") -> dict:
    """Raise SceneError naming the first field that breaks the schema; return the scene."""
    if not isinstance(scene, dict):
        raise SceneError(f"{where}: expected a JSON object, got {type(scene).__name__}")
    for key in ("dims", "objects", "relations", "motion"):
        if key not in scene:
            raise SceneError(f"{where}: missing field {key!r}")
    extra = set(scene) - {"dims", "objects", "relations", "motion"}
    if extra:
        raise SceneError(f"{where}: unknown field {sorted(extra)[0]!r}")
    if scene["dims"] not in (2, 3):
        raise SceneError(f"{where}.dims: must be 2 or 3, got {scene['dims']!r}")
    objects = scene["objects"]
    if not isinstance(objects, list) or not objects:
        raise SceneError(f"{where}.objects: no objects (the prompt names nothing physworld can place)")
    if len(objects) > MAX_OBJECTS:
        raise SceneError(f"{where}.objects: {len(objects)} object groups, at most {MAX_OBJECTS}")
    for i, o in enumerate(objects):
        w = f"{where}.objects[{i}]"
        if not isinstance(o, dict) or set(o) != set(OBJECT_FIELDS):
            raise SceneError(f"{w}: expected the fields {', '.join(OBJECT_FIELDS)}")
        if not isinstance(o["name"], str) or not o["name"].strip():
            raise SceneError(f"{w}.name: must be a non-empty string")
        for key in ("shape", "material"):
            if o[key] is not None and not isinstance(o[key], str):
                raise SceneError(f"{w}.{key}: must be a string or null")
        if o["colour"] is not None and o["colour"] not in COLOURS:
            raise SceneError(f"{w}.colour: {o['colour']!r} is not one of {', '.join(COLOURS)}")
        if o["size"] is not None and o["size"] not in SIZES:
            raise SceneError(f"{w}.size: {o['size']!r} is not one of {', '.join(SIZES)}")
        if (
            not isinstance(o["count"], int)
            or isinstance(o["count"], bool)
            or not 1 <= o["count"] <= MAX_COUNT
        ):
            raise SceneError(f"{w}.count: must be an integer 1..{MAX_COUNT}, got {o['count']!r}")
    n = len(objects)
    if not isinstance(scene["relations"], list):
        raise SceneError(f"{where}.relations: must be a list")
    for k, r in enumerate(scene["relations"]):
        w = f"{where}.relations[{k}]"
        if not isinstance(r, dict) or set(r) != {"relation", "subject", "object"}:
            raise SceneError(f"{w}: expected the fields relation, subject, object")
        if r["relation"] not in RELATIONS:
            raise SceneError(f"{w}.relation: {r['relation']!r} is not one of {', '.join(RELATIONS)}")
        if not _index(r["subject"], n):
            raise SceneError(f"{w}.subject: {r['subject']!r} is not an object index 0..{n - 1}")
        if r["relation"] in GROUP_RELATIONS:
            if r["object"] is not None:
                raise SceneError(f"{w}.object: {r['relation']} takes no second object")
        elif not _index(r["object"], n) or r["object"] == r["subject"]:
            raise SceneError(f"{w}.object: {r['object']!r} is not another object's index 0..{n - 1}")
    m = scene["motion"]
    if m is not None:
        if not isinstance(m, dict) or set(m) != {"action", "object", "target"}:
            raise SceneError(f"{where}.motion: expected null or the fields action, object, target")
        if m["action"] not in ACTIONS:
            raise SceneError(f"{where}.motion.action: {m['action']!r} is not one of {', '.join(ACTIONS)}")
        if not _index(m["object"], n):
            raise SceneError(f"{where}.motion.object: {m['object']!r} is not an object index")
        if m["target"] is not None and (not _index(m["target"], n) or m["target"] == m["object"]):
            raise SceneError(f"{where}.motion.target: {m['target']!r} is not another object's index")
    return scene


def _index(v, n: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n


def canonical(scene: dict) -> dict:
    """The scene as parsers are compared: shapes dropped (the knowledge base's, not the parser's),
    relations sorted, so equal meaning gives equal dicts."""
    out = copy.deepcopy(scene)
    for o in out["objects"]:
        o["shape"] = None
    out["relations"] = sorted(
        out["relations"], key=lambda r: (r["relation"], r["subject"], r["object"] or -1)
    )
    return out


# ---------------------------------------------------------------- the compact text


def to_compact(scene: dict) -> str:
    objs = " ; ".join(
        " ".join(
            [str(o["count"])]
            + [o[k].replace(" ", "_") for k in ("size", "colour", "material") if o[k]]
            + [o["name"].replace(" ", "_")]
        )
        for o in scene["objects"]
    )
    rels = " ; ".join(
        f"{r['relation']} {r['subject']}" + ("" if r["object"] is None else f" {r['object']}")
        for r in sorted(scene["relations"], key=lambda r: (r["subject"], r["relation"], r["object"] or -1))
    )
    m = scene["motion"]
    motion = (
        "_"
        if m is None
        else f"{m['action']} {m['object']}" + ("" if m["target"] is None else f" {m['target']}")
    )
    return f"d{scene['dims']} ; {objs} | {rels or '_'} | {motion}"


def from_compact(text: str) -> dict:
    """The scene a compact line stands for; SceneError naming the part that does not read."""
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 3:
        raise SceneError(f"compact scene: expected 3 parts separated by '|', got {len(parts)}: {text!r}")
    head, rels, motion = parts
    items = [s.strip() for s in head.split(";")]
    if not items or items[0] not in ("d2", "d3"):
        raise SceneError(f"compact scene: expected d2 or d3 first, got {items[0]!r}")
    scene = empty_scene(int(items[0][1]))

    for item in items[1:]:
        words = item.split()
        if len(words) < 2 or not words[0].isdigit():
            raise SceneError(f"compact scene: object {item!r} is not 'count [size] [colour] [material] name'")
        attrs = {"size": None, "colour": None, "material": None}
        for w in words[1:-1]:  # "_" is an absent attribute (the older fixed-slot format wrote them)
            key = "size" if w in SIZES else "colour" if w in COLOURS else None if w == "_" else "material"
            if key is not None and attrs[key] is not None:
                raise SceneError(f"compact scene: object {item!r} has two {key} words")
            if key is not None:
                attrs[key] = w.replace("_", " ")
        scene["objects"].append(
            new_object(
                words[-1].replace("_", " "), attrs["material"], attrs["colour"], attrs["size"], int(words[0])
            )
        )
    if rels != "_":
        for item in rels.split(";"):
            words = item.split()
            if len(words) not in (2, 3) or not all(w.isdigit() for w in words[1:]):
                raise SceneError(
                    f"compact scene: relation {item.strip()!r} is not 'relation subject [object]'"
                )
            scene["relations"].append(
                {
                    "relation": words[0],
                    "subject": int(words[1]),
                    "object": int(words[2]) if len(words) == 3 else None,
                }
            )
    if motion != "_":
        words = motion.split()
        if len(words) not in (2, 3) or not all(w.isdigit() for w in words[1:]):
            raise SceneError(f"compact scene: motion {motion!r} is not 'action object [target]'")
        scene["motion"] = {
            "action": words[0],
            "object": int(words[1]),
            "target": int(words[2]) if len(words) == 3 else None,
        }
    return check_scene(scene, "compact scene")


# ---------------------------------------------------------------- scoring


def scene_fields(scene: dict) -> set[tuple]:
    """The scene as a set of facts, for field-level precision and recall: each object attribute (keyed
    by the object's name, so order does not matter), each relation and the motion, by names."""
    s = canonical(scene)
    names = [o["name"] for o in s["objects"]]
    facts = {("dims", s["dims"])}
    for o in s["objects"]:
        for key in ("material", "colour", "size", "count"):
            facts.add(("object", o["name"], key, o[key]))
    for r in s["relations"]:
        facts.add(
            (
                "relation",
                r["relation"],
                names[r["subject"]],
                None if r["object"] is None else names[r["object"]],
            )
        )
    m = s["motion"]
    if m is not None:
        facts.add(
            ("motion", m["action"], names[m["object"]], None if m["target"] is None else names[m["target"]])
        )
    return facts


def same_scene(a: dict, b: dict) -> bool:
    """Exact match up to object order: the same facts (scene_fields) and the same number of objects."""
    return len(a["objects"]) == len(b["objects"]) and scene_fields(a) == scene_fields(b)


def field_counts(predicted: dict | None, expected: dict) -> tuple[int, int, int]:
    """(true positives, predicted facts, expected facts) for micro-averaged F1."""
    want = scene_fields(expected)
    got = set() if predicted is None else scene_fields(predicted)
    return len(got & want), len(got), len(want)


def f1(tp: int, predicted: int, expected: int) -> float:
    if predicted == 0 and expected == 0:
        return 1.0
    return 2 * tp / max(predicted + expected, 1)
