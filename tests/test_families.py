"""The registry of model families (physworld/evaluation/families.py), walked entry by entry.

For every family: its tiny preset trains a few steps on a dataset generated here, then `physworld
evaluate` and `physworld report` run on the checkpoint, all through the command line. A family added
to the dict without passing this cannot land. Also: a checkpoint of another family names the right
`--model`, and the import graph has no cycle and no path from evaluation to a recipe.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from physworld.cli import main
from physworld.data.generate import GenerateConfig, generate
from physworld.evaluation.families import (
    FAMILIES,
    RECIPES,
    checkpoint_family,
    entry,
    model_choices,
    train_recipes,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "physworld"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Training scenes of two types (difficulty 1: the LoRA recipe's first curriculum stage), and
    evaluation scenes of a seen and a held-out type."""
    root = tmp_path_factory.mktemp("families")
    common = {"frames_per_scene": 24, "difficulty_range": (1, 1)}
    generate(
        GenerateConfig(scenario_types=("pendulum", "head_on"), num_scenes_per_type=2, **common),
        root / "train",
        progress=False,
    )
    generate(
        GenerateConfig(scenario_types=("pendulum", "pong"), num_scenes_per_type=1, seed=3, **common),
        root / "val",
        progress=False,
    )
    return root


def tiny_causal_lm(root: Path, train_dir: Path) -> Path:
    """A 32-wide LFM2 with a BPE tokenizer trained on the scenes' text, saved as a local base model
    (no hub here): what the LoRA family's tiny preset fine-tunes."""
    from tokenizers import processors
    from transformers import Lfm2Config, Lfm2ForCausalLM, PreTrainedTokenizerFast

    from physworld.data import text
    from physworld.data.store import Dataset

    records = list(Dataset(train_dir).iter_scenes())
    bpe = text.train_bpe([text.training_example(r, t, 3)[0] for r in records for t in range(0, 23, 2)], 400)
    bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    torch.manual_seed(0)
    config = Lfm2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        layer_types=["conv", "full_attention"],
        block_auto_adjust_ff_dim=False,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    out = root / "tiny-lfm2"
    Lfm2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def missing_extras(family: dict) -> list[str]:
    return [m for m in family["tiny_test"]["needs"] if importlib.util.find_spec(m) is None]


_TRAINED: dict[str, Path] = {}


def trained_checkpoint(name: str, data: Path) -> Path:
    """Train the family's tiny preset through `physworld train` (once per module); its checkpoint."""
    if name in _TRAINED:
        return _TRAINED[name]
    fam = FAMILIES[name]
    missing = missing_extras(fam)
    if missing:
        pytest.skip(f"family {name} needs {', '.join(missing)} (pip install -e '.[lm]')")
    out = data / "runs" / name
    fill = {"train_dir": data / "train", "output_dir": out}
    if any("{tiny_causal_lm}" in o for o in fam["tiny_test"]["overrides"]):
        fill["tiny_causal_lm"] = tiny_causal_lm(data, data / "train")
    overrides = [o.format(**fill) for o in fam["tiny_test"]["overrides"]]
    config = ROOT / fam["configs"] / fam["tiny"]
    assert config.is_file(), f"family {name}: its tiny preset {config} is missing"
    assert main(["train", fam["train"], "--config", str(config), *overrides, "--quiet"]) == 0
    found = sorted(out.glob(fam["tiny_test"]["checkpoint"]))
    assert found, f"family {name}: no checkpoint {fam['tiny_test']['checkpoint']} under {out}"
    _TRAINED[name] = found[-1]
    return found[-1]


def evaluate_args(name: str, checkpoint: Path, data: Path, out: Path, *extra: str) -> list[str]:
    context = FAMILIES[name]["tiny_test"]["context_frames"]
    return [
        "evaluate", "--model", name, "--checkpoint", str(checkpoint), "--val-dir", str(data / "val"),
        "--output-dir", str(out), "--context-frames", str(context), "--rollout-frames", "3",
        "--max-scenes-per-type", "1", "--quiet", *extra,
    ]  # fmt: skip


def test_every_entry_names_real_files():
    for name, fam in FAMILIES.items():
        for key in ("model", "recipe", "configs", "tiny", "train", "tiny_test"):
            assert key in fam, f"family {name}: no {key!r}"
        assert importlib.util.find_spec(fam["model"]) is not None, fam["model"]
        assert importlib.util.find_spec(fam["recipe"]) is not None, fam["recipe"]
        assert (ROOT / fam["configs"] / fam["tiny"]).is_file()
        assert entry(name)["name"] == name
        for alias in fam.get("aliases", ()):
            assert entry(alias)["name"] == name
    assert set(train_recipes()) == {fam["train"] for fam in FAMILIES.values()} | set(RECIPES)
    for module in RECIPES.values():
        assert importlib.util.find_spec(module) is not None, module
    assert len(model_choices()) == len(set(model_choices())), "a name or alias is used twice"
    with pytest.raises(ValueError, match="--model must be one of"):
        entry("no-such-family")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_trains_evaluates_and_reports(name, data, capsys):
    checkpoint = trained_checkpoint(name, data)
    assert checkpoint_family(checkpoint) == name
    out = data / "eval" / name
    capsys.readouterr()
    assert main([a for a in evaluate_args(name, checkpoint, data, out) if a != "--quiet"]) == 0
    bars = capsys.readouterr().err
    for stage in ("rollout", "score", "comparison GIFs"):  # every stage of a second or more shows progress
        assert f"{stage}: 100%" in bars, f"no progress bar for {stage}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["name"] == name
    assert metrics["dataset"]["seen_types"] == ["pendulum"] and metrics["dataset"]["heldout_types"] == [
        "pong"
    ]
    assert set(metrics["methods"]) >= {"model", "constant_velocity", "ballistic", "chaos_floor"}
    model = metrics["aggregate"]["all"]["model"]
    assert set(model["position_error_px"]) == {"1", "all"}
    assert 0 <= model["parse_failures"] <= 3 * metrics["dataset"]["num_scenes"]
    assert sorted(p.name for p in (out / "comparison_gifs").iterdir()) == ["pendulum_cmp.gif", "pong_cmp.gif"]
    assert (out / "predictions" / "manifest.json").is_file()

    report = out / "report.html"
    assert main(["report", str(out), "--output", str(report)]) == 0
    html = report.read_text(encoding="utf-8")
    assert "Held-out types" in html and "pong" in html and "data:image/gif;base64," in html
    assert "baseline" in html  # the verdicts compare with the baselines, whatever they say


def test_a_checkpoint_of_another_family_names_the_right_model(data, capsys):
    checkpoint = trained_checkpoint("physics-expert", data)
    capsys.readouterr()
    assert main(evaluate_args("gpt", checkpoint, data, data / "eval" / "wrong")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model physics-expert" in err and "Traceback" not in err


# ---------------------------------------------------------------- the import graph


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every physworld module -> the physworld modules it imports anywhere (module level or inside a
    function), from the source: an import inside a function is still a dependency."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                    base = base.rstrip(".")
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target != "physworld":
                    graph[name].add(target)
    for name in modules:
        graph.setdefault(name, set())
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_import_graph_has_no_cycles_and_evaluation_reaches_no_recipe():
    graph = import_graph()
    assert cycles(graph) == []
    packages = defaultdict(set)  # the layers: worlds -> data -> models -> recipes -> evaluation
    for a, targets in graph.items():
        for b in targets:
            pa, pb = a.split(".")[1] if "." in a else a, b.split(".")[1] if "." in b else b
            if pa != pb:
                packages[pa].add(pb)
    assert cycles(packages) == [], dict(packages)
    for name in graph:
        if name.startswith(("physworld.evaluation", "physworld.models", "physworld.quickstart")):
            recipes = sorted(m for m in reachable(graph, name) if m.startswith("physworld.recipes"))
            assert recipes == [], f"{name} imports recipes {recipes}"
    # and at run time: importing the evaluation side loads no recipe
    probe = (
        "import sys, physworld.evaluation.evaluate, physworld.evaluation.report, physworld.evaluation.families, "
        "physworld.quickstart; print(sorted(m for m in sys.modules if m.startswith('physworld.recipes')))"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
