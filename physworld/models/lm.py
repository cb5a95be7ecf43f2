"""The LoRA-tuned language model family, inference side: a pretrained causal LM (transformers) with a
PEFT adapter that physworld.recipes.lm_lora trained, loaded from one of its stage checkpoints.

    rollout, info = load_predictor("runs/lfm2/stage5/checkpoint-800")
    predictions, parse_failures = rollout(scenes, context_frames=10, rollout_frames=20)

transformers and peft are imported where used (the `lm` extra). The recipe takes the base-model loader,
the checkpoint layout (STATE_FILE) and the error types from here, so evaluation never imports a recipe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

DEFAULT_BASE_MODEL = "LiquidAI/LFM2-350M"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# sha256 of each adapter file, written with the adapter and checked before it is loaded (peft's own files
# carry no checksum: a flipped byte would otherwise load as other weights).
ADAPTER_CHECKSUM_FILE = "adapter_checksum.json"
STATE_FILE = "trainer_state.json"  # in every stage checkpoint directory: step, stage, settings (fingerprint)


class LmLoraError(ValueError):
    """A setup problem the user can fix (base model, data, flags); the message says what to do."""


class BaseModelError(LmLoraError):
    """The base model or its tokenizer could not be loaded."""


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def load_base_model(
    name: str, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) from a local directory or, failing that, the Hugging Face Hub.

    A name that is no local directory and cannot be fetched (the hub unreachable, HF_HUB_OFFLINE=1 with
    nothing cached, no such repository) raises BaseModelError saying how to use a local copy instead.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name).expanduser()
    kwargs = {"trust_remote_code": trust_remote_code}
    if local.is_dir():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(local), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(str(local), dtype=dtype, **kwargs)
        except (OSError, ValueError) as e:
            raise BaseModelError(
                f"--base-model {name}: cannot load a causal LM and its tokenizer from this directory ({e}); "
                "it needs config.json, the weights and the tokenizer files (save_pretrained writes them)"
            ) from e
        return model, tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **kwargs)
    except (OSError, ValueError) as e:
        raise BaseModelError(_hub_failure_message(name, e)) from e
    return model, tokenizer


def _hub_failure_message(name: str, error: Exception) -> str:
    try:
        from huggingface_hub.constants import is_offline_mode

        offline = is_offline_mode()
    except ImportError:  # very old huggingface_hub
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = f"--base-model {name}: "
    if _looks_like_path(name):
        where += "no such local directory, and as a model name it "
    else:
        where += "not a local directory, and it "
    if offline:
        why = (
            "cannot be fetched: the Hugging Face Hub is unreachable in offline mode (HF_HUB_OFFLINE=1) "
            "and the model is not in the local cache"
        )
    else:
        why = (
            "could not be loaded from the Hugging Face Hub (the hub is unreachable from this machine, "
            "or there is no such repository)"
        )
    example = name if not _looks_like_path(name) else DEFAULT_BASE_MODEL
    local_dir = "models/" + example.rstrip("/").split("/")[-1]
    fix = (
        f". Download the model where the hub is reachable, e.g. `hf download {example} --local-dir "
        f"{local_dir}` (or from_pretrained + save_pretrained of the model and its tokenizer), copy that "
        f"directory here and pass --base-model {local_dir}. Cause: {str(error).splitlines()[0][:300]}"
    )
    return where + why + fix


def token_ids(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


# ---------------------------------------------------------------- the family contract: load, then roll out


def load_text_model(checkpoint):
    """(generate_text(prompts, max_new_tokens) -> completions, prompt_fits(prompt, completion) ->
    bool, run info) from a stage checkpoint: the base model its trainer_state names, the PEFT
    adapter, and the checkpoint's tokenizer. Prompts are encoded as in training (with the
    tokenizer's special tokens), and fit as build_example counted (prompt + completion + EOS within
    max_seq_length); decoding is greedy and stops at <eos>."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from physworld.data.store import Dataset
    from physworld.worlds.registry import resolve_types

    path = Path(checkpoint)
    if not (path / STATE_FILE).exists():
        raise LmLoraError(
            f"{path}: not an lm-lora checkpoint directory (no {STATE_FILE}); pass "
            "<output-dir>/stageK/checkpoint-N"
        )
    verify_adapter(path)
    fingerprint = json.loads((path / STATE_FILE).read_text())["fingerprint"]
    base, _ = load_base_model(fingerprint["base_model"])
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = PeftModel.from_pretrained(base, str(path)).eval()
    data = fingerprint["data"]
    types = resolve_types(data["scenario_types"])
    if Path(data["data_dir"]).exists():  # keep the types the training data really held
        present = Dataset(data["data_dir"]).manifest["scenes_per_type"]
        types = [t for t in types if t in present]
    info = {
        "fmt": data["fmt"],
        "context_frames": data["context_frames"],
        "train_scenario_types": types,
        "base_model": fingerprint["base_model"],
    }

    @torch.no_grad()
    def generate_text(prompts: list[str], max_new_tokens: list[int]) -> list[str]:
        outs = []
        for prompt, budget in zip(prompts, max_new_tokens, strict=True):
            ids = torch.tensor([token_ids(tokenizer, prompt, special=True)])
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=budget,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
            outs.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True))
        return outs

    def prompt_fits(prompt: str, completion: str) -> bool:
        used = len(token_ids(tokenizer, prompt, special=True)) + len(
            token_ids(tokenizer, completion, special=False)
        )
        return used + 1 <= data["max_seq_length"]  # + EOS

    return generate_text, prompt_fits, info


def load_predictor(checkpoint):
    """The trajectory-family contract (physworld/evaluation/families.py): (rollout, run info). The LM
    writes each next frame as text (models.rollout_utils.text_rollouts); frames that do not parse are
    counted per scene."""
    from physworld.models.rollout_utils import text_predictor

    generate, fits, info = load_text_model(checkpoint)
    return text_predictor(generate, fits, info)


def verify_adapter(path: Path) -> None:
    """Refuse a checkpoint directory whose adapter is missing or damaged, before anything loads it: the
    files must match the sha256 sums written beside them; a checkpoint from before those sums must at
    least hold a readable safetensors adapter (never a pickle, which nothing here would open anyway)."""
    from safetensors import SafetensorError, safe_open

    from physworld.fileio import sha256_file
    from physworld.training.checkpoint import CheckpointDamaged

    path = Path(path)
    for name in ADAPTER_FILES:
        if not (path / name).is_file():
            raise CheckpointDamaged(f"{path}: {name} is missing; use another checkpoint of the run")
    sums_path = path / ADAPTER_CHECKSUM_FILE
    if sums_path.is_file():
        try:
            sums = json.loads(sums_path.read_text())
            if not isinstance(sums, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointDamaged(
                f"{sums_path}: damaged ({e}); use another checkpoint of the run"
            ) from None
        for name in ADAPTER_FILES:
            if sums.get(name) != sha256_file(path / name):
                raise CheckpointDamaged(
                    f"{path / name}: does not match its sha256 in {ADAPTER_CHECKSUM_FILE} (the file is "
                    "damaged); use another checkpoint of the run"
                )
    try:
        with safe_open(str(path / "adapter_model.safetensors"), framework="pt", device="cpu") as f:
            f.keys()
    except SafetensorError as e:
        raise CheckpointDamaged(
            f"{path / 'adapter_model.safetensors'}: not a readable safetensors file (truncated or damaged): {e}"
        ) from None
