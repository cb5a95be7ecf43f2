"""Hostile use of the command line: wrong flags, bad numbers and overrides, unusable output paths, a full
disk, damaged checkpoints and adapters. Every case ends in one line on stderr that names the problem, never a
traceback; exit 2 for the user's mistakes (and paths or disks they must fix), 1 for damage found; nothing is
half-written and nothing already written is lost."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from physworld.cli import describe_os_error, main
from physworld.data.generate import GenerateConfig, generate

ROOT = Path(__file__).resolve().parents[1]
PE_TINY = ROOT / "configs" / "physics_expert" / "tiny.yaml"
GPT_TINY = ROOT / "configs" / "gpt" / "tiny.yaml"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `physworld argv`, whether it returns or exits through argparse."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def no_temporaries(directory: Path) -> bool:
    return not [p for p in Path(directory).rglob(".*tmp*")]


# ---------------------------------------------------------------- command-line mistakes


def test_a_wrong_flag_shows_the_verbs_usage_and_the_closest_flag(tmp_path, capsys):
    code, _, err = run(["generate", "--output-dir", tmp_path / "d", "--num-scenes-per-typ", "3"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "usage: physworld generate" in err
    assert "did you mean --num-scenes-per-type" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "argv, suggestion",
    [
        (["generate", "--output-dir", "X", "--scenes", "3"], "--scenes-per-shard"),
        (["generate", "--out", "X"], "--output-dir"),
        (["validate", "--data", "X"], "--data-dir"),
    ],
)
def test_abbreviations_are_refused_with_the_full_flag_suggested(tmp_path, capsys, argv, suggestion):
    argv = [str(tmp_path / "x") if a == "X" else a for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"usage: physworld {argv[0]}" in err and f"did you mean {suggestion}" in err
    assert not (tmp_path / "x").exists()


def test_an_unknown_verb_suggests_the_closest(capsys):
    code, _, err = run(["generat"], capsys)
    assert code == 2 and "did you mean 'generate'" in err


def test_help_shows_defaults(capsys):
    code, out, _ = run(["generate", "--help"], capsys)
    out = " ".join(out.split())  # help lines wrap with the terminal's width
    assert code == 0
    assert "(default: 100)" in out and "(default: 64)" in out and "(default: 0)" in out
    code, out, _ = run(["evaluate", "--help"], capsys)
    out = " ".join(out.split())
    assert "(default: 10)" in out and "(default: 20)" in out


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["validate", "--data-dir", "D", "--sample-per-type", "-1"], "--sample-per-type must be at least 1"),
        (
            ["gallery", "--output-dir", "O", "--frames-per-scene", "0"],
            "--frames-per-scene must be at least 1",
        ),
        (["gallery", "--output-dir", "O", "--fps", "0"], "--fps must be more than 0"),
        (["generate", "--output-dir", "O", "--num-scenes-per-type", str(10**18)], "--num-scenes-per-type"),
        (["generate", "--output-dir", "O", "--num-workers", "0"], "--num-workers must be at least 1"),
        (
            [
                "render-comparison",
                "--checkpoint",
                "C",
                "--val-dir",
                "D",
                "--output-dir",
                "O",
                "--num-scenes",
                "0",
            ],
            "--num-scenes must be at least 1",
        ),
        (
            ["evaluate", "--checkpoint", "C", "--val-dir", "D", "--output-dir", "O", "--rollout-frames", "0"],
            "--rollout-frames must be at least 1",
        ),
        (["heldout-examples", "--output", "O", "--every", "0"], "--every must be at least 1"),
        (["heldout-examples", "--output", "O", "--difficulty-range", "4", "2"], "--difficulty-range 4 2"),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_flag(tmp_path, capsys, argv, flag):
    argv = [str(tmp_path / a) if a in ("D", "O", "C") else a for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert flag in one_line_error(err)
    assert not (tmp_path / "O").exists()


@pytest.mark.parametrize(
    "config, overrides, key",
    [
        (PE_TINY, ["model.hidden=0"], "model.hidden"),
        (PE_TINY, ["optim.warmup_steps=200", "train.max_steps=10"], "optim.warmup_steps"),
        (PE_TINY, ["train.threads=-1"], "train.threads"),
        (PE_TINY, ["optim.min_lr_ratio=2"], "optim.min_lr_ratio"),
        (GPT_TINY, ["model.preset=huge"], "model.preset"),
        (GPT_TINY, ["model.n_embd=30", "model.n_head=4"], "divisible"),
    ],
)
def test_nonsense_config_values_are_refused_before_anything_is_written(
    tmp_path, capsys, config, overrides, key
):
    recipe = "physics-expert" if config == PE_TINY else "gpt"
    out = tmp_path / "run"
    code, _, err = run(
        [
            "train",
            recipe,
            "--config",
            config,
            f"train.output_dir={out}",
            f"data.train_dir={tmp_path}",
            *overrides,
        ],
        capsys,
    )
    assert code == 2
    assert key in one_line_error(err)
    assert not out.exists()


def test_lm_lora_with_a_missing_dataset_is_one_line(tmp_path, capsys):
    pytest.importorskip("accelerate")
    code, _, err = run(
        ["train", "lm-lora", "--data-dir", tmp_path / "nonexistent", "--output-dir", tmp_path / "out"], capsys
    )
    assert code == 2
    assert "nonexistent" in one_line_error(err)
    assert not (tmp_path / "out").exists()


def test_lm_lora_refuses_abbreviated_flags(tmp_path, capsys):
    code, _, err = run(["train", "lm-lora", "--data", tmp_path, "--output-dir", tmp_path / "o"], capsys)
    assert code == 2 and "Traceback" not in err and "--data" in err


# ---------------------------------------------------------------- unusable output paths


@pytest.fixture()
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a directory\n")
    return path


def output_cases(blocked: Path, data: Path):
    """Every verb that writes, with its output path set to `blocked`."""
    return [
        ["generate", "--output-dir", blocked, "--num-scenes-per-type", "1"],
        ["import-jsonl", "--input-dir", data, "--output-dir", blocked],
        ["export-jsonl", "--data-dir", data, "--output-dir", blocked],
        ["validate", "--data-dir", data, "--json", blocked],
        ["evaluate", "--checkpoint", data, "--val-dir", data, "--output-dir", blocked],
        ["render-comparison", "--checkpoint", data, "--val-dir", data, "--output-dir", blocked],
        ["report", data, "--output", blocked],
        ["quickstart", "--output-dir", blocked],
        ["gallery", "--output-dir", blocked],
        ["heldout-examples", "--output", blocked],
        [
            "train",
            "physics-expert",
            "--config",
            PE_TINY,
            f"data.train_dir={data}",
            f"train.output_dir={blocked}",
        ],
        ["train", "gpt", "--config", GPT_TINY, f"data.train_dir={data}", f"train.output_dir={blocked}"],
    ]


@pytest.mark.parametrize("case", range(12))
def test_an_output_path_under_a_file_is_refused_before_work(tmp_path, capsys, a_file, case):
    argv = output_cases(a_file / "sub" / "out", tmp_path)[case]
    code, _, err = run(argv, capsys)
    assert code == 2
    line = one_line_error(err)
    assert str(a_file) in line and "is a file" in line
    assert a_file.read_text() == "not a directory\n"


@pytest.mark.parametrize("case", [0, 1, 2, 4, 5, 7, 8, 10, 11])
def test_an_output_directory_that_is_a_file_is_refused(tmp_path, capsys, a_file, case):
    argv = output_cases(a_file, tmp_path)[case]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "is a file, not a directory" in one_line_error(err)
    assert a_file.read_text() == "not a directory\n"


@pytest.mark.parametrize("flag", ["--json", "--output"])
def test_an_output_file_that_is_a_directory_is_refused_before_work(tmp_path, capsys, flag):
    argv = (
        ["validate", "--data-dir", tmp_path / "no-data", "--json", tmp_path]
        if flag == "--json"
        else ["heldout-examples", "--output", tmp_path]
    )
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""  # refused before the report, not after it printed
    assert "is a directory" in one_line_error(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; the under-a-file cases cover it")
def test_a_read_only_output_directory_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = run(["gallery", "--output-dir", locked / "g"], capsys)
        assert code == 2 and "permission denied" in one_line_error(err)
    finally:
        locked.chmod(stat.S_IRWXU)


@pytest.mark.parametrize(
    "error, words",
    [
        (PermissionError(errno.EACCES, "Permission denied", "/x/y"), ["/x/y", "permission denied"]),
        (OSError(errno.EROFS, "Read-only file system", "/x/y"), ["/x/y", "read-only"]),
        (OSError(errno.ENOSPC, "No space left on device", "/x/y"), ["disk full", "/x/y", "rerun"]),
        (OSError("IOError: No space left on device"), ["disk full"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/x/y"), ["/x/y", "is a directory"]),
    ],
)
def test_os_errors_are_described_in_plain_words(error, words):
    line = describe_os_error(error)
    assert "\n" not in line
    for word in words:
        assert word in line


def test_an_os_error_during_a_verb_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    """An error no early check can see (a permission changed mid-run): the central handler names it."""
    import physworld.data.gallery as gallery

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(tmp_path / "g" / "x.gif"))

    monkeypatch.setattr(gallery, "render_gallery", refuse)
    code, _, err = run(["gallery", "--output-dir", tmp_path / "g", "--quiet"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "x.gif" in line and "permission denied" in line


# ---------------------------------------------------------------- a full disk


def fail_fsync_after(monkeypatch, allowed: int):
    """Make the `allowed`+1-th fsync of a file being written fail with ENOSPC, as a full disk does."""
    import physworld.fileio as fileio

    real = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls["n"] += 1
            if calls["n"] > allowed:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    return calls


def test_disk_full_during_generate_is_one_line_and_a_rerun_finishes_identically(
    tmp_path, capsys, monkeypatch
):
    argv = [
        "generate",
        "--scenario-types",
        "pendulum",
        "billiards",
        "--num-scenes-per-type",
        "2",
        "--frames-per-scene",
        "10",
        "--scenes-per-shard",
        "1",
        "--num-workers",
        "1",
        "--quiet",
    ]
    assert run([*argv, "--output-dir", tmp_path / "clean"], capsys)[0] == 0
    calls = fail_fsync_after(monkeypatch, allowed=3)  # the run's config file, then two shards
    code, _, err = run([*argv, "--output-dir", tmp_path / "full"], capsys)
    assert calls["n"] == 4 and code == 2
    line = one_line_error(err)
    assert "disk full" in line and str(tmp_path / "full") in line
    assert no_temporaries(tmp_path / "full")
    kept = sorted(p.name for p in (tmp_path / "full" / "shards").glob("*.parquet"))
    assert len(kept) == 2  # the two shards written before the disk filled are kept, whole
    monkeypatch.undo()
    assert run([*argv, "--output-dir", tmp_path / "full"], capsys)[0] == 0
    for name in ("manifest.json", "index.parquet"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


@pytest.fixture()
def small_tmpfs(tmp_path):
    """A real 128 KiB file system, where this process may mount one (root on Linux); else skip."""
    import shutil
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the simulated full-disk tests cover the logic")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_during_generate_is_one_line_and_leaves_whole_shards(small_tmpfs, capsys):
    import pyarrow.parquet as pq

    out = small_tmpfs / "data"
    argv = ["generate", "--output-dir", out, "--scenario-types", "pendulum", "billiards", "newtons_cradle"]
    argv += ["--num-scenes-per-type", "8", "--frames-per-scene", "100", "--scenes-per-shard", "1"]
    code, _, err = run([*argv, "--num-workers", "1", "--quiet"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "disk full" in line and str(out) in line
    assert no_temporaries(out)
    shards = sorted((out / "shards").glob("*.parquet"))
    assert shards and all(pq.read_table(p).num_rows == 1 for p in shards)  # each one whole


def test_disk_full_keeps_the_previous_file_whole(tmp_path, capsys, monkeypatch):
    out = tmp_path / "examples.txt"
    argv = ["heldout-examples", "--output", out, "--scenario-types", "pendulum", "--num-examples", "1"]
    argv += ["--frames-per-scene", "10", "--every", "5"]
    assert run(argv, capsys)[0] == 0
    before = out.read_bytes()
    fail_fsync_after(monkeypatch, allowed=0)
    code, _, err = run([*argv, "--seed", "1"], capsys)
    assert code == 2 and "disk full" in one_line_error(err) and str(out) in err
    assert out.read_bytes() == before and no_temporaries(tmp_path)


def test_disk_full_while_saving_a_checkpoint_is_an_os_error_naming_it(tmp_path, monkeypatch):
    """safetensors reports a failed write as its own error; save_checkpoint raises the OSError it is."""
    import safetensors.torch

    from physworld.training import checkpoint

    def full(*args, **kwargs):
        raise safetensors.SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(checkpoint, "save_file", full)
    target = tmp_path / "latest.safetensors"
    with pytest.raises(OSError) as info:
        checkpoint.save_checkpoint(target, torch.nn.Linear(2, 2))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert "disk full" in describe_os_error(info.value) and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- training runs: damage and records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for name, seed in (("train", 0), ("other", 5)):
        generate(
            GenerateConfig(
                scenario_types=("pendulum", "billiards"),
                num_scenes_per_type=2,
                frames_per_scene=30,
                difficulty_range=(1, 2),
                seed=seed,
            ),
            root / name,
            progress=False,
        )
    return root


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pe"
    assert (
        main(
            [
                "train",
                "physics-expert",
                "--config",
                str(PE_TINY),
                f"data.train_dir={data / 'train'}",
                f"data.val_dir={data / 'train'}",
                f"train.output_dir={out}",
                "train.max_steps=6",
                "train.tensorboard=false",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def train_again(data, out, capsys, *extra, train_dir="train"):
    return run(
        [
            "train",
            "physics-expert",
            "--config",
            PE_TINY,
            f"data.train_dir={data / train_dir}",
            f"data.val_dir={data / 'train'}",
            f"train.output_dir={out}",
            "train.max_steps=6",
            "train.tensorboard=false",
            "--quiet",
            *extra,
        ],
        capsys,
    )


def records(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("config.yaml", "summary.json", "metrics.jsonl")}


def test_rerunning_a_finished_run_says_so_and_rewrites_nothing(data, finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    before = records(out)
    code, stdout, _ = train_again(data, out, capsys)
    assert code == 0 and "nothing to train" in stdout and "6 steps" in stdout
    assert records(out) == before


def test_a_finished_run_with_other_data_is_refused_and_its_records_kept(data, finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    before = records(out)
    code, _, err = train_again(data, out, capsys, train_dir="other")
    assert code == 2
    line = one_line_error(err)
    assert "other train_manifest_shards" in line and "new train.output_dir" in line
    assert records(out) == before


def test_a_model_size_mismatch_is_refused_before_config_yaml_is_rewritten(
    data, finished_run, tmp_path, capsys
):
    out = copy_run(finished_run, tmp_path)
    before = records(out)
    code, _, err = train_again(data, out, capsys, "model.hidden=24")
    assert code == 2 and "model_config" in one_line_error(err)
    assert records(out) == before


def flip_bit_in_header(path: Path, anchor: bytes) -> None:
    """Flip one bit of the first digit after `anchor` in the safetensors JSON header."""
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    start = raw.index(anchor, 8, 8 + header_len)
    i = next(j for j in range(start, 8 + header_len) if chr(raw[j]).isdigit() and raw[j] != ord("9"))
    raw[i] ^= 0x01  # '0'<->'1', '2'<->'3', ...: still valid JSON, another number
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["rng-bit", "truncated-best", "truncated-latest"])
def test_a_damaged_checkpoint_is_refused_at_resume_with_exit_1(data, finished_run, tmp_path, capsys, damage):
    out = copy_run(finished_run, tmp_path)
    before = records(out)
    ckpts = out / "checkpoints"
    if damage == "rng-bit":
        target = ckpts / "latest.safetensors"
        flip_bit_in_header(target, b"rng")
    else:
        target = ckpts / ("best.safetensors" if damage == "truncated-best" else "latest.safetensors")
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    code, _, err = train_again(data, out, capsys)
    assert code == 1
    line = one_line_error(err)
    assert str(target) in line and "damaged" in line
    assert records(out) == before


def test_a_bit_flip_in_rng_metadata_of_an_unchecked_file_is_damage_not_overflow(finished_run, tmp_path):
    """A checkpoint written before the header checksum (none to check) with an out-of-range RNG value."""
    from physworld.models.physics_expert import PhysicsExpert, PhysicsExpertConfig
    from physworld.training.checkpoint import CheckpointDamaged, load_checkpoint, restore

    ckpt = load_checkpoint(finished_run / "checkpoints" / "latest.safetensors")
    state = ckpt.meta["rng"]["python"]
    ckpt.meta["rng"]["python"] = (state[0], (2**70,) + tuple(state[1][1:]), state[2])
    info = ckpt.meta["extra"]
    model = PhysicsExpert(PhysicsExpertConfig(**info["model_config"]))
    with pytest.raises(CheckpointDamaged, match="RNG state"):
        restore(ckpt, model, rng=True, extra_generators={"noise": torch.Generator()})


def test_evaluate_on_a_truncated_checkpoint_is_exit_1(data, finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    best = out / "checkpoints" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    code, _, err = run(
        [
            "evaluate",
            "--checkpoint",
            best,
            "--val-dir",
            data / "train",
            "--output-dir",
            tmp_path / "ev",
            "--quiet",
        ],
        capsys,
    )
    assert code == 1 and str(best) in one_line_error(err)


def test_a_curriculum_stage_without_its_difficulty_names_it_before_training(data, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train_again(data, out, capsys, "train.curriculum_stages=3")
    assert code == 2
    line = one_line_error(err)
    assert "stage 3 (difficulty 3) has 0 windows" in line and "--difficulty-range" in line
    assert not out.exists()


def test_files_are_written_with_the_umask_not_0600(data, finished_run, tmp_path):
    old = os.umask(0o022)
    try:
        from physworld.fileio import atomic_write_bytes

        path = atomic_write_bytes(tmp_path / "x.bin", b"x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_bytes(tmp_path / "y.bin", b"y").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    # the run's own files, written under the test process's umask
    mask = old
    for path in [*(finished_run / "checkpoints").glob("*.safetensors"), finished_run / "summary.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    shard = next((data / "train" / "shards").glob("*.parquet"))
    assert stat.S_IMODE(shard.stat().st_mode) == 0o666 & ~mask


# ---------------------------------------------------------------- LoRA adapters


@pytest.fixture(scope="module")
def adapter_checkpoint(tmp_path_factory):
    """A real two-step lm-lora run on the tiny LFM2 the lm-lora tests build."""
    pytest.importorskip("peft")
    import test_lm_lora

    env = test_lm_lora.build_env(tmp_path_factory.mktemp("lm"))
    out = tmp_path_factory.mktemp("lora") / "run"
    argv = ["--curriculum-stages", "1", "--max-steps", "2", "--quiet"]
    test_lm_lora.run(env, out, *argv)
    return env, out, sorted(out.glob("stage1/checkpoint-*"))[-1]


def lm_evaluate(env, checkpoint, out, capsys):
    return run(
        [
            "evaluate",
            "--model",
            "lm",
            "--checkpoint",
            checkpoint,
            "--val-dir",
            env["data"],
            "--output-dir",
            out,
            "--context-frames",
            "3",
            "--rollout-frames",
            "2",
            "--max-scenes-per-type",
            "1",
            "--no-render",
            "--quiet",
        ],
        capsys,
    )


@pytest.mark.parametrize("damage", ["byte-flip", "truncated", "pickle", "missing"])
def test_a_damaged_adapter_is_refused_with_exit_1(adapter_checkpoint, tmp_path, capsys, damage):
    import pickle
    import shutil

    env, _, checkpoint = adapter_checkpoint
    copy = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, copy)
    adapter = copy / "adapter_model.safetensors"
    assert json.loads((copy / "adapter_checksum.json").read_text())["adapter_model.safetensors"]
    raw = bytearray(adapter.read_bytes())
    if damage == "byte-flip":
        raw[-3] ^= 0x10  # in the tensor data: still a readable safetensors file, other weights
        adapter.write_bytes(bytes(raw))
    elif damage == "truncated":
        adapter.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "pickle":

        class Boom:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path / 'pwned'}",))

        adapter.write_bytes(pickle.dumps(Boom()))
    else:
        adapter.unlink()
    code, _, err = lm_evaluate(env, copy, tmp_path / "ev", capsys)
    assert code == 1
    line = one_line_error(err)
    assert "adapter_model.safetensors" in line
    assert not (tmp_path / "pwned").exists()


def test_resuming_a_run_with_a_damaged_adapter_is_refused(adapter_checkpoint, tmp_path, capsys):
    import shutil

    import test_lm_lora

    env, run_dir, checkpoint = adapter_checkpoint
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    config_before = (out / "config.yaml").read_bytes()
    adapter = out / checkpoint.relative_to(run_dir) / "adapter_model.safetensors"
    raw = bytearray(adapter.read_bytes())
    raw[-3] ^= 0x10
    adapter.write_bytes(bytes(raw))
    from physworld.training.checkpoint import CheckpointDamaged

    with pytest.raises(CheckpointDamaged, match="sha256"):
        test_lm_lora.run(env, out, "--curriculum-stages", "1", "--max-steps", "2", "--quiet")
    assert (out / "config.yaml").read_bytes() == config_before


# ---------------------------------------------------------------- exit statuses of the central handler


def test_an_internal_error_is_one_line_with_its_own_exit_status(capsys, monkeypatch):
    import physworld.worlds.registry as registry

    def bug():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(registry, "difficulty_docs", bug)
    code, _, err = run(["list-scenarios"], capsys)
    assert code == 3
    line = one_line_error(err)
    assert "internal error: ZeroDivisionError" in line and "PHYSWORLD_TRACEBACK=1" in line
    monkeypatch.setenv("PHYSWORLD_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["list-scenarios"])


def test_a_run_that_stopped_itself_exits_1_and_other_runtime_errors_are_internal(capsys, monkeypatch):
    from physworld.recipes import physics_expert
    from physworld.training.loop_utils import TooManyBadSteps

    def stopped(*args, **kwargs):
        raise RuntimeError("stopped after 10 non-finite steps in a row") from TooManyBadSteps("nan")

    monkeypatch.setattr(physics_expert, "main", stopped)
    code, _, err = run(["train", "physics-expert", "--config", PE_TINY], capsys)
    assert code == 1 and "stopped: stopped after 10" in one_line_error(err)

    def shape_bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(physics_expert, "main", shape_bug)
    code, _, err = run(["train", "physics-expert", "--config", PE_TINY], capsys)
    assert code == 3 and "internal error: RuntimeError" in one_line_error(err)


def test_lm_lora_checks_every_curriculum_stage_before_training(adapter_checkpoint, tmp_path, capsys):
    env, _, _ = adapter_checkpoint  # its data holds difficulties 1 and 2
    out = tmp_path / "run"
    argv = ["train", "lm-lora", "--config", ROOT / "configs" / "lm_lora" / "tiny.yaml"]
    argv += ["--base-model", env["lfm2"], "--data-dir", env["data"], "--output-dir", out]
    code, _, err = run([*argv, "--curriculum-stages", "3", "--quiet"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "stage 3 (difficulty 3)" in line and "difficulties present: 1, 2" in line
    assert not out.exists()


def test_a_missing_extra_names_the_extra(capsys, monkeypatch):
    from physworld.recipes import physics_expert

    def needs_accelerate(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'accelerate'", name="accelerate")

    monkeypatch.setattr(physics_expert, "main", needs_accelerate)
    code, _, err = run(["train", "physics-expert", "--config", PE_TINY], capsys)
    assert code == 2 and "pip install -e '.[lm]'" in one_line_error(err)
