"""`physworld export`: a family's per-step network as ONNX, optionally static int8 (QDQ), run by onnxruntime.

What is exported is one step of the network on tensors, never the Python rollout loop: graph construction
(which bodies touch, data-dependent sizes) stays in torch, as does integration. A family adds one function
to NETWORKS: `network(model) -> spec` with

    module          an nn.Module whose forward takes the step's tensors positionally
    input_names     their names, in order; output_names likewise
    dynamic_shapes  one {axis: torch.export.Dim} per input (bodies, edges, rows vary per call)
    example         a tuple of example inputs (export traces it; any real sizes do)
    feeds           feeds(model, data_dir, max_batches, batch_graphs) -> iterator of {input name: ndarray}
                    built from a dataset's real scenes: calibration, parity checks and the bench use it

The PhysicsExpert's step is its encode-process-decode on the graph `build_graph` made (inputs: node,
edge and world-edge features with the receiver/sender/world-body indices; output: normalised
accelerations [bodies, 3]). The state-space model's step is `PhysicsSSM.step` after `_inputs`: body
rows' frame encodings, the body-mixing edges, the physics features and the ballistic acceleration, with
each Mamba layer's (conv window, scan state) cache in and out. The 3D PhysicsExpert's step is the same
encode-process-decode on its 3D graph (features from `build_graph` and `node_features` with the last frame's
rotations; output: normalised linear and angular accelerations [bodies, 6]); its feeds come from a 3D
dataset's scenes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CPUExecutionProvider"],
}


@contextlib.contextmanager
def quiet_logs():
    """Silence the exporter's and quantiser's log warnings (torchvision ops not installed, LayerNorm weights
    that have no channel axis to quantise per channel): they are notes, not problems of the export."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _onnx_modules():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"{e.name} is missing: physworld export needs the onnx extra (pip install -e '.[onnx]')",
            name=e.name,
        ) from None
    return onnxruntime


# ---------------------------------------------------------------- the PhysicsExpert's step


class PhysicsExpertStep(nn.Module):
    """PhysicsExpert.forward after build_graph: features and indices in, normalised accelerations out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, node_features, edge_features, world_features, receivers, senders, world_body):
        # [N, Fn], [E, Fe], [W, Fw], [E], [E], [W] -> [N, 3]
        m = self.model
        nodes, edges, world = (
            m.node_encoder(node_features),
            m.edge_encoder(edge_features),
            m.world_encoder(world_features),
        )
        for layer in m.processor:
            nodes, edges, world = layer(nodes, edges, world, receivers, senders, world_body)
        return m.decoder(nodes)


def physics_expert_inputs(model, batch: dict) -> dict[str, np.ndarray]:
    """A collated graph batch -> the exported step's feeds (what PhysicsExpert.forward builds first)."""
    with torch.no_grad():
        graph = model.build_graph(batch)
        node_features = model.node_features(batch)
    return {
        "node_features": node_features.numpy(),
        "edge_features": graph["edge_features"].numpy(),
        "world_features": graph["world_features"].numpy(),
        "receivers": graph["receivers"].numpy(),
        "senders": graph["senders"].numpy(),
        "world_body": graph["world_body"].numpy(),
    }


def _scenes(ds, chunk: int = 64) -> Iterator[dict]:
    """A dataset's scenes in id order, read `chunk` at a time (calibration needs only the first few)."""
    ids = sorted(ds.scene_ids)
    for start in range(0, len(ids), chunk):
        yield from ds.scenes(ids[start : start + chunk])


def physics_expert_batches(model, data_dir, max_batches: int, batch_graphs: int) -> Iterator[dict]:
    """Collated graph batches of `batch_graphs` windows (k frames of history) from a dataset's real scenes,
    scenes in id order, windows every k frames: deterministic."""
    from physworld.data import windows
    from physworld.data.store import Dataset

    ds = Dataset(data_dir)
    k = model.config.history
    samples, made = [], 0
    for scene in _scenes(ds):
        arrays = windows.layout(windows.spec_dims(scene["spec"]))["scene_arrays"](scene["spec"])  # 2D or 3D
        for t in range(k - 1, scene["states"].shape[0] - 1, k):
            samples.append(
                windows.graph_from_scene(scene["spec"], scene["states"][t - k + 1 : t + 1], arrays=arrays)
            )
            if len(samples) == batch_graphs:
                yield windows.collate_graphs(samples)
                samples, made = [], made + 1
                if made == max_batches:
                    return
    if samples:
        yield windows.collate_graphs(samples)


def physics_expert_feeds(model, data_dir, max_batches: int = 8, batch_graphs: int = 8) -> Iterator[dict]:
    for batch in physics_expert_batches(model, data_dir, max_batches, batch_graphs):
        yield physics_expert_inputs(model, batch)


def physics_expert_network(model) -> dict:
    from torch.export import Dim

    from physworld.models.physics_expert import EDGE_FEATURES, NODE_STATIC_FEATURES, WORLD_FEATURES

    bodies, edges, world = Dim("bodies"), Dim("edges"), Dim("world_edges")
    n, e, w = 5, 8, 3  # example sizes only: every axis is dynamic
    example = (
        torch.randn(n, 3 * model.config.history + NODE_STATIC_FEATURES),
        torch.randn(e, EDGE_FEATURES),
        torch.randn(w, WORLD_FEATURES),
        torch.randint(0, n, (e,)),
        torch.randint(0, n, (e,)),
        torch.randint(0, n, (w,)),
    )
    return {
        "module": PhysicsExpertStep(model),
        "input_names": [
            "node_features",
            "edge_features",
            "world_features",
            "receivers",
            "senders",
            "world_body",
        ],
        "output_names": ["accel_normalised"],
        "dynamic_shapes": ({0: bodies}, {0: edges}, {0: world}, {0: edges}, {0: edges}, {0: world}),
        "example": example,
        "feeds": physics_expert_feeds,
    }


# ---------------------------------------------------------------- the 3D PhysicsExpert's step
# The same encode-process-decode as in 2D (PhysicsExpertStep runs it unchanged): only the feature widths
# differ, and the graph is built from the rotations of the last frame's quaternions.


def physics_expert_3d_inputs(model, batch: dict) -> dict[str, np.ndarray]:
    """A collated 3D graph batch -> the exported step's feeds (what PhysicsExpert3D.forward builds first)."""
    with torch.no_grad():
        rot = model.rotations(batch)
        graph = model.build_graph(batch, rot)
        node_features = model.node_features(batch, rot)
    return {
        "node_features": node_features.numpy(),
        "edge_features": graph["edge_features"].numpy(),
        "world_features": graph["world_features"].numpy(),
        "receivers": graph["receivers"].numpy(),
        "senders": graph["senders"].numpy(),
        "world_body": graph["world_body"].numpy(),
    }


def physics_expert_3d_feeds(model, data_dir, max_batches: int = 8, batch_graphs: int = 8) -> Iterator[dict]:
    for batch in physics_expert_batches(model, data_dir, max_batches, batch_graphs):
        if batch["history"].shape[-1] != 13:
            raise ValueError(
                f"{data_dir}: a 2D dataset (states with {batch['history'].shape[-1]} fields); the 3D model reads "
                "3D datasets (13 fields): pass a 3D dataset as --calibration-data"
            )
        yield physics_expert_3d_inputs(model, batch)


def physics_expert_3d_network(model) -> dict:
    from physworld.models.physics_expert_3d import EDGE_FEATURES, NODE_STATIC_FEATURES, WORLD_FEATURES

    spec = physics_expert_network(model)  # the same step module, names and dynamic axes
    n, e, w = 5, 8, 3  # example sizes only: every axis is dynamic
    spec["example"] = (
        torch.randn(n, 6 * model.config.history + NODE_STATIC_FEATURES),
        torch.randn(e, EDGE_FEATURES),
        torch.randn(w, WORLD_FEATURES),
        torch.randint(0, n, (e,)),
        torch.randint(0, n, (e,)),
        torch.randint(0, n, (w,)),
    )
    spec["feeds"] = physics_expert_3d_feeds
    return spec


# ---------------------------------------------------------------- the state-space model's step


class SSMStep(nn.Module):
    """PhysicsSSM.step after `_inputs`, before padding: one frame for R body rows, caches in and out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, hidden, receivers, senders, pair, physics, ballistic, conv, state):
        # hidden [R, 1, d], receivers/senders [E], pair [E, P], physics [R, 1, Fp], ballistic [R, 1, 3],
        # the layers' caches stacked: conv [L, R, E', d_conv - 1], state [L, R, E', S]
        # -> accel [R, 3] (px/s^2, before kinematic masking), next conv, next state (same shapes)
        m = self.model
        edges = {"receivers": receivers, "senders": senders, "pair": pair}
        next_conv, next_state = [], []
        for i, layer in enumerate(m.layers):
            hidden = layer.mix(hidden, edges)
            out, cache = layer.mamba.step(layer.norm(hidden[:, 0]), {"conv": conv[i], "h": state[i]})
            hidden = hidden + out.unsqueeze(1)
            next_conv.append(cache["conv"])
            next_state.append(cache["h"])
        h = m.final_norm(hidden)
        accel = m.decoder(h) * m.accel_std + m.accel_mean  # [R, 1, 3]
        if m.config.gate:
            gate = torch.sigmoid(m.gate_proj(torch.cat([h, m.physics_encoder(physics)], dim=-1)))
            accel = gate * accel + (1 - gate) * ballistic
        return accel[:, 0], torch.stack(next_conv), torch.stack(next_state)


def ssm_step_inputs(model, state: torch.Tensor, scene: dict, cache: dict) -> dict[str, np.ndarray]:
    """One frame's padded states [B, N, 6] and the stacked caches {conv, state} -> the exported step's feeds."""
    with torch.no_grad():
        hidden, edges, physics = model._inputs(state.unsqueeze(1), scene)
        ballistic = model.ballistic_accel(scene, 1)
    feeds = {
        "hidden": hidden,
        "receivers": edges["receivers"],
        "senders": edges["senders"],
        "pair": edges["pair"],
        "physics": physics,
        "ballistic": ballistic,
    }
    return {**{k: v.numpy() for k, v in feeds.items()}, "conv": cache["conv"], "state": cache["state"]}


def stacked_cache(caches: list[dict]) -> dict[str, np.ndarray]:
    """PhysicsSSM's per-layer caches -> {conv [L, R, E', d_conv - 1], state [L, R, E', S]} as the step takes."""
    return {
        "conv": torch.stack([c["conv"] for c in caches]).numpy(),
        "state": torch.stack([c["h"] for c in caches]).numpy(),
    }


def ssm_feeds(model, data_dir, max_batches: int = 8, batch_graphs: int = 8) -> Iterator[dict]:
    """Feeds of consecutive true frames of a dataset's scenes, batch_graphs scenes at a time, the caches
    carried by the torch model (what a rollout's context frames do)."""
    from physworld.data.store import Dataset
    from physworld.data.windows import scene_arrays
    from physworld.models.ssm import pad_scenes

    ds = Dataset(data_dir)
    records = list(itertools.islice(_scenes(ds), max_batches * batch_graphs))
    made = 0
    for start in range(0, len(records), batch_graphs):
        chunk = records[start : start + batch_graphs]
        scene = pad_scenes([scene_arrays(s["spec"]) for s in chunk])
        b, n = scene["body"].shape[:2]
        frames = min(s["states"].shape[0] for s in chunk)
        states = np.zeros((b, frames, n, 6), np.float32)
        for i, s in enumerate(chunk):
            states[i, :, : s["states"].shape[1]] = s["states"][:frames]
        cache = model.init_cache(scene)
        for t in range(frames - 1):
            current = torch.from_numpy(states[:, t])
            yield ssm_step_inputs(model, current, scene, stacked_cache(cache))
            made += 1
            if made == max_batches:
                return
            with torch.no_grad():
                _, cache = model.step(current, scene, cache)


def ssm_network(model) -> dict:
    from torch.export import Dim

    from physworld.models.ssm import PAIR_FEATURES, PHYSICS_FEATURES

    rows, edges = Dim("rows"), Dim("edges")
    r, e = 4, 10
    d = model.config.d_model
    example = [
        torch.randn(r, 1, d),
        torch.randint(0, r, (e,)),
        torch.randint(0, r, (e,)),
        torch.randn(e, PAIR_FEATURES),
        torch.randn(r, 1, PHYSICS_FEATURES),
        torch.randn(r, 1, 3),
    ]
    names = ["hidden", "receivers", "senders", "pair", "physics", "ballistic", "conv", "state"]
    shapes = ({0: rows}, {0: edges}, {0: edges}, {0: edges}, {0: rows}, {0: rows}, {1: rows}, {1: rows})
    outputs = ["accel", "next_conv", "next_state"]
    caches = [layer.mamba.init_cache(r) for layer in model.layers]
    example += [
        torch.randn(len(caches), *caches[0]["conv"].shape),
        torch.randn(len(caches), *caches[0]["h"].shape),
    ]
    return {
        "module": SSMStep(model),
        "input_names": names,
        "output_names": outputs,
        "dynamic_shapes": shapes,
        "example": tuple(example),
        "feeds": ssm_feeds,
    }


# ---------------------------------------------------------------- the Visual Expert


class VisualExpertNet(nn.Module):
    """VisualExpert.forward as a tuple: frames [B, T, 3, H, W] in [0, 1] -> state [B, K, T, S] (world
    units), params [B, K, 3], exist_logit [B, K], mask_logits [B, T, K, h, w]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames):
        out = self.model(frames)
        return out["state"], out["params"], out["exist_logit"], out["mask_logits"]


def visual_expert_feeds(model, data_dir, max_batches: int = 8, batch_graphs: int = 8) -> Iterator[dict]:
    """Windows of the model's frame count from a dataset's real clips (clips in view order, windows not
    overlapping), `batch_graphs` windows per feed; clips the model cannot read are one line."""
    from physworld.data.clip_labels import ClipWindows, check_clips_fit, clip_labels

    cfg = model.config
    labels = clip_labels(data_dir)
    check_clips_fit(labels["meta"], cfg.dims, cfg.image_size, cfg.frames, cfg.fps, Path(data_dir) / "clips")
    windows = ClipWindows(labels, cfg.frames, cfg.frames)
    for made, start in enumerate(range(0, len(windows), batch_graphs)):
        if made == max_batches:
            return
        items = [windows[j]["frames"] for j in range(start, min(start + batch_graphs, len(windows)))]
        yield {"frames": torch.stack(items).numpy()}


def visual_expert_network(model) -> dict:
    from torch.export import Dim

    cfg = model.config
    return {
        "module": VisualExpertNet(model),
        "input_names": ["frames"],
        "output_names": ["state", "params", "exist_logit", "mask_logits"],
        "dynamic_shapes": ({0: Dim("batch", min=1, max=4096)},),
        "example": (torch.rand(2, cfg.frames, 3, cfg.image_size, cfg.image_size),),
        "feeds": visual_expert_feeds,
    }


# One function per family (`network(model) -> spec`, see the module docstring); a family not here has no
# exportable step yet.
NETWORKS = {
    "physics-expert": physics_expert_network,
    "physics-expert-3d": physics_expert_3d_network,
    "ssm": ssm_network,
    "visual-expert": visual_expert_network,
}


# ---------------------------------------------------------------- export, quantise, run


def load_family_model(family: str, checkpoint):
    """The torch model of `family` from its checkpoint; a checkpoint of another family is one line."""
    import importlib

    from physworld.evaluation.families import checkpoint_family, entry

    if family == "visual-expert":  # not a trajectory family; its loader refuses other checkpoints
        from physworld.models.visual_expert import load_visual_expert

        return family, load_visual_expert(checkpoint)[0]
    fam = entry(family)
    if fam["name"] not in NETWORKS:
        raise ValueError(f"--model {family}: no exportable step yet (exportable: {', '.join(NETWORKS)})")
    found = checkpoint_family(checkpoint)
    if found is not None and found != fam["name"]:
        raise ValueError(
            f"{checkpoint}: a {found} checkpoint, not a {fam['name']} one; export it with --model {found}"
        )
    model, _info = importlib.import_module(fam["model"]).load_model(checkpoint)
    return fam["name"], model.eval()


def export_onnx(model, family: str, path) -> Path:
    """Write the family's step network to `path` (fp32 ONNX, opset chosen by torch's exporter)."""
    import warnings

    from physworld.fileio import atomic_write

    _onnx_modules()
    spec = NETWORKS[family](model)

    def write(tmp):
        with warnings.catch_warnings(), torch.no_grad(), quiet_logs():
            warnings.simplefilter("ignore")  # the exporter's notes on unused axis names and torchvision ops
            torch.onnx.export(
                spec["module"].eval(),
                spec["example"],
                tmp,
                dynamo=True,
                input_names=spec["input_names"],
                output_names=spec["output_names"],
                dynamic_shapes=spec["dynamic_shapes"],
                external_data=False,
                verbose=False,
            )

    return atomic_write(path, write)


def quantize_int8(fp32_path, int8_path, calibration: list[dict]) -> Path:
    """Static int8 in QDQ format: activations' ranges from real feeds (MinMax), weights per channel."""
    from physworld.fileio import atomic_write

    _onnx_modules()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    if not calibration:
        raise ValueError("--calibration-data gave no graph batches to calibrate on (is the dataset empty?)")
    int8_path = Path(int8_path)
    prepared = int8_path.with_name(f".{int8_path.stem}.pre.onnx")

    def write(tmp):
        with quiet_logs():
            quantize_static(
                str(prepared),
                tmp,
                Reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )

    try:
        # shape inference and graph clean-up first, as onnxruntime's quantisation guide asks
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        return atomic_write(int8_path, write)
    finally:
        prepared.unlink(missing_ok=True)


def check_provider(provider: str):
    """onnxruntime, once `provider` is known to be usable in it; otherwise one line naming the fix."""
    ort = _onnx_modules()
    if provider not in PROVIDERS:
        raise ValueError(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    available = ort.get_available_providers()
    if provider == "tensorrt" and "TensorrtExecutionProvider" not in available:
        raise ValueError(
            "--provider tensorrt: this onnxruntime has no TensorrtExecutionProvider (it has "
            f"{', '.join(available)}); install onnxruntime-gpu with TensorRT on an NVIDIA machine, or use --provider cpu"
        )
    return ort


def session(path, provider: str = "cpu", threads: int = 0):
    """An onnxruntime session on `provider` (cpu or tensorrt); tensorrt missing from this onnxruntime is one
    line naming the fix."""
    ort = check_provider(provider)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1 if threads else 0
    sess = ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS[provider])
    if provider == "tensorrt" and "TensorrtExecutionProvider" not in sess.get_providers():
        # onnxruntime falls back to the CPU quietly when TensorRT's libraries do not load: say so instead
        raise ValueError(
            "--provider tensorrt: onnxruntime could not start TensorRT (are libnvinfer and CUDA installed and "
            "on LD_LIBRARY_PATH?); use --provider cpu"
        )
    return sess


def torch_outputs(model, family: str, feeds: dict) -> list[np.ndarray]:
    """The torch step network's outputs on the same feeds (the parity reference)."""
    spec = NETWORKS[family](model)
    with torch.no_grad():
        out = spec["module"].eval()(*(torch.from_numpy(feeds[name]) for name in spec["input_names"]))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def max_errors(model, family: str, sess, feeds_list: list[dict]) -> dict:
    """Max and mean abs error of the session's first output (the accelerations) against torch, and the
    largest |torch output| (the scale the errors compare with)."""
    worst, total, count, scale = 0.0, 0.0, 0, 0.0
    for feeds in feeds_list:
        ref = torch_outputs(model, family, feeds)[0]
        got = sess.run(None, feeds)[0]
        diff = np.abs(got - ref)
        if diff.size:
            worst, scale = max(worst, float(diff.max())), max(scale, float(np.abs(ref).max()))
            total, count = total + float(diff.sum()), count + diff.size
    return {"max_abs": worst, "mean_abs": total / max(count, 1), "torch_max_abs": scale, "values": count}


def export(
    family: str,
    checkpoint,
    output_dir,
    int8: bool = False,
    calibration_data=None,
    provider: str = "cpu",
    calibration_batches: int = 16,
) -> dict:
    """Export `family`'s step network from `checkpoint` into output_dir (model.onnx, model.int8.onnx with
    --int8), check it under onnxruntime against torch and write export.json with the errors."""
    from physworld.fileio import atomic_write_json, check_output_path

    check_output_path(output_dir, "--output-dir")
    if int8 and calibration_data is None:
        raise ValueError(
            "--int8 needs --calibration-data DATA_DIR (a dataset whose scenes calibrate the ranges)"
        )
    if calibration_data is not None and not Path(calibration_data).is_dir():
        raise ValueError(f"--calibration-data {calibration_data}: no such dataset directory")
    check_provider(provider)
    family, model = load_family_model(family, checkpoint)
    spec = NETWORKS[family](model)
    if calibration_data is not None:
        check = list(spec["feeds"](model, calibration_data, max_batches=calibration_batches))
        if not check:
            raise ValueError(f"--calibration-data {calibration_data}: no scenes long enough to make a step")
    else:
        check = [{name: x.numpy() for name, x in zip(spec["input_names"], spec["example"], strict=True)}]
    output_dir = Path(output_dir)  # created only once the inputs have all been read
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fp32 = export_onnx(model, family, output_dir / "model.onnx")
    summary = {
        "family": family,
        "checkpoint": str(checkpoint),
        "provider": provider,
        "inputs": spec["input_names"],
        "outputs": spec["output_names"],
        "checked_on": "calibration data" if calibration_data is not None else "random example inputs",
        "fp32": {"path": fp32.name, "bytes": fp32.stat().st_size},
    }
    summary["fp32"]["error_vs_torch"] = max_errors(model, family, session(fp32, provider), check)
    if int8:
        q = quantize_int8(fp32, output_dir / "model.int8.onnx", check)
        summary["int8"] = {"path": q.name, "bytes": q.stat().st_size}
        summary["int8"]["error_vs_torch"] = max_errors(model, family, session(q, provider), check)
    else:  # an int8 file left by an earlier export would no longer match model.onnx
        (output_dir / "model.int8.onnx").unlink(missing_ok=True)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(output_dir / "export.json", summary)
    return summary


# ---------------------------------------------------------------- the PhysicsExpert rolled out by onnxruntime


class OnnxPhysicsExpert:
    """Quacks like a PhysicsExpert for `model_rollouts`: graphs are built by the torch model (no weights
    involved), the network runs in onnxruntime, accelerations de-normalised as PhysicsExpert.accelerations."""

    def __init__(self, model, onnx_path, provider: str = "cpu", threads: int = 0):
        self.model, self.config = model, model.config
        self.session = session(onnx_path, provider, threads)

    def eval(self):
        return self

    def accelerations(self, batch: dict) -> torch.Tensor:
        from physworld.models.physics_expert import KINEMATIC

        out = torch.from_numpy(self.session.run(None, physics_expert_inputs(self.model, batch))[0])
        accel = out * self.model.accel_std + self.model.accel_mean
        return accel.masked_fill(batch["body"][:, KINEMATIC, None] > 0.5, 0.0)


class OnnxPhysicsExpert3D:
    """Quacks like a PhysicsExpert3D for its `model_rollouts`: the 3D graph built by the torch model, the
    network in onnxruntime, accelerations de-normalised as PhysicsExpert3D.accelerations."""

    def __init__(self, model, onnx_path, provider: str = "cpu", threads: int = 0):
        self.model, self.config = model, model.config
        self.session = session(onnx_path, provider, threads)

    def eval(self):
        return self

    def accelerations(self, batch: dict) -> torch.Tensor:
        from physworld.models.physics_expert_3d import KINEMATIC

        out = torch.from_numpy(self.session.run(None, physics_expert_3d_inputs(self.model, batch))[0])
        accel = out * self.model.accel_std + self.model.accel_mean
        return accel.masked_fill(batch["body"][:, KINEMATIC, None] > 0.5, 0.0)


class OnnxSSM:
    """Quacks like a PhysicsSSM for `ssm.rollouts`: frame features by the torch model, the step (mixing,
    Mamba layers, decoder, gate) in onnxruntime, padding and kinematic masking as PhysicsSSM._decode."""

    def __init__(self, model, onnx_path, provider: str = "cpu", threads: int = 0):
        self.model, self.config = model, model.config
        self.session = session(onnx_path, provider, threads)

    def eval(self):
        return self

    def init_cache(self, scene: dict) -> dict:
        return stacked_cache(self.model.init_cache(scene))

    def step(self, state: torch.Tensor, scene: dict, cache: dict) -> tuple[torch.Tensor, dict]:
        from physworld.models.ssm import KINEMATIC

        accel, conv, hidden_state = self.session.run(None, ssm_step_inputs(self.model, state, scene, cache))
        sc, who = self.model.rows(scene)
        accel = torch.from_numpy(accel).masked_fill(scene["body"][sc, who, KINEMATIC, None] > 0.5, 0.0)
        padded = accel.new_zeros(*scene["body_mask"].shape, 3)
        padded[sc, who] = accel
        return padded, {"conv": conv, "state": hidden_state}


# family -> (its onnxruntime stand-in, its model module's batched rollout function)
RUNNERS = {
    "physics-expert": (OnnxPhysicsExpert, "physworld.models.physics_expert", "model_rollouts"),
    "physics-expert-3d": (OnnxPhysicsExpert3D, "physworld.models.physics_expert_3d", "model_rollouts"),
    "ssm": (OnnxSSM, "physworld.models.ssm", "rollouts"),
}


def load_onnx_predictor(family: str, checkpoint, onnx_path, provider: str = "cpu", threads: int = 0):
    """The family contract (families.py) with the exported step run by onnxruntime: (rollout, run info).
    The family's own rollout loop runs unchanged around it."""
    import importlib

    runner, module_name, rollout_name = RUNNERS[family]
    module = importlib.import_module(module_name)
    model, info = module.load_model(checkpoint)
    onnx_model = runner(model.eval(), onnx_path, provider, threads)
    rollouts = getattr(module, rollout_name)

    def rollout(scenes, context_frames, rollout_frames):
        return rollouts(onnx_model, scenes, context_frames, rollout_frames), [0] * len(scenes)

    return rollout, info
