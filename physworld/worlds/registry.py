"""The scenario registry: plain dicts from type name to a function of (difficulty, rng) -> spec.

Each category lives in its own module and exports `SCENARIOS`, an ordered dict of its types.
2D types (pymunk) and 3D types (PyBullet, categories ending in `3d` plus `movi`) are kept apart:
`all`, `seen` and `heldout` mean the 2D sets, `3d`, `seen3d` and `heldout3d` the 3D ones, and
SCENARIOS holds the 2D types only (what the 2D pipeline iterates over); ALL_SCENARIOS holds both.
"""

from __future__ import annotations

import numpy as np

from physworld.worlds import (
    collision,
    collision3d,
    constraint,
    constraint3d,
    minigame,
    movi,
    ramp,
    ramp3d,
    stacking,
    stacking3d,
)
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
# 3D (PyBullet) categories; their specs have world.dims == 3 (see spec3d.py).
CATEGORIES_3D: dict[str, dict] = {
    "movi": movi.SCENARIOS,
    "stacking3d": stacking3d.SCENARIOS,
    "collision3d": collision3d.SCENARIOS,
    "ramp3d": ramp3d.SCENARIOS,
    "constraint3d": constraint3d.SCENARIOS,
}
SCENARIOS_3D: dict = {name: fn for types in CATEGORIES_3D.values() for name, fn in types.items()}
ALL_SCENARIOS: dict = {**SCENARIOS, **SCENARIOS_3D}
CATEGORY_OF: dict[str, str] = {
    name: cat for cat, types in (*CATEGORIES.items(), *CATEGORIES_3D.items()) for name in types
}

# Guide 001's held-out types: never seen in training, always reported separately.
HELDOUT: tuple[str, ...] = ("pong", "bowling", "ramp_roll", "angry_birds", "hourglass", "newtons_cradle")
SEEN: tuple[str, ...] = tuple(t for t in SCENARIOS if t not in HELDOUT)
# The 3D versions of the 2D held-out types that exist in 3D.
HELDOUT_3D: tuple[str, ...] = tuple(f"{t}_3d" for t in HELDOUT if f"{t}_3d" in SCENARIOS_3D)
SEEN_3D: tuple[str, ...] = tuple(t for t in SCENARIOS_3D if t not in HELDOUT_3D)
DIFFICULTIES = (1, 2, 3, 4, 5)


def dims_of(scenario_type: str) -> int:
    """2 for a pymunk type, 3 for a PyBullet one."""
    return 3 if scenario_type in SCENARIOS_3D else 2


def is_heldout(scenario_type: str) -> bool:
    return scenario_type in HELDOUT or scenario_type in HELDOUT_3D


def resolve_types(names) -> list[str]:
    """Expand type names, category names, `all`, `seen`, `heldout` (2D) and `3d`, `seen3d`,
    `heldout3d` into scenario types.

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
        elif name == "3d":
            group = list(SCENARIOS_3D)
        elif name == "seen3d":
            group = list(SEEN_3D)
        elif name == "heldout3d":
            group = list(HELDOUT_3D)
        elif name in CATEGORIES:
            group = list(CATEGORIES[name])
        elif name in CATEGORIES_3D:
            group = list(CATEGORIES_3D[name])
        elif name in ALL_SCENARIOS:
            group = [name]
        else:
            raise ValueError(
                f"unknown scenario type {name!r}. Valid: all, seen, heldout, 3d, seen3d, heldout3d; "
                f"categories: {', '.join([*CATEGORIES, *CATEGORIES_3D])}; types: {', '.join(ALL_SCENARIOS)}"
            )
        out.extend(t for t in group if t not in out)
    return out


def make_spec(scenario_type: str, difficulty: int, seed: int) -> dict:
    """The spec of one scene: a pure function of (type, difficulty, seed)."""
    if scenario_type not in ALL_SCENARIOS:
        resolve_types([scenario_type])  # raises with the list of valid names
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return ALL_SCENARIOS[scenario_type](difficulty, np.random.default_rng(seed))


def difficulty_docs(scenarios: dict | None = None) -> dict[str, str]:
    """The 'Difficulty:' paragraph of each scenario's docstring (2D types unless `scenarios` is
    given), for the docs table."""
    docs = {}
    for name, fn in (SCENARIOS if scenarios is None else scenarios).items():
        text = " ".join((fn.__doc__ or "").split())
        head, _, tail = text.partition("Difficulty:")
        docs[name] = (head.strip(), tail.strip())
    return docs
