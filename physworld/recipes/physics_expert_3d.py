"""Recipe: train the 3D PhysicsExpert (models/physics_expert_3d.py) on delta-state prediction over
PyBullet datasets (`physworld generate --scenario-types seen3d ...`).

    physworld train physics-expert-3d --config configs/physics_expert_3d/quickstart.yaml [key=value ...]

The training loop is the 2D recipe's, written out once in recipes/physics_expert.py (data windows
prepared with `dims=3`, random-walk noise, NaN/Inf guard, clipping, warmup + cosine, curriculum
stages, `latest` / `best` / stage checkpoints, bit-identical resume on CPU); this file says what is
3D about it: the model and its config, the recipe id its checkpoints carry, and the data's dimension.
A 2D dataset is refused in one line before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physworld.models.physics_expert_3d import RECIPE_ID, PhysicsExpert3D, PhysicsExpert3DConfig
from physworld.recipes import physics_expert
from physworld.training import distributed
from physworld.training.config import load_config

FAMILY = {"recipe_id": RECIPE_ID, "model": PhysicsExpert3D, "dims": 3}


@dataclass
class RecipeConfig(physics_expert.RecipeConfig):
    # data, train and optim as in 2D (scenario_types names 3D types: 3d, seen3d, movi, tower_3d, ...)
    model: PhysicsExpert3DConfig = field(default_factory=PhysicsExpert3DConfig)


def train(cfg: RecipeConfig, progress: bool = True) -> dict:
    return physics_expert.train(cfg, progress=progress, family=FAMILY)


def main(config_path: str, overrides: list[str], progress: bool = True) -> dict:
    cfg = load_config(config_path, RecipeConfig, overrides)
    distributed.setup("cpu")  # under torchrun: join the process group (gloo; this recipe runs on CPU)
    try:
        summary = train(cfg, progress=progress)
    except BaseException:
        distributed.teardown(wait=False)
        raise
    distributed.teardown()
    return summary


if __name__ == "__main__":  # torchrun --nproc_per_node N -m physworld.recipes.physics_expert_3d --config ...
    distributed.command_line(RECIPE_ID, main)
