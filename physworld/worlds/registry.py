"""The scenario registry: plain dicts from type name to a function of (difficulty, rng) -> spec.

Each category lives in its own module and exports `SCENARIOS`, an ordered dict of its types.
"""

from __future__ import annotations

import numpy as np

from physworld.worlds import collision, constraint, minigame, ramp, stacking
from physworld.worlds import complex as complex_scenes

CATEGORIES: dict[str, dict] = {
    "collision": collision.SCENARIOS,
    "stacking": stacking.SCENARIOS,
    "ramp": ramp.SCENARIOS,
    "constraint": constraint.SCENARIOS,
    "minigame": minigame.SCENARIOS,
    "complex": complex_scenes.SCENARIOS,
}
SCENARIOS: dict = {name: fn for types in CATEGORIES.values() for name, fn in types.items()}
CATEGORY_OF: dict[str, str] = {name: cat for cat, types in CATEGORIES.items() for name in types}

# Guide 001's held-out types: never seen in training, always reported separately.
HELDOUT: tuple[str, ...] = ("pong", "bowling", "ramp_roll", "angry_birds", "hourglass", "newtons_cradle")
SEEN: tuple[str, ...] = tuple(t for t in SCENARIOS if t not in HELDOUT)
DIFFICULTIES = (1, 2, 3, 4, 5)


def resolve_types(names) -> list[str]:
    """Expand type names, category names, `all`, `seen` and `heldout` into scenario types.

    Keeps registry order for groups and the user's order otherwise, without duplicates; raises
    ValueError naming the unknown entry and listing what is valid.
    """
    out: list[str] = []
    for name in names:
        if name == "all":
            group = list(SCENARIOS)
        elif name == "seen":
            group = list(SEEN)
        elif name == "heldout":
            group = list(HELDOUT)
        elif name in CATEGORIES:
            group = list(CATEGORIES[name])
        elif name in SCENARIOS:
            group = [name]
        else:
            raise ValueError(
                f"unknown scenario type {name!r}. Valid: all, seen, heldout; categories: "
                f"{', '.join(CATEGORIES)}; types: {', '.join(SCENARIOS)}"
            )
        out.extend(t for t in group if t not in out)
    return out


def make_spec(scenario_type: str, difficulty: int, seed: int) -> dict:
    """The spec of one scene: a pure function of (type, difficulty, seed)."""
    if scenario_type not in SCENARIOS:
        resolve_types([scenario_type])  # raises with the list of valid names
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return SCENARIOS[scenario_type](difficulty, np.random.default_rng(seed))


def difficulty_docs() -> dict[str, str]:
    """The 'Difficulty:' paragraph of each scenario's docstring, for the docs table."""
    docs = {}
    for name, fn in SCENARIOS.items():
        text = " ".join((fn.__doc__ or "").split())
        head, _, tail = text.partition("Difficulty:")
        docs[name] = (head.strip(), tail.strip())
    return docs
