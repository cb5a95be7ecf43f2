"""The Q-Former captioner: frozen parts stay frozen, scoring reads captions right, the recipe resumes bit
for bit and survives NaNs, `physworld caption` reads any MP4 and names bad ones in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from physworld.cli import main
from physworld.data import clips as C
from physworld.data.captions import static_names
from physworld.data.generate import GenerateConfig, generate
from physworld.data.store import Dataset
from physworld.evaluation import caption_scores as S
from physworld.models import captioner as M
from physworld.recipes import captioner as R
from physworld.training.checkpoint import load_checkpoint
from physworld.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "captioner" / "tiny.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioner") / "ds"
    config = GenerateConfig(
        scenario_types=("billiards", "head_on"),
        num_scenes_per_type=3,
        frames_per_scene=60,
        scenes_per_shard=8,
        seed=3,
    )
    generate(config, root, num_workers=1, progress=False)
    C.render_clips(root, C.ClipConfig(resolution=32, frames=8, fps=10), num_workers=1, progress=False)
    return root


def _config(data, out, *extra):
    return load_config(
        TINY, R.RecipeConfig, [f"data.train_dir={data}", f"train.output_dir={out}", "train.threads=1", *extra]
    )


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cap"
    overrides = [
        f"data.train_dir={data}",
        f"data.val_dir={data}",
        f"train.output_dir={out}",
        "train.threads=1",
    ]
    assert main(["train", "captioner", "--config", str(TINY), "--quiet", *overrides]) == 0  # the CLI's way in
    return out


def test_reference_captions_score_perfectly_and_inventions_do_not(data):
    ds = Dataset(data)
    for clip in C.Clips(data / "clips").iter_clips(decode=False):
        d = clip["caption"]
        statics = static_names(ds.scene(clip["scene_id"])["spec"])[0]
        s = S.score_caption(d["caption"], d, statics)
        assert s["unparsed_clauses"] == 0
        assert s["events_true"] == s["events_named"] and s["events_recalled"] == s["events_told"]
        assert s["objects_recalled"] == s["objects_reference"] and s["objects_true"] == s["objects_named"]
    d = {
        "objects": [
            {"index": 0, "name": "red ball", "unique": True},
            {"index": 1, "name": "blue ball", "unique": True},
        ],
        "events": [
            {"kind": "collide", "objects": [0, 1], "with_static": False},
            {"kind": "fall", "objects": [1]},
        ],
    }
    made_up = "There are two objects: the red ball and the purple cube. The purple cube hits the ground, then the blue ball hits the red ball."  # fmt: skip
    s = S.score_caption(made_up, d, ["ground"])
    summary = S.caption_summary([s])
    # one of two named events happened (the reversed collision counts), one of two true events named
    assert summary["event_precision"] == 0.5 and summary["event_recall"] == 0.5
    assert s["objects_named"] == 3 and s["objects_true"] == 2  # red ball, purple cube, blue ball
    assert S.caption_summary([S.score_caption("Answer: : :", d, ["ground"])])["event_precision"] is None


def test_majority_and_accuracy_per_type():
    qs = [{"type": "descriptive", "template": "does_hit", "answer": a} for a in ("yes", "no", "no")] + [
        {"type": "predictive", "template": "will_hit", "answer": "yes"}
    ]
    majority = S.majority_answers(qs)
    assert majority == {"does_hit": "no", "will_hit": "yes"}
    acc = S.qa_accuracy([(q, majority[q["template"]]) for q in qs])
    assert acc["descriptive"]["accuracy"] == pytest.approx(2 / 3) and acc["predictive"]["accuracy"] == 1.0
    assert acc["all"]["questions"] == 4


def test_only_the_bridge_trains_the_frozen_parts_stay_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    texts = ["Describe the video . There is one object: a red ball.", "Question : Does it fall ? Answer : no"]
    lm_dir = M.build_tiny_lm(tmp_path / "lm", texts, M.TinyLMConfig(n_layer=1, n_embd=16, n_head=2, steps=2))
    lm, tok = M.load_lm(str(lm_dir))
    encoder, info = R.build_encoder(R.EncoderConfig())
    cfg = M.CaptionerConfig(
        num_queries=4, qformer_hidden=16, qformer_layers=1, qformer_heads=2, qformer_intermediate=32
    )
    model = M.Captioner(cfg, encoder, info, lm, tok)
    frozen = {k: v.clone() for k, v in [*model.encoder.state_dict().items(), *model.lm.state_dict().items()]}
    bridge = {k: v.clone() for k, v in model.bridge.state_dict().items()}
    opt = torch.optim.AdamW(model.bridge.parameters(), lr=1e-2)
    frames = torch.rand(2, info["frames"], 3, info["image_size"], info["image_size"])
    batch = M.collate(
        [{"prompt": M.prompt_ids(tok, texts[1], 16), "target": M.target_ids(tok, "no", 8)}] * 2, model.pad_id
    )
    model.train()
    for _ in range(3):
        loss = model.loss(model.encode(frames), **batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not model.encoder.training and not model.lm.training
    now = {**model.encoder.state_dict(), **model.lm.state_dict()}
    assert all(torch.equal(frozen[k], now[k]) for k in frozen), "a frozen weight changed"
    assert all(p.grad is None for p in [*model.encoder.parameters(), *model.lm.parameters()])
    changed = [k for k, v in model.bridge.state_dict().items() if not torch.equal(v, bridge[k])]
    assert any(k.startswith("qformer.") for k in changed) and "query_tokens" in changed
    assert "proj.weight" in changed

    # the text-only baseline's prefix does not depend on the video
    blind = M.QFormerBridge(M.CaptionerConfig(**{**cfg.__dict__, "use_video": False}), info["dim"], 16).eval()
    a, b = torch.randn(1, 5, info["dim"]), torch.randn(1, 5, info["dim"])
    assert torch.equal(blind(a), blind(b))


def test_recipe_trains_scores_and_writes_only_the_bridge(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["bad_steps"] == 0
    seen = metrics["val"]["seen"]
    assert seen["qa"]["all"]["questions"] > 0 and "qa_majority_baseline" in seen
    assert "held_out" not in metrics["val"]  # scored on its own training types
    ckpt = load_checkpoint(trained / "checkpoints" / "latest.safetensors")
    models = {k.split(".", 2)[1] for k in ckpt.tensors if k.startswith("model.")}
    assert models == {"query_tokens", "video_mean", "video_std", "video_norm", "qformer", "proj"}, models
    extra = ckpt.meta["extra"]
    assert len(extra["lm"]["sha256"]) == 64 and len(extra["encoder"]["sha256"]) == 64
    assert list((trained / "tensorboard").glob("events.out.tfevents*"))


def test_killed_run_resumes_bit_for_bit(data, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    R.train(_config(data, straight, "train.save_every=1"), progress=False)

    def interrupt(step):
        if step == 3:
            raise KeyboardInterrupt

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(R, "_after_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        R.train(_config(data, resumed, "train.save_every=1"), progress=False)
    monkeypatch.setattr(R, "_after_step", lambda step: None)
    R.train(_config(data, resumed, "train.save_every=1"), progress=False)
    a = load_checkpoint(straight / "checkpoints" / "latest.safetensors").tensors
    b = load_checkpoint(resumed / "checkpoints" / "latest.safetensors").tensors
    weights = [k for k in a if k.startswith(("model.", "optim."))]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "a resumed run logged a step twice"
    again = R.train(_config(data, resumed, "train.save_every=1"), progress=False)
    assert again.get("reused")


def test_nan_step_is_skipped(data, tmp_path, monkeypatch):
    real = M.Captioner.loss
    calls = {"n": 0}

    def sometimes_nan(self, *args, **kwargs):
        calls["n"] += 1
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(M.Captioner, "loss", sometimes_nan)
    out = tmp_path / "nan"
    R.train(_config(data, out), progress=False)
    assert json.loads((out / "metrics.json").read_text())["bad_steps"] == 1
    tensors = load_checkpoint(out / "checkpoints" / "latest.safetensors").tensors
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model."))


def test_caption_reads_any_mp4_and_refuses_bad_ones(data, trained, tmp_path, capsys):
    from physworld.data.render import write_mp4

    ckpt = str(trained / "checkpoints" / "latest.safetensors")
    clip = next(iter(C.Clips(data / "clips").iter_clips()))
    wide = np.concatenate([clip["rgb"], clip["rgb"][:, :, :16]], axis=2)  # 32 x 48: not square
    write_mp4(tmp_path / "wide.mp4", np.repeat(wide, 2, axis=0), fps=10)
    assert main(["caption", str(tmp_path / "wide.mp4"), "--checkpoint", ckpt]) == 0
    assert capsys.readouterr().out.strip()
    assert (
        main(
            [
                "caption",
                str(tmp_path / "wide.mp4"),
                "--checkpoint",
                ckpt,
                "--question",
                "Does the red ball fall?",
            ]
        )
        == 0
    )
    write_mp4(tmp_path / "short.mp4", clip["rgb"][:2], fps=10)
    (tmp_path / "text.mp4").write_text("not a video")
    for name, message in (
        ("short.mp4", "too short"),
        ("text.mp4", "not a readable video"),
        ("none.mp4", "no such"),
    ):
        capsys.readouterr()
        assert main(["caption", str(tmp_path / name), "--checkpoint", ckpt]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and name in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_unreachable_lm_is_one_clear_line(data, tmp_path):
    with pytest.raises(ValueError, match="lm.path"):
        R.train(_config(data, tmp_path / "x", f"lm.path={tmp_path / 'no_such_lm'}"), progress=False)
