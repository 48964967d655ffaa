"""``selfsup export RUN --format onnx``: the encoder as one ONNX graph that takes what a user has.

The modality builds the graph (:meth:`~selfsup.modalities.base.Modality.onnx_graph`): a module from the raw
inputs (uint8 ``pixels``, ``input_ids`` + ``attention_mask``, ``waveform`` + ``attention_mask``, ``item_ids``) to
``embedding`` [B, D] (what ``selfsup embed`` writes) and the token states [B, T, D], with the preprocessing that
``selfsup embed`` does on tensors (normalisation) inside it, and an example batch. This module exports it with
PyTorch's dynamo exporter (``torch.onnx.export(dynamo=True)``, via onnxscript), runs the file with onnxruntime on
the example batch and compares both outputs with PyTorch's; where the dynamo exporter fails or disagrees it falls
back to the TorchScript exporter (``dynamo=False``). ``selfsup.json`` beside ``model.onnx`` records which one
was used, the inputs and outputs, and how to prepare the inputs; the modality writes its files beside it too
(the tokenizer, the item map).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import SelfSupError

if TYPE_CHECKING:  # pragma: no cover
    from .artifacts import LoadedEncoder

MODEL_FILE = "model.onnx"
OUTPUTS = ("embedding", "tokens")
OPSET = 18
TOLERANCE = 1e-4  # onnxruntime against PyTorch on CPU, both outputs
EXTRA = "pip install 'selfsup[onnx]'"


@dataclass
class OnnxGraph:
    """What a modality exports: ``module`` maps the named ``inputs`` (an example batch, in the graph's input
    order) to (embedding [B, D], token states [B, T, D]); ``dynamic`` names the axes that vary per input
    ({input: {axis: name}}: batch, and length where inputs have one); ``settings`` say how to prepare the inputs
    (image size, sample rate, longest input, padding id) and are written into ``selfsup.json``."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    dynamic: dict[str, dict[int, str]]
    settings: dict[str, Any] = field(default_factory=dict)


def require_onnx() -> None:
    """One line naming the extra when onnx, onnxruntime or onnxscript is missing."""
    missing = []
    for package in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise SelfSupError(f"--format onnx needs {', '.join(missing)}: {EXTRA}, or use --format safetensors")


def run_onnx(path: str | Path, inputs: dict[str, Any]) -> list[Any]:
    """The outputs (numpy arrays: embedding, tokens) of the ONNX file ``path`` run by onnxruntime on CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: value.numpy() if isinstance(value, torch.Tensor) else value for name, value in inputs.items()}
    return session.run(list(OUTPUTS), feed)


def _name_outputs(model: Any) -> None:
    """Name the graph outputs of the dynamo exporter's ``onnx_ir`` model :data:`OUTPUTS`, renaming the inner values
    that already carry those names (``torch.embedding``'s output is called ``embedding``)."""
    graph = model.graph
    values = [value for node in graph.all_nodes() for value in node.outputs]
    taken = {value.name for value in values} | set(graph.initializers) | {value.name for value in graph.inputs}
    for value, name in zip(graph.outputs, OUTPUTS):
        for other in values:
            if other.name == name and other is not value:
                suffix = 1
                while f"{name}_{suffix}" in taken:
                    suffix += 1
                other.name = f"{name}_{suffix}"
                taken.add(other.name)
        value.name = name


def _export(graph: OnnxGraph, path: Path, dynamo: bool) -> None:
    args = tuple(graph.inputs.values())
    kwargs: dict[str, Any] = {"input_names": list(graph.inputs), "opset_version": OPSET, "dynamo": dynamo}
    if dynamo:  # dynamic axes as torch.export dimensions (sizes 0 and 1 specialise: the example batch has neither)
        kwargs["dynamic_shapes"] = tuple({axis: torch.export.Dim.DYNAMIC for axis in graph.dynamic[name]}
                                         for name in graph.inputs)
        kwargs["verbose"] = False
    else:
        kwargs["output_names"] = list(OUTPUTS)
        kwargs["dynamic_axes"] = {**graph.dynamic, "embedding": {0: "batch"}, "tokens": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        exported = torch.onnx.export(graph.module, args, None if dynamo else str(path), **kwargs)
    if dynamo:
        _name_outputs(exported.model)
        exported.save(str(path))


def _check(path: Path, graph: OnnxGraph, expected: tuple[torch.Tensor, ...]) -> None:
    """onnxruntime's outputs equal PyTorch's on the example batch (within :data:`TOLERANCE`), or AssertionError."""
    got = run_onnx(path, graph.inputs)
    for name, ours, theirs in zip(OUTPUTS, expected, got):
        ours = ours.float().numpy()
        if ours.shape != theirs.shape or abs(ours - theirs).max() > TOLERANCE:
            raise AssertionError(f"{name} differs from PyTorch's (shape {theirs.shape} vs {ours.shape}, largest "
                                 f"difference {abs(ours - theirs).max() if ours.shape == theirs.shape else '-'})")


def export_onnx(loaded: LoadedEncoder, out: str | Path) -> Path:
    """``out/model.onnx`` (inputs and outputs as in the module doc; dynamic batch, and length where the input
    has one) + ``selfsup.json`` (``format: onnx``, the ``onnx`` section: exporter, opset, inputs, outputs,
    preprocessing settings) + the modality's files (tokenizer, item map)."""
    from .artifacts import META_FILE
    from .modalities import get_modality

    require_onnx()
    graph = get_modality(loaded.modality).onnx_graph(loaded)
    graph.module.eval()
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        expected = graph.module(*graph.inputs.values())
    tmp, failures, exporter = out / (MODEL_FILE + ".tmp"), [], None
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        for dynamo in (True, False):
            try:
                _export(graph, tmp, dynamo)
                _check(tmp, graph, expected)
            except Exception as error:  # the dynamo exporter fails on some models: the TorchScript one is next
                failures.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {str(error).splitlines()[0][:200]}"
                                if str(error) else type(error).__name__)
                continue
            exporter = "dynamo" if dynamo else "torchscript"
            break
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    if exporter is None:
        tmp.unlink(missing_ok=True)
        raise SelfSupError(f"--format onnx: encoder {loaded.encoder.config.get('name')!r} could not be exported "
                           f"({'; '.join(failures)}); use --format safetensors")
    tmp.replace(out / MODEL_FILE)
    for stale in out.glob(MODEL_FILE + ".tmp*"):
        stale.unlink()
    loaded.save_extras(out)
    meta = loaded.meta(format="onnx")
    meta["onnx"] = {"file": MODEL_FILE, "exporter": exporter, "opset": OPSET,
                    "inputs": {name: {"dtype": str(value.dtype).removeprefix("torch."),
                                      "shape": [graph.dynamic[name].get(axis, size)
                                                for axis, size in enumerate(value.shape)]}
                               for name, value in graph.inputs.items()},
                    "outputs": list(OUTPUTS), **graph.settings}
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return out
