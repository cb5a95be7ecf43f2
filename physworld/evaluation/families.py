"""The model families that predict trajectories, in one plain dict, and the one contract they fulfil.

Each family is three files and one line here (docs/ADDING_A_FAMILY.md):

    physworld/models/<file>.py     the model, and `load_predictor(checkpoint) -> (rollout, info)`
    physworld/recipes/<file>.py    the training recipe: `main(config_path, overrides, progress)`
    configs/<folder>/              its presets, among them a tiny one the registry test trains

The contract. `rollout(scenes, context_frames, rollout_frames) -> (predictions, parse_failures)`:
`scenes` are dataset records (docs: ARCHITECTURE.md, "The record"); predictions are float32
[context_frames + rollout_frames, bodies, 6] per scene whose first context_frames frames are the
ground truth, and parse_failures counts per scene the predicted frames a text model wrote that did not
parse in full (0 for families that write numbers). `info` is the run info the recipe saved in the
checkpoint: `train_scenario_types` (which types count as seen), `train_dir`, `recipe`, ...

Evaluation, the report and the quickstart reach a family only through this module (by its model
module, imported by name when needed); none of them imports a recipe. tests/test_families.py walks
FAMILIES: every family's tiny preset trains a few steps, then `evaluate` and `report` run on it.

Fields of an entry:
    model       the model module (holds load_predictor)
    recipe      the training recipe module, which `physworld train <train>` runs
    configs     the presets' folder; `tiny` names the preset the registry test trains
    train       the recipe's name on the command line (`physworld train <train>`)
    recipe_id   the `recipe` its checkpoints carry in their metadata (tells a checkpoint's family)
    aliases     other names `evaluate --model` accepts
    dims        (optional) 3 for a family that reads 3D datasets (predictions [C + R, bodies, 13]:
                x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz); 2 when absent. `evaluate` refuses a
                dataset of the other dimension in one line
    rollout_chunk  (optional) scenes per rollout call, one progress step each: text families write one
                frame per scene per call to the model, so small chunks keep the bar moving
    tiny_test   how the registry test trains the tiny preset: overrides ({train_dir}, {output_dir},
                {tiny_causal_lm} are filled in), the checkpoint it then evaluates (a glob under the
                output directory), the optional packages it needs, and its evaluation's context frames;
                a 3D family trains and evaluates on the test's small 3D datasets
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

FAMILIES: dict[str, dict] = {
    "physics-expert": {
        "model": "physworld.models.physics_expert",
        "recipe": "physworld.recipes.physics_expert",
        "configs": "configs/physics_expert",
        "tiny": "tiny.yaml",
        "train": "physics-expert",
        "recipe_id": "physics-expert",
        "aliases": [],
        "tiny_test": {
            "overrides": ["data.train_dir={train_dir}", "train.output_dir={output_dir}", "train.max_steps=4"],
            "checkpoint": "checkpoints/latest.safetensors",
            "needs": [],
            "context_frames": 3,
        },
    },
    "physics-expert-3d": {
        "model": "physworld.models.physics_expert_3d",
        "recipe": "physworld.recipes.physics_expert_3d",
        "configs": "configs/physics_expert_3d",
        "tiny": "tiny.yaml",
        "train": "physics-expert-3d",
        "recipe_id": "physics-expert-3d",
        "aliases": [],
        "dims": 3,
        "tiny_test": {
            "overrides": ["data.train_dir={train_dir}", "train.output_dir={output_dir}", "train.max_steps=4"],
            "checkpoint": "checkpoints/latest.safetensors",
            "needs": ["pybullet"],
            "context_frames": 3,
        },
    },
    "gpt": {
        "model": "physworld.models.gpt",
        "recipe": "physworld.recipes.gpt",
        "configs": "configs/gpt",
        "tiny": "tiny.yaml",
        "train": "gpt",
        "recipe_id": "gpt",
        "aliases": ["scratch"],  # guide 001's name for the model trained from scratch
        "rollout_chunk": 2,
        "tiny_test": {
            "overrides": ["data.train_dir={train_dir}", "train.output_dir={output_dir}", "train.max_steps=4"],
            "checkpoint": "checkpoints/latest.safetensors",
            "needs": [],
            "context_frames": 3,
        },
    },
    "lm": {
        "model": "physworld.models.lm",
        "recipe": "physworld.recipes.lm_lora",
        "configs": "configs/lm_lora",
        "tiny": "tiny.yaml",
        "train": "lm-lora",
        "recipe_id": "lm-lora",
        "aliases": ["finetune"],  # guide 001's name for the fine-tuned pretrained LM
        "rollout_chunk": 2,
        "tiny_test": {
            "overrides": [
                "model.base_model={tiny_causal_lm}",
                "data.data_dir={train_dir}",
                "train.output_dir={output_dir}",
                "train.curriculum_stages=1",
                "train.max_steps=2",
            ],
            "checkpoint": "stage1/checkpoint-*",
            "needs": ["transformers", "peft", "accelerate", "tokenizers"],
            "context_frames": 3,
        },
    },
    "ssm": {
        "model": "physworld.models.ssm",
        "recipe": "physworld.recipes.ssm",
        "configs": "configs/ssm",
        "tiny": "tiny.yaml",
        "train": "ssm",
        "recipe_id": "ssm",
        "aliases": [],
        "tiny_test": {
            "overrides": ["data.train_dir={train_dir}", "train.output_dir={output_dir}", "train.max_steps=4"],
            "checkpoint": "checkpoints/latest.safetensors",
            "needs": [],
            "context_frames": 3,
        },
    },
}


# Recipes that train something other than a trajectory predictor (an encoder, a captioner, a parser):
# no load_predictor and no leaderboard row, but `physworld train <name>` runs them like the others.
# One line each: "train name": "recipe module".
RECIPES: dict[str, str] = {
    "motion": "physworld.recipes.motion",
    "vjepa": "physworld.recipes.vjepa",
    "captioner": "physworld.recipes.captioner",
    "scene-parser": "physworld.recipes.scene_parser",
    "visual-expert": "physworld.recipes.visual_expert",
    "supervisor": "physworld.recipes.supervisor",
}


def entry(name: str) -> dict:
    """A family's entry by its name or an alias; ValueError naming the choices otherwise."""
    for key, fam in FAMILIES.items():
        if name == key or name in fam.get("aliases", ()):
            return dict(fam, name=key)
    raise ValueError(f"--model must be one of {', '.join(model_choices())}, got {name!r}")


def model_choices() -> list[str]:
    """Every name `evaluate --model` accepts: the families' names, then their aliases."""
    return [*FAMILIES, *(a for fam in FAMILIES.values() for a in fam.get("aliases", ()))]


def train_recipes() -> dict[str, str]:
    """`physworld train <name>` -> the recipe module it runs."""
    return {**{fam.get("train", key): fam["recipe"] for key, fam in FAMILIES.items()}, **RECIPES}


def checkpoint_family(checkpoint) -> str | None:
    """The family that wrote a checkpoint, from the `recipe` in its metadata (a safetensors header,
    no tensor read) or the LoRA stage directory's trainer_state.json; None when it cannot tell."""
    from physworld.training.checkpoint import CheckpointError, read_metadata

    path = Path(checkpoint)
    recipe = None
    if path.is_dir():
        if (path / "trainer_state.json").is_file():
            recipe = "lm-lora"  # the only family whose checkpoints are directories today
    elif path.is_file():
        try:
            extra = read_metadata(path).get("extra")
        except (CheckpointError, OSError, json.JSONDecodeError):
            return None  # the family's own loader names the damage
        recipe = extra.get("recipe") if isinstance(extra, dict) else None
    for key, fam in FAMILIES.items():
        if recipe is not None and recipe == fam.get("recipe_id", key):
            return key
    return None


def load_predictor(name: str, checkpoint):
    """(rollout, run info) of the family `name` (or an alias) from its checkpoint. A checkpoint another
    family wrote is refused in one line that names the right `--model`."""
    fam = entry(name)
    found = checkpoint_family(checkpoint)
    if found is not None and found != fam["name"]:
        raise ValueError(
            f"{checkpoint}: a {found} checkpoint (written by `physworld train {FAMILIES[found].get('train', found)}`), "
            f"not a {fam['name']} one; evaluate it with --model {found}"
        )
    module = importlib.import_module(fam["model"])
    return module.load_predictor(checkpoint)


def recipe_module(name: str):
    """The recipe module of a family (for training only: evaluation and the report never call this)."""
    return importlib.import_module(entry(name)["recipe"])
