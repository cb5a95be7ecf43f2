"""`physworld <verb>`: one command line over the library.

Each verb is a small function that parses nothing itself: argparse hands it a namespace, it calls
the library, and user mistakes come back as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

EXIT_DAMAGE = 1  # damage found (validate's findings, or damage met while reading a dataset)
EXIT_INTERNAL_ERROR = 3  # validate itself failed: a bug, distinct from damage (1) and mistakes (2)


class UserError(Exception):
    """A mistake in the command's input: printed as one line, exit status 2."""


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


def cmd_export_jsonl(args) -> int:
    from physworld.data.jsonl import export_jsonl

    n = export_jsonl(args.data_dir, args.output_dir, progress=not args.quiet)
    print(f"{n} scenes -> {args.output_dir}")
    return 0


def cmd_prepare(args) -> int:
    from physworld.data import windows

    out = windows.prepare(args.data_dir, progress=not args.quiet)
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


def cmd_validate(args) -> int:
    from physworld.data.validate import format_report, validate
    from physworld.fileio import atomic_write_json

    try:
        report = validate(
            args.data_dir,
            check_physics=args.check_physics,
            resimulate=args.resimulate,
            sample_per_type=args.sample_per_type,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError):
        raise  # user mistakes: exit 2
    except Exception as e:  # damage is a finding; anything escaping validate is a bug in it
        if os.environ.get("PHYSWORLD_DEBUG"):
            raise
        print(
            f"physworld validate: internal error: {type(e).__name__}: {e}. This is a bug in physworld, "
            "not a verdict on the dataset; please report it (PHYSWORLD_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR
    print(format_report(report, verbose=args.verbose))
    if args.json:
        atomic_write_json(args.json, report.to_json())
        print(f"report -> {args.json}")
    return 0 if report.ok else 1


def cmd_heldout_examples(args) -> int:
    from physworld.data.generate import make_record, scene_seed
    from physworld.data.inspect import scene_summary
    from physworld.data.store import Dataset
    from physworld.fileio import atomic_write_bytes
    from physworld.worlds.registry import resolve_types

    if args.num_examples < 1:
        raise UserError(f"--num-examples must be at least 1, got {args.num_examples}")
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
        lo, hi = args.difficulty_range
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
    if not args.fps > 0 or args.width < 16:
        raise UserError("--fps must be positive and --width at least 16")
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


def _train_recipes() -> dict[str, str]:
    """`physworld train <name>` -> recipe module, from the one dict of families."""
    from physworld.evaluation.families import train_recipes

    return train_recipes()


def cmd_train(args) -> int:
    import importlib

    recipe = importlib.import_module(_train_recipes()[args.recipe])
    try:
        summary = recipe.main(args.config, args.overrides, progress=not args.quiet)
    except RuntimeError as e:  # the run stopped itself (e.g. too many non-finite steps); checkpoints are kept
        print(f"physworld train {args.recipe}: stopped: {e}", file=sys.stderr)
        return 1
    print(
        f"trained {summary['steps']} steps -> {summary['output_dir']} (latest checkpoint {summary['latest']})"
    )
    return 0


def cmd_evaluate(args) -> int:
    from physworld.evaluation.evaluate import evaluate

    if args.max_scenes_per_type < 1:
        raise UserError(f"--max-scenes-per-type must be at least 1, got {args.max_scenes_per_type}")
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
    from physworld.training.sweep import sweep

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


def _ray_flag(parser) -> None:
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the shards as Ray tasks: auto (the cluster `ray start` made, or RAY_ADDRESS), HOST:PORT "
        "of a head, or local (a one-machine cluster of --num-workers CPUs); same bytes as a local run",
    )


def build_parser() -> argparse.ArgumentParser:
    from physworld.data.generate import default_workers

    parser = argparse.ArgumentParser(prog="physworld", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")

    g = verbs.add_parser("generate", help="simulate scenes into a dataset")
    g.add_argument(
        "--output-dir", required=True, type=Path, help="dataset directory (created; resumed if it exists)"
    )
    g.add_argument("--num-scenes-per-type", type=int, default=100)
    g.add_argument(
        "--scenario-types",
        nargs="+",
        default=["all"],
        metavar="TYPE",
        help="type names, categories, or all / seen / heldout (default: all 35)",
    )
    g.add_argument(
        "--num-workers", type=int, default=default_workers(), help="parallel processes (default: CPU count)"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--frames-per-scene", type=int, default=200, help="frames after the initial one (default: 200)"
    )
    g.add_argument("--difficulty-range", type=int, nargs=2, default=[1, 5], metavar=("MIN", "MAX"))
    g.add_argument("--scenes-per-shard", type=int, default=64)
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
    i = verbs.add_parser("import-jsonl", help="read a dataset in guide 001's JSONL layout into the store")
    i.add_argument("--input-dir", required=True, type=Path)
    i.add_argument("--output-dir", required=True, type=Path)
    i.add_argument("--quiet", action="store_true")
    i.set_defaults(func=cmd_import_jsonl)

    e = verbs.add_parser("export-jsonl", help="write a dataset out in guide 001's JSONL layout")
    e.add_argument("--data-dir", required=True, type=Path)
    e.add_argument("--output-dir", required=True, type=Path)
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
        "--sample-per-type", type=int, default=2, help="scenes per type re-simulated with --resimulate sample"
    )
    v.add_argument("--verbose", action="store_true", help="list every scenario type, even clean ones")
    v.add_argument("--json", type=Path, metavar="REPORT", help="also write the report as JSON")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_validate)

    tr = verbs.add_parser("train", help="run a training recipe from a YAML config, with key=value overrides")
    tr.add_argument("recipe", choices=sorted(_train_recipes()))
    tr.add_argument(
        "--config", required=True, type=Path, help="a YAML preset, e.g. configs/physics_expert/tiny.yaml"
    )
    tr.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. train.max_steps=100 data.batch_size=8"
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
    ev.add_argument("--output-dir", required=True, type=Path)
    ev.add_argument("--context-frames", type=int, default=10)
    ev.add_argument("--rollout-frames", type=int, default=20)
    ev.add_argument("--max-scenes-per-type", type=int, default=100)
    ev.add_argument("--no-render", action="store_true", help="skip the comparison GIFs")
    ev.add_argument("--report", action="store_true", help="also write <output-dir>/report.html")
    ev.add_argument("--label", help="the model's name in reports")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    rc = verbs.add_parser(
        "render-comparison", help="side-by-side GIFs of real rollouts: truth (green) | prediction (blue)"
    )
    rc.add_argument("--checkpoint", required=True, type=Path)
    rc.add_argument("--val-dir", required=True, type=Path)
    rc.add_argument("--output-dir", required=True, type=Path)
    rc.add_argument("--scenario-types", nargs="+", default=["heldout"], metavar="TYPE")
    rc.add_argument("--num-scenes", type=int, default=5, help="per scenario type")
    rc.add_argument("--context-frames", type=int, default=10)
    rc.add_argument("--rollout-frames", type=int, default=20)
    rc.add_argument("--fps", type=float, default=15)
    rc.set_defaults(func=cmd_render_comparison)

    rp = verbs.add_parser("report", help="one HTML page from one evaluation, or a leaderboard from several")
    rp.add_argument(
        "eval_dirs", nargs="+", type=Path, help="evaluation output directories (with metrics.json)"
    )
    rp.add_argument("--output", required=True, type=Path)
    rp.add_argument("--title")
    rp.set_defaults(func=cmd_report)

    qs = verbs.add_parser(
        "quickstart", help="small dataset -> PhysicsExpert -> evaluation -> report, in minutes"
    )
    qs.add_argument("--output-dir", type=Path, default=Path("runs/quickstart"))
    qs.add_argument("--seed", type=int, default=0)
    qs.add_argument("--quiet", action="store_true")
    qs.set_defaults(func=cmd_quickstart)

    gal = verbs.add_parser("gallery", help="one animated GIF per scenario type and a grid image of all")
    gal.add_argument("--output-dir", required=True, type=Path)
    gal.add_argument("--scenario-types", nargs="+", default=["all"], metavar="TYPE")
    gal.add_argument("--difficulty", type=int, default=3)
    gal.add_argument("--fps", type=float, default=15)
    gal.add_argument("--seed", type=int, default=0)
    gal.add_argument("--frames-per-scene", type=int, default=200)
    gal.add_argument("--width", type=int, default=256, help="pixels; height keeps the world's 4:3")
    gal.add_argument("--quiet", action="store_true")
    gal.set_defaults(func=cmd_gallery)

    h = verbs.add_parser("heldout-examples", help="readable text examples of scenes for manual inspection")
    h.add_argument("--output", required=True, type=Path)
    h.add_argument("--num-examples", type=int, default=3, help="per scenario type")
    h.add_argument("--scenario-types", nargs="+", default=["heldout"], metavar="TYPE")
    h.add_argument(
        "--data-dir", type=Path, help="take scenes from this dataset instead of simulating new ones"
    )
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--frames-per-scene", type=int, default=200)
    h.add_argument("--difficulty-range", type=int, nargs=2, default=[1, 5], metavar=("MIN", "MAX"))
    h.add_argument("--every", type=int, default=20, help="print the state every this many frames")
    h.set_defaults(func=cmd_heldout_examples)

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
    sw.add_argument("--trials", type=int, default=10, help="finished trials the study should hold")
    sw.add_argument("--study-dir", type=Path, default=Path("runs/sweep"), help="study.db, trials, results")
    sw.add_argument("--parallel", type=int, default=1, help="trials at once (processes)")
    sw.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    s = verbs.add_parser("list-scenarios", help="the scenario library, with how difficulty scales")
    s.add_argument("--markdown", action="store_true", help="as the table in docs/SCENARIOS.md")
    s.set_defaults(func=cmd_list_scenarios)
    return parser


def main(argv=None) -> int:
    from physworld.data.store import DataDamageError, StoreError

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["train", "lm-lora"]:
        # The LoRA recipe takes guide 001's flags (--base-model, --data-dir, ...): it parses its own.
        from physworld.recipes import lm_lora

        try:
            summary = lm_lora.main(argv[2:])
        except ValueError as e:
            print(f"physworld train lm-lora: error: {e}", file=sys.stderr)
            return 2
        except RuntimeError as e:
            print(f"physworld train lm-lora: stopped: {e}", file=sys.stderr)
            return 1
        print(f"trained {summary['steps']} steps -> {summary['output_dir']}")
        return 0
    parser = build_parser()
    # Recipe overrides (key=value, torchtune style) may stand anywhere after the verb.
    args, extra = parser.parse_known_args(argv)
    if args.verb in ("train", "sweep"):
        bad = [a for a in extra if a.startswith("-") or "=" not in a]
        if bad:
            parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides are key=value)")
        args.overrides = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "num_workers", 1) < 1:
        parser.error(f"--num-workers must be at least 1, got {args.num_workers}")
    try:
        return args.func(args)
    except DataDamageError as e:
        print(f"physworld {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_DAMAGE
    except (UserError, StoreError, ValueError, FileNotFoundError, ModuleNotFoundError) as e:
        print(f"physworld {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"physworld {args.verb}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
