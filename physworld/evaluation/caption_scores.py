"""Scoring captions and answers by what is true in the clip, not by how fluent they read.

A generated caption is parsed with physworld's own caption grammar (physworld/data/captions.py: the
opening "There are N objects: the X, ..." sentence, then clauses "the X hits the Y", "the X falls",
"the X comes to rest", "the X tips over", "the X comes into view", "the X leaves the view", joined by
", then " and "Then"). Every event the caption names is checked against the clip's event log:

- event precision: named events that happened (a multiset match: naming one collision twice counts
  once). A collision matches either order of its two parties (who was faster is not the claim);
- event recall: of the events the reference caption tells (the first MAX_CAPTION_EVENTS of the log),
  the share the generated caption names;
- object precision / recall: the objects named (in the opening list or in an event) against the
  clip's objects; recall over the objects the reference caption names.

Answers: exact match after lower-casing and trimming, per question type, beside the majority answer
per template learned on the training questions (`majority_answers`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from physworld.data import captions as C

QUESTION_TYPES = ("descriptive", "explanatory", "predictive", "counterfactual")
_ARTICLE = r"(?:the|a|an)"
STATIC_SCENERY = "static scenery"  # what captions._clause says for a collision with unknown statics


def _verb_phrases() -> dict[str, str]:
    """{kind: the words after the subject}, read off captions._clause itself so the parser follows the
    grammar the captions are written in."""
    names, unique = ["x"], [True]
    phrases = {}
    for kind in C.KIND_ORDER:
        event = {"kind": kind, "objects": [0, 0], "with_static": False}
        text = C._clause(event, names + names, unique + unique, [], [])
        phrases[kind] = text.removeprefix("the x ").removesuffix(" the x")
    return phrases


VERBS = _verb_phrases()  # e.g. {"collide": "hits", "fall": "falls", "come_to_rest": "comes to rest", ...}
_CLAUSE = re.compile(
    rf"^{_ARTICLE} (?P<a>.+?) (?P<verb>{'|'.join(map(re.escape, sorted(VERBS.values(), key=len, reverse=True)))})"
    rf"(?: {_ARTICLE} (?P<b>.+))?$"
)
_KIND_OF = {v: k for k, v in VERBS.items()}


def normalise(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def parse_caption(text: str) -> dict:
    """{"objects": [names in the opening list], "count": N or None, "events": [(kind, a, b or None)],
    "unparsed": [clauses that fit no rule]} of a caption in physworld's grammar (lower-cased names)."""
    objects, count, events, unparsed = [], None, [], []
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", text.strip()) if s.strip()]
    for sentence in sentences:
        s = normalise(sentence)
        opening = re.match(r"^there (?:is|are) (\w+) objects?(?:: (.*))?$", s)
        if opening:
            word = opening.group(1)
            count = C._NUMBERS.index(word) if word in C._NUMBERS else int(word) if word.isdigit() else None
            if opening.group(2):
                for item in re.split(r", | and ", opening.group(2)):
                    objects.append(re.sub(rf"^{_ARTICLE} ", "", item.strip()))
            continue
        if s.startswith("nothing collides") or s.startswith("after that,") or s == "the scene is empty":
            continue  # "nothing happens" names no event; the tally of later events names no objects
        s = s.removeprefix("then ")
        for clause in s.split(", then "):
            m = _CLAUSE.match(clause.strip())
            if m is None:
                unparsed.append(clause)
                continue
            kind = _KIND_OF[m.group("verb")]
            b = m.group("b")
            if kind == "collide" and b is None or kind != "collide" and b is not None:
                unparsed.append(clause)
                continue
            events.append((kind, m.group("a"), b))
    return {"objects": objects, "count": count, "events": events, "unparsed": unparsed}


def true_events(description: dict, static_names: list[str], first: int | None = None) -> list[tuple]:
    """The clip's event log as (kind, a, b or None) with the names a caption uses (lower case)."""
    names = [normalise(o["name"]) for o in description["objects"]]
    out = []
    for e in description["events"][:first]:
        a = names[e["objects"][0]]
        b = None
        if e["kind"] == "collide":
            if e.get("with_static"):
                s = e.get("static")
                b = STATIC_SCENERY if s is None or s < 0 else normalise(static_names[s])
            else:
                b = names[e["objects"][1]]
        out.append((e["kind"], a, b))
    return out


def _key(event: tuple) -> tuple:
    kind, a, b = event
    return (kind, *sorted([a, b])) if kind == "collide" else (kind, a, b)


def _matched(predicted: list[tuple], truth: list[tuple]) -> int:
    """Size of the multiset intersection."""
    return sum((Counter(map(_key, predicted)) & Counter(map(_key, truth))).values())


def score_caption(generated: str, description: dict, static_names: list[str]) -> dict:
    """Counts for one clip (sum them over clips, then divide: micro-averaged precision and recall)."""
    parsed = parse_caption(generated)
    log = true_events(description, static_names)
    told = log[: C.MAX_CAPTION_EVENTS]
    names = [normalise(o["name"]) for o in description["objects"]]
    named = set(parsed["objects"]) | {x for _, a, b in parsed["events"] for x in (a, b) if x is not None}
    statics = {normalise(s) for s in static_names} | {STATIC_SCENERY}
    named_bodies = named - statics
    reference = set(names) if len(names) <= 6 else {x for _, a, b in told for x in (a, b) if x in names}
    return {
        "events_named": len(parsed["events"]),
        "events_true": _matched(parsed["events"], log),
        "events_told": len(told),
        "events_recalled": _matched(parsed["events"], told),
        "objects_named": len(named_bodies),
        "objects_true": len(named_bodies & set(names)),
        "objects_reference": len(reference),
        "objects_recalled": len(reference & named_bodies),
        "count_right": int(parsed["count"] == len(names)) if parsed["count"] is not None else 0,
        "unparsed_clauses": len(parsed["unparsed"]),
    }


def caption_summary(counts: list[dict]) -> dict:
    """Micro-averaged precision and recall over clips (None where nothing was there to divide)."""
    total = Counter()
    for c in counts:
        total.update(c)

    def ratio(a, b):
        return total[a] / total[b] if total[b] else None

    return {
        "clips": len(counts),
        "event_precision": ratio("events_true", "events_named"),
        "event_recall": ratio("events_recalled", "events_told"),
        "object_precision": ratio("objects_true", "objects_named"),
        "object_recall": ratio("objects_recalled", "objects_reference"),
        "object_count_accuracy": total["count_right"] / len(counts) if counts else None,
        "events_named": total["events_named"],
        "events_told": total["events_told"],
        "unparsed_clauses": total["unparsed_clauses"],
    }


def majority_answers(questions: list[dict]) -> dict[str, str]:
    """{template: its most common answer} over training questions (ties: the first in sorted order)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for q in questions:
        counts[q["template"]][normalise(q["answer"])] += 1
    return {t: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for t, c in counts.items()}


def qa_accuracy(results: list[tuple[dict, str]]) -> dict:
    """{type: {"accuracy", "questions"}} and "all", from (question, predicted answer) pairs."""
    right, total = Counter(), Counter()
    for q, predicted in results:
        ok = normalise(predicted) == normalise(q["answer"])
        for key in (q["type"], "all"):
            right[key] += ok
            total[key] += 1
    return {
        key: {"accuracy": right[key] / total[key], "questions": total[key]}
        for key in (*QUESTION_TYPES, "all")
        if total[key]
    }
