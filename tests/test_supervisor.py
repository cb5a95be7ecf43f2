"""The Supervisor (models/supervisor.py, recipes/supervisor.py), the parameter shift (worlds/shift.py) and
the labelled / unlabelled split mark (data/splits.py), on tiny data and tiny models built here."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from physworld.cli import main
from physworld.data.clip_view import ClipDataset, prepare_clips
from physworld.data.clips import camera_2d
from physworld.data.splits import SplitError, dataset_split, require_split, unlabelled_clips
from physworld.models import supervisor as S
from physworld.models.physics_expert import PhysicsExpert, PhysicsExpertConfig
from physworld.models.visual_expert import VisualExpert, VisualExpertConfig
from physworld.training.checkpoint import save_checkpoint
from physworld.worlds.registry import make_spec
from physworld.worlds.shift import shift_params

VE_CONFIG = VisualExpertConfig(
    image_size=32, frames=6, slots=4, channels=8, dim=16, heads=2, decoder_layers=1
)
PE_CONFIG = PhysicsExpertConfig(history=2, hidden=16, mlp_layers=1, message_passing_steps=1)
CLIP_FLAGS = ["--with-clips", "--clip-resolution", "32", "--clip-frames", "9", "--clip-fps", "12"]


def _generate(out, *extra):
    args = ["generate", "--output-dir", str(out), "--scenario-types", "pong", "billiards"]
    args += ["--num-scenes-per-type", "2", "--frames-per-scene", "50", "--num-workers", "1", "--quiet"]
    args += [*CLIP_FLAGS, "--no-clip-captions", *extra]
    assert main(args) == 0


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("supervisor")
    _generate(root / "unlabelled", "--param-shift", "ood", "--split", "unlabelled")
    _generate(root / "labelled")
    torch.manual_seed(0)
    ve = VisualExpert(VE_CONFIG)
    ve.set_normalisation([400, 300, 0, 0, 0, 0], [200, 150, 1, 200, 200, 3], [0, 0.5, 0.5], [1, 0.3, 0.3])
    save_checkpoint(
        root / "ve.safetensors", ve, extra={"recipe": "visual-expert", "model_config": asdict(VE_CONFIG)}
    )
    pe = PhysicsExpert(PE_CONFIG)
    save_checkpoint(
        root / "pe.safetensors", pe, extra={"recipe": "physics-expert", "model_config": asdict(PE_CONFIG)}
    )
    return root


def _train_args(world, out, *extra):
    return [
        "train",
        "supervisor",
        "--config",
        "configs/supervisor/tiny.yaml",
        f"data.unlabelled_dirs=[{world / 'unlabelled'}]",
        f"visual_expert={world / 've.safetensors'}",
        f"physics_expert={world / 'pe.safetensors'}",
        f"train.output_dir={out}",
        *extra,
    ]


def _batch(world, n=2):
    ds = unlabelled_clips(world / "unlabelled", "x")
    rgb = torch.stack([ds[i]["rgb"] for i in range(n)])
    inst = [S.colour_instances(ds[i]["rgb"].numpy(), VisualExpert(VE_CONFIG).mask_size) for i in range(n)]
    return rgb, inst


# ---------------------------------------------------------------- data: shift and split


def test_param_shift_is_seeded_and_moves_every_parameter_the_documented_way():
    spec = make_spec("billiards", 3, 7)
    a, b = shift_params(spec, "ood", 7), shift_params(spec, "ood", 7)
    assert a == b and shift_params(spec, "ood", 8) != a  # a function of the seed
    assert shift_params(spec, "none", 7) is spec
    heavy = shift_params(spec, "heavier", 7)
    for old, new, ood in zip(spec["bodies"], heavy["bodies"], a["bodies"], strict=True):
        assert 2.0 <= new["mass"] / old["mass"] <= 5.0
        assert new["moment"] / old["moment"] == pytest.approx(new["mass"] / old["mass"])
        assert new["friction"] == old["friction"] and new["mass"] == ood["mass"]  # same draws in "ood"
        assert 0.1 * old["friction"] <= ood["friction"] <= 0.4 * old["friction"]
        assert old["elasticity"] <= ood["elasticity"] <= 1.0
    with pytest.raises(ValueError, match="--param-shift"):
        shift_params(spec, "lighter", 7)


def test_shifted_unlabelled_dataset_validates_with_resimulation(world):
    from physworld.data.validate import validate

    report = validate(world / "unlabelled", resimulate="all", progress=False)
    assert report.ok, report.findings


def test_split_mark_and_refusals(world, capsys):
    assert dataset_split(world / "unlabelled") == "unlabelled"
    assert dataset_split(world / "labelled") == "labelled"
    require_split(world / "unlabelled", "unlabelled", "x")
    with pytest.raises(SplitError, match="an unlabelled split"):
        require_split(world / "unlabelled", "labelled", "--train-dir")
    assert set(unlabelled_clips(world / "unlabelled", "x")[0]) == {
        "scene_id",
        "scenario_type",
        "difficulty",
        "rgb",
    }
    # the fine-tune refuses a labelled split passed as unlabelled: one line, exit 2
    capsys.readouterr()
    code = main(_train_args(world, world / "refused", f"data.unlabelled_dirs=[{world / 'labelled'}]"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "a labelled split" in err and len(err.splitlines()) == 1, err
    assert not (world / "refused").exists()
    # and the reverse: supervised training refuses an unlabelled split
    config = str(Path(__file__).resolve().parents[1] / "configs" / "visual_expert" / "tiny.yaml")
    out = world / "refused_ve"
    args = ["train", "visual-expert", "--config", config, f"data.train_dir={world / 'unlabelled'}"]
    code = main([*args, f"train.output_dir={out}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "an unlabelled split" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_colour_instances_recover_the_bodies_from_pixels(world):
    """The L_vis target comes from RGB alone, yet equals the renderer's instance masks here."""
    view = ClipDataset(prepare_clips(world / "labelled"))
    for i in range(len(view)):
        item = view[i]
        inst = S.colour_instances(item["rgb"].numpy(), 32) > 0.5  # [T, M, H, W] at full resolution
        seg = item["segmentation"].numpy()
        bodies = [b for b in range(item["states"].shape[1]) if (seg == b + 1).any()]
        assert inst.shape[1] == len(bodies)
        truth = np.stack([seg == b + 1 for b in bodies], 1)  # [T, M, H, W]
        found = [
            [g for g in range(len(bodies)) if (inst[:, m] == truth[:, g]).all()] for m in range(len(bodies))
        ]
        assert sorted(g for f in found for g in f) == list(range(len(bodies))), found


# ---------------------------------------------------------------- losses


def test_physics_expert_frozen_bit_for_bit_while_its_gradient_reaches_the_visual_expert(world):
    torch.manual_seed(1)
    ve = VisualExpert(VE_CONFIG)
    ve.set_normalisation([400, 300, 0, 0, 0, 0], [200, 150, 1, 200, 200, 3], [0, 0.5, 0.5], [1, 0.3, 0.3])
    pe = S.freeze(PhysicsExpert(PE_CONFIG))
    before = {k: v.clone() for k, v in pe.state_dict().items()}
    rgb, _ = _batch(world)
    cfg = S.SupervisorConfig(exist_threshold=0.01)  # every slot takes part
    opt = torch.optim.AdamW(ve.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        out = ve(S.to_frames(rgb[:, :6]))
        loss = S.phys_loss(out, pe, camera_2d(32), 32, 5, ve.state_std, cfg)
        assert loss > 0
        loss.backward()
        grads = {n: p.grad for n, p in ve.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert "state_head.0.weight" in grads and "param_head.2.weight" in grads  # states and params
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in pe.parameters())
    assert all(torch.equal(before[k], v) for k, v in pe.state_dict().items())


@pytest.mark.parametrize("term", ["vis", "phys", "consistency"])
def test_each_loss_term_is_nonzero_and_falls(world, term):
    torch.manual_seed(2)
    ve = VisualExpert(VE_CONFIG)
    ve.set_normalisation([400, 300, 0, 0, 0, 0], [200, 150, 1, 200, 200, 3], [0, 0.5, 0.5], [1, 0.3, 0.3])
    with torch.no_grad():  # frames tell windows apart: at the default init two windows nearly agree
        ve.time_embed.normal_(0.0, 1.0)
    pe = S.freeze(PhysicsExpert(PE_CONFIG))
    rgb, inst = _batch(world)
    cfg = S.SupervisorConfig(exist_threshold=0.01)
    opt = torch.optim.Adam(ve.parameters(), lr=3e-3)
    values = []
    for _ in range(10):
        opt.zero_grad()
        out = ve(torch.cat([S.to_frames(rgb[:, :6]), S.to_frames(rgb[:, 2:8])]))
        a = {k: v[:2] for k, v in out.items()}
        b = {k: v[2:] for k, v in out.items()}
        if term == "vis":
            loss = S.vis_loss(a, [x[:6] for x in inst], camera_2d(32), 32, cfg)["vis"]
        elif term == "phys":
            loss = S.phys_loss(a, pe, camera_2d(32), 32, 5, ve.state_std, cfg)
        else:
            loss = S.consistency_loss(a, b, 2, ve.state_std, ve.param_std, cfg)
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[0] > 1e-4, values
    assert values[-1] < 0.85 * values[0], values


# ---------------------------------------------------------------- the recipe


class Killed(Exception):
    pass


def test_recipe_logs_every_term_and_resumes_bit_identically(world, monkeypatch):
    from physworld.models.supervisor import load_finetuned
    from physworld.recipes import supervisor as recipe
    from physworld.training.metrics import read_metrics

    full, cut = world / "full", world / "cut"
    assert main(_train_args(world, full)) == 0
    rows = [r for r in read_metrics(full / "metrics.jsonl") if "phys" in r]
    assert len(rows) == 6
    for key in ("vis", "vis_mask", "vis_exist", "vis_render", "phys", "consistency", "loss"):
        assert all(np.isfinite(r[key]) for r in rows) and rows[0][key] > 0, key
    assert any(p.name.startswith("events.out.tfevents") for p in full.rglob("*"))
    # killed at step 4, after the checkpoint of step 3 (save_every 3), then resumed
    log = recipe.MetricLogger.log

    def dies_at_step_4(self, step, **scalars):
        if step == 4:
            raise Killed
        log(self, step, **scalars)

    monkeypatch.setattr(recipe.MetricLogger, "log", dies_at_step_4)
    with pytest.raises(Killed):
        recipe.main("configs/supervisor/tiny.yaml", _train_args(world, cut)[4:], progress=False)
    monkeypatch.undo()
    assert main(_train_args(world, cut)) == 0
    a = load_file(full / "checkpoints" / "latest.safetensors")
    b = load_file(cut / "checkpoints" / "latest.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, info = load_finetuned(full / "checkpoints" / "latest.safetensors")
    assert info["physics_expert_sha256"] and model.config == VE_CONFIG


def test_recipe_ablation_switch_and_bad_inputs(world, capsys):
    out = world / "ablation"
    assert main(_train_args(world, out, "supervisor.lambda_phys=0", "train.max_steps=2")) == 0
    from physworld.training.metrics import read_metrics

    rows = [r for r in read_metrics(out / "metrics.jsonl") if "phys" in r]
    assert rows[-1]["phys"] > 0  # still measured for the log, with no weight
    capsys.readouterr()
    for extra, words in (
        ([f"visual_expert={world / 'pe.safetensors'}"], "visual_expert"),
        (["supervisor.lambda_phys=-1"], "lambda_phys"),
    ):
        assert main(_train_args(world, world / "bad", *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- vision in the loop, the report


def test_vision_loop_rows_and_report_sections(world, capsys):
    import json

    from physworld.evaluation import vision_report
    from physworld.evaluation.vision_loop import FILE

    out = world / "eval"
    code = main(
        [
            "vision-loop",
            "--visual-expert", str(world / "ve.safetensors"),
            "--physics-expert", str(world / "pe.safetensors"),
            "--data-dir", str(world / "unlabelled"),
            "--output-dir", str(out),
            "--rollout-frames", "3",
            "--quiet",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / FILE).read_text())
    rows = result["groups"]["all"]["rows"]
    assert set(rows) == {"pe_from_vision", "cv_from_vision", "pe_from_truth", "cv_from_truth"}
    # from the true states the error starts at 0; from an untrained Visual Expert it does not
    assert rows["pe_from_truth"]["position_error_px"][0] == 0.0
    assert rows["pe_from_vision"]["position_error_px"][0] > 1.0
    assert {"seen", "heldout"} & set(result["groups"])
    values = vision_report.vision_loop_values(out)
    assert values["tables"] and values["tables"][0]["rows"][0]["cells"][0].startswith("PhysicsExpert")
    assert vision_report.ood_values(out) is None  # absent file: the section is left out
    vision_report.write_ood(
        out,
        {
            "splits": {
                "param_shift": {
                    "rows": {"before": {"position_error": 12.5}},
                    "counts": {"windows": 3, "pairs": 9},
                }
            }
        },
    )
    table = vision_report.ood_values(out)["tables"][0]
    assert table["rows"][0]["cells"][:2] == ["Visual Expert before fine-tuning", "12.5"]
    from physworld.evaluation.report import SECTIONS

    assert {"vision-loop", "ood"} <= {s["id"] for s in SECTIONS}


def test_recipe_nan_guard_stops_after_max_bad_steps(world, monkeypatch):
    from physworld.recipes import supervisor as recipe

    real = recipe.vis_loss

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        return dict(terms, vis=terms["vis"] * float("nan"))

    monkeypatch.setattr(recipe, "vis_loss", poisoned)
    with pytest.raises(RuntimeError, match="non-finite steps in a row"):
        recipe.main(
            "configs/supervisor/tiny.yaml",
            _train_args(world, world / "nan", "train.max_bad_steps=2")[4:],
            progress=False,
        )
