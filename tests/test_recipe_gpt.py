"""The GPT recipe: prepared examples, completion-only masks, learning, resuming, text rollouts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from physworld.cli import main
from physworld.data import text
from physworld.data.generate import GenerateConfig, generate
from physworld.models import gpt as gpt_model
from physworld.recipes import gpt as recipe
from physworld.training.checkpoint import load_checkpoint
from physworld.training.config import load_config
from physworld.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "gpt" / "tiny.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt")
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "head_on"),
            num_scenes_per_type=2,
            frames_per_scene=24,
            difficulty_range=(1, 1),
        ),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(
            scenario_types=("pendulum", "pong"),
            num_scenes_per_type=1,
            frames_per_scene=24,
            difficulty_range=(1, 1),
            seed=3,
        ),
        root / "val",
        progress=False,
    )
    return root


def overrides(data, out, *extra):
    return [
        f"data.train_dir={data / 'train'}",
        f"data.val_dir={data / 'val'}",
        f"train.output_dir={out}",
        "data.stride=2",
        *extra,
    ]


def test_presets_validate():
    for preset in sorted((ROOT / "configs" / "gpt").glob("*.yaml")):
        cfg = load_config(preset, recipe.RecipeConfig)
        assert recipe.gpt_config(cfg.model, text.CharTokenizer().vocab_size).n_embd > 0
    cfg = load_config(TINY, recipe.RecipeConfig, ["model.attn_mult=4.0", "model.init_std=0.01"])
    model_config = recipe.gpt_config(cfg.model, 100)
    assert (model_config.attn_mult, model_config.init_std, model_config.output_mult) == (4.0, 0.01, 1.0)


def test_examples_fit_the_block_and_mask_only_the_predicted_frame(data):
    tok = text.CharTokenizer()
    prepared = recipe.prepare_examples(
        data / "train", tok, "compact", context_frames=3, block_size=560, stride=2, progress=False
    )
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["examples"] > 0 and meta["examples_with_fewer_context_frames"] > 0  # 560 tokens force drops
    ex = recipe.Examples(prepared, tok)
    x, y, mask = ex.batch(np.arange(min(6, len(ex))))
    assert x.shape[1] <= 560
    for i in range(x.shape[0]):
        scored = tok.decode(y[i][mask[i] > 0].tolist(), skip_special=False)
        assert scored.endswith(";\n<eos>"), scored[-20:]
        assert scored.count(";") == 1  # exactly one frame: the completion, never the context
        body_lines = scored.split(";")[0].strip().splitlines()
        assert all(line.split()[0].isdigit() for line in body_lines)
    whole = recipe.Examples(prepared, tok, whole_sequence=True)
    assert whole.batch([0])[2].sum() > mask[0].sum()
    # Evaluation's rule for fitting a prompt is the one these examples were cut by.
    fits = gpt_model.gpt_prompt_fits(SimpleNamespace(config=SimpleNamespace(block_size=560)), tok)
    for i in range(x.shape[0]):
        ids = [int(x[i, 0]), *y[i].tolist()]  # <bos> prompt completion <eos> <pad>...
        ids = ids[: ids.index(tok.eos_id) + 1]
        body = tok.decode(ids[1:-1], skip_special=False)
        cut = body.rindex(";", 0, -2) + 2  # the completion is the last frame, ending ";\n"
        prompt, completion = body[:cut], body[cut:]
        assert fits(prompt, completion)
        assert fits(prompt, completion + "0" * (561 - len(ids))) and not fits(
            prompt, completion + "0" * (562 - len(ids))
        )
    assert (
        recipe.prepare_examples(data / "train", tok, "compact", 3, 560, 2, progress=False) == prepared
    )  # reused


def test_learns_and_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    extra = (
        "train.max_steps=30",
        "train.save_every=4",
        "train.eval_every=10",
        "optim.warmup_steps=3",
        "model.block_size=1024",
    )
    ref = tmp_path / "ref"
    recipe.main(str(TINY), overrides(data, ref, *extra), progress=False)
    losses = [m["loss"] for m in read_metrics(ref / "metrics.jsonl") if "loss" in m]
    assert losses[-1] < 0.7 * losses[0], losses

    calls = {"n": 0}
    original = recipe.clip_gradients

    def crash_at_step_19(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 19:
            raise KeyboardInterrupt  # as if killed between checkpoints (the last one was at step 16)
        return original(*args, **kw)

    out = tmp_path / "out"
    monkeypatch.setattr(recipe, "clip_gradients", crash_at_step_19)
    with pytest.raises(KeyboardInterrupt):
        recipe.main(str(TINY), overrides(data, out, *extra), progress=False)
    monkeypatch.setattr(recipe, "clip_gradients", original)
    recipe.main(str(TINY), overrides(data, out, *extra), progress=False)
    a, b = (
        load_checkpoint(ref / "checkpoints" / "latest.safetensors"),
        load_checkpoint(out / "checkpoints" / "latest.safetensors"),
    )
    for k in a.tensors:
        assert torch.equal(a.tensors[k], b.tensors[k]), k
    steps = [m["step"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert steps == sorted(set(steps))


def test_evaluate_counts_parse_failures_of_a_text_model(data, tmp_path):
    run = tmp_path / "run"
    recipe.main(str(TINY), overrides(data, run, "train.max_steps=3"), progress=False)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "gpt",
                "--checkpoint",
                str(run / "checkpoints" / "best.safetensors"),
                "--val-dir",
                str(data / "val"),
                "--output-dir",
                str(out),
                "--context-frames",
                "4",
                "--rollout-frames",
                "2",
                "--max-scenes-per-type",
                "1",
                "--no-render",
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    # Three training steps cannot write a frame: every predicted frame fails to parse, and says so.
    assert metrics["aggregate"]["all"]["model"]["parse_failures"] == 2 * metrics["dataset"]["num_scenes"]
    assert metrics["aggregate"]["all"]["constant_velocity"]["parse_failures"] == 0
    assert metrics["dataset"]["heldout_types"] == ["pong"]


def test_text_generation_stays_inside_the_block():
    from physworld.models.gpt import GPT, GPTConfig

    tok = text.CharTokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tok.vocab_size, block_size=64))
    with torch.no_grad():
        model.lm_head.weight.normal_()  # an untrained model that never says <eos>: the budget decides
        model.lm_head.weight[tok.eos_id] = -1e3
    generate = gpt_model.gpt_text_generator(model, tok)
    short, full, over = "a" * 40, "b" * 64, "c" * 80  # <bos> + 40 = 41 tokens leave 24 new ones
    outs = generate([short, full, over], [100, 100, 100])
    assert [len(o) for o in outs] == [24, 0, 0]
    assert len(generate([short], [5])[0]) == 5
