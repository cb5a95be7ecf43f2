"""`physworld <verb>`: one command line over the library.

Each verb is a small function that parses nothing itself: argparse hands it a namespace, it calls
the library, and user mistakes come back as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import itertools
import os
import sys
from pathlib import Path


class UserError(Exception):
    """A mistake in the command's input: printed as one line, exit status 2."""


# Exit statuses: 0 done; 1 damage found (validate's findings, a damaged checkpoint or adapter) or a run
# that stopped itself; 2 the input or the machine needs fixing (a wrong flag, an unusable path, a full
# disk); 3 an internal error (a bug: one line, PHYSWORLD_TRACEBACK=1 shows where); 130 interrupted.
EXIT_DAMAGE, EXIT_USER, EXIT_INTERNAL = 1, 2, 3


# ---------------------------------------------------------------- verbs


def _clip_config(args):
    from physworld.data.clips import ClipConfig

    return ClipConfig(
        resolution=args.clip_resolution,
        frames=args.clip_frames,
        fps=args.clip_fps,
        captions=not args.no_captions,
    )


def cmd_generate(args) -> int:
    from physworld.data.generate import GenerateConfig, generate

    clip_config = None
    if args.with_clips:
        if args.format != "parquet":
            raise UserError(
                "--with-clips needs --format parquet (clips are stored beside the Parquet shards)"
            )
        from physworld.data.clips import check_types

        clip_config = _clip_config(args)
        check_types(clip_config, args.scenario_types, args.frames_per_scene)
    config = GenerateConfig(
        scenario_types=tuple(args.scenario_types),
        num_scenes_per_type=args.num_scenes_per_type,
        seed=args.seed,
        frames_per_scene=args.frames_per_scene,
        difficulty_range=tuple(args.difficulty_range),
        scenes_per_shard=args.scenes_per_shard,
        param_shift=args.param_shift,
        split=args.split,
    )
    manifest = generate(
        config,
        args.output_dir,
        num_workers=args.num_workers,
        progress=not args.quiet,
        fmt=args.format,
        ray_address=args.ray,
    )
    if args.format == "jsonl":
        print(
            f"{config.num_scenes} scenes of {len(config.scenario_types)} types in the guide's JSONL layout "
            f"-> {args.output_dir}"
        )
        return 0
    total = sum(s["bytes"] for s in manifest["shards"])
    print(
        f"{manifest['num_scenes']} scenes of {len(manifest['scenes_per_type'])} types in "
        f"{len(manifest['shards'])} shards ({total / 1e6:.1f} MB) -> {args.output_dir}"
    )
    if clip_config is not None:
        _print_clips(_render_clips(args.output_dir, clip_config, None, args))
    return 0


def _render_clips(data_dir, clip_config, clips_dir, args) -> tuple:
    from physworld.data.clips import DEFAULT_SUBDIR, render_clips

    clips_dir = clips_dir or Path(data_dir) / DEFAULT_SUBDIR
    manifest = render_clips(
        data_dir,
        clip_config,
        clips_dir,
        num_workers=args.num_workers,
        progress=not args.quiet,
        ray_address=args.ray,
    )
    return manifest, clips_dir


def _print_clips(result) -> None:
    manifest, clips_dir = result
    c = manifest["clip"]
    total = sum(s["bytes"] for s in manifest["shards"])
    print(
        f"{manifest['num_clips']} clips of {c['frames']} frames, {c['resolution']}x{c['resolution']} at "
        f"{c['fps']:g} fps ({total / 1e6:.1f} MB) -> {clips_dir}"
    )


def cmd_prepare_clips(args) -> int:
    from physworld.data.clip_view import prepare_clips

    out = prepare_clips(args.data_dir, clips_dir=args.clips_dir, progress=not args.quiet)
    print(f"clip view prepared -> {out}")
    return 0


def cmd_render_clips(args) -> int:
    _print_clips(_render_clips(args.data_dir, _clip_config(args), args.clips_dir, args))
    return 0


def cmd_voe_pairs(args) -> int:
    from physworld.data.voe import VoEConfig, generate_pairs

    config = VoEConfig(
        resolution=args.resolution,
        frames=args.frames,
        fps=args.fps,
        difficulty=args.difficulty,
        kinds=tuple(args.kinds),
        scenarios=tuple(args.scenarios),
        seed=args.seed,
        num_pairs=args.pairs,
    )
    manifest = generate_pairs(args.out, config, progress=not args.quiet)
    kinds = sorted({p["kind"] for p in manifest["pairs"]})
    counts = ", ".join(f"{k} {sum(p['kind'] == k for p in manifest['pairs'])}" for k in kinds)
    print(f"{manifest['num_pairs']} VoE pairs ({counts}) -> {args.out}")
    return 0


def cmd_voe(args) -> int:
    from physworld.evaluation.intuitive_physics import print_voe_table, voe_scores

    result = voe_scores(args.checkpoint, args.pairs, seed=args.seed, progress=not args.quiet)
    _write_json_result(result, args.output)
    print_voe_table(result)
    return 0


def cmd_probe(args) -> int:
    from physworld.evaluation.intuitive_physics import print_probe_table, probe_scores

    result = probe_scores(args.checkpoint, args.clips_dir, seed=args.seed, progress=not args.quiet)
    _write_json_result(result, args.output)
    print_probe_table(result)
    return 0


def _write_json_result(result: dict, path) -> None:
    if path is not None:
        from physworld.fileio import atomic_write_json

        atomic_write_json(path, result)


def cmd_export_jsonl(args) -> int:
    from physworld.data.jsonl import export_jsonl

    n = export_jsonl(args.data_dir, args.output_dir, progress=not args.quiet)
    print(f"{n} scenes -> {args.output_dir}")
    return 0


def cmd_prepare(args) -> int:
    from physworld.data import windows
    from physworld.data.store import Dataset

    # 2D or 3D as the dataset is (3D: the windows physics-expert-3d trains on)
    out = windows.prepare(args.data_dir, progress=not args.quiet, dims=Dataset(args.data_dir).dims)
    print(f"windows prepared -> {out}")
    return 0


def cmd_import_jsonl(args) -> int:
    from physworld.data.jsonl import import_jsonl

    manifest = import_jsonl(args.input_dir, args.output_dir, progress=not args.quiet)
    print(
        f"imported {manifest['num_scenes']} scenes of {len(manifest['scenes_per_type'])} types -> {args.output_dir}"
    )
    return 0


def cmd_captions(args) -> int:
    from physworld.data.captions import write_captions

    config = write_captions(
        args.data_dir,
        args.output_dir,
        horizon_frames=args.horizon_frames,
        predict_frames=args.predict_frames,
        num_workers=args.num_workers,
        progress=not args.quiet,
    )
    print(f"captions and questions of {config['dataset']['num_scenes']} scenes -> {args.output_dir}")
    return 0


def cmd_caption(args) -> int:
    from physworld.recipes.captioner import caption_video

    print(caption_video(args.video, args.checkpoint, args.question))
    return 0


def cmd_validate(args) -> int:
    from physworld.data.validate import format_report, validate
    from physworld.fileio import atomic_write_json

    # Damage is a finding; anything escaping validate is a bug in it: main's guard prints it as an internal
    # error, exit 3, never as a verdict on the dataset (1) or a mistake (2).
    report = validate(
        args.data_dir,
        check_physics=args.check_physics,
        resimulate=args.resimulate,
        sample_per_type=args.sample_per_type,
        progress=not args.quiet,
    )
    print(format_report(report, verbose=args.verbose))
    if args.json:
        atomic_write_json(args.json, report.to_json())
        print(f"report -> {args.json}")
    return 0 if report.ok else EXIT_DAMAGE


def cmd_heldout_examples(args) -> int:
    from physworld.data.generate import make_record, scene_seed
    from physworld.data.inspect import scene_summary
    from physworld.data.store import Dataset
    from physworld.fileio import atomic_write_bytes
    from physworld.worlds.registry import DIFFICULTIES, resolve_types

    lo, hi = args.difficulty_range
    if not (lo in DIFFICULTIES and hi in DIFFICULTIES and lo <= hi):
        raise UserError(
            f"--difficulty-range {lo} {hi}: give MIN <= MAX, each in {DIFFICULTIES[0]}..{DIFFICULTIES[-1]}"
        )
    types = resolve_types(args.scenario_types)
    chunks = []
    if args.data_dir:
        ds = Dataset(args.data_dir)
        for t in types:
            scenes = ds.iter_scenes(scenario_types=[t])
            chunks += [
                scene_summary(r, every=args.every) for r in itertools.islice(scenes, args.num_examples)
            ]
    else:
        for t in types:
            for i in range(args.num_examples):
                d = lo + i % (hi - lo + 1)
                rec = make_record(i, t, d, scene_seed(args.seed, t, i), args.frames_per_scene)
                chunks.append(scene_summary(rec, every=args.every))
    if not chunks:
        raise UserError(f"no scenes of types {', '.join(types)} in {args.data_dir}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.output, "\n".join(chunks).encode())
    print(f"{len(chunks)} examples -> {args.output}")
    return 0


def cmd_gallery(args) -> int:
    from physworld.data.gallery import render_gallery
    from physworld.worlds.registry import DIFFICULTIES, resolve_types

    if args.difficulty not in DIFFICULTIES:
        raise UserError(f"--difficulty must be one of {DIFFICULTIES}, got {args.difficulty}")
    paths = render_gallery(
        args.output_dir,
        resolve_types(args.scenario_types),
        difficulty=args.difficulty,
        fps=args.fps,
        seed=args.seed,
        frames=args.frames_per_scene,
        width=args.width,
        progress=not args.quiet,
    )
    print(f"{len(paths) - 1} GIFs and {paths[-1]} -> {args.output_dir}")
    return 0


def cmd_text2scene(args) -> int:
    from physworld.text2scene import pipeline

    summary = pipeline.text2scene(
        args.prompt,
        args.output_dir,
        parser=args.parser,
        checkpoint=args.checkpoint,
        dims=args.dims,
        seconds=args.seconds,
        width=args.width,
        gif=args.gif,
        check_physics=args.check_physics,
        motion_blur=args.motion_blur,
        shadows=args.shadows,
        grade=args.grade,
        kb_paths=args.kb,
    )
    print(pipeline.dumps(summary) if args.json else pipeline.describe(summary))
    files = ", ".join(str(args.output_dir / f) for f in summary["files"].values())
    print(f"wrote {files}, scene.json")
    return 1 if summary["physics_findings"] else 0


def _train_recipes() -> dict[str, str]:
    """`physworld train <name>` -> recipe module, from the one dict of families."""
    from physworld.evaluation.families import train_recipes

    return train_recipes()


def cmd_train(args) -> int:
    import importlib

    recipe = importlib.import_module(_train_recipes()[args.recipe])
    summary = recipe.main(args.config, args.overrides, progress=not args.quiet)
    if summary.get("reused"):
        print(
            f"nothing to train: {summary['output_dir']} holds this run, finished ({summary['steps']} steps); "
            "nothing was rewritten. Delete it (or give a new train.output_dir) to train again"
        )
        return 0
    print(
        f"trained {summary['steps']} steps -> {summary['output_dir']} (latest checkpoint {summary['latest']})"
    )
    return 0


def cmd_evaluate(args) -> int:
    from physworld.evaluation.evaluate import evaluate
    from physworld.evaluation.families import entry

    args.model = entry(args.model)["name"]  # aliases (scratch, finetune) name their family
    metrics = evaluate(
        args.checkpoint,
        args.val_dir,
        args.output_dir,
        model_name=args.model,
        context_frames=args.context_frames,
        rollout_frames=args.rollout_frames,
        max_scenes_per_type=args.max_scenes_per_type,
        render=not args.no_render,
        label=args.label,
        progress=not args.quiet,
        threads=args.threads,
    )
    from physworld.evaluation.report import headline_table, write_report

    print(headline_table(metrics))
    if args.report:
        path = write_report([args.output_dir], args.output_dir / "report.html")
        print(f"report -> {path}")
    print(f"metrics -> {args.output_dir / 'metrics.json'}")
    from physworld.export.card import find_run_dir, write_card

    run_dir = find_run_dir(args.checkpoint)
    if run_dir is not None:  # the run's model card now carries these metrics beside the baselines
        print(f"model card -> {write_card(run_dir, args.output_dir)}")
    return 0


def cmd_push(args) -> int:
    from physworld.export.hub import push

    url = push(args.path, args.repo_id, repo_type=args.type, private=args.private)
    print(f"pushed {args.path} -> {url}")
    return 0


def cmd_sweep(args) -> int:
    from physworld.sweep import sweep

    summary = sweep(
        args.recipe,
        args.config,
        args.space,
        args.trials,
        args.study_dir,
        overrides=args.overrides,
        parallel=args.parallel,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"{summary['complete']} complete, {summary['pruned']} pruned of {summary['trials']} trials; best "
        f"{summary['best_value']} with {summary['best_params']} ({summary['best_output_dir']}) -> "
        f"{summary['study_dir']}/results.md, sweep.png"
    )
    return 0


def cmd_card(args) -> int:
    from physworld.export.card import write_card

    print(f"model card -> {write_card(args.run_dir, args.eval_dir)}")
    return 0


def cmd_vision_loop(args) -> int:
    import torch

    from physworld.evaluation.vision_loop import FILE, run

    torch.set_num_threads(1)
    result = run(
        args.visual_expert,
        args.physics_expert,
        args.data_dir,
        args.output_dir,
        rollout_frames=args.rollout_frames,
        max_clips=args.max_clips,
        progress=not args.quiet,
    )
    for name, g in result["groups"].items():
        means = {k: r["mean_over_horizons_px"] for k, r in g["rows"].items()}
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} px" for k, v in means.items()))
    print(f"-> {Path(args.output_dir) / FILE}")
    return 0


def cmd_evaluate_vision(args) -> int:
    from physworld.evaluation.vision import evaluate_checkpoint

    ckpt = Path(args.checkpoint)  # default: beside the run (RUN/checkpoints/x.safetensors -> RUN/)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    output = args.output or run_dir / "vision_metrics.json"
    metrics = evaluate_checkpoint(
        args.checkpoint,
        args.data_dir,
        output,
        max_clips=args.max_clips,
        threads=args.threads,
        progress=not args.quiet,
    )
    for name in ("seen", "heldout"):
        g = metrics["groups"].get(name)
        if g is None:
            continue
        m, t = g["model"], g["tracker"]

        def num(v):
            return "n/a" if v is None else f"{v:.3g}"

        print(
            f"{name}: position error model {num(m['position_error'])} vs tracker {num(t['position_error'])}, "
            f"velocity error model {num(m['velocity_error'])} vs tracker {num(t['velocity_error'])}, mask IoU "
            f"{num(m['mask_iou'])} ({g['counts']['windows']} windows)"
        )
    print(f"metrics -> {output}")
    return 0


def cmd_export(args) -> int:
    from physworld.export.onnx import export

    summary = export(
        args.model,
        args.checkpoint,
        args.output_dir,
        int8=args.int8,
        calibration_data=args.calibration_data,
        provider=args.provider,
    )
    for precision in ("fp32", "int8"):
        if precision in summary:
            part = summary[precision]
            err = part["error_vs_torch"]
            print(
                f"{precision}: {args.output_dir / part['path']} ({part['bytes'] / 1e6:.2f} MB), max abs error "
                f"vs torch {err['max_abs']:.2e} (mean {err['mean_abs']:.2e}; largest |output| "
                f"{err['torch_max_abs']:.2e}) on {summary['checked_on']}"
            )
    print(f"summary -> {args.output_dir / 'export.json'}")
    return 0


def cmd_render_comparison(args) -> int:
    from physworld.data.store import Dataset
    from physworld.evaluation.evaluate import (
        chunked_rollouts,
        load_predictor,
        select_scenes,
        write_comparison_gifs,
    )
    from physworld.worlds.registry import resolve_types

    rollout, _ = load_predictor("physics-expert", args.checkpoint)
    types = set(resolve_types(args.scenario_types))
    scenes = [
        s
        for s in select_scenes(
            Dataset(args.val_dir), args.num_scenes, args.context_frames + args.rollout_frames
        )
        if s["scenario_type"] in types
    ]
    if not scenes:
        raise UserError(f"{args.val_dir} has no scenes of types {', '.join(sorted(types))}")
    preds, _ = chunked_rollouts(rollout, scenes, args.context_frames, args.rollout_frames)
    gifs = write_comparison_gifs(
        Path(args.output_dir),
        scenes,
        preds,
        fps=args.fps,
        per_type=args.num_scenes,
        context_frames=args.context_frames,
        progress=True,
    )
    print(
        f"{sum(1 for _ in Path(args.output_dir).glob('*_cmp.gif'))} comparison GIFs of {len(gifs)} types -> "
        f"{args.output_dir}"
    )
    return 0


def cmd_report(args) -> int:
    from physworld.evaluation.report import write_report

    path = write_report(args.eval_dirs, args.output, title=args.title)
    print(f"report -> {path}")
    return 0


def cmd_quickstart(args) -> int:
    from physworld.quickstart import quickstart

    return quickstart(args.output_dir, seed=args.seed, progress=not args.quiet)


def cmd_pipeline(args) -> int:
    from physworld.pipeline import PipelineError, main_from_args

    try:
        return main_from_args(args, args.overrides)
    except PipelineError as e:
        raise UserError(str(e)) from None


def cmd_text2motion(args) -> int:
    from physworld.evaluation.motion import text_to_motion

    prompt = " ".join(args.prompt.split())
    if not prompt:
        raise UserError(
            'the prompt is empty: describe a motion, e.g. physworld text2motion "a person jumps" ...'
        )
    if not Path(args.checkpoint).is_file():
        raise UserError(
            f"--checkpoint {args.checkpoint}: no such file; train one with "
            "physworld train motion --config configs/motion/small.yaml"
        )
    if args.force_gate is not None and not 0.0 <= args.force_gate <= 1.0:
        raise UserError(f"--force-gate must be between 0 and 1, got {args.force_gate}")
    result = text_to_motion(
        prompt, args.checkpoint, args.out, playback=not args.no_playback, forced_gate=args.force_gate
    )
    m = result["metrics"]
    print(
        f"{result['frames']} frames at {result['fps']:g} fps -> {args.out} ({', '.join(result['files'])}); "
        f"penetration {m['penetrate_mm']:.1f} mm, floating {m['float_mm']:.1f} mm, skating {m['skate_mm']:.1f} mm/frame"
    )
    if isinstance(result.get("playback"), dict):
        pb = result["playback"]
        fell = f"fell at {pb['seconds_upright']:.2f} s" if pb["fell"] else "stayed up"
        print(f"PD playback: tracking error {pb['tracking_error_mm']:.0f} mm, {fell}")
    return 0


def cmd_list_scenarios(args) -> int:
    from physworld.worlds.registry import CATEGORY_OF, SCENARIOS_3D, difficulty_docs, is_heldout

    tables = [difficulty_docs(), difficulty_docs(SCENARIOS_3D)]  # 2D, then 3D: one markdown table each
    for k, docs in enumerate(tables):
        if args.markdown:
            if k:
                print()
            print("| type | category | held out | what happens | difficulty 1 -> 5 |")
            print("|---|---|---|---|---|")
            for name, (what, diff) in docs.items():
                print(
                    f"| {name} | {CATEGORY_OF[name]} | {'yes' if is_heldout(name) else ''} | {what} | {diff} |"
                )
        else:
            for name, (what, _) in docs.items():
                print(
                    f"{name:20s} {CATEGORY_OF[name]:11s} {'held-out' if is_heldout(name) else '':8s} {what}"
                )
    return 0


# ---------------------------------------------------------------- parser

# Upper bounds that keep a typo (an extra digit, 10**18) from planning for hours before saying anything.
MAX_SCENES_PER_TYPE = 100_000
MAX_FRAMES = 100_000


class _Parser(argparse.ArgumentParser):
    """argparse with abbreviations off (`--out` is not taken for `--output-dir`), numeric bounds checked
    after parsing with one line naming the flag, and output paths checked before any long work."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.bounds: dict[str, tuple] = {}
        self.outputs: dict[str, tuple[str, bool]] = {}
        self.set_defaults(_bounds=self.bounds, _outputs=self.outputs)

    def add_argument(self, *flags, low=None, high=None, above=None, output=None, **kwargs):
        """`low`/`high`: inclusive bounds, `above`: exclusive lower bound (for each value of nargs);
        `output`: "dir" or "file", checked to be creatable before the verb runs."""
        action = super().add_argument(*flags, **kwargs)
        if low is not None or high is not None or above is not None:
            self.bounds[action.dest] = (flags[0], low, high, above)
        if output is not None:
            self.outputs[action.dest] = (flags[0], output == "dir")
        return action


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append "(default: X)" to every option's help that does not already say its default."""
    for action in parser._actions:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            continue
        if not action.option_strings:
            continue
        if action.help is argparse.SUPPRESS or "default" in (action.help or ""):
            continue
        default = action.default
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        action.help = f"{action.help or ''} (default: {str(default).replace('%', '%%')})".strip()


def _model_choices() -> list[str]:
    from physworld.evaluation.families import model_choices

    return model_choices()


def _clip_flags(parser, prefix: str = "clip-") -> None:
    """--clip-resolution/--clip-frames/--clip-fps on generate; render-clips also takes them unprefixed."""
    names = ("resolution", "frames", "fps")
    for name, typ, default, help_ in zip(
        names,
        (int, int, float),
        (128, 24, 12.0),
        (
            "square image size in px (MOVi: 128; 256 on request)",
            "frames per clip (MOVi: 24)",
            "clip frames per second; must divide the simulation's rate (MOVi: 12)",
        ),
        strict=True,
    ):
        flags = [f"--clip-{name}"] + ([f"--{name}"] if not prefix else [])
        parser.add_argument(*flags, dest=f"clip_{name}", type=typ, default=default, help=help_)
    parser.add_argument(
        *(["--no-clip-captions"] + (["--no-captions"] if not prefix else [])),
        dest="no_captions",
        action="store_true",
        help="skip each clip's caption and questions (they re-simulate the scene several times)",
    )


def _voe_kinds() -> tuple:
    from physworld.data.voe import KINDS

    return KINDS


def _ray_flag(parser) -> None:
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the shards as Ray tasks: auto (the cluster `ray start` made, or RAY_ADDRESS), HOST:PORT "
        "of a head, or local (a one-machine cluster of --num-workers CPUs); same bytes as a local run",
    )


def build_parser() -> argparse.ArgumentParser:
    from physworld.data.generate import default_workers

    parser = _Parser(prog="physworld", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")

    g = verbs.add_parser("generate", help="simulate scenes into a dataset")
    g.add_argument(
        "--output-dir",
        required=True,
        type=Path,
        output="dir",
        help="dataset directory (created; resumed if it exists)",
    )
    g.add_argument(
        "--num-scenes-per-type",
        type=int,
        default=100,
        low=1,
        high=MAX_SCENES_PER_TYPE,
        help="scenes of each scenario type",
    )
    g.add_argument(
        "--scenario-types",
        nargs="+",
        default=["all"],
        metavar="TYPE",
        help="type names, categories, or all / seen / heldout (default: all 35)",
    )
    g.add_argument(
        "--num-workers",
        type=int,
        default=default_workers(),
        low=1,
        high=1024,
        help="parallel processes (default: CPU count)",
    )
    g.add_argument("--seed", type=int, default=0, help="base seed; each scene's seed derives from it")
    g.add_argument(
        "--frames-per-scene",
        type=int,
        default=200,
        low=1,
        high=MAX_FRAMES,
        help="frames after the initial one (default: 200)",
    )
    g.add_argument(
        "--difficulty-range",
        type=int,
        nargs=2,
        default=[1, 5],
        metavar=("MIN", "MAX"),
        help="difficulties cycle through this range",
    )
    g.add_argument(
        "--scenes-per-shard",
        type=int,
        default=64,
        low=1,
        high=100_000,
        help="scenes per Parquet shard (the unit of resuming)",
    )
    g.add_argument(
        "--format",
        choices=["parquet", "jsonl"],
        default="parquet",
        help="parquet: the columnar store (default); jsonl: guide 001's <type>/scene_<id>.jsonl layout",
    )
    g.add_argument(
        "--with-clips",
        action="store_true",
        help="also render clips (as render-clips does) into <output-dir>/clips",
    )
    g.add_argument(
        "--param-shift",
        choices=["none", "heavier", "slipperier", "bouncier", "ood"],
        default="none",
        help="shift every scene's masses, frictions, elasticities (physworld/worlds/shift.py; ood: all three)",
    )
    g.add_argument(
        "--split",
        choices=["labelled", "unlabelled"],
        default="labelled",
        help="unlabelled: mark the dataset so training refuses to read its labels (data/splits.py)",
    )
    _clip_flags(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    _ray_flag(g)
    g.set_defaults(func=cmd_generate)

    rcl = verbs.add_parser(
        "render-clips",
        help="render video clips (RGB, depth, segmentation, flow, boxes) of a dataset's scenes beside it",
    )
    rcl.add_argument("--data-dir", required=True, type=Path, help="a finished dataset store")
    rcl.add_argument("--clips-dir", type=Path, help="where the clips go (default: <data-dir>/clips)")
    _clip_flags(rcl, prefix="")
    rcl.add_argument(
        "--num-workers", type=int, default=default_workers(), help="parallel processes (default: CPU count)"
    )
    rcl.add_argument("--quiet", action="store_true", help="no progress bar")
    _ray_flag(rcl)
    rcl.set_defaults(func=cmd_render_clips)

    pcl = verbs.add_parser(
        "prepare-clips",
        help="decode a dataset's clips once into the memory-mapped view vision models train on",
    )
    pcl.add_argument("data_dir", type=Path)
    pcl.add_argument("--clips-dir", type=Path, help="the clips folder (default: <data_dir>/clips)")
    pcl.add_argument("--quiet", action="store_true")
    pcl.set_defaults(func=cmd_prepare_clips)

    vp = verbs.add_parser(
        "voe-pairs",
        help="matched possible/impossible clip pairs for violation-of-expectation tests (physworld/data/voe.py)",
    )
    vp.add_argument("--out", required=True, type=Path, output="dir", help="created; resumed if it exists")
    vp.add_argument("--scenarios", nargs="+", default=["seen", "heldout"], help="types, categories or groups")
    vp.add_argument("--kinds", nargs="+", default=list(_voe_kinds()), help="violations to make, round-robin")
    vp.add_argument("--pairs", type=int, default=48, low=1, high=100_000, help="number of pairs")
    vp.add_argument("--seed", type=int, default=0)
    vp.add_argument("--resolution", type=int, default=64, help="square image size in px (the encoder's)")
    vp.add_argument("--frames", type=int, default=16, low=6, high=1000, help="frames per clip")
    vp.add_argument("--fps", type=float, default=12.0, help="clip frames per second")
    vp.add_argument("--difficulty", type=int, default=1)
    vp.add_argument("--quiet", action="store_true")
    vp.set_defaults(func=cmd_voe_pairs)

    vo = verbs.add_parser(
        "voe",
        help="violation-of-expectation scores of a V-JEPA checkpoint, a random encoder and pixel baselines",
    )
    vo.add_argument(
        "--checkpoint", required=True, help="a vjepa .safetensors, a save_pretrained folder, or 'random'"
    )
    vo.add_argument("--pairs", required=True, type=Path, help="a folder made by physworld voe-pairs")
    vo.add_argument("--output", type=Path, output="file", help="also write the result as JSON here")
    vo.add_argument("--seed", type=int, default=0, help="seed of the random-encoder baseline")
    vo.add_argument("--quiet", action="store_true")
    vo.set_defaults(func=cmd_voe)

    pb = verbs.add_parser(
        "probe",
        help="linear (ridge) probes from frozen encoder features to object states and physical parameters",
    )
    pb.add_argument(
        "--checkpoint", required=True, help="a vjepa .safetensors, a save_pretrained folder, or 'random'"
    )
    pb.add_argument("--clips-dir", required=True, type=Path, help="a clips folder (physworld render-clips)")
    pb.add_argument("--output", type=Path, output="file", help="also write the result as JSON here")
    pb.add_argument("--seed", type=int, default=0, help="seed of the random-encoder baseline and the split")
    pb.add_argument("--quiet", action="store_true")
    pb.set_defaults(func=cmd_probe)

    cap = verbs.add_parser(
        "captions",
        help="captions and CLEVRER-style questions for every scene of a dataset (docs/CAPTIONS.md)",
    )
    cap.add_argument("--data-dir", required=True, type=Path)
    cap.add_argument("--output-dir", required=True, type=Path, help="created; resumed if it exists")
    cap.add_argument(
        "--horizon-frames", type=int, default=None, help="last frame the clip shows (default: every frame)"
    )
    cap.add_argument(
        "--predict-frames", type=int, default=None, help="frames past the clip for predictive questions (2 s)"
    )
    cap.add_argument("--num-workers", type=int, default=default_workers())
    cap.add_argument("--quiet", action="store_true")
    cap.set_defaults(func=cmd_captions)
    cv = verbs.add_parser(
        "caption", help="caption a video (any MP4) with a trained captioner, or answer a question about it"
    )
    cv.add_argument("video", type=Path, help="an MP4 (or any video ffmpeg reads)")
    cv.add_argument(
        "--checkpoint", required=True, type=Path, help="a captioner run's checkpoints/latest.safetensors"
    )
    cv.add_argument("--question", default=None, help='e.g. "Does the red ball hit the blue ball?"')
    cv.set_defaults(func=cmd_caption)
    i = verbs.add_parser("import-jsonl", help="read a dataset in guide 001's JSONL layout into the store")
    i.add_argument("--input-dir", required=True, type=Path)
    i.add_argument("--output-dir", required=True, type=Path, output="dir")
    i.add_argument("--quiet", action="store_true")
    i.set_defaults(func=cmd_import_jsonl)

    e = verbs.add_parser("export-jsonl", help="write a dataset out in guide 001's JSONL layout")
    e.add_argument("--data-dir", required=True, type=Path)
    e.add_argument("--output-dir", required=True, type=Path, output="dir")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_export_jsonl)

    pr = verbs.add_parser(
        "prepare", help="flatten a dataset into the memory-mapped windows learned simulators train on"
    )
    pr.add_argument("data_dir", type=Path)
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=cmd_prepare)

    v = verbs.add_parser(
        "validate",
        help="check a dataset: files, checksums, scenes, determinism, physics",
        description="Check a dataset. Exit status: 0 clean, 1 damage found (each finding located), "
        "2 a mistake in the command, 3 an internal error in validate itself (a bug to report).",
    )
    v.add_argument(
        "--data-dir", required=True, type=Path, help="a dataset store or a guide-layout JSONL tree"
    )
    v.add_argument(
        "--check-physics",
        action="store_true",
        help="also check overlap at spawn, penetration, escapes and energy drift",
    )
    v.add_argument(
        "--resimulate",
        choices=["none", "sample", "all"],
        default="sample",
        help="re-simulate scenes from their seed and compare bit for bit (default: a sample)",
    )
    v.add_argument(
        "--sample-per-type",
        type=int,
        default=2,
        low=1,
        high=MAX_SCENES_PER_TYPE,
        help="scenes per type re-simulated with --resimulate sample",
    )
    v.add_argument("--verbose", action="store_true", help="list every scenario type, even clean ones")
    v.add_argument("--json", type=Path, metavar="REPORT", output="file", help="also write the report as JSON")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_validate)

    tr = verbs.add_parser("train", help="run a training recipe from a YAML config, with key=value overrides")
    tr.add_argument("recipe", choices=sorted(_train_recipes()))
    tr.add_argument(
        "--config", required=True, type=Path, help="a YAML preset, e.g. configs/physics_expert/tiny.yaml"
    )
    tr.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="e.g. train.max_steps=100 data.batch_size=8 train.threads=2",
    )
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)

    ev = verbs.add_parser(
        "evaluate", help="autoregressive rollouts of a model beside baselines and the chaos floor"
    )
    ev.add_argument(
        "--model",
        default="physics-expert",
        choices=_model_choices(),
        help="the model family (physworld/evaluation/families.py); gpt is also called scratch and lm "
        "finetune, as guide 001 calls them",
    )
    ev.add_argument("--checkpoint", required=True, type=Path)
    ev.add_argument("--val-dir", required=True, type=Path)
    ev.add_argument("--output-dir", required=True, type=Path, output="dir")
    ev.add_argument("--context-frames", type=int, default=10, low=1, high=MAX_FRAMES)
    ev.add_argument("--rollout-frames", type=int, default=20, low=1, high=MAX_FRAMES)
    ev.add_argument("--max-scenes-per-type", type=int, default=100, low=1, high=MAX_SCENES_PER_TYPE)
    ev.add_argument("--no-render", action="store_true", help="skip the comparison GIFs")
    ev.add_argument("--report", action="store_true", help="also write <output-dir>/report.html")
    ev.add_argument("--label", help="the model's name in reports")
    ev.add_argument(
        "--threads", type=int, default=1, low=0, high=1024, help="torch CPU threads (0: torch's default)"
    )
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    evv = verbs.add_parser(
        "evaluate-vision",
        help="a Visual Expert on clips beside the mask-centroid tracker and mean parameters",
    )
    evv.add_argument("--checkpoint", required=True, type=Path, help="a visual-expert .safetensors")
    evv.add_argument("--data-dir", required=True, type=Path, help="a dataset with clips (its clips/ folder)")
    evv.add_argument(
        "--output", type=Path, output="file", help="metrics JSON (default: RUN/vision_metrics.json)"
    )
    evv.add_argument("--max-clips", type=int, default=None, low=1, high=10_000_000)
    evv.add_argument(
        "--threads", type=int, default=1, low=0, high=1024, help="torch CPU threads (0: torch's default)"
    )
    evv.add_argument("--quiet", action="store_true")
    evv.set_defaults(func=cmd_evaluate_vision)

    vl = verbs.add_parser(
        "vision-loop",
        help="clip -> Visual Expert -> PhysicsExpert rollout, beside the rollout from true states",
    )
    vl.add_argument(
        "--visual-expert", required=True, type=Path, help="a visual-expert or supervisor .safetensors"
    )
    vl.add_argument("--physics-expert", required=True, type=Path, help="a physics-expert .safetensors")
    vl.add_argument("--data-dir", required=True, type=Path, help="a 2D dataset with clips")
    vl.add_argument(
        "--output-dir",
        required=True,
        type=Path,
        output="dir",
        help="an evaluation directory: vision_loop.json",
    )
    vl.add_argument(
        "--rollout-frames", type=int, default=8, low=1, high=MAX_FRAMES, help="clip frames to roll"
    )
    vl.add_argument("--max-clips", type=int, default=None, low=1, high=10_000_000)
    vl.add_argument("--quiet", action="store_true")
    vl.set_defaults(func=cmd_vision_loop)

    ex = verbs.add_parser(
        "export", help="a model's per-step network as ONNX (optionally static int8) for onnxruntime"
    )
    ex.add_argument(
        "--model", required=True, choices=["physics-expert", "physics-expert-3d", "ssm", "visual-expert"]
    )
    ex.add_argument("--checkpoint", required=True, type=Path)
    ex.add_argument("--output-dir", required=True, type=Path, output="dir")
    ex.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static QDQ)")
    ex.add_argument(
        "--calibration-data", type=Path, metavar="DATA_DIR", help="a dataset: calibration and parity graphs"
    )
    ex.add_argument("--provider", choices=["cpu", "tensorrt"], default="cpu", help="onnxruntime's provider")
    ex.set_defaults(func=cmd_export)

    rc = verbs.add_parser(
        "render-comparison", help="side-by-side GIFs of real rollouts: truth (green) | prediction (blue)"
    )
    rc.add_argument("--checkpoint", required=True, type=Path)
    rc.add_argument("--val-dir", required=True, type=Path)
    rc.add_argument("--output-dir", required=True, type=Path, output="dir")
    rc.add_argument("--scenario-types", nargs="+", default=["heldout"], metavar="TYPE")
    rc.add_argument("--num-scenes", type=int, default=5, low=1, high=10_000, help="per scenario type")
    rc.add_argument("--context-frames", type=int, default=10, low=1, high=MAX_FRAMES)
    rc.add_argument("--rollout-frames", type=int, default=20, low=1, high=MAX_FRAMES)
    rc.add_argument("--fps", type=float, default=15, above=0, high=1000)
    rc.set_defaults(func=cmd_render_comparison)

    rp = verbs.add_parser("report", help="one HTML page from one evaluation, or a leaderboard from several")
    rp.add_argument(
        "eval_dirs", nargs="+", type=Path, help="evaluation output directories (with metrics.json)"
    )
    rp.add_argument("--output", required=True, type=Path, output="file")
    rp.add_argument("--title")
    rp.set_defaults(func=cmd_report)

    qs = verbs.add_parser(
        "quickstart", help="small dataset -> PhysicsExpert -> evaluation -> report, in minutes"
    )
    qs.add_argument("--output-dir", type=Path, default=Path("runs/quickstart"), output="dir")
    qs.add_argument("--seed", type=int, default=0, low=0, high=2**62)
    qs.add_argument("--quiet", action="store_true")
    qs.set_defaults(func=cmd_quickstart)

    gal = verbs.add_parser("gallery", help="one animated GIF per scenario type and a grid image of all")
    gal.add_argument("--output-dir", required=True, type=Path, output="dir")
    gal.add_argument("--scenario-types", nargs="+", default=["all"], metavar="TYPE")
    gal.add_argument("--difficulty", type=int, default=3)
    gal.add_argument("--fps", type=float, default=15, above=0, high=1000)
    gal.add_argument("--seed", type=int, default=0)
    gal.add_argument("--frames-per-scene", type=int, default=200, low=1, high=MAX_FRAMES)
    gal.add_argument(
        "--width", type=int, default=256, low=16, high=4096, help="pixels; height keeps the world's 4:3"
    )
    gal.add_argument("--quiet", action="store_true")
    gal.set_defaults(func=cmd_gallery)

    h = verbs.add_parser("heldout-examples", help="readable text examples of scenes for manual inspection")
    h.add_argument("--output", required=True, type=Path, output="file")
    h.add_argument("--num-examples", type=int, default=3, low=1, high=10_000, help="per scenario type")
    h.add_argument("--scenario-types", nargs="+", default=["heldout"], metavar="TYPE")
    h.add_argument(
        "--data-dir", type=Path, help="take scenes from this dataset instead of simulating new ones"
    )
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--frames-per-scene", type=int, default=200, low=1, high=MAX_FRAMES)
    h.add_argument("--difficulty-range", type=int, nargs=2, default=[1, 5], metavar=("MIN", "MAX"))
    h.add_argument("--every", type=int, default=20, low=1, help="print the state every this many frames")
    h.set_defaults(func=cmd_heldout_examples)

    from physworld.pipeline import add_arguments as add_pipeline_arguments

    pl = verbs.add_parser(
        "pipeline", help="the drawer_open robot pipeline: data, SimCLR, ConvGRU, U-Net, SAC, evaluation"
    )
    add_pipeline_arguments(pl)
    pl.set_defaults(func=cmd_pipeline)

    cd = verbs.add_parser("card", help="write a training run's model card (README.md) from its files")
    cd.add_argument("--run-dir", required=True, type=Path, help="the directory `physworld train` wrote")
    cd.add_argument("--eval-dir", type=Path, help="an evaluation of it (`physworld evaluate --output-dir`)")
    cd.set_defaults(func=cmd_card)

    pu = verbs.add_parser("push", help="upload a dataset or a training run to a Hugging Face Hub repository")
    pu.add_argument("--repo-id", required=True, help="USER/NAME (created if missing)")
    pu.add_argument(
        "--path", required=True, type=Path, help="a dataset directory or a training run directory"
    )
    pu.add_argument("--type", choices=["model", "dataset"], default="model")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    pu.set_defaults(func=cmd_push)

    sw = verbs.add_parser(
        "sweep",
        help="hyperparameter search over a recipe with Optuna (key=value overrides fix other settings)",
    )
    sw.add_argument("--recipe", required=True, help="a `physworld train` recipe, e.g. physics-expert")
    sw.add_argument("--config", required=True, type=Path, help="the recipe's YAML config")
    sw.add_argument("--space", required=True, type=Path, help="the search space, W&B sweep YAML")
    sw.add_argument(
        "--trials", type=int, default=10, low=1, high=100_000, help="finished trials the study should hold"
    )
    sw.add_argument("--study-dir", type=Path, default=Path("runs/sweep"), help="study.db, trials, results")
    sw.add_argument("--parallel", type=int, default=1, low=1, high=256, help="trials at once (processes)")
    sw.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    t2m = verbs.add_parser(
        "text2motion", help="a human motion from a text prompt (MotionSSM), as npy, JSON and MP4"
    )
    t2m.add_argument("prompt", help='what the person does, e.g. "a person jumps"')
    t2m.add_argument(
        "--checkpoint", required=True, help="a motion recipe checkpoint (physworld train motion)"
    )
    t2m.add_argument("--out", required=True, help="output folder for motion.npy, motion.json, motion.mp4")
    t2m.add_argument("--no-playback", action="store_true", help="skip the PyBullet PD playback")
    t2m.add_argument("--force-gate", type=float, default=None, help="override the PhysicsSSM gate (0..1)")
    t2m.set_defaults(func=cmd_text2motion)
    t2s = verbs.add_parser(
        "text2scene",
        help="a prompt -> a simulated, checked scene and its MP4 (rules or T5 parser, KB, L-BFGS-B layout)",
        description="Parse a prompt into a scene, place it (knowledge base + L-BFGS-B layout), simulate, "
        "check and render it. Exit 2 when the prompt, an object or the layout cannot be used (one line "
        "naming the part); 1 when --check-physics finds problems in the simulation.",
    )
    t2s.add_argument("prompt", help='e.g. "a red ball rolls down a ramp into a tower of five blocks"')
    t2s.add_argument("--output-dir", type=Path, default=Path("runs/text2scene"), output="dir")
    t2s.add_argument("--parser", choices=["rules", "t5"], default="rules", help="t5 needs --checkpoint")
    t2s.add_argument(
        "--checkpoint", type=Path, help="a `physworld train scene-parser` run or its .safetensors"
    )
    t2s.add_argument(
        "--dims", type=int, choices=[2, 3], help="2D (pymunk) or 3D (PyBullet); default: the prompt's"
    )
    t2s.add_argument("--seconds", type=float, default=3.0, above=0, high=120, help="simulated time")
    t2s.add_argument("--width", type=int, default=480, low=16, high=4096, help="video width in pixels")
    t2s.add_argument("--gif", action="store_true", help="also write video.gif")
    t2s.add_argument(
        "--check-physics", action="store_true", help="run validate's physics checks on the simulation"
    )
    t2s.add_argument("--motion-blur", action="store_true", help="post: motion blur from the true velocities")
    t2s.add_argument("--shadows", action="store_true", help="post: shadows (2D drop shadow, 3D shadow map)")
    t2s.add_argument("--grade", choices=["warm", "cool", "film"], help="post: colour grading")
    t2s.add_argument("--kb", type=Path, action="append", default=[], metavar="CSV",
                     help="extra knowledge-base rows (kb.csv's columns); repeatable")  # fmt: skip
    t2s.add_argument("--json", action="store_true", help="print scene.json instead of the summary")
    t2s.set_defaults(func=cmd_text2scene)

    s = verbs.add_parser("list-scenarios", help="the scenario library, with how difficulty scales")
    s.add_argument("--markdown", action="store_true", help="as the table in docs/SCENARIOS.md")
    s.set_defaults(func=cmd_list_scenarios)

    for verb_parser in verbs.choices.values():
        _show_defaults(verb_parser)
    return parser


def describe_os_error(e: OSError) -> str:
    """One line for an operating-system error: the path, the problem in plain words, and the fix."""
    path = e.filename if e.filename is not None else None
    where = f"{path}" if path is not None else "a file"
    if e.filename2 is not None:
        where += f" -> {e.filename2}"
    text = str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text:
        return (
            f"disk full: no space left on the device while writing {where}; free some space and rerun "
            "the same command (what was finished is kept)"
        )
    if e.errno in (errno.ENOTDIR, errno.EEXIST) and path is not None and not Path(path).is_dir():
        parent = next((p for p in Path(path).parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            return f"{where}: {parent} is a file, so nothing can be created under it; choose another path"
        if Path(path).exists():
            return f"{where}: is a file where a directory is needed; choose another path"
    if e.errno == errno.EISDIR:
        return f"{where}: is a directory where a file is needed; give a file name"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied; choose a location you can write to (or fix its permissions)"
    if e.errno == errno.EROFS:
        return f"{where}: read-only file system; choose another location"
    if e.errno == errno.ENOENT:
        return f"{where}: no such file or directory"
    problem = e.strerror or text
    return f"{where}: {problem}"


# Which pyproject extra installs a module that only an extra brings.
EXTRA_OF_MODULE = {
    "accelerate": "lm",
    "transformers": "lm",
    "peft": "lm",
    "tokenizers": "lm",
    "imageio_ffmpeg": "video",
    "datasets": "hf",
    "wandb": "wandb",
}


def _missing_module_hint(e: ModuleNotFoundError) -> str:
    message = str(e)
    extra = EXTRA_OF_MODULE.get((e.name or "").split(".")[0])
    if extra is None or "pip install" in message:
        return message
    return f"{message}: this needs the '{extra}' extra: pip install -e '.[{extra}]'"


def _stopped_itself(e: BaseException) -> bool:
    """A training run that stopped on purpose (loop_utils.TooManyBadSteps, raised or as the cause)."""
    loop_utils = sys.modules.get("physworld.training.loop_utils")  # not imported: it cannot be that
    if loop_utils is None:
        return False
    return isinstance(e, loop_utils.TooManyBadSteps) or isinstance(e.__cause__, loop_utils.TooManyBadSteps)


def _guarded(verb: str, run) -> int:
    """Call `run()` and turn every failure into one line on stderr and an exit status, never a traceback
    (set PHYSWORLD_TRACEBACK=1 to see one for an internal error)."""
    from physworld.data.store import DataDamageError, StoreError
    from physworld.fileio import DamagedFile

    def fail(message: str, status: int) -> int:
        print(f"physworld {verb}: {message}", file=sys.stderr)
        return status

    def internal(e: Exception) -> int:
        if os.environ.get("PHYSWORLD_TRACEBACK"):
            raise e
        return fail(
            f"internal error: {type(e).__name__}: {e} (a bug in physworld; rerun with PHYSWORLD_TRACEBACK=1 "
            "to see where, and please report it)",
            EXIT_INTERNAL,
        )

    try:
        return run()
    except (DamagedFile, DataDamageError) as e:  # damage met while reading a dataset or checkpoint
        return fail(f"error: {e}", EXIT_DAMAGE)
    except ModuleNotFoundError as e:
        return fail(f"error: {_missing_module_hint(e)}", EXIT_USER)
    except (UserError, StoreError, ValueError) as e:
        return fail(f"error: {e}", EXIT_USER)
    except OSError as e:
        return fail(f"error: {describe_os_error(e)}", EXIT_USER)
    except RuntimeError as e:
        if _stopped_itself(e):  # too many non-finite steps in a row: the checkpoints are kept
            return fail(f"stopped: {e}", EXIT_DAMAGE)
        return internal(e)
    except KeyboardInterrupt:
        return fail("interrupted; rerun the same command to resume", 130)
    except Exception as e:
        return internal(e)


def _unknown_arguments(parser: argparse.ArgumentParser, extra: list[str], note: str = "") -> None:
    """Exit with the verb's usage and, for each unknown flag, the closest real one."""
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    hints = []
    for arg in extra:
        if not arg.startswith("-"):
            continue
        name = arg.split("=", 1)[0]
        close = [o for o in options if o.startswith(name)] or difflib.get_close_matches(
            name, options, n=2, cutoff=0.5
        )
        if close:
            hints.append(f"{name}: did you mean {' or '.join(close[:2])}?")
    message = f"unrecognized arguments: {' '.join(extra)}{note}"
    parser.error(message + ("; " + "; ".join(hints) if hints else ""))


def _check_bounds(args) -> None:
    for dest, (flag, low, high, above) in getattr(args, "_bounds", {}).items():
        value = getattr(args, dest, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            if above is not None and not v > above:
                raise UserError(f"{flag} must be more than {above:g}, got {v:g}")
            if low is not None and v < low:
                raise UserError(f"{flag} must be at least {low}, got {v}")
            if high is not None and v > high:
                raise UserError(f"{flag} must be at most {high:,}, got {v:,}")


def _check_outputs(args) -> None:
    from physworld.fileio import check_output_path

    for dest, (flag, is_dir) in getattr(args, "_outputs", {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            check_output_path(value, flag, is_dir=is_dir)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["train", "lm-lora"]:
        # The LoRA recipe takes guide 001's flags (--base-model, --data-dir, ...): it parses its own.
        from physworld.recipes import lm_lora

        def run_lm_lora() -> int:
            summary = lm_lora.main(argv[2:])
            print(f"trained {summary['steps']} steps -> {summary['output_dir']}")
            return 0

        return _guarded("train lm-lora", run_lm_lora)
    parser = build_parser()
    verbs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    if argv and not argv[0].startswith("-") and argv[0] not in verbs:
        close = difflib.get_close_matches(argv[0], list(verbs), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        parser.error(f"unknown verb {argv[0]!r}; {hint}verbs: {', '.join(verbs)}")
    if argv and argv[0] in verbs:
        # Unknown flags first, with the closest real one, before argparse complains about a missing
        # required flag that the unknown one was meant to be (`--out` for `--output-dir`).
        known = {o for action in verbs[argv[0]]._actions for o in action.option_strings}
        words = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
        unknown = [w for w in words if w.startswith("--") and w.split("=", 1)[0] not in known]
        if unknown:
            _unknown_arguments(verbs[argv[0]], unknown)
    # Recipe overrides (key=value, torchtune style) may stand anywhere after the verb.
    args, extra = parser.parse_known_args(argv)
    verb_parser = verbs[args.verb]
    if args.verb in ("train", "pipeline", "sweep"):
        bad = [a for a in extra if a.startswith("-") or "=" not in a]
        if bad:
            _unknown_arguments(verb_parser, bad, " (overrides are key=value)")
        args.overrides = extra
    elif extra:
        _unknown_arguments(verb_parser, extra)

    def run() -> int:
        _check_bounds(args)
        _check_outputs(args)
        return args.func(args)

    return _guarded(args.verb, run)


if __name__ == "__main__":
    sys.exit(main())
