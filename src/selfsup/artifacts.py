"""Moving a trained encoder between formats: run folders, safetensors exports, embeddings files.

An export folder holds ``model.safetensors`` (the encoder's weights) and ``selfsup.json`` (the
encoder config and how inputs are prepared); ``load`` rebuilds the encoder from either an export
folder or a run folder without unpickling anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from . import __version__
from .encoders import Encoder, build_encoder
from .errors import SelfSupError
from .train.checkpoint import load_checkpoint

WEIGHTS_FILE = "model.safetensors"
META_FILE = "selfsup.json"
ENCODER_PREFIX = "method.encoder."


@dataclass
class LoadedEncoder:
    """A rebuilt encoder plus what is needed to feed it: modality, input size, provenance."""

    encoder: Encoder
    modality: str
    input_size: int
    method: str

    def meta(self) -> dict[str, Any]:
        return {"selfsup_version": __version__, "encoder": self.encoder.config, "modality": self.modality,
                "input_size": self.input_size, "method": self.method}


def _from_run(run_dir: Path) -> LoadedEncoder:
    config_path = run_dir / "config.yaml"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not config_path.exists():
        raise SelfSupError(f"{run_dir}: not a selfsup run folder (no config.yaml); run `selfsup pretrain` first")
    if not ckpt.exists():
        raise SelfSupError(f"{run_dir}: no checkpoint yet (checkpoints/last.ckpt); run or resume `selfsup pretrain`")
    config = yaml.safe_load(config_path.read_text())
    size = int(config["data"]["image_size"])
    encoder = build_encoder({"image_size": size, **config["encoder"]})
    state = load_checkpoint(ckpt)["state_dict"]
    weights = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    encoder.load_state_dict(weights)
    return LoadedEncoder(encoder.eval(), config["data"]["modality"], size, config["method"]["name"])


def _from_export(folder: Path) -> LoadedEncoder:
    meta = json.loads((folder / META_FILE).read_text())
    encoder = build_encoder(meta["encoder"])
    encoder.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return LoadedEncoder(encoder.eval(), meta["modality"], int(meta["input_size"]), meta["method"])


def load(path: str | Path) -> LoadedEncoder:
    """Rebuild the encoder stored in a run folder or a safetensors export folder."""
    path = Path(path).expanduser()
    if (path / META_FILE).exists() and (path / WEIGHTS_FILE).exists():
        return _from_export(path)
    if path.is_dir():
        return _from_run(path)
    raise SelfSupError(f"{path}: not a run folder or an export folder (expected config.yaml or {META_FILE})")


def export_safetensors(loaded: LoadedEncoder, out: str | Path) -> Path:
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in loaded.encoder.state_dict().items()}
    save_file(state, str(out / (WEIGHTS_FILE + ".tmp")))
    (out / (WEIGHTS_FILE + ".tmp")).replace(out / WEIGHTS_FILE)
    (out / META_FILE).write_text(json.dumps(loaded.meta(), indent=2))
    return out


def write_embeddings(embeddings: torch.Tensor, paths: list[Path], out: str | Path) -> Path:
    """``.npy`` (float32 [N, D], rows in the order of ``paths``) or ``.parquet`` (path + embedding)."""
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    array = embeddings.float().numpy()
    if out.suffix == ".npy":
        np.save(out, array)
    elif out.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SelfSupError("writing .parquet needs pyarrow: pip install 'selfsup[parquet]', or use an .npy file") from None
        table = pa.table({"path": [str(p) for p in paths],
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])})
        pq.write_table(table, out)
    else:
        raise SelfSupError(f"{out}: unsupported embeddings file type; use .npy or .parquet")
    return out
