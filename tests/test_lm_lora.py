"""The LoRA recipe for pretrained causal LMs, on a tiny LFM2 and a tiny GPT-2 built here (no hub)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    Lfm2Config,
    Lfm2ForCausalLM,
    PreTrainedTokenizerFast,
)

from physworld.data.generate import GenerateConfig, generate  # noqa: E402
from physworld.data.store import Dataset  # noqa: E402
from physworld.recipes import lm_lora  # noqa: E402
from physworld.training.config import load_config  # noqa: E402
from physworld.training.metrics import read_metrics  # noqa: E402

text = pytest.importorskip("physworld.data.text")

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "lm_lora" / "tiny.yaml"
LFM2_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and tiny.yaml's train.threads=1 sets it anyway); restore after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return build_env(tmp_path_factory.mktemp("lm"))


def build_env(root):
    """A tiny dataset (difficulties 1 and 2), a BPE tokenizer trained on it, a tiny LFM2 and GPT-2."""
    data = root / "data"
    generate(
        GenerateConfig(scenario_types=("pendulum", "billiards"), num_scenes_per_type=2, frames_per_scene=20),
        data,
        progress=False,
    )
    records = list(Dataset(data).iter_scenes())
    texts = [text.training_example(r, t, 3)[0] for r in records for t in range(0, 19, 2)]
    from tokenizers import processors

    bpe = text.train_bpe(texts, 400)
    bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    vocab = len(tokenizer)
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    # initializer_range 0.2: with the usual 0.02, a 32-wide random model's logits span less than one nat
    # and no adapter can make its predictions confident; 0.2 gives the logit scale of a trained model
    ids["initializer_range"] = 0.2

    torch.manual_seed(0)
    lfm2 = root / "tiny-lfm2"
    config = Lfm2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        layer_types=["conv", "full_attention"],
        block_auto_adjust_ff_dim=False,
        max_position_embeddings=2048,
        **ids,
    )
    Lfm2ForCausalLM(config).save_pretrained(lfm2)
    tokenizer.save_pretrained(lfm2)

    gpt2 = root / "tiny-gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=1024, **ids)
    ).save_pretrained(gpt2)
    tokenizer.save_pretrained(gpt2)
    return {"root": root, "data": data, "lfm2": lfm2, "gpt2": gpt2, "records": records}


def run(env, out, *extra, model="lfm2"):
    argv = [
        "--config",
        str(TINY),
        "--base-model",
        str(env[model]),
        "--data-dir",
        str(env["data"]),
        "--output-dir",
        str(out),
        *extra,
    ]
    return lm_lora.main(argv, progress=False)


def tiny_cfg(env, *overrides):
    return load_config(
        TINY,
        lm_lora.RecipeConfig,
        [
            f"model.base_model={env['lfm2']}",
            f"data.data_dir={env['data']}",
            "train.output_dir=unused",
            *overrides,
        ],
    )


def lora_leaf_names(model) -> set[str]:
    return set(lm_lora.lora_modules(model))


# ---------------------------------------------------------------- configs and flags


def test_presets_load_with_guide_values():
    cfg = load_config(ROOT / "configs" / "lm_lora" / "lfm2_350m.yaml", lm_lora.RecipeConfig)
    assert cfg.model.base_model == "LiquidAI/LFM2-350M"
    assert (cfg.optim.lr, cfg.lora.r, cfg.lora.alpha) == (2e-4, 32, 64)
    assert (cfg.data.batch_size, cfg.optim.grad_accum, cfg.data.max_seq_length) == (4, 8, 8192)
    assert cfg.train.curriculum_stages == 5
    assert tuple(cfg.lora.target_modules) == LFM2_TARGETS == lm_lora.TARGET_MODULES["lfm2"]
    load_config(TINY, lm_lora.RecipeConfig)


def test_flags_override_config_and_key_value_overrides_flags(tmp_path):
    argv = [
        "--config", str(TINY), "--base-model", "some/model", "--data-dir", "d", "--output-dir", "o",
        "--curriculum-stages", "3", "--epochs-per-stage", "2", "--batch-size", "3", "--grad-accum", "5",
        "--lr", "3e-4", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0.1",
        "--max-seq-length", "512", "--context-frames", "4", "--wandb-project", "p",
        "--optimizer", "adamw_8bit", "--bf16", "--gradient-checkpointing", "--seed", "7",
        "--max-steps", "30", "--save-steps", "10", "optim.lr=5e-4",
    ]  # fmt: skip
    cfg = lm_lora.config_from_args(lm_lora.build_parser().parse_intermixed_args(argv))
    assert cfg.model.base_model == "some/model" and cfg.data.data_dir == "d" and cfg.train.output_dir == "o"
    assert (cfg.train.curriculum_stages, cfg.train.epochs_per_stage) == (3, 2)
    assert (cfg.data.batch_size, cfg.optim.grad_accum, cfg.optim.lr) == (3, 5, 5e-4)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (8, 16, 0.1)
    assert (cfg.data.max_seq_length, cfg.data.context_frames, cfg.train.wandb_project) == (512, 4, "p")
    assert cfg.optim.optimizer == "adamw_8bit" and cfg.train.bf16 and cfg.train.gradient_checkpointing
    assert (cfg.train.seed, cfg.train.max_steps, cfg.train.save_steps) == (7, 30, 10)
    # no --config: flags alone; required keys missing fail with the key's name
    cfg = lm_lora.config_from_args(
        lm_lora.build_parser().parse_args(["--data-dir", "d", "--output-dir", "o"])
    )
    assert cfg.model.base_model == lm_lora.DEFAULT_BASE_MODEL and cfg.train.curriculum_stages == 5
    with pytest.raises(ValueError, match="output_dir"):
        lm_lora.config_from_args(lm_lora.build_parser().parse_args(["--data-dir", "d"]))


def test_stage_plan_and_checkpoint_discovery(env, tmp_path):
    cfg = tiny_cfg(env)  # 2 stages, max_steps 4
    assert lm_lora.stage_difficulties(cfg) == [(1, (1,)), (2, (2,))]
    assert [lm_lora.stage_steps(cfg, k, 40, 1) for k in (0, 1)] == [2, 2]
    epochs = tiny_cfg(env, "train.max_steps=0", "train.epochs_per_stage=3")  # 40 examples, batch 2, accum 2
    assert lm_lora.stage_steps(epochs, 0, 40, 1) == 30 and lm_lora.stage_steps(epochs, 0, 40, 2) == 15
    assert lm_lora.stage_difficulties(tiny_cfg(env, "train.curriculum_stages=0")) == [(0, None)]
    # only whole checkpoint directories count; temporaries of an interrupted save are ignored
    for name in (
        "stage1/checkpoint-2",
        "stage2/checkpoint-10",
        "stage2/.tmp-checkpoint-12-99",
        "stage2/checkpoint-11",
    ):
        (tmp_path / name).mkdir(parents=True)
        if name != "stage2/checkpoint-11":
            (tmp_path / name / lm_lora.STATE_FILE).write_text("{}")
    assert lm_lora.latest_checkpoint(tmp_path) == tmp_path / "stage2" / "checkpoint-10"


# ---------------------------------------------------------------- data, labels, loss


def test_collator_masks_prompt_and_padding_and_loss_matches_transformers(env):
    cfg = tiny_cfg(env)
    model, tokenizer, _ = lm_lora.build_model(cfg, torch.device("cpu"))
    records = env["records"]
    items = [lm_lora.build_example(tokenizer, records[i], t, cfg.data) for i, t in ((0, 0), (3, 7), (1, 12))]
    batch = lm_lora.collate_examples(items, pad_id=tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 3
    for row, it, (i, t) in zip(range(3), items, ((0, 0), (3, 7), (1, 12)), strict=True):
        n, p = len(it["input_ids"]), it["prompt_length"]
        labels = batch["labels"][row]
        assert (labels[:p] == -100).all(), "prompt tokens carry no loss"
        assert (labels[n:] == -100).all(), "padding carries no loss"
        assert torch.equal(labels[p:n], batch["input_ids"][row, p:n])
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()
        assert batch["input_ids"][row, 0] == tokenizer.bos_token_id
        _, completion = text.training_example(records[i], t, cfg.data.context_frames)
        assert tokenizer.decode(labels[p : n - 1].tolist()) == completion  # the frame, then EOS
        assert labels[n - 1] == tokenizer.eos_token_id
    loss_sum, count = lm_lora.completion_loss(model, batch, masked_logits=True)
    assert count == int((batch["labels"] != -100).sum())
    reference = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
    ).loss
    torch.testing.assert_close(loss_sum / count, reference, rtol=1e-5, atol=1e-6)
    full_sum, _ = lm_lora.completion_loss(model, batch, masked_logits=False)
    torch.testing.assert_close(full_sum, loss_sum, rtol=1e-5, atol=1e-5)
    assert lm_lora.supports_logits_mask(model)


def test_long_prompts_lose_context_frames_from_the_front_never_the_completion(env):
    cfg = tiny_cfg(env)
    _, tokenizer, _ = lm_lora.build_model(cfg, torch.device("cpu"))
    record, t = env["records"][3], 10  # billiards, 4 bodies
    full = lm_lora.build_example(tokenizer, record, t, cfg.data)
    assert full["context_frames"] == 3 and full["context_dropped"] == 0
    one = lm_lora.build_example(tokenizer, record, t, lm_lora.replace(cfg.data, context_frames=1))
    completion = full["input_ids"][full["prompt_length"] :]
    limit = len(one["input_ids"]) + 1  # room for one context frame only
    short = lm_lora.build_example(tokenizer, record, t, lm_lora.replace(cfg.data, max_seq_length=limit))
    assert short["context_frames"] == 1 and short["context_dropped"] == 2 and not short["prompt_truncated"]
    assert short["input_ids"] == one["input_ids"]
    assert short["input_ids"][short["prompt_length"] :] == completion
    prompt, _ = text.training_example(record, t, 1)
    assert tokenizer.decode(short["input_ids"][: short["prompt_length"]], skip_special_tokens=True) == prompt
    # not even one frame fits (rare: the stage's check at t = 0 leaves out such scenes): the prompt
    # loses tokens from its front after BOS, the completion stays whole, and it is counted
    cut = lm_lora.build_example(tokenizer, record, t, lm_lora.replace(cfg.data, max_seq_length=limit - 20))
    assert cut["prompt_truncated"] and len(cut["input_ids"]) == limit - 20
    assert (
        cut["input_ids"][0] == tokenizer.bos_token_id
        and cut["input_ids"][cut["prompt_length"] :] == completion
    )
    assert cut["input_ids"][1 : cut["prompt_length"]] == one["input_ids"][20 : one["prompt_length"]]  # 19 cut
    batch = lm_lora.collate_examples([full, short], tokenizer.pad_token_id)
    assert (batch["context_shortened"], batch["context_frames_dropped"]) == (1, 2)
    # a scene too long even with one frame is left out of its stage, and counted
    assert record["difficulty"] == 2
    start = lm_lora.build_example(tokenizer, record, 0, cfg.data)  # t = 0: the scene's shortest example
    tight = tiny_cfg(env, f"data.max_seq_length={len(start['input_ids']) - 1}")
    stage2 = lm_lora.load_stage(tight, tokenizer, (2,), 1)
    assert stage2.scenes_skipped_too_long == 1 and stage2.scenes == 1  # the 2-body pendulum still fits
    assert len(stage2.dataset) == 20


def test_example_order_is_fixed_by_seed_and_ranks_split_global_batches(env):
    cfg = tiny_cfg(env)
    _, tokenizer, _ = lm_lora.build_model(cfg, torch.device("cpu"))
    stage = lm_lora.load_stage(cfg, tokenizer, (1,), 0)
    assert len(stage.dataset) == 2 * 20  # 2 scenes of difficulty 1, 20 examples each
    assert (lm_lora.epoch_order(40, 0, 0, 0) == lm_lora.epoch_order(40, 0, 0, 0)).all()
    assert not (lm_lora.epoch_order(40, 0, 0, 0) == lm_lora.epoch_order(40, 1, 0, 0)).all()

    def first(rank, world):
        pos = {"epoch": 0, "sample": 0}
        batch = next(lm_lora.micro_batches(stage, cfg, 0, pos, 0, rank, world))
        return batch["input_ids"], pos

    def rows(ids):
        return [[v for v in row if v != tokenizer.pad_token_id] for row in ids.tolist()]

    order = lm_lora.epoch_order(40, cfg.train.seed, 0, 0)
    expected = [stage.dataset[int(i)]["input_ids"] for i in order[:4]]
    single, pos = first(0, 1)
    assert rows(single) == expected[:2] and pos == {"epoch": 0, "sample": 2}
    rank0, pos0 = first(0, 2)  # a global batch of 4: rank 0 takes the first 2, rank 1 the next 2
    rank1, _ = first(1, 2)
    assert rows(rank0) == expected[:2] and rows(rank1) == expected[2:4]
    assert pos0 == {"epoch": 0, "sample": 4}


def test_loss_decreases_on_a_fixed_batch(env):
    cfg = tiny_cfg(env)
    torch.manual_seed(0)
    model, tokenizer, _ = lm_lora.build_model(cfg, torch.device("cpu"))
    records = env["records"]
    items = [lm_lora.build_example(tokenizer, records[i % 4], 2 + 3 * i, cfg.data) for i in range(4)]
    batch = lm_lora.collate_examples(items, tokenizer.pad_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(30):
        loss_sum, n = lm_lora.completion_loss(model, batch)
        loss = loss_sum / n
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


# ---------------------------------------------------------------- base model and LoRA targets


def test_every_lfm2_projection_gets_an_adapter_and_unmatched_names_fail(env):
    cfg = tiny_cfg(env)
    model, _, targets = lm_lora.build_model(cfg, torch.device("cpu"))
    assert targets == LFM2_TARGETS
    found = lm_lora.lora_modules(model)
    assert set(found) == set(LFM2_TARGETS)
    assert len(found["out_proj"]) == 2  # the attention layer's and the conv layer's
    trainable, total = lm_lora.parameter_counts(model)
    assert 0 < trainable < total
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    with pytest.raises(lm_lora.LmLoraError, match="gate_proj"):
        lm_lora.build_model(tiny_cfg(env, "lora.target_modules=[q_proj, gate_proj]"), torch.device("cpu"))


def test_unreachable_hub_gives_a_clear_error(env, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name in (str(tmp_path / "no" / "such" / "model"), "LiquidAI/LFM2-350M-not-cached"):
        with pytest.raises(lm_lora.BaseModelError) as info:
            lm_lora.load_base_model(name)
        message = str(info.value)
        assert "Hugging Face Hub is unreachable" in message and "--base-model" in message
        assert "local directory" in message or "--local-dir" in message
    with pytest.raises(lm_lora.BaseModelError, match="unreachable"):
        run(env, tmp_path / "out", "--base-model", str(tmp_path / "missing"))
    # a local directory that is not a model is a different, also clear, error
    (tmp_path / "empty").mkdir()
    with pytest.raises(lm_lora.BaseModelError, match="config.json"):
        lm_lora.load_base_model(str(tmp_path / "empty"))


def test_adamw_8bit_names_bitsandbytes_when_unavailable():
    params = [torch.nn.Parameter(torch.zeros(2))]
    try:
        import bitsandbytes  # noqa: F401

        have_bnb = True
    except ImportError:
        have_bnb = False
    if have_bnb and torch.cuda.is_available():
        pytest.skip("bitsandbytes and CUDA are both present")
    with pytest.raises(lm_lora.LmLoraError, match="bitsandbytes"):
        lm_lora.make_optimizer("adamw_8bit", params, 1e-3, 0.0)


# ---------------------------------------------------------------- the whole recipe


def test_curriculum_run_checkpoints_load_with_peft_and_resume_exactly(env, tmp_path):
    from peft import PeftModel

    out = tmp_path / "run"
    summary = run(env, out)  # tiny.yaml: 2 stages, 4 steps, a checkpoint every step
    assert summary["steps"] == 4
    assert [s["stage"] for s in summary["stages"]] == [1, 2]
    assert [s["difficulty"] for s in summary["stages"]] == [1, 2]
    final1, final2 = out / "stage1" / "checkpoint-2", out / "stage2" / "checkpoint-4"
    assert sorted(p.name for p in (out / "stage1").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert sorted(p.name for p in (out / "stage2").iterdir()) == ["checkpoint-3", "checkpoint-4"]
    assert summary["latest"] == str(final2)
    for ckpt in (final1, final2):
        for name in (*lm_lora.ADAPTER_FILES, lm_lora.OPTIMIZER_FILE, lm_lora.STATE_FILE, "tokenizer.json"):
            assert (ckpt / name).is_file(), name
    state = json.loads((final2 / lm_lora.STATE_FILE).read_text())
    assert state["global_step"] == 4 and state["stage"] == 2 and state["stage_complete"]
    assert (
        json.loads((out / "stage2" / "checkpoint-3" / lm_lora.STATE_FILE).read_text())["stage_complete"]
        is False
    )

    # the adapter loads onto the base with peft and changes its outputs; every LFM2 projection has LoRA
    base = AutoModelForCausalLM.from_pretrained(env["lfm2"])
    ids = torch.tensor([[1, 5, 9, 17, 33, 65, 129, 200]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(final2))
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after, atol=1e-4)
    assert lora_leaf_names(tuned) == set(LFM2_TARGETS)
    assert all(
        any(name.endswith(f".{leaf}.lora_A.default") for name, _ in tuned.named_modules())
        for leaf in LFM2_TARGETS
    )

    metrics = read_metrics(out / "metrics.jsonl")
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 4 and all(v is not None for v in losses)
    assert any(m.get("trainable_params") for m in metrics)

    # rerunning a finished run changes nothing
    assert run(env, out)["steps"] == 4

    # resume mid-stage (from checkpoint-3) and from a stage boundary (checkpoint-2): same final adapter
    expected = load_file(str(final2 / "adapter_model.safetensors"))
    for keep in ("checkpoint-3", None):
        copy = tmp_path / f"resume-{keep}"
        shutil.copytree(out, copy)
        shutil.rmtree(copy / "stage2" / "checkpoint-4")
        if keep is None:
            shutil.rmtree(copy / "stage2")
        assert run(env, copy)["steps"] == 4
        got = load_file(str(copy / "stage2" / "checkpoint-4" / "adapter_model.safetensors"))
        assert got.keys() == expected.keys()
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], rtol=0, atol=0)
        steps = [m["step"] for m in read_metrics(copy / "metrics.jsonl") if "loss" in m]
        assert steps == [1, 2, 3, 4]

    # a resumed run must keep the settings that shape it
    with pytest.raises(lm_lora.LmLoraError, match="lora.r"):
        run(env, out, "--lora-r", "8")


def test_gpt2_through_the_same_recipe_with_bf16_and_gradient_checkpointing(env, tmp_path):
    out = tmp_path / "gpt2"
    summary = run(
        env,
        out,
        "--curriculum-stages",
        "1",
        "--max-steps",
        "2",
        "--bf16",
        "--gradient-checkpointing",
        "data.num_workers=1",  # tokenising in a DataLoader worker
        model="gpt2",
    )
    assert summary["target_modules"] == list(lm_lora.TARGET_MODULES["gpt2"])
    ckpt = out / "stage1" / "checkpoint-2"
    assert (ckpt / "adapter_model.safetensors").is_file()
    config = json.loads((ckpt / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"c_attn", "c_proj", "c_fc"} and config["fan_in_fan_out"]
    from peft import PeftModel

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(env["gpt2"]), str(ckpt))
    assert lora_leaf_names(tuned) == {"c_attn", "c_proj", "c_fc"}


def test_non_finite_losses_skip_updates_then_stop_the_run(env, tmp_path, monkeypatch):
    real = lm_lora.completion_loss
    calls = {"n": 0}

    def flaky(model, batch, masked_logits=True):
        calls["n"] += 1
        loss, n = real(model, batch, masked_logits)
        return (loss * float("nan"), n) if calls["n"] <= 2 else (loss, n)  # the first step's 2 micro-batches

    monkeypatch.setattr(lm_lora, "completion_loss", flaky)
    out = tmp_path / "nan"
    summary = run(env, out, "--curriculum-stages", "1", "--max-steps", "2")
    assert summary["steps"] == 2
    assert any(m.get("skipped_nonfinite") == 1 for m in read_metrics(out / "metrics.jsonl"))

    calls["n"] = -(10**6)  # every loss NaN from now on
    with pytest.raises(RuntimeError, match="non-finite"):
        run(env, tmp_path / "nan2", "--curriculum-stages", "1", "--max-steps", "2", "train.max_bad_steps=1")


def test_cli_trains_and_evaluate_rolls_the_adapter_out(env, tmp_path):
    """physworld train lm-lora (guide 001's flags) then physworld evaluate --model lm on the adapter."""
    import json

    from physworld.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "train",
                "lm-lora",
                "--config",
                str(TINY),
                "--base-model",
                str(env["lfm2"]),
                "--data-dir",
                str(env["data"]),
                "--output-dir",
                str(out),
                "--curriculum-stages",
                "1",
                "--max-steps",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    checkpoint = sorted(out.glob("stage1/checkpoint-*"))[-1]
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "lm",
                "--checkpoint",
                str(checkpoint),
                "--val-dir",
                str(env["data"]),
                "--output-dir",
                str(ev),
                "--context-frames",
                "3",
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
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["dataset"]["seen_types"] == ["billiards", "pendulum"]
    model = metrics["aggregate"]["all"]["model"]
    # Two steps of LoRA cannot write physics: the frames fail to parse and are counted, not hidden.
    assert 0 <= model["parse_failures"] <= 2 * metrics["dataset"]["num_scenes"]
    assert set(model["position_error_px"]) == {"1", "all"}
    assert (
        main(
            [
                "train",
                "lm-lora",
                "--base-model",
                str(tmp_path / "nowhere"),
                "--data-dir",
                str(env["data"]),
                "--output-dir",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
