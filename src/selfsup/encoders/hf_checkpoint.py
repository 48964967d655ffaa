"""Hugging Face checkpoints as starting points (``--init SOURCE``): finding the folder, reading its config.

SOURCE is a local model folder (``config.json`` + weights, as ``save_pretrained`` writes it) or a model id
(``org/name``) resolved from the local Hugging Face cache only: nothing is ever downloaded. Every mistake is
one line naming the checkpoint, what is wrong and the fix. The modality-specific builders (``hf_text``,
``hf_audio``) read the architecture from the config found here, never from selfsup's presets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SelfSupError

if TYPE_CHECKING:  # pragma: no cover - transformers is imported when a checkpoint is read
    import transformers
    from torch import nn

log = logging.getLogger("selfsup")

CONFIG_FILE = "config.json"
FOLDER_HINT = ("give a selfsup run or export folder, or a Hugging Face model folder (config.json + weights + its "
               "tokenizer or feature extractor, as save_pretrained writes it)")


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", ".\\")) or source in (".", "..") or "\\" in source


def resolve_checkpoint(source: str) -> Path:
    """The local folder of ``source``: the folder itself, or the snapshot of a model id in the local Hugging Face
    cache (``local_files_only``: never downloaded)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise SelfSupError(f"checkpoint {source}: the folder has no {CONFIG_FILE}; {FOLDER_HINT}")
        return path.resolve()
    if path.exists():
        raise SelfSupError(f"checkpoint {source}: is a file, not a model folder; {FOLDER_HINT}")
    if _looks_like_path(source):
        raise SelfSupError(f"checkpoint {source}: no such folder; {FOLDER_HINT}, or a model id in the local cache")
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        folder = Path(snapshot_download(source, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, HFValidationError (not an id), a damaged cache entry ...
        raise SelfSupError(
            f"checkpoint {source}: not a folder here and not in the local Hugging Face cache ({HF_HUB_CACHE}); "
            f"selfsup never downloads: on a machine with network run `hf download {source} --local-dir DIR`, "
            f"copy DIR here and pass --init DIR") from None
    if not (folder / CONFIG_FILE).is_file():
        raise SelfSupError(f"checkpoint {source}: its cached snapshot {folder} has no {CONFIG_FILE}; {FOLDER_HINT}")
    return folder


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' errors only, and no progress bar, while a checkpoint loads: its load report (unused pooler
    weights), resize notices and "Loading weights" bar are not for the user's terminal; selfsup checks what
    matters itself (missing weights) and says it in one line."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_hf_config(folder: Path, source: str) -> transformers.PretrainedConfig:
    """The transformers config of a checkpoint folder (offline), or one line saying why it cannot be read."""
    import transformers

    try:
        return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # ValueError (unknown model_type), OSError, JSON errors ...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SelfSupError(f"checkpoint {source}: {CONFIG_FILE} cannot be read by transformers ({reason}); "
                           f"{FOLDER_HINT}") from None


def modality_of(config: transformers.PretrainedConfig) -> str | None:
    """The selfsup modality a transformers architecture fits ("text", "image", "audio"), None when unknown."""
    from transformers.models.auto import modeling_auto as auto

    kind = config.model_type
    # audio first: a speech model with a text decoder (Whisper) also has a causal-LM class
    if kind in auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES or kind in auto.MODEL_FOR_CTC_MAPPING_NAMES:
        return "audio"
    if kind in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES or kind in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "text"
    if kind in auto.MODEL_FOR_IMAGE_MAPPING_NAMES or kind in auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        return "image"
    return None


def open_checkpoint(source: str, modality: str) -> tuple[Path, transformers.PretrainedConfig]:
    """(folder, config) of the Hugging Face checkpoint ``source`` (a folder or a cached model id) of ``modality``
    data, or one line saying why it is not one."""
    folder = resolve_checkpoint(source)
    config = load_hf_config(folder, source)
    require_modality(config, source, modality)
    return folder, config


def require_modality(config: transformers.PretrainedConfig, source: str, modality: str) -> None:
    """One line when the checkpoint's architecture does not fit ``modality``, naming its model_type and the
    modality it fits."""
    fits = modality_of(config)
    if fits == modality:
        return
    where = f"it fits {fits} data (--modality {fits})" if fits else "selfsup does not know which data it fits"
    a = "an" if modality[:1] in "aeiou" else "a"
    raise SelfSupError(f"checkpoint {source}: model_type {config.model_type!r} is not {a} {modality} model; {where}; "
                       f"give {a} {modality} checkpoint to --init")


def init_encoder(name: str, source: str, folder: Path, given: str | None) -> dict[str, str]:
    """The settings of the encoder ``name`` that loads ``source`` (found at ``folder``): one line when the user also
    named another encoder (``given``, --encoder); a folder is recorded absolute, so the run resumes and evaluates
    from anywhere, a model id as given."""
    if given not in (None, name):
        raise SelfSupError(f"--init {source} sets the architecture (encoder {name}); leave out --encoder {given}")
    recorded = str(folder) if Path(source).expanduser().is_dir() else source
    return {"encoder.name": name, "encoder.source": recorded}


def load_pretrained(auto: Any, folder: Path, source: str, config: transformers.PretrainedConfig,
                    allow_missing: tuple[str, ...] = (), **kwargs: Any) -> nn.Module:
    """``auto.from_pretrained(folder)`` offline with the checkpoint's own ``config``, or one line naming what did not
    fit: weights that cannot be read, weights whose shapes differ from the config beside them (edited after
    saving), parameters without weights (``allow_missing`` names those that may start fresh, logged: a parameter's
    own name, or a top-level module such as ``pooler``). Weights the
    model does not use (a pooler, a head) are logged."""
    try:
        with quiet_transformers():
            model, info = auto.from_pretrained(str(folder), config=config, local_files_only=True,
                                               output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    except Exception as err:  # OSError (no weights), RuntimeError/ValueError (shapes that do not fit) ...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
        raise SelfSupError(f"checkpoint {source}: its weights cannot be loaded into its own architecture "
                           f"({reason}); save the model again with save_pretrained") from None
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, saved, built = mismatched[0]
        raise SelfSupError(f"checkpoint {source}: {len(mismatched)} weight(s) do not fit the architecture in its "
                           f"{CONFIG_FILE} (e.g. {key}: {tuple(saved)} saved, {tuple(built)} expected); save the "
                           "model and its config together with save_pretrained")
    missing = sorted(info.get("missing_keys") or ())
    fresh = [key for key in missing if key.rsplit(".", 1)[-1] in allow_missing or key.split(".", 1)[0] in allow_missing]
    missing = [key for key in missing if key not in fresh]
    if missing:
        raise SelfSupError(f"checkpoint {source}: weights missing for {len(missing)} parameter(s) of "
                           f"{type(model).__name__} (e.g. {missing[0]}); save the model again with save_pretrained")
    if fresh:
        log.info("checkpoint %s: starting %s afresh (not in its weights)", source, ", ".join(fresh))
    if info.get("unexpected_keys"):  # e.g. a pooler selfsup leaves out, or a head it was not asked for
        log.info("checkpoint %s: weights not used: %s", source, ", ".join(sorted(info["unexpected_keys"])[:8]))
    return model
