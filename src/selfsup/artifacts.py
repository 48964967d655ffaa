"""Moving a trained encoder between formats: run folders, safetensors and Hugging Face exports,
embeddings files.

An export folder holds ``model.safetensors`` (the encoder's weights), ``selfsup.json`` (the encoder
config and how inputs are prepared) and, for text, the tokenizer (Hugging Face files). A
``huggingface`` export is also a folder that ``transformers.AutoModel.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load (``config.json`` + the model's own weight names; audio adds
``preprocessor_config.json`` for ``AutoFeatureExtractor``, a vision checkpoint's for ``AutoImageProcessor``; an
encoder started from a timm weights file is written in timm's Hub layout, which ``timm.create_model`` loads too);
a sequence encoder's export adds ``item_map.json``. ``load`` rebuilds the encoder from a run folder or either export without unpickling anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from . import __version__
from .encoders import INIT_KEY, Encoder, build_encoder
from .errors import SelfSupError
from .modalities import get_modality
from .checkpoint_files import BEST_FILE, check_weights, load_run_checkpoint

WEIGHTS_FILE = "model.safetensors"
META_FILE = "selfsup.json"
ENCODER_PREFIX = "method.encoder."


@dataclass
class LoadedEncoder:
    """A rebuilt encoder plus what is needed to feed it: modality, input size (image side, tokens per
    text, samples per clip, items per history), the tokenizer of a text encoder, the item map of a sequence
    encoder, the run's data settings (sequences: where the log is and its columns), provenance. The modality
    decides which of the extras it has (:meth:`~selfsup.modalities.base.Modality.load_extras`)."""

    encoder: Encoder
    modality: str
    input_size: int
    method: str
    tokenizer: Any = None
    item_map: dict[str, int] | None = None
    data: dict[str, Any] | None = None

    def meta(self, format: str = "safetensors") -> dict[str, Any]:
        meta = {"selfsup_version": __version__, "format": format, "encoder": self.encoder.config,
                "modality": self.modality, "input_size": self.input_size, "method": self.method}
        if self.data is not None:
            meta["data"] = self.data
        return meta

    def save_extras(self, out: Path) -> None:
        """The files that travel with the weights (the tokenizer of a text encoder, the item map of a sequence
        encoder)."""
        get_modality(self.modality).save_extras(self, out)


RUN_CONFIG = "config.yaml"
RUN_CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class StoredEncoder:
    """What a selfsup run or export folder says about its encoder, read without building it or touching its
    weights: the folder (absolute), its format (a run or an export's), its modality, the encoder config dict that rebuilds
    the architecture, the data settings stored with it (a run's; an export's where its modality keeps them),
    the input size and the method that trained it."""

    folder: Path
    format: str  # "run", or an export's: safetensors (selfsup's weight names), huggingface (the model's own)
    modality: str
    encoder: dict[str, Any]
    data: dict[str, Any] | None
    input_size: int
    method: str

    @property
    def export(self) -> bool:
        return self.format != "run"

    @property
    def kind(self) -> str:
        """``"run"`` or ``"export"``, for messages."""
        return "export" if self.export else "run"


def find_stored(path: str | Path) -> StoredEncoder | None:
    """The encoder stored in the selfsup run folder (config.yaml) or export folder (selfsup.json +
    model.safetensors) ``path``; None when ``path`` is neither (e.g. a Hugging Face model folder)."""
    path = Path(path).expanduser()
    if (path / META_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        meta = json.loads((path / META_FILE).read_text())
        return StoredEncoder(path.resolve(), meta.get("format", "safetensors"), get_modality(meta["modality"]).name,
                             dict(meta["encoder"]), meta.get("data"), int(meta["input_size"]), meta["method"])
    if (path / RUN_CONFIG).is_file():
        config = yaml.safe_load((path / RUN_CONFIG).read_text())
        data = config["data"]
        modality = get_modality(data["modality"])
        return StoredEncoder(path.resolve(), "run", modality.name,
                             {**modality.encoder_settings(data), **config["encoder"]}, data, modality.input_size(data),
                             config["method"]["name"])
    return None


def recorded_start(run_dir: str | Path, source: str | Path) -> StoredEncoder | None:
    """What the run ``run_dir`` recorded of the selfsup folder ``source`` it started from (``encoder.init_from``),
    once ``source`` is gone: its own encoder and data settings, standing for the start's when the run resumes.
    None when ``source`` exists or the run did not start from it."""
    source = Path(source).expanduser().resolve()
    run = find_stored(run_dir) if not source.exists() else None
    if run is None or run.export or run.encoder.get(INIT_KEY) != str(source):
        return None
    return replace(run, folder=source)


def _from_run(run_dir: Path) -> LoadedEncoder:
    ckpt = run_dir / RUN_CHECKPOINTS / "last.ckpt"
    stored = find_stored(run_dir)
    if stored is None:
        raise SelfSupError(f"{run_dir}: not a selfsup run folder (no {RUN_CONFIG}); run `selfsup pretrain` first")
    if not ckpt.exists() and not ckpt.with_name(BEST_FILE).exists():
        raise SelfSupError(f"{run_dir}: no checkpoint yet (checkpoints/last.ckpt); run or resume `selfsup pretrain`")
    modality = get_modality(stored.modality)
    encoder = build_encoder(stored.encoder, initial_weights=False)  # the run's own weights are loaded below
    fix = "pretrain again: into a new --out folder, or here after moving the damaged files out of checkpoints/"
    used, checkpoint = load_run_checkpoint(ckpt.parent, "using", fix)
    weights = {k[len(ENCODER_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(ENCODER_PREFIX)}
    check_weights(used, weights, encoder.state_dict(), f"the encoder in {RUN_CONFIG}", fix)
    encoder.load_state_dict(weights)
    return LoadedEncoder(encoder.eval(), modality.name, stored.input_size, stored.method,
                         **modality.load_extras(run_dir, stored.data, export=False))


def _from_export(folder: Path) -> LoadedEncoder:
    stored = find_stored(folder)
    assert stored is not None and stored.export  # load() checked for the two files
    encoder = build_encoder(stored.encoder, initial_weights=False)  # the export's own weights are loaded below
    load_export = getattr(encoder, "load_export", None)  # an image encoder: read by its own library (timm, AutoModel)
    if stored.format == "huggingface" and load_export is not None:
        load_export(folder)
    elif stored.format == "huggingface":  # the transformers model's own weight names
        weights = load_file(str(folder / WEIGHTS_FILE))
        missing, unexpected = encoder.hf_model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) - {"masked_spec_embed"}:  # an audio export leaves out the mask vector
            raise SelfSupError(f"{folder}: weights do not match the encoder in {META_FILE} "
                               f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); re-export the run")
    else:
        encoder.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    modality = get_modality(stored.modality)
    return LoadedEncoder(encoder.eval(), modality.name, stored.input_size, stored.method,
                         **modality.load_extras(folder, stored.data, export=True))


def load(path: str | Path) -> LoadedEncoder:
    """Rebuild the encoder stored in a run folder or a safetensors export folder."""
    path = Path(path).expanduser()
    if (path / META_FILE).exists() and (path / WEIGHTS_FILE).exists():
        return _from_export(path)
    if path.is_dir():
        return _from_run(path)
    raise SelfSupError(f"{path}: not a run folder or an export folder (expected {RUN_CONFIG} or {META_FILE})")


def export_safetensors(loaded: LoadedEncoder, out: str | Path) -> Path:
    """``model.safetensors`` (selfsup's weight names) + ``selfsup.json`` (+ the tokenizer of a text encoder, the
    ``item_map.json`` of a sequence encoder)."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    state, seen = {}, set()
    for key, value in loaded.encoder.state_dict().items():  # tied weights (BART's embeddings) are written per name
        state[key] = value.clone() if value.data_ptr() in seen else value.contiguous()
        seen.add(value.data_ptr())
    save_file(state, str(out / (WEIGHTS_FILE + ".tmp")))
    (out / (WEIGHTS_FILE + ".tmp")).replace(out / WEIGHTS_FILE)
    loaded.save_extras(out)
    (out / META_FILE).write_text(json.dumps(loaded.meta(), indent=2))
    return out


def export_huggingface(loaded: LoadedEncoder, out: str | Path) -> Path:
    """A folder that ``transformers.AutoModel.from_pretrained(out)`` loads offline, with
    ``AutoTokenizer.from_pretrained(out)`` (text) or ``AutoFeatureExtractor.from_pretrained(out)`` (audio);
    mean-pool ``last_hidden_state`` over the (frame) attention mask for selfsup's embedding (images: the model's
    own image embedding, with ``AutoImageProcessor.from_pretrained(out)``). ``selfsup.json`` lets selfsup load it
    back too."""
    save = getattr(loaded.encoder, "save_pretrained", None)
    if save is None:
        raise SelfSupError(f"--format huggingface needs a transformers encoder or one started from a timm weights "
                           f"file; {loaded.encoder.config.get('name')!r} is not one: use --format safetensors")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    save(str(out))
    loaded.save_extras(out)
    (out / META_FILE).write_text(json.dumps(loaded.meta(format="huggingface"), indent=2))
    return out


def write_embeddings(embeddings: torch.Tensor, paths: list[Path] | list[str], out: str | Path, key: str = "path") -> Path:
    """``.npy`` (float32 [N, D], rows in the order of ``paths``) or ``.parquet`` (``key`` column: the path or
    text of each row, + embedding)."""
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, embeddings.float().numpy())
    elif out.suffix == ".parquet":
        from .embedding.parts import require_pyarrow, embeddings_table

        require_pyarrow()[1].write_table(embeddings_table(embeddings, list(paths), key), out)
    else:
        raise SelfSupError(f"{out}: unsupported embeddings file type; use .npy or .parquet")
    return out
