"""Parameter shifts: the same scenarios, made heavier, slipperier or bouncier (an out-of-distribution
setting for models trained on the scenarios as written).

Every scenario function sets its bodies' mass, friction and elasticity itself (collision.py,
stacking.py, ...), so a shift is a transform of the finished spec, not a change to any scenario:

    spec = shift_params(make_spec(type, difficulty, seed), "ood", seed)

applied by `physworld generate --param-shift NAME` to every scene (data/generate.py records the name in
the dataset's config). Each body draws its own factors, so relative masses change too (the Visual
Expert estimates mass relative to the clip's mean body, which a uniform scale would leave unchanged):

    heavier     mass and moment x f, f log-uniform in [2, 5] per dynamic body (moment scales with mass
                for the same geometry; kinematic bodies have no mass and keep it)
    slipperier  friction x f, f uniform in [0.1, 0.4], per body and per static piece (pymunk combines
                the two surfaces' friction by product, so both sides must change)
    bouncier    elasticity e -> 1 - (1 - e) f, f uniform in [0.2, 0.5], per body and static piece:
                the lost fraction of energy per bounce shrinks; e = 1 stays 1, e never exceeds 1
    ood         all three

The draws come from numpy's generator seeded with (scene seed, SHIFT_STREAM): deterministic from the
scene's seed, and independent of the draws the scenario function made. Only 2D specs are shifted
(3D bodies take their parameters from named materials, spec3d.MATERIALS).
"""

from __future__ import annotations

import copy

import numpy as np

SHIFT_STREAM = 0x5F1F7  # separates the shift's random stream from the scenario's own (same scene seed)
PARAM_SHIFTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "heavier": ("heavier",),
    "slipperier": ("slipperier",),
    "bouncier": ("bouncier",),
    "ood": ("heavier", "slipperier", "bouncier"),
}
MASS_FACTOR = (2.0, 5.0)  # log-uniform
FRICTION_FACTOR = (0.1, 0.4)
LOST_ENERGY_FACTOR = (0.2, 0.5)


def check_shift(name: str) -> str:
    if name not in PARAM_SHIFTS:
        raise ValueError(f"--param-shift {name!r}: choose one of {', '.join(PARAM_SHIFTS)}")
    return name


def shift_params(spec: dict, name: str, seed: int) -> dict:
    """A copy of a 2D spec with its physical parameters shifted by the named shift (module docstring);
    the spec itself is returned unchanged for "none"."""
    parts = PARAM_SHIFTS[check_shift(name)]
    if not parts:
        return spec
    if spec.get("world", {}).get("dims", 2) != 2:
        raise ValueError("--param-shift applies to 2D scenario types only (3D bodies use named materials)")
    out = copy.deepcopy(spec)
    rng = np.random.default_rng([int(seed), SHIFT_STREAM])
    bodies, statics = out["bodies"], out.get("statics", [])
    # Every factor is drawn whether or not its part is on, so "ood" and "heavier" give one body the
    # same mass factor: the shifts differ only in which parts they apply.
    mass = np.exp(rng.uniform(*np.log(MASS_FACTOR), size=len(bodies)))
    fric_b = rng.uniform(*FRICTION_FACTOR, size=len(bodies))
    fric_s = rng.uniform(*FRICTION_FACTOR, size=len(statics))
    lost_b = rng.uniform(*LOST_ENERGY_FACTOR, size=len(bodies))
    lost_s = rng.uniform(*LOST_ENERGY_FACTOR, size=len(statics))
    for i, body in enumerate(bodies):
        if "heavier" in parts and not body.get("kinematic", False):
            body["mass"] = float(body["mass"] * mass[i])
            body["moment"] = float(body["moment"] * mass[i])
        if "slipperier" in parts:
            body["friction"] = float(body["friction"] * fric_b[i])
        if "bouncier" in parts:
            body["elasticity"] = float(1.0 - (1.0 - min(body["elasticity"], 1.0)) * lost_b[i])
    for j, piece in enumerate(statics):
        if "slipperier" in parts:
            piece["friction"] = float(piece["friction"] * fric_s[j])
        if "bouncier" in parts:
            piece["elasticity"] = float(1.0 - (1.0 - min(piece["elasticity"], 1.0)) * lost_s[j])
    return out
