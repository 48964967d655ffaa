"""The Python face of selfsup: pretrain, evaluate, embed, inspect, export, load, report.

Each function assembles inputs and calls the layer that does the work; the CLI calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, apply_dict, check_arguments, parse_overrides, set_value
from .encoders import Encoder, build_encoder
from .errors import SelfSupError


def _device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def pretrain(
    data: str | Path,
    method: str | None = None,
    out: str | Path = "runs/selfsup",
    *,
    encoder: str | None = None,
    epochs: int | None = None,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    modality: str | None = None,
    encoding: str | None = None,
    tokenizer: str | None = None,
    vocab_size: int | None = None,
    max_length: int | None = None,
    sample_rate: int | None = None,
    clip_seconds: float | None = None,
    seed: int | None = None,
    precision: str | None = None,
    strict: bool | None = None,
    cache: str | None = None,
    accelerator: str | None = None,
    devices: int | str | None = None,
    num_nodes: int | None = None,
    strategy: str | None = None,
    num_workers: int | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    progress_bar: bool | None = None,
    init: str | Path | None = None,
    logger: str | None = None,
    probe: str | Path | None = None,
    on_collapse: str | None = None,
) -> Path:
    """Pretrain an encoder on unlabeled data into the run folder ``out`` (resumes if it exists).

    Settings are layered: defaults < ``config`` (YAML path or dict) < keyword arguments <
    ``overrides`` (``{"optim.lr": 1e-3}`` or ``["optim.lr=1e-3"]``). Returns the run folder, which ends with
    ``report.html`` (:func:`report`; a failure to write it is a warning).

    ``method="auto"``: pilot the modality's shortlist of methods on a share of the budget, score each without labels
    (RankMe, α-ReQ; with ``trainer.probe`` also the probe's kNN accuracy) and continue the best into ``out``
    (``selfsup.train.auto``); config.yaml's ``auto`` section records the candidates, scores and choice.

    ``init``: start from a checkpoint instead of random weights: a selfsup run or export folder of the same
    modality (its encoder architecture and weights, with the data preparation they depend on: tokenizer, image
    size, sample rate, item map, which grows by the new log's items), or a Hugging Face model folder or a model id
    in the local Hugging Face cache (text: its architecture, weights, LM head and tokenizer; audio: its
    architecture, weights, wav2vec 2.0 quantiser and feature extractor, whose sample rate the run takes;
    images: a vision model folder, or a weights file with ``encoder`` naming its timm architecture).

    ``logger``: ``"csv"`` (default: ``metrics.csv`` only), or ``"tensorboard"``, ``"mlflow"``, ``"wandb"``, each
    writing offline into ``out`` beside ``metrics.csv`` (see ``selfsup.train.logger``).
    ``probe``: a labelled set (as ``evaluate`` takes for ``train``) scored by kNN and a linear probe while training
    (``probe/knn``, ``probe/linear`` in metrics.csv); ``on_collapse``: ``"warn"`` (default) or ``"stop"`` when the
    health metrics show collapse (``RUN/health.json``; see :mod:`selfsup.train.health`).
    """
    from .train.run import pretrain_run

    cfg = RunConfig()
    if isinstance(config, Mapping):
        apply_dict(cfg, dict(config), "config")
    elif config is not None:
        cfg = RunConfig.load(config)
    flags = {
        "data.path": str(data), "method.name": method, "encoder.name": encoder, "trainer.epochs": epochs,
        "trainer.max_minutes": max_minutes, "trainer.max_steps": max_steps, "trainer.batch_size": batch_size, "data.image_size": image_size,
        "trainer.seed": seed, "trainer.precision": precision, "data.strict": strict, "trainer.progress_bar": progress_bar,
        "data.cache": cache, "trainer.accelerator": accelerator, "trainer.devices": devices,
        "trainer.num_nodes": num_nodes, "trainer.strategy": strategy, "trainer.num_workers": num_workers,
        "data.modality": modality, "data.encoding": encoding, "data.tokenizer": tokenizer,
        "data.vocab_size": vocab_size, "data.max_length": max_length, "data.sample_rate": sample_rate,
        "data.clip_seconds": clip_seconds, "trainer.logger": logger,
        "trainer.probe": None if probe is None else str(probe), "trainer.on_collapse": on_collapse,
    }
    for key, value in flags.items():
        if value is not None:
            set_value(cfg, key, value, source="argument")
    if init is not None:
        from .modalities import get_modality

        for key, value in get_modality(cfg.data.modality).init_settings(str(init), cfg, run_dir=out).items():
            if key.startswith("data.") and flags.get(key) is not None:
                continue  # a data setting the user gave (--image-size 32, the default) wins over the checkpoint's
            set_value(cfg, key, value, source="--init")
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:  # "key=value" strings, as on the command line
        items = parse_overrides([overrides] if isinstance(overrides, str) else list(overrides or []))
    for key, value in items:
        set_value(cfg, key, value)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from .train.health import CollapseStopped

    stopped: CollapseStopped | None = None
    try:
        pretrain_run(cfg, out)
    except CollapseStopped as exc:  # --on-collapse stop: the report shows why, then the one-line error
        stopped = exc
    if rank_zero_only.rank == 0:  # every DDP process runs this function; one writes the report
        report(out, quiet=True)
    if stopped is not None:
        raise stopped
    return Path(out)


def load(path: str | Path) -> Encoder:
    """The encoder stored in a run folder or a safetensors export, rebuilt from safe formats only.

    ``encoder.config`` describes its architecture and input size.
    """
    from .artifacts import load as load_stored

    return load_stored(path).encoder


def evaluate(
    run: str | Path,
    train: str | Path | None = None,
    test: str | Path | None = None,
    *,
    protocols: Iterable[str] = ("knn", "linear", "finetune"),
    label_fractions: Iterable[float] = (0.01, 0.1, 1.0),
    baseline: str | Iterable[str] | None = "scratch",
    json_path: str | Path | None = None,
    seed: int = 0,
    finetune_steps: int | None = None,
    encoding: str = "utf-8",
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    label_minutes: Iterable[float] | None = None,
    save_finetuned: str | Path | None = None,
):
    """Label-efficiency evaluation of a run's encoder (and baselines) on labeled data.

    ``baseline``: ``"scratch"`` (the same architecture, randomly initialised), ``"init"`` (a run started from a
    checkpoint with ``init=``: that checkpoint, unadapted; fine-tuned from it for ``finetune``), ``"teacher"`` (a
    ``distill`` run: its teacher, rebuilt from ``method.teacher``; fine-tuned for ``finetune``), ``"tfidf"`` (text:
    TF-IDF + logistic regression), ``"mfcc"`` (audio: MFCC statistics + logistic regression), ``"pixels"`` (images:
    raw pixels shrunk to 8 px + logistic regression), several (``"scratch,tfidf"`` or a list), or None / ``"none"``.
    For text,
    ``protocols=["similarity"]`` scores the sentence pairs in ``test`` (``train`` may be None). For a sequence
    run, ``protocols=["ranking"]`` is leave-one-out next-item ranking on the run's own log (no files; a
    popularity baseline is always added), and ``train``/``test`` are ``user,label`` files for user attributes.
    Downstream tasks with paired data run on their own: ``protocols=["asr"]`` (audio: a CTC head fine-tuned on
    ``label_minutes`` of transcribed speech; ``cer``, ``wer``) and ``protocols=["translation"]`` (text: an
    encoder-decoder fine-tuned on ``label_fractions`` of sentence pairs; ``bleu``, ``chrf``); ``save_finetuned``
    keeps the best fine-tuned model of the largest budget there (a Hugging Face folder).
    Writes ``json_path`` (default ``RUN/eval.json``) and ``RUN/plots/label_efficiency.png``, keeps a sample of the
    test embeddings for the report (``RUN/embedding_sample.npz``) and refreshes ``RUN/report.html``;
    returns the list of :class:`selfsup.evaluation.EvalResult`.
    """
    from .artifacts import load as load_stored
    from .evaluation import plot_label_efficiency, write_json
    from .report.embeddings import SAMPLE_FILE
    from .encoders import starts_from_checkpoint
    from .evaluation.downstream import check_request, evaluate_labeled, evaluate_pairwise, evaluate_task
    from .evaluation.tasks import TaskRequest
    from .modalities import get_modality_info
    from .teachers import rebuild_teacher, teacher_record

    label_fractions = list(label_fractions)
    check_arguments("evaluate", label_fractions=label_fractions, seed=seed, finetune_steps=finetune_steps)
    if label_minutes is not None:
        label_minutes = list(label_minutes)
        check_arguments("evaluate", label_minutes=label_minutes)
    run = Path(run).expanduser()
    loaded = load_stored(run)
    if baseline is None or isinstance(baseline, str):
        baselines = [b.strip() for b in (baseline or "none").split(",") if b.strip() and b.strip() != "none"]
    else:
        baselines = [b for b in baseline if b != "none"]
    protocols = list(protocols)
    record = teacher_record(run)
    check_request(loaded.modality, protocols, baselines, train, test,
                  from_checkpoint=starts_from_checkpoint(loaded.encoder.config), distilled=record is not None)
    teacher = rebuild_teacher(run, record) if "teacher" in baselines else None
    if teacher is not None and progress is not None:
        counts = record["parameters"]
        progress(f"[teacher] {record['source']}: {counts['teacher']:,} parameters; the distilled student: "
                 f"{counts['student']:,}")
    info = get_modality_info(loaded.modality)
    if set(protocols) & set(info.task_protocols):
        results = evaluate_task(loaded, TaskRequest(
            protocols[0], Path(train), Path(test), [float(f) for f in label_fractions], baselines, seed=seed,
            device=_device(device), encoding=encoding, finetune_steps=finetune_steps,
            label_minutes=None if label_minutes is None else [float(m) for m in label_minutes],
            save_finetuned=None if save_finetuned is None else Path(save_finetuned),
            progress=progress or (lambda _line: None)))
    elif info.pairwise_protocol in protocols:
        results = evaluate_pairwise(loaded, test, baselines, seed, _device(device), encoding=encoding, teacher=teacher)
    else:
        results = evaluate_labeled(loaded, train, test, protocols, [float(f) for f in label_fractions], baselines,
                                   seed, _device(device), encoding=encoding, finetune_steps=finetune_steps,
                                   progress=progress, teacher=teacher, sample_to=run / SAMPLE_FILE)
    write_json(results, Path(json_path) if json_path else run / "eval.json")
    if any(r.n_labels > 0 for r in results):
        plot_label_efficiency(results, run / "plots" / "label_efficiency.png")
    report(run, quiet=True)
    return results


def report(run: str | Path, *, device: str | None = None, quiet: bool = False) -> Path | None:
    """Write ``RUN/report.html`` (settings, data quality, curves and health, method choice, label efficiency, an
    embedding map and nearest neighbours) and return its path. ``quiet``: a failure is a warning and None (what
    ``pretrain`` and ``evaluate`` do at their end), not an error."""
    from .report import refresh_report, write_report

    return refresh_report(run) if quiet else write_report(run, device=device)


def embed(run: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 256,
          device: str | None = None, strict: bool = False, encoding: str = "utf-8", text_field: str = "text",
          part_rows: int | None = None, overwrite: bool = False, progress: bool | None = None) -> Path:
    """Embeddings of every image under ``data`` (every text of a text run: one per line / record; every recording
    of an audio run, centre-cropped to the run's clip length; folders or shards) with the run's encoder, to ``.npy``
    (small inputs) or ``.parquet`` (with the path or text of each row). For a sequence run ``data`` is an
    interaction log: ``out`` gets one row per user (its pooled history) and ``NAME.items.EXT`` next to it one row
    per item.

    Inputs are streamed a batch at a time. Parquet is written in parts of ``part_rows`` inputs (default 100,000):
    ``out`` is one file when one part holds everything, else a folder of parts that ``pandas.read_parquet(out)``
    reads as one table (``out`` without a suffix: always a folder). An interrupted run continues where it stopped
    when run again with the same arguments; ``overwrite`` replaces an output made from another run, data or
    settings (refused otherwise). ``progress``: a progress bar on stderr (None: on a terminal only)."""
    return embed_files(run, data, out, batch_size=batch_size, device=device, strict=strict, encoding=encoding,
                       text_field=text_field, part_rows=part_rows, overwrite=overwrite, progress=progress)["embeddings"]


def embed_files(run: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 256,
                device: str | None = None, strict: bool = False, encoding: str = "utf-8",
                text_field: str = "text", part_rows: int | None = None, overwrite: bool = False,
                progress: bool | None = None, on_part: Callable[[int, Path], None] | None = None) -> dict[str, Path]:
    """:func:`embed`, returning every file written by label (``"embeddings"``; a sequence run adds
    ``"item embeddings"``); ``on_part(index, path)`` is called after each parquet part is written."""
    from .artifacts import load as load_stored
    from .embedding import EmbedOptions
    from .embedding.source import DEFAULT_PART_ROWS
    from .modalities import get_modality

    part_rows = DEFAULT_PART_ROWS if part_rows is None else part_rows
    check_arguments("embed", batch_size=batch_size, part_rows=part_rows)
    loaded = load_stored(run)
    options = EmbedOptions(part_rows=part_rows, overwrite=overwrite, progress=progress, on_part=on_part, run=str(run))
    return get_modality(loaded.modality).embed(loaded, data, out, batch_size, _device(device), strict=strict,
                                               encoding=encoding, text_field=text_field, options=options)


def translate(model: str | Path, input: str | Path, out: str | Path | None = None, *, num_beams: int | None = None,
              device: str | None = None, encoding: str = "utf-8") -> list[str]:
    """Translate every line of ``input`` (empty lines stay empty) with a model saved by
    ``evaluate(..., protocols=["translation"], save_finetuned=DIR)``; beam search (``num_beams``: the model's, 4,
    when None). Writes ``out`` (one translation a line) when given; returns the translations."""
    from .modalities import task_modality

    if num_beams is not None and num_beams < 1:
        raise SelfSupError(f"--num-beams {num_beams}: use 1 (greedy) or more")
    return task_modality("translation").apply_task("translation", model, [input], out, num_beams=num_beams,
                                                   device=_device(device), encoding=encoding)


def transcribe(model_dir: str | Path, audio: str | Path | Iterable[str | Path], *, out: str | Path | None = None
               ) -> list[tuple[Path, str]]:
    """(file, transcript) of every recording under ``audio`` (files, folders, list files) by the speech recogniser
    ``evaluate(..., protocols=["asr"], save_finetuned=DIR)`` saved (greedy CTC decoding, no network); ``out``: also
    written there as ``path<TAB>transcript`` lines."""
    from .modalities import task_modality

    items = [audio] if isinstance(audio, (str, Path)) else list(audio)
    return task_modality("asr").apply_task("asr", model_dir, items, out)


def shard(data: str | Path, out: str | Path, *, shard_size: str | int = "512MB", modality: str | None = None,
          encoding: str = "utf-8", text_field: str = "text", progress: bool = True) -> dict[str, Any]:
    """Write the samples under ``data`` (a folder, file list, text file or log of ``modality``, default image) into
    shards of at most ``shard_size`` in the new folder ``out``: WebDataset tar shards of the original files (images,
    audio) or parquet shards (texts, logs), labels kept, and ``shards.json``. ``selfsup pretrain``, ``evaluate``
    and ``embed`` read the folder, a pattern of its shards or their URLs. Returns a summary (folder, shards,
    samples, classes)."""
    from . import __version__
    from .config import DataConfig
    from .modalities import get_modality
    from .shards.write import parse_size, write_shards

    name = modality or DataConfig().modality
    max_bytes = shard_size if isinstance(shard_size, int) else parse_size(shard_size)
    source = get_modality(name).shard_source(data, encoding=encoding, text_field=text_field)
    return write_shards(source, out, max_bytes, {"modality": name, "source": str(data), "format": source.format,
                                                 "selfsup": __version__}, progress=progress)


def inspect(data: str | Path, *, run: str | Path | None = None, against: str | Path | None = None,
            modality: str | None = None, json_path: str | Path | None = None, write_clean: str | Path | None = None,
            threshold: float | None = None, outlier_k: int = 5, max_outliers: int = 20, block: int = 1024,
            encoding: str | None = None, batch_size: int = 256, device: str | None = None):
    """Data quality of ``data`` (any modality): unreadable items, exact duplicates (content digest), near-duplicates
    (cosine of the ``run``'s encoder embeddings, else a cheap default: perceptual hash for images, MinHash of word
    shingles for text, log-mel for audio, MinHash of item sets for sequences; ``threshold`` overrides its default),
    leaks into ``against`` (a test set), outliers (1 - cosine to the ``outlier_k``-th neighbour), class balance and
    distributions. Writes ``json_path``, ``RUN/inspection.json`` with a run, and ``write_clean`` (the items to keep,
    one per line). Returns :class:`selfsup.inspection.Findings` (``.to_json()``: the JSON document)."""
    from .inspection import Settings, inspect_data

    check_arguments("inspect", threshold=threshold, batch_size=batch_size, outlier_k=outlier_k, max_outliers=max_outliers, block=block)
    settings = Settings(threshold=threshold, outlier_k=outlier_k, max_outliers=max_outliers, block=block)
    findings, _ = inspect_data(data, run=run, against=against, modality=modality, json_path=json_path,
                               clean_path=write_clean, settings=settings, encoding=encoding, device=_device(device),
                               batch_size=batch_size)
    return findings


EXPORT_FORMATS = ("safetensors", "huggingface", "onnx")


def export(run: str | Path, out: str | Path, *, format: str = "safetensors") -> Path:
    """Write the run's encoder in ``format`` to the folder ``out``: ``safetensors`` (any encoder) or
    ``huggingface`` (text and audio encoders: ``transformers.AutoModel`` with ``AutoTokenizer`` /
    ``AutoFeatureExtractor.from_pretrained(out)``) or ``onnx`` (any encoder: ``model.onnx`` from raw inputs to the
    embedding, :mod:`selfsup.onnx_export`; needs the ``selfsup[onnx]`` extra)."""
    from .artifacts import export_huggingface, export_safetensors, load as load_stored
    from .onnx_export import export_onnx, require_onnx

    if format not in EXPORT_FORMATS:
        raise SelfSupError(f"export format {format!r} is not supported yet; available: {', '.join(EXPORT_FORMATS)}")
    if format == "onnx":
        require_onnx()  # before the run is loaded
    writer = {"huggingface": export_huggingface, "onnx": export_onnx}.get(format, export_safetensors)
    return writer(load_stored(run), out)
