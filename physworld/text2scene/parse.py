"""The rules parser: a vocabulary and a few patterns, no learning. The fallback, and the baseline the
T5 parser is measured against (bench/bench_text2scene.py).

The prompt is lower-cased and cut into items by greedy longest match against the vocabulary (nouns and
materials from the knowledge base with their aliases and plurals; colours, sizes, numbers, relation,
group and motion phrases). Then one pass reads object phrases ([a | the | number | "a tower of" n]
adjectives noun) and links them: `X <relation> Y`, `Y with X <relation> it`, `X <verb> down Y` (on +
motion), `X <verb> into Y` (motion target), `n Xs stacked / in a row`. A word after an article or an
adjective that the vocabulary lacks is taken as a noun, for the knowledge base to place by meaning.
"""

from __future__ import annotations

import re

from physworld.text2scene.kb import KnowledgeBase
from physworld.text2scene.schema import COLOURS, MAX_OBJECTS, SceneError, check_scene, empty_scene, new_object

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a pair of": 2}  # fmt: skip
SIZE_WORDS = {"small": "small", "tiny": "small", "little": "small", "mini": "small", "medium": "medium",
              "large": "large", "big": "large", "huge": "large", "giant": "large", "heavy": None}  # fmt: skip
RELATION_WORDS = {
    "on": "on", "on top of": "on", "atop": "on", "upon": "on", "onto": "on", "resting on": "on",
    "sitting on": "on", "sits on": "on", "rests on": "on", "standing on": "on", "stands on": "on",
    "placed on": "on", "placed atop": "on", "lying on": "on", "lying upon": "on", "lies on": "on",
    "balanced on": "on", "stacked on": "on", "under": "under", "underneath": "under", "beneath": "under",
    "below": "under", "to the left of": "left_of", "left of": "left_of", "on the left of": "left_of",
    "on the left side of": "left_of", "to the right of": "right_of", "right of": "right_of",
    "on the right of": "right_of", "on the right side of": "right_of", "next to": "next_to",
    "beside": "next_to", "alongside": "next_to", "by": "next_to", "near": "next_to", "inside": "inside",
    "in": "inside", "within": "inside", "inside of": "inside", "leaning on": "leaning_on",
    "leaning against": "leaning_on", "leans on": "leaning_on", "leans against": "leaning_on",
    "propped against": "leaning_on", "propped on": "leaning_on", "resting against": "leaning_on",
}  # fmt: skip
GROUP_BEFORE = {"a tower of": "stacked", "a stack of": "stacked", "a pile of": "stacked", "tower of": "stacked",
                "stack of": "stacked", "pile of": "stacked", "a row of": "in_a_row", "a line of": "in_a_row",
                "row of": "in_a_row", "line of": "in_a_row"}  # fmt: skip
GROUP_AFTER = {"stacked": "stacked", "stacked up": "stacked", "piled up": "stacked", "piled": "stacked",
               "in a row": "in_a_row", "in a line": "in_a_row", "lined up": "in_a_row",
               "side by side": "in_a_row", "on top of each other": "stacked"}  # fmt: skip
VERBS = {}
for _action, _words in {
    "roll": "roll rolls rolling rolled",
    "slide": "slide slides sliding slid",
    "fall": "fall falls falling fell drop drops dropped dropping lands landing",
    "push": "push pushes pushed hits hit crashes crash crashing smashes smash smashing knocks knock "
    "strikes strike bumps bump collides collide slams slam rams shoved",
    "throw": "throw throws thrown threw toss tosses tossed launched launch flung",
}.items():
    for _w in _words.split():
        VERBS[_w] = _action
DOWN = {"down", "off", "along", "down along"}
TARGET = {"into", "towards", "toward", "at", "against", "to"}
DETS = {"a": 1, "an": 1, "the": None, "one": 1, "another": 1, "some": None, "its": None}
DIM_PATTERNS = [(r"\b(3\s*-?\s*d|three[\s-]dimension(al|s)?)\b", " dimthree "),
                (r"\b(2\s*-?\s*d|two[\s-]dimension(al|s)?)\b", " dimtwo ")]  # fmt: skip
STOP = {"there", "is", "are", "was", "be", "being", "scene", "simulate", "show", "me", "imagine", "of", "then",
        "which", "that", "and", "it", "with", "also", "picture", "render", "make", "put", "place", "while",
        "as", "so", "please", "just", "down", "into", "towards", "toward", "at"}  # fmt: skip


def _lexicon(kb: KnowledgeBase) -> dict[tuple, tuple]:
    lex: dict[tuple, tuple] = {}

    def add(phrase, item):
        lex.setdefault(tuple(phrase.split()), item)

    for c in COLOURS:  # before the nouns: "orange" reads as a colour unless it ends the phrase
        add(c, ("colour", c))
    for w in ("a scene with", "a scene of", "a scene", "scene", "show me", "there is", "there are"):
        add(w, ("stop", None))
    add("with", ("with", None))
    for p, rel in GROUP_AFTER.items():
        add(p, ("group_after", rel))
    for p, rel in GROUP_BEFORE.items():
        add(p, ("group_before", rel))
    for p, rel in RELATION_WORDS.items():
        add(p, ("rel", rel))
    for word, name in kb.words.items():
        kind = kb.entries[name]["kind"]
        add(word, ("noun", name) if kind == "object" else ("material", name))
    add("grey", ("colour", "gray"))
    for w, s in SIZE_WORDS.items():
        add(w, ("size", s))
    for w, n in NUMBER_WORDS.items():
        add(w, ("num", n))
    for w, a in VERBS.items():
        add(w, ("verb", a))
    for w in DOWN:
        add(w, ("down", None))
    for w in TARGET:
        add(w, ("target", None))
    for w, n in DETS.items():
        add(w, ("det", n))
    add("dimthree", ("dims", 3))
    add("dimtwo", ("dims", 2))
    add("and", ("and", None))
    add("it", ("it", None))
    add("them", ("it", None))
    add("with", ("with", None))
    add(",", ("sep", None))
    return lex


_LEXICONS: dict[int, tuple] = {}


def tokenize(prompt: str, kb: KnowledgeBase) -> list[tuple]:
    """[(kind, value, words)] by greedy longest match; unknown words are ("word", text, text)."""
    lex_entry = _LEXICONS.get(id(kb))
    if lex_entry is None or lex_entry[0] is not kb:
        lex_entry = (kb, _lexicon(kb), 0)
        lex_entry = (kb, lex_entry[1], max(len(k) for k in lex_entry[1]))
        _LEXICONS[id(kb)] = lex_entry
    _, lex, longest = lex_entry
    text = prompt.lower()
    for pattern, repl in DIM_PATTERNS:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"[;.!?:]", " , ", text)
    text = text.replace(",", " , ").replace("-", " ")
    words = re.findall(r"[a-z]+|\d+|,", text)
    items, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            key = tuple(words[i : i + n])
            if key in lex:
                items.append((*lex[key], " ".join(key)))
                i += n
                break
        else:
            w = words[i]
            items.append(("num", int(w), w) if w.isdigit() else ("word", w, w))
            i += 1
    return items


def parse_rules(prompt: str, kb: KnowledgeBase, dims: int | None = None) -> dict:
    """The scene a prompt describes (schema.py); SceneError naming what could not be read."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise SceneError(
            "the prompt is empty; describe objects and how they are placed, e.g. 'a red ball on a box'"
        )
    items = tokenize(prompt, kb)
    scene = empty_scene(2)
    objects = scene["objects"]
    relations = scene["relations"]
    last = None  # the most recent object phrase: the subject of what follows
    pending = None  # ("rel", name, subject) | ("verb", action, subject) | ("with", owner)
    with_owner = None
    i = 0

    def add_relation(rel, a, b):
        if a is None or b is None or a == b:
            return
        r = {"relation": rel, "subject": a, "object": b}
        if r not in relations:
            relations.append(r)

    def object_phrase(i):
        """(index, next position) of an object phrase starting at i, or (None, i)."""
        j, count, group, article, definite = i, None, None, False, False
        if j < len(items) and items[j][0] == "group_before":
            group = items[j][1]
            j += 1
        if j < len(items) and items[j][0] in ("det", "num"):
            article = True
            if items[j][0] == "num":
                count = items[j][1]
            elif items[j][2] == "the":
                definite = True
            j += 1
        if group and j < len(items) and items[j][0] == "num":  # "a tower of 5"
            count = items[j][1]
            j += 1
        colour = size = material = None
        adjectives = 0
        while j < len(items) and items[j][0] in ("colour", "size", "material", "word"):
            kind, value, word = items[j][:3]
            nxt = items[j + 1][0] if j + 1 < len(items) else None
            if kind == "word":  # an adjective the vocabulary lacks ("a steep slope"): skipped
                if nxt in ("colour", "size", "material", "noun", "word"):
                    j += 1
                    continue
                break
            # "an orange" / "a gold bar": a colour or material word that ends the phrase is the noun
            if nxt not in ("colour", "size", "material", "noun", "word") and kb.exact(word, "object"):
                break
            if kind == "colour":
                colour = value
            elif kind == "size":
                size = value or size
            else:
                material = value
            adjectives += 1
            j += 1
        if j >= len(items):
            return None, i
        kind, value, word = items[j][:3]
        if kind in ("colour", "material") and kb.exact(word, "object"):
            kind, value = "noun", kb.exact(word, "object")["name"]
        if kind == "noun":
            name = value
            plural_form = word != name and word not in kb.entries[name]["aliases"]
        elif kind == "word" and (article or adjectives or group) and len(word) > 1:
            name, plural_form = (
                word.rstrip("s") if word.endswith("s") and count and count > 1 else word,
                False,
            )
        else:
            return None, i
        j += 1
        if count is None:
            count = 2 if plural_form and not definite else 1
        existing = [k for k, o in enumerate(objects) if o["name"] == name]
        if existing and (definite or not article) and not group and colour is None and material is None:
            return existing[-1], j
        if len(objects) >= MAX_OBJECTS:
            raise SceneError(f"the prompt names more than {MAX_OBJECTS} groups of objects; describe fewer")
        objects.append(new_object(name, material, colour, size, count))
        k = len(objects) - 1
        if group:
            relations.append({"relation": group, "subject": k, "object": None})
        return k, j

    while i < len(items):
        kind, value, word = items[i][:3]
        if kind == "dims":
            scene["dims"] = value
            i += 1
            continue
        k, j = object_phrase(i)
        if k is not None:
            if pending is not None and pending[0] == "rel":
                add_relation(pending[1], pending[2], k)
                pending = None
            elif pending is not None and pending[0] == "verb":
                action, subject, prep = pending[1], pending[2], pending[3]
                m = scene["motion"]
                if prep == "down" and action in ("roll", "slide"):
                    add_relation("on", subject, k)
                elif prep == "on" and action == "fall":
                    add_relation("on", subject, k)
                    m["target"] = k
                elif prep is not None and m is not None and k != m["object"]:
                    m["target"] = k
                # the verb's preposition is used up; "... down a ramp into a tower" takes another
                pending = ("verb", action, subject, None) if prep is not None else None
            last = k
            i = j
            continue
        if kind == "group_after" and last is not None:
            objects[last]["count"] = max(objects[last]["count"], 2)
            r = {"relation": value, "subject": last, "object": None}
            if r not in relations:
                relations.append(r)
        elif kind == "with" and pending is not None and pending[0] == "verb":  # "collides with"
            pending = ("verb", pending[1], pending[2], "target")
        elif kind == "with":
            with_owner = last
        elif kind == "it" and pending is not None and pending[0] == "rel" and with_owner is not None:
            add_relation(pending[1], pending[2], with_owner)
            pending = None
        elif kind == "rel":
            if pending is not None and pending[0] == "verb":
                pending = ("verb", pending[1], pending[2], "on" if value == "on" else "target")
            elif last is not None:
                pending = ("rel", value, last)
        elif kind == "verb":
            if scene["motion"] is not None:  # "... and hits the tower": the same motion's target
                pending = ("verb", scene["motion"]["action"], scene["motion"]["object"], "target")
            elif last is not None:
                scene["motion"] = {"action": value, "object": last, "target": None}
                pending = ("verb", value, last, "target")
        elif kind == "down" and pending is not None and pending[0] == "verb":
            pending = ("verb", pending[1], pending[2], "down")
        elif kind == "target" and pending is not None and pending[0] == "verb":
            pending = ("verb", pending[1], pending[2], "on" if word == "onto" else "target")
        elif kind == "sep":
            pending = None
        i += 1
    if not objects:
        raise SceneError(
            f"found no objects in {prompt.strip()[:60]!r}; name things physworld knows, e.g. 'a ball on a box' "
            "(the knowledge base: physworld/text2scene/kb.csv)"
        )
    if dims is not None:
        scene["dims"] = dims
    return check_scene(scene, "parsed scene")
