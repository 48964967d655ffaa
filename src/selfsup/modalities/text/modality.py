"""Text as selfsup sees it: token ids of the run's tokenizer, at most ``data.max_length`` per text."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ...pretext.tokens import mlm_mask
from ...pretext.views import dropout_views, sample_as_is
from ..base import Modality, Pretext, given
from .tokenizer import TOKENIZER_DIR

if TYPE_CHECKING:  # pragma: no cover
    from ...config import RunConfig


def _own_tokenizer(source: str, folder: Path, config: RunConfig) -> dict[str, Any]:
    """``data.tokenizer`` for a checkpoint that brings its tokenizer ``folder``; one line for another one given."""
    from ...errors import SelfSupError

    if given(config, "tokenizer") and config.data.tokenizer != str(folder):
        raise SelfSupError(f"--init {source} brings its own tokenizer (its embeddings are tied to its ids); "
                           f"leave out --tokenizer {config.data.tokenizer}")
    return {"data.tokenizer": str(folder)}


class TextModality(Modality):
    def load_train_data(self, data, run_dir: Path, progress: bool = True):
        from .training import load_text_data

        return load_text_data(data, run_dir, progress=progress)

    def shard_source(self, data, encoding="utf-8", text_field="text"):
        from .shards import text_shard_source

        return text_shard_source(data, encoding, text_field)

    def hold_out(self, data, limit, seed, folder):
        """Texts of DATA held out into ``folder/heldout.jsonl``, the rest in ``folder/train.jsonl`` (parquet or
        JSONL shards: whole shards, ``folder/*.shards.json``)."""
        from ...shards.sources import shard_set
        from ...shards.table import JSONL, SUFFIXES, count_rows
        from ..base import hold_out_sharded
        from .readers import hold_out_texts

        shards = shard_set(data.path, SUFFIXES, count_rows, data.strict, pattern_only=JSONL)
        if shards is not None:
            return hold_out_sharded(shards, limit, seed, folder, data.path, self.info.unit)
        return hold_out_texts(data, limit, seed, folder, self.info.unit)

    def input_size(self, data: dict[str, Any]) -> int:
        return int(data["max_length"])

    def foundation_settings(self, source: str, config: RunConfig) -> dict[str, Any]:
        """A Hugging Face text checkpoint: the ``hf_text`` encoder (its architecture and weights) and its own
        tokenizer (``data.tokenizer``: the folder, copied into ``RUN/tokenizer``)."""
        from ...encoders.hf_checkpoint import init_encoder
        from ...encoders.pretrained_text import NAME, check_positions, text_checkpoint

        folder, hf_config, _ = text_checkpoint(source)
        settings = init_encoder(NAME, source, folder, config.encoder.get("name"))
        tokenizer = _own_tokenizer(source, folder, config)
        check_positions(hf_config, source, config.data.max_length)
        return {**settings, **tokenizer}

    def stored_data_settings(self, stored, config):
        """A selfsup text run's tokenizer (``RUN/tokenizer``; an export keeps it in its folder) and its
        ``max_length`` unless ``--max-length`` is given (position embeddings are sized by it)."""
        folder = stored.folder if stored.export else stored.folder / TOKENIZER_DIR
        settings = _own_tokenizer(str(stored.folder), folder, config)
        return settings if given(config, "max_length") else {**settings, "data.max_length": stored.input_size}

    # ------------------------------------------------------------------ run folders and exports
    def load_extras(self, folder: Path, data: dict[str, Any] | None, export: bool) -> dict[str, Any]:
        """The tokenizer: ``RUN/tokenizer/`` of a run folder, the export folder itself for an export."""
        from .tokenizer import load_tokenizer

        return {"tokenizer": load_tokenizer(folder if export else folder / TOKENIZER_DIR)}

    def save_extras(self, loaded, out: Path) -> None:
        loaded.tokenizer.save_pretrained(str(out))

    def onnx_graph(self, loaded):
        """``input_ids`` + ``attention_mask`` from the exported tokenizer (:mod:`.onnx_graph`)."""
        from .onnx_graph import text_graph

        return text_graph(loaded)

    # ------------------------------------------------------------------ evaluation
    def _encode(self, loaded, texts: list[str]) -> torch.Tensor:
        from .readers import encode_texts

        return encode_texts(texts, loaded.tokenizer, loaded.input_size)

    def read_labeled(self, loaded, path, classes, encoding):
        from ...evaluation.downstream import Labeled
        from .readers import load_labeled_text

        from .shards import shard_rows

        rows = shard_rows(path)
        if rows is not None:  # parquet / JSONL shards with a label column
            from ...shards.labelled import label_indices

            labels, order = label_indices(rows[1], classes, str(path))
            return Labeled(self._encode(loaded, rows[0]), labels, order, rows[0], references=rows[0])
        data = load_labeled_text(path, encoding=encoding, classes=classes)
        return Labeled(self._encode(loaded, data.texts), data.labels, data.classes, data.texts, references=data.texts)

    def eval_transforms(self, loaded):
        """Padded ids -> the encoder's input dict, both ways (dropout is the fine-tuning noise)."""
        from ...evaluation.downstream import TokenBatch

        batch = TokenBatch(loaded.encoder.spec.pad_token_id)
        return batch, batch

    def baseline_scores(self, name, loaded, train_set, test_set, seed):
        """``tfidf``: TF-IDF + logistic regression on the raw texts of each label subset."""
        if name != "tfidf":
            return super().baseline_scores(name, loaded, train_set, test_set, seed)
        from .tfidf import tfidf_accuracy

        return lambda idx: tfidf_accuracy([train_set.texts[i] for i in idx.tolist()], train_set.labels[idx],
                                          test_set.texts, test_set.labels, seed=seed)

    def evaluate_pairwise(self, loaded, encoders, test, baselines, seed, device, encoding="utf-8"):
        """Sentence similarity: the Spearman correlation between the cosine similarity of the two sentences'
        embeddings and the gold scores (the STS protocol of Reimers & Gurevych 2019 and Gao et al. 2021)."""
        from ...evaluation.downstream import TokenBatch
        from ...evaluation.label_efficiency import EvalResult
        from ...evaluation.similarity import spearman, spearman_similarity
        from .readers import load_text_pairs

        data = load_text_pairs(test, encoding=encoding)
        first, second = self._encode(loaded, data.first), self._encode(loaded, data.second)
        transform = TokenBatch(loaded.encoder.spec.pad_token_id)
        results = [EvalResult("similarity", 0.0, 0, name, "spearman",
                              spearman_similarity(encoder, first, second, data.scores, transform, device=device))
                   for name, encoder in encoders.items()]
        if "tfidf" in baselines:
            from .tfidf import tfidf_similarity

            cosine = tfidf_similarity(data.first, data.second, fit_texts=data.first + data.second)
            results.append(EvalResult("similarity", 0.0, 0, "tfidf", "spearman", spearman(cosine, data.scores)))
        return results

    def evaluate_task(self, loaded, request):
        """``translation``: the run's encoder-decoder fine-tuned on label fractions of sentence pairs, BLEU and chrF
        of its beam-search output (:mod:`.translation`)."""
        if request.protocol != "translation":
            return super().evaluate_task(loaded, request)
        from .translation import evaluate_translation

        return evaluate_translation(loaded, request)

    def apply_task(self, protocol, model_dir, inputs, out, **options):
        """``translation``: every line of the text file ``inputs[0]`` translated by a ``--save-finetuned`` model
        (beam search; ``options``: num_beams, device, encoding), written to ``out`` when given."""
        if protocol != "translation":
            return super().apply_task(protocol, model_dir, inputs, out, **options)
        from .translation import translate_file

        return translate_file(model_dir, inputs[0], out, **options)

    def embed_source(self, loaded, data, strict=False, encoding="utf-8", text_field="text"):
        """One row per text (every line / record of the files under ``data``, or every row of parquet / JSONL
        shards), tokenized a batch at a time; ``text`` holds it."""
        from ...embedding import EmbedSource
        from ...errors import SelfSupError
        from ...evaluation.downstream import TokenBatch
        from ...shards.labelled import streamed
        from ...shards.table import JSONL, SUFFIXES, count_rows, table_rows
        from .languages import tokenizer_tags
        from .readers import encode_texts, find_text_files, iter_texts
        from .shards import EmptyText, row_text

        tags = tokenizer_tags(loaded.tokenizer, loaded.data)
        shards = streamed(str(data), SUFFIXES, count_rows, table_rows, strict, JSONL)
        if shards is not None:
            items, count = shards
            items = (row_text(row, text_field, tags) for _, row in items)
        else:
            items = iter_texts(find_text_files(data, tags), encoding=encoding, text_field=text_field, tags=tags)
            count = None

        def decode(text: str) -> tuple[str, str]:
            if not text:
                raise EmptyText("a row without text")
            return text, text
        collate = partial(encode_texts, tokenizer=loaded.tokenizer, max_length=loaded.input_size)
        return EmbedSource("text", items, decode, collate, TokenBatch(loaded.encoder.spec.pad_token_id), count,
                           (EmptyText,), lambda exc: SelfSupError(f"{data}: {exc}"), "texts")

    # ------------------------------------------------------------------ the run report
    def report_sample(self, loaded, data, limit, seed, settings, device):
        """Up to ``limit`` texts of ``data`` (one pass over the files or shards, whatever their size), embedded."""
        from ...evaluation.downstream import TokenBatch
        from ...evaluation.features import extract_features
        from ..base import DataSample, sample_of
        from .languages import tokenizer_tags
        from .readers import find_text_files, iter_texts
        from .shards import located_shard_texts

        field = settings.get("text_field", "text")
        tags = tokenizer_tags(loaded.tokenizer, settings)
        rows = located_shard_texts(data, field, tags)
        texts, total = sample_of((text for _, text, _ in rows) if rows is not None else
                                 iter_texts(find_text_files(data, tags), encoding=settings.get("encoding", "utf-8"),
                                            text_field=field, tags=tags), limit, seed)
        feats = extract_features(loaded.encoder, self._encode(loaded, texts),
                                 TokenBatch(loaded.encoder.spec.pad_token_id), device=device)
        return DataSample(feats, texts, total)

    def report_items(self, loaded, references, settings):
        """A snippet of each text: its first 240 characters, white space collapsed."""
        from ..base import ItemView

        snippets = (" ".join(str(text).split()) for text in references)
        return [ItemView(s if len(s) <= 240 else s[:239] + "…") for s in snippets]

    # ------------------------------------------------------------------ what generic methods ask for
    def two_views(self, input_size: int, settings: Any) -> Pretext:
        """SimCSE's views: the same sentences twice, made different by the encoder's dropout."""
        return dropout_views()

    def one_view(self, input_size: int, settings: Any) -> Pretext:
        """The sentences as they are (the student's dropout is its noise): a teacher's outputs may be reused."""
        return sample_as_is()

    def masked_inputs(self, encoder, input_size: int, settings: Any) -> Pretext:
        """data2vec for text: BERT's masking of ``settings.text_mask_rate`` of the tokens (80 % [MASK], 10 %
        random, 10 % kept); the teacher reads the text as it is."""
        spec = encoder.spec

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
            ids, labels = mlm_mask(batch["input_ids"], batch["attention_mask"], mask_token_id=spec.mask_token_id,
                                   vocab_size=spec.vocab_size, special_ids=spec.special_ids,
                                   rate=settings.text_mask_rate, generator=generator)
            return {"student": {"input_ids": ids, "attention_mask": batch["attention_mask"]}, "teacher": batch,
                    "positions": labels != -100}

        return pretext

    def normalize_targets(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """Parameter-less layer norm per token (data2vec §3.3, text)."""
        return F.layer_norm(states.float(), states.shape[-1:])

    # ------------------------------------------------------------------ data inspection
    def inspect_items(self, data, settings, loaded, device, batch_size):
        """Texts (``FILE:LINE``): BLAKE2b of the text, MinHash of its words and word pairs (or the run's encoder),
        words and characters, the label column or field when the files have one."""
        from .inspection import inspect_texts

        return inspect_texts(self, data, settings.encoding, settings.text_field, loaded, device, batch_size)
