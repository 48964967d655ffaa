"""What a modality provides: the one interface the rest of selfsup asks about data (DESIGN.md §3).

A modality is a package under ``selfsup/modalities/`` that registers a :class:`ModalityInfo` (metadata,
importable without torch) pointing at a :class:`Modality` subclass (the implementation, imported when a run
needs it). Outside ``modalities/`` no code branches on a modality: it asks the registry
(:func:`selfsup.modalities.get_modality`) and calls these methods.

A modality provides:

- **reading**: unlabeled training data (:meth:`Modality.load_train_data`: readers, cache or stream, the
  loader), labeled evaluation data (:meth:`Modality.read_labeled`), and what is embedded (:meth:`embed`);
  DATA split into a training part and a held-out part (:meth:`Modality.hold_out`, ``--method auto``'s scoring);
- **settings**: its defaults (method, encoder per encoder kind) here, its ``data.*`` settings with their
  ranges in its package ``__init__`` (``SETTINGS``), the input size a run was built with
  (:meth:`input_size`);
- **run-folder and export extras**: the files that travel with the weights (tokenizer, item map:
  :meth:`load_extras`, :meth:`save_extras`) and those written while the data is prepared
  (:attr:`ModalityInfo.prepared_files`);
- **evaluation**: its baselines (tfidf, mfcc, pixels, popularity), its label-free protocol (similarity, ranking),
  the transforms that feed an encoder while fine-tuning and extracting features;
- **the run report** (``RUN/report.html``): a sample of its data embedded (:meth:`report_sample`) and how one
  sample is shown (:meth:`report_items`: a thumbnail, a snippet, a waveform, a history);
- **inspection** (``selfsup inspect``): its items read once with a content digest, a cheap embedding (or a run's
  encoder's), statistics and labels (:meth:`Modality.inspect_items`); duplicates, leaks and outliers are found
  by the modality-free engine in :mod:`selfsup.inspection`;
- **what generic methods ask for**: two views of a batch (:meth:`two_views`: SimCLR, SimCSE, COLA), one view
  (:meth:`one_view`: distillation), the
  masked student input and the teacher's target normalisation (:meth:`masked_inputs`,
  :meth:`normalize_targets`: data2vec).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SelfSupError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..artifacts import LoadedEncoder, StoredEncoder
    from ..config import DataConfig, RunConfig
    from ..embedding import EmbedOptions, EmbedSource
    from ..evaluation.label_efficiency import EvalResult
    from ..evaluation.tasks import TaskRequest
    from ..inspection.items import InspectedItems
    from ..onnx_export import OnnxGraph
    from ..shards.sources import ShardSet
    from ..shards.write import ShardSource
    from ..train.sources import TrainData

DEFAULT_KIND = "any"
"""The encoder kind of a method with no special need (see :attr:`ModalityInfo.default_encoders`)."""


@dataclass(frozen=True)
class ModalityInfo:
    """A modality's metadata, readable without importing torch (``selfsup methods``, ``--help``).

    ``default_encoders`` maps an encoder *kind* a method asks for (``Method.encoder_kind``: ``"any"``,
    ``"transformer"``) to the encoder trained when the user names none; ``implementation`` is
    ``"module:Class"`` of the :class:`Modality` subclass; ``prepared_files`` are the names data preparation
    writes into a run folder before its config.yaml (tokenizer, item map).
    """

    name: str
    unit: str  # what one sample is, for messages: images, texts, recordings, histories
    data_help: str  # what DATA is, for `selfsup pretrain --help`
    default_method: str
    default_encoders: dict[str, str]
    implementation: str
    baselines: tuple[str, ...] = ()  # feature baselines besides scratch (tfidf, mfcc, pixels)
    pairwise_protocol: str | None = None  # the label-free protocol run on its own (similarity, ranking)
    pairwise_needs_test: bool = True  # False: that protocol reads its targets from the run itself (ranking)
    # downstream tasks with their own paired data, each run on its own by Modality.evaluate_task (audio: asr;
    # text: translation), and the baselines they have besides scratch and init (asr: mfcc)
    task_protocols: tuple[str, ...] = ()
    task_baselines: tuple[str, ...] = ()
    prepared_files: frozenset[str] = field(default_factory=frozenset)
    methods: tuple[str, ...] = ()  # generic methods that do not name this modality but fit it (a plug-in's)
    # `--method auto`'s shortlist: one method per family, all training the default encoder (train/auto.py)
    auto_methods: tuple[str, ...] = ()
    order: int = 100  # where it is listed (--help, `selfsup methods`); the built-ins come first

    def default_encoder(self, kind: str = DEFAULT_KIND) -> str:
        """The encoder a method of ``kind`` trains on this modality when none is named."""
        if kind not in self.default_encoders:
            raise SelfSupError(f"{self.name} data has no default encoder for methods that need a {kind} encoder; "
                               "name one with --encoder")
        return self.default_encoders[kind]


Pretext = Callable[..., dict]


@dataclass
class ItemView:
    """How the run report shows one sample: a caption (plain text; the report escapes it) and, where the modality
    has a picture of it, ``picture``: uint8 [H, W, 3] (an image's thumbnail, a recording's waveform)."""

    caption: str
    picture: Any = None


@dataclass
class DataSample:
    """A sample of a run's data embedded with its encoder (:meth:`Modality.report_sample`): ``features`` [N, D],
    the reference of each row (a path, a text, a user id: what :meth:`Modality.report_items` shows) and how many
    samples the data holds in all."""

    features: torch.Tensor
    references: list[str]
    total: int


def sample_of(items: Iterable, limit: int, seed: int) -> tuple[list, int]:
    """At most ``limit`` of ``items`` drawn uniformly in one pass (reservoir sampling, Vitter 1985: memory does not
    grow with the data), in their original order, and how many there were."""
    rng, kept, total = random.Random(seed), [], 0
    for total, item in enumerate(items, start=1):
        if len(kept) < limit:
            kept.append((total, item))
        elif (slot := rng.randrange(total)) < limit:
            kept[slot] = (total, item)
    return [item for _, item in sorted(kept, key=lambda pair: pair[0])], total


SHARD_SCAN = 8
"""From shards, a data sample of ``limit`` items is drawn among the first ``SHARD_SCAN * limit`` samples (the first
shards), not from a pass over all of them."""


def sample_of_stored(data: str | Path, find_files: Callable, extensions: Iterable[str], limit: int, seed: int
                     ) -> tuple[list, int]:
    """:func:`sample_of` of the files of DATA (:func:`selfsup.inspection.stored.stored_files`), or of the first
    :data:`SHARD_SCAN` ``* limit`` samples of tar shard DATA; and how many DATA holds."""
    import itertools

    from ..inspection.stored import stored_files

    stored = stored_files(data, find_files, sorted(extensions))
    files = stored.files if stored.root is not None else itertools.islice(stored.files, SHARD_SCAN * limit)
    return sample_of(files, limit, seed)[0], stored.total


HELD_OUT_SHARE = 0.1
"""Share of DATA's items :meth:`Modality.hold_out` keeps out of training (``--method auto``'s scoring sample)."""
HELD_OUT_MIN = 8
"""The fewest items held out of a small DATA (the label-free scores need a few embeddings), training items allowing."""
HELD_OUT_KEEP = 2
"""The fewest items a hold-out leaves for training."""


@dataclass
class HeldOut:
    """DATA split by :meth:`Modality.hold_out`: ``training`` and ``held_out`` are DATA paths the modality reads as it
    reads DATA (list files, a corpus, a log), ``count`` of DATA's ``total`` items are held out."""

    training: Path
    held_out: Path
    count: int
    total: int


def held_out_count(total: int, limit: int, data: str | Path, unit: str) -> int:
    """How many of the ``total`` items of DATA a hold-out keeps out of training: ``min(limit, max(⌈10 %⌉, 8))``,
    never more than leaves :data:`HELD_OUT_KEEP` for training; one line when DATA is too small to hold any out."""
    if total < HELD_OUT_KEEP + 1:
        raise SelfSupError(f"{data}: only {total} {unit}; --method auto holds some out to score its pilots and needs at "
                           f"least {HELD_OUT_KEEP + 1}; add data, or name a method with --method")
    return min(limit, max(math.ceil(total * HELD_OUT_SHARE), HELD_OUT_MIN), total - HELD_OUT_KEEP)


def held_out_rows(total: int, limit: int, seed: int, data: str | Path, unit: str) -> list[int]:
    """The indices (sorted) of the :func:`held_out_count` items of DATA that a hold-out keeps out of training,
    drawn with ``seed``."""
    return sorted(random.Random(seed).sample(range(total), held_out_count(total, limit, data, unit)))


def hold_out_media(data: DataConfig, find_files: Callable[[str], list[Path]], limit: int, seed: int, folder: Path,
                   unit: str) -> HeldOut:
    """:meth:`Modality.hold_out` for media files (images, recordings): whole tar shards when DATA is tar shards
    (:func:`hold_out_sharded`), else the files ``find_files(DATA)`` finds (:func:`hold_out_files`)."""
    from ..shards.sources import shard_set
    from ..shards.tar import SUFFIXES, count_tar

    shards = shard_set(data.path, SUFFIXES, count_tar, data.strict)
    if shards is not None:
        return hold_out_sharded(shards, limit, seed, folder, data.path, unit)
    return hold_out_files(find_files(data.path), limit, seed, folder, data.path, unit)


def hold_out_sharded(shards: ShardSet, limit: int, seed: int, folder: Path, data: str | Path, unit: str) -> HeldOut:
    """:meth:`Modality.hold_out` for sharded DATA: whole shards holding at least :func:`held_out_count` samples
    (:func:`selfsup.shards.holdout.hold_out_shards`)."""
    from ..shards.holdout import hold_out_shards

    return hold_out_shards(shards, held_out_count(shards.total, limit, data, unit), seed, folder, data, unit)


def hold_out_files(files: list[Path], limit: int, seed: int, folder: Path, data: str | Path, unit: str) -> HeldOut:
    """:meth:`Modality.hold_out` for file-based data (images, recordings): ``folder/train.txt`` and
    ``folder/heldout.txt`` list the absolute paths of the files (``files`` as the modality finds them under DATA),
    one per line, which the modality reads as DATA (:func:`selfsup.files.find_files`)."""
    held = set(held_out_rows(len(files), limit, seed, data, unit))
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train.txt": [f for i, f in enumerate(files) if i not in held],
             "heldout.txt": [f for i, f in enumerate(files) if i in held]}
    for name, part in parts.items():
        (folder / name).write_text("".join(f"{Path(f).resolve()}\n" for f in part), encoding="utf-8")
    return HeldOut(folder / "train.txt", folder / "heldout.txt", len(held), len(files))


def given(config: RunConfig, key: str) -> bool:
    """Whether the data setting ``key`` of ``config`` was changed from its default (given as a flag or in a
    config file, even at its default value): such a setting is checked against a checkpoint's, not replaced by it."""
    from ..config import was_given

    return was_given(config.data, key) or getattr(config.data, key) != getattr(type(config.data)(), key)


class Modality:
    """Base class of a modality's implementation. Subclasses override what their data supports; a method
    asking for something a modality lacks gets a one-line error naming both."""

    def __init__(self, info: ModalityInfo) -> None:
        self.info = info
        self.name = info.name

    def __repr__(self) -> str:
        return f"<modality {self.name}>"

    def _lacks(self, what: str) -> SelfSupError:
        return SelfSupError(f"{self.name} data does not offer {what} yet; `selfsup methods --modality {self.name}` "
                            "lists the methods that fit it")

    # ------------------------------------------------------------------ training data
    def require_stored(self, stored: StoredEncoder, label: str) -> None:
        """One line when the stored run or export ``stored`` (named ``label``, e.g. ``--run RUN``) holds another
        modality's encoder."""
        if stored.modality != self.name:
            raise SelfSupError(f"{label} is a {stored.modality} run, but --modality is {self.name}; leave --modality "
                               "out or give a run of that modality")

    def load_train_data(self, data: DataConfig, run_dir: Path, progress: bool = True) -> TrainData:
        """The unlabeled training data of ``data`` (reader, cache or stream, loader factory)."""
        raise NotImplementedError

    def shard_source(self, data: str | Path, encoding: str = "utf-8", text_field: str = "text") -> ShardSource:
        """The samples under ``data`` for ``selfsup shard`` (:mod:`selfsup.shards.write`): tar samples of the
        original file bytes, or parquet rows; labels kept when ``data`` is labelled. Training from the shards is
        :meth:`load_train_data`'s, which recognises shard DATA (:func:`selfsup.shards.sources.shard_set`)."""
        raise self._lacks("sharding")

    def hold_out(self, data: DataConfig, limit: int, seed: int, folder: Path) -> HeldOut:
        """DATA (``data.path``, read with ``data``'s settings) split for ``--method auto``: a seeded sample of its
        items (:func:`held_out_rows`: at most ``limit``) written into ``folder`` as a second DATA that no pilot trains
        on, and the rest as the DATA they train on; both read by this modality exactly as their items are read from
        DATA (images and recordings: list files; text: a corpus; sequences: whole users' rows of the log)."""
        raise self._lacks("a held-out sample (--method auto)")

    def input_size(self, data: dict[str, Any]) -> int:
        """What a run's method and encoder were built with (image side, tokens per text, samples per clip, items
        per history), from the ``data`` section of its config.yaml."""
        raise NotImplementedError

    def init_settings(self, source: str, config: RunConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
        """The settings (``section.key`` -> value) that start a run from the checkpoint ``source`` (``--init``):
        the encoder that loads it and what its data preparation needs (text: the checkpoint's tokenizer).
        ``config`` holds the settings given so far (``--encoder``, ``--max-length``), to check against it.

        A selfsup run or export folder works the same for every modality: its encoder dict (the architecture)
        plus ``encoder.init_from`` (the folder, whose weights :func:`~selfsup.encoders.build_encoder` loads) and
        the data settings its weights depend on (:meth:`stored_data_settings`). Any other source is the
        modality's own kind of checkpoint (:meth:`foundation_settings`). The ``encoder.*`` settings alone rebuild
        the starting encoder once the data's fill-ins (vocabulary, image size, items) are added. ``run_dir``: the
        run folder being made; when it resumes a run started from ``source`` and that folder is gone, what the run
        recorded of its start stands in for it (resuming reads the run's own checkpoint, tokenizer, item map)."""
        from ..artifacts import find_stored, recorded_start
        from ..encoders import INIT_KEY

        if run_dir is not None and Path(source).expanduser().resolve() == Path(run_dir).expanduser().resolve():
            raise SelfSupError(f"--init {source} is the --out folder itself; to start a new run from it use a new --out "
                               "folder, to train it further repeat the command that made it")
        stored = find_stored(source)
        if stored is None and run_dir is not None:
            stored = recorded_start(run_dir, source)
        if stored is None:
            return self.foundation_settings(source, config)
        if stored.modality != self.name:
            raise SelfSupError(f"--init {source} is a selfsup {stored.kind} of {stored.modality} data, but DATA is read "
                               f"as {self.name} data; pass --modality {stored.modality} with {stored.modality} DATA, or "
                               f"--init a {self.name} run")
        name, named = stored.encoder.get("name"), config.encoder.get("name")
        if named not in (None, name):
            raise SelfSupError(f"--init {source} sets the architecture (its encoder {name}); leave out --encoder {named}")
        return {**{f"encoder.{key}": value for key, value in stored.encoder.items()},
                f"encoder.{INIT_KEY}": str(stored.folder), **self.stored_data_settings(stored, config)}

    def stored_data_settings(self, stored: StoredEncoder, config: RunConfig) -> dict[str, Any]:
        """The ``data.*`` settings a stored encoder's weights depend on, for :meth:`init_settings` (text: its
        tokenizer; images: the image size; audio: the sample rate; sequences: the item map): one line when a
        setting given in ``config`` conflicts with them."""
        return {}

    def foundation_settings(self, source: str, config: RunConfig) -> dict[str, Any]:
        """:meth:`init_settings` for a checkpoint of the ecosystem the modality comes from (a Hugging Face model
        folder or cached id; a timm architecture plus a weights file for images)."""
        raise SelfSupError(f"--init {source}: starting from a checkpoint is not available for {self.name} data yet; "
                           "pass --modality when DATA is of another kind, or leave --init out")

    def encoder_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        """Encoder builder arguments a stored run's data settings imply, for configs that predate their being
        written into the ``encoder`` section (which wins)."""
        return {}

    # ------------------------------------------------------------------ run folders and exports
    def load_extras(self, folder: Path, data: dict[str, Any] | None, export: bool) -> dict[str, Any]:
        """What a stored encoder needs besides weights, read from a run folder or (``export``) an export
        ``folder``; ``data`` are the data settings stored with it. Keys of
        :class:`~selfsup.artifacts.LoadedEncoder` (``tokenizer``, ``item_map``, ``data``)."""
        return {}

    def save_extras(self, loaded: LoadedEncoder, out: Path) -> None:
        """Write the files that travel with the weights into the export folder ``out``."""

    def onnx_graph(self, loaded: LoadedEncoder) -> OnnxGraph:
        """The encoder as ``--format onnx`` exports it (:mod:`selfsup.onnx_export`): a module from the inputs a
        user has (the modality's preprocessing on tensors inside it) to (embedding [B, D] as ``selfsup embed``
        writes it, token states [B, T, D]), an example batch, its dynamic axes and how inputs are prepared."""
        raise self._lacks("ONNX export")

    # ------------------------------------------------------------------ evaluation
    def read_labeled(self, loaded: LoadedEncoder, path: str | Path, classes: list[str] | None, encoding: str):
        """A labeled split as :class:`~selfsup.evaluation.downstream.Labeled` (``classes`` fixes the order)."""
        raise self._lacks("labeled evaluation")

    def eval_transforms(self, loaded: LoadedEncoder) -> tuple[Callable, Callable]:
        """(fine-tuning transform, feature-extraction transform): raw batch -> encoder input."""
        raise self._lacks("labeled evaluation")

    def baseline_scores(self, name: str, loaded: LoadedEncoder, train_set, test_set, seed: int
                        ) -> Callable[[torch.Tensor], float]:
        """For feature baseline ``name`` (one of ``info.baselines``): a function of the training indices of one
        label subset -> test accuracy, fitted on the same subsets the encoders see."""
        raise self._lacks(f"the {name} baseline")

    def evaluate_labeled(self, loaded: LoadedEncoder, encoders: dict, train: str | Path, test: str | Path,
                         protocols: list[str], fractions: list[float], baselines: list[str], seed: int, device: str,
                         encoding: str = "utf-8", finetune_steps: int | None = None,
                         progress: Callable[[str], None] | None = None) -> list[EvalResult] | None:
        """A modality whose labeled evaluation differs from the shared one (labels per user of a log) returns
        its rows here; None means: run the shared path with :meth:`read_labeled` and :meth:`eval_transforms`."""
        return None

    def evaluate_pairwise(self, loaded: LoadedEncoder, encoders: dict, test: str | Path | None,
                          baselines: list[str], seed: int, device: str, encoding: str = "utf-8") -> list[EvalResult]:
        """The label-free protocol ``info.pairwise_protocol`` (sentence similarity, next-item ranking)."""
        raise self._lacks("a label-free protocol")

    def evaluate_task(self, loaded: LoadedEncoder, request: TaskRequest) -> list[EvalResult]:
        """The downstream task ``request.protocol`` (one of ``info.task_protocols``): fine-tune on label budgets of
        ``request.train`` and score ``request.test`` (:mod:`selfsup.evaluation.tasks`)."""
        raise self._lacks(f"the {request.protocol} protocol")

    def embed_source(self, loaded: LoadedEncoder, data: str | Path, strict: bool = False, encoding: str = "utf-8",
                     text_field: str = "text") -> EmbedSource:
        """The inputs under ``data`` as ``selfsup embed`` streams them (:class:`~selfsup.embedding.EmbedSource`:
        raw items in order, how one decodes and a batch is collated and fed to the encoder)."""
        raise self._lacks("embed")

    def apply_task(self, protocol: str, model_dir: str | Path, inputs: list[str | Path], out: str | Path | None,
                   **options: Any) -> list:
        """Use a model that ``evaluate --protocol PROTOCOL --save-finetuned MODEL_DIR`` saved on ``inputs`` (the
        command's inputs: recordings for asr, a text file for translation), writing ``out`` when given; returns the
        outputs (``transcribe``, ``translate``)."""
        raise self._lacks(f"a fine-tuned {protocol} model")

    def embed(self, loaded: LoadedEncoder, data: str | Path, out: str | Path, batch_size: int, device: str,
              strict: bool = False, encoding: str = "utf-8", text_field: str = "text",
              options: EmbedOptions | None = None) -> dict[str, Path]:
        """Embed every input under ``data`` into ``out``; returns ``{label: path}`` of the files written, the
        main one under ``"embeddings"``. By default :meth:`embed_source` streamed in parts
        (:mod:`selfsup.embedding`: bounded memory, a progress bar, resumable parquet parts)."""
        from ..embedding import EmbedOptions
        from ..embedding.stream import embed_stream, manifest_of

        options = options or EmbedOptions()
        source = self.embed_source(loaded, data, strict=strict, encoding=encoding, text_field=text_field)
        manifest = manifest_of(loaded, data, source, options, {"strict": strict, "encoding": encoding,
                                                               "text_field": text_field})
        return {"embeddings": embed_stream(loaded, source, out, batch_size, device, strict=strict, options=options,
                                           manifest=manifest)}

    # ------------------------------------------------------------------ the run report
    def report_sample(self, loaded: LoadedEncoder, data: str | Path, limit: int, seed: int, settings: dict[str, Any],
                      device: str) -> DataSample:
        """At most ``limit`` samples of the training data ``data`` (drawn with ``seed``) embedded with the run's
        encoder, for the report's embedding map and neighbours; ``settings`` is the run's data section
        (encoding, text field, columns)."""
        raise self._lacks("a report sample")

    def report_items(self, loaded: LoadedEncoder, references: list[str], settings: dict[str, Any]) -> list[ItemView]:
        """How the report shows the samples ``references`` (from :meth:`report_sample` or an evaluation's test set):
        by default the reference itself."""
        return [ItemView(str(reference)) for reference in references]

    # ------------------------------------------------------------------ data inspection
    def inspect_items(self, data: str | Path, settings: DataConfig, loaded: LoadedEncoder | None, device: str,
                      batch_size: int) -> InspectedItems:
        """Every item under ``data`` read once for ``selfsup inspect``: its name as given on the command line, a
        digest of its content, its embedding (``loaded``'s encoder when given, else the modality's cheap default:
        a perceptual hash, MinHash, log-mel), statistics, class when ``data`` is labelled, and the unreadable
        items with the reason. ``settings`` are the data settings (encoding, sample rate, log columns)."""
        raise self._lacks("data inspection")

    # ------------------------------------------------------------------ what generic methods ask for
    def two_views(self, input_size: int, settings: Any) -> Pretext:
        """A pretext giving two views of every sample of a batch: ``{"view1", "view2"}``. ``settings`` are the
        method's hyper-parameters; a modality reads the view settings that apply to it (``crop_min_scale``,
        ``flip_p`` for images) and ignores the rest."""
        raise self._lacks("two views of a sample")

    def one_view(self, input_size: int, settings: Any) -> Pretext:
        """A pretext giving one augmented view of every sample: ``{"view"}``, what a distilled student and its
        frozen teacher both see (``distill``). By default the first of :meth:`two_views`; a modality overrides
        it where one view costs less than two, or where the view is the sample itself (a pretext marked
        ``deterministic``, :func:`~selfsup.pretext.views.sample_as_is`: the teacher's outputs may be reused)."""
        views = self.two_views(input_size, settings)

        def pretext(batch: Any, generator: torch.Generator | None = None) -> dict:
            return {"view": views(batch, generator)["view1"]}

        return pretext

    def resized_inputs(self, size: int, fill_ins: dict[str, Any]) -> tuple[Callable[[Any], Any], dict[str, Any]]:
        """What a teacher with its own input size needs (``distill``'s ``method.teacher_input_size``): a function
        giving a batch of views at ``size``, and the encoder settings the data fills in (``fill_ins``) at that size."""
        raise SelfSupError(f"method.teacher_input_size={size}: {self.name} views have no size to change; leave it at 0 "
                           "(the teacher reads the student's inputs)")

    def masked_inputs(self, encoder, input_size: int, settings: Any) -> Pretext:
        """A pretext for masked prediction with an EMA teacher (data2vec): ``{"student": encoder input with
        positions hidden, "teacher": the full input, "positions": bool [B, T] of the hidden positions, "valid":
        bool [B, T] of the real positions}``, positions on the grid of :meth:`Encoder.layer_states`."""
        raise self._lacks("masked inputs")

    def normalize_targets(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """One teacher layer's states [B, T, D] normalised as the modality's data2vec recipe does."""
        raise self._lacks("teacher targets")
