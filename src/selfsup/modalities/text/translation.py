"""``selfsup evaluate RUN --protocol translation``: the run's encoder-decoder (:mod:`.seq2seq`) fine-tuned on nested
label fractions of sentence pairs (:mod:`.pairs`), the test sources decoded with beam search and scored with
sacrebleu's corpus BLEU (Papineni et al. 2002; Post 2018, "A Call for Clarity in Reporting BLEU Scores") and chrF
(Popović 2015), both on sacrebleu's 0–100 scale; and ``selfsup translate``, which runs a model the protocol saved.

Both sides use the run's tokenizer; a run pretrained with language tags (``data.languages``, mBART) gets the
source's tag in front of every source and the target's tag as the decoder's first token (:class:`Direction`).
References are normalised as it normalises text (a lowercasing tokenizer cannot
write capitals, so the references are lowercased too; ``--set data.lowercase=false`` at pretraining keeps case and
accents). The baselines fine-tune the same architecture from a random start (``scratch``) and, for a run started
with ``--init``, the checkpoint it started from (``init``), on the same pairs for the same number of steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import SelfSupError
from .languages import language_tag, tokenizer_tags
from .pairs import Pairs, read_pairs

if TYPE_CHECKING:  # pragma: no cover
    from ...artifacts import LoadedEncoder
    from ...evaluation.label_efficiency import EvalResult
    from ...evaluation.tasks import TaskRequest

DEFAULT_STEPS = 300  # fine-tuning steps per label fraction: a few minutes for bart_tiny on a CPU
METRICS = ("bleu", "chrf")
SAVED_FILE = "selfsup_translation.json"  # beside a saved model: what it was fine-tuned from


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError:
        raise SelfSupError("--protocol translation scores with sacrebleu, which is not installed; "
                           "pip install 'selfsup[translation]'") from None
    return sacrebleu


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu's defaults: 13a tokenisation, chrF with character 6-grams, beta 2), 0–100."""
    sacrebleu = _sacrebleu()
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score)}


def normalize_like(tokenizer: Any, texts: list[str]) -> list[str]:
    """``texts`` as the tokenizer's normaliser sees them (lowercased and accents stripped by a lowercasing
    WordPiece), so references can be matched by what the model can write."""
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    return [normalizer.normalize_str(t) for t in texts] if normalizer is not None else list(texts)


@dataclass(frozen=True)
class Direction:
    """What a run pretrained with language tags translates (mBART, Liu et al. 2020 §2.2): the source's tag in front
    of every source, the target's tag at the start of every target, and forced as the decoder's first output."""

    source: str
    target: str
    target_id: int  # the target tag's token id

    def tag_sources(self, texts: list[str]) -> list[str]:
        return [f"{language_tag(self.source)} {text}" for text in texts]

    def tag_targets(self, texts: list[str]) -> list[str]:
        return [f"{language_tag(self.target)} {text}" for text in texts]

    def record(self) -> dict[str, str]:
        return {"source_language": self.source, "target_language": self.target}


DIRECTION_HELP = ("name the direction: two aligned files named by language (train.en,train.de) or a tsv whose first "
                  "row is the two codes (en<TAB>de)")


def read_task_pairs(tokenizer: Any, train_spec: str | Path, test_spec: str | Path,
                    encoding: str) -> tuple[Pairs, Pairs, Direction | None]:
    """The training and test pairs, and their direction when the run's tokenizer has language tags (None: a run
    of one language, which translates untagged text)."""
    tags = tokenizer_tags(tokenizer)
    train = read_pairs(train_spec, encoding, "--train", tags)
    test = read_pairs(test_spec, encoding, "--test", tags)
    if tags is None:
        return train, test, None
    for pairs, flag, spec in ((train, "--train", train_spec), (test, "--test", test_spec)):
        if None in pairs.languages:
            raise SelfSupError(f"{flag} {spec}: the run was pretrained with language tags "
                               f"({', '.join(tags.languages)}); "
                               + DIRECTION_HELP)
    if train.languages != test.languages:
        raise SelfSupError(f"--train translates {'→'.join(map(str, train.languages))} but --test "
                           f"{'→'.join(map(str, test.languages))}; give pairs of one direction")
    source, target = train.languages
    assert source is not None and target is not None
    return train, test, Direction(source, target, tokenizer.convert_tokens_to_ids(language_tag(target)))


def _encode(tokenizer: Any, texts: list[str], max_length: int):
    from .readers import encode_texts

    return encode_texts(texts, tokenizer, max_length)


def decode(tokenizer: Any, ids: list[list[int]]) -> list[str]:
    """Token ids to text without special tokens."""
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True,
                                                              clean_up_tokenization_spaces=True)]


def translate_texts(model: Any, tokenizer: Any, texts: list[str], max_length: int, device: str,
                    num_beams: int | None = None) -> list[str]:
    """Beam-search translations of ``texts`` (``num_beams``: the model's generation config's when None)."""
    from ...evaluation.seq2seq import generate_ids

    beams = int(num_beams or model.generation_config.num_beams or 1)
    new_tokens = int(model.generation_config.max_new_tokens or max_length - 1)
    ids = generate_ids(model, _encode(tokenizer, texts, max_length), tokenizer.pad_token_id, beams, new_tokens,
                       device)
    return decode(tokenizer, ids)


def _save(model: Any, tokenizer: Any, folder: Path, record: dict[str, Any]) -> None:
    from ...encoders.hf_checkpoint import quiet_transformers

    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / SAVED_FILE).write_text(json.dumps(record, indent=2))


def evaluate_translation(loaded: LoadedEncoder, request: TaskRequest) -> list[EvalResult]:
    """Fine-tune the run's encoder-decoder (and the baselines') on each label fraction of ``request.train`` and
    score ``request.test``: rows ``("translation", fraction, n_pairs, encoder, "bleu" | "chrf", value)``."""
    from ...evaluation.downstream import _encoders
    from ...evaluation.label_efficiency import EvalResult
    from ...evaluation.seq2seq import Seq2SeqBudget, finetune_seq2seq
    from ...evaluation.subsets import nested_subset
    from .seq2seq import seq2seq_model

    _sacrebleu()
    tokenizer, length = loaded.tokenizer, loaded.input_size
    train, test, direction = read_task_pairs(tokenizer, request.train, request.test, request.encoding)
    train_sources, train_targets, test_sources = train.sources, train.targets, test.sources
    if direction is not None:
        request.progress(f"[translation] {direction.source}→{direction.target}: language tags "
                         f"{language_tag(direction.source)} on the sources, {language_tag(direction.target)} "
                         "starting the targets")
        train_sources, train_targets = direction.tag_sources(train_sources), direction.tag_targets(train_targets)
        test_sources = direction.tag_sources(test_sources)
    sources, targets = _encode(tokenizer, train_sources, length), _encode(tokenizer, train_targets, length)
    references = normalize_like(tokenizer, test.targets)
    budget = Seq2SeqBudget(steps=request.finetune_steps or DEFAULT_STEPS)
    encoders = _encoders(loaded, request.baselines, request.seed)
    largest = max(request.label_fractions)
    forced = direction.target_id if direction is not None else None
    best: tuple[float, str, Any, dict[str, float]] | None = None  # the largest budget's best model (by BLEU)
    results: list[EvalResult] = []
    for fraction in sorted(request.label_fractions):
        idx = nested_subset(len(train), fraction, request.seed)
        for name, encoder in encoders.items():
            model = seq2seq_model(encoder, forced_bos_token_id=forced)
            log: Callable[[int, float], None] = lambda step, loss, name=name: request.progress(
                f"[translation] {name} {fraction:g} ({len(idx)} pairs): step {step}/{budget.steps} loss {loss:.3f}")
            finetune_seq2seq(model, sources[idx], targets[idx], tokenizer.pad_token_id, budget, request.seed,
                             request.device, progress=log)
            hypotheses = translate_texts(model, tokenizer, test_sources, length, request.device)
            scores = translation_scores(hypotheses, references)
            request.progress(f"[translation] {name} {fraction:g} ({len(idx)} pairs): BLEU {scores['bleu']:.2f} "
                             f"chrF {scores['chrf']:.2f} on {len(test)} test pairs")
            results += [EvalResult("translation", float(fraction), len(idx), name, metric, scores[metric])
                        for metric in METRICS]
            if request.save_finetuned is not None and fraction == largest and (best is None or scores["bleu"] > best[0]):
                best = (scores["bleu"], name, model.cpu(), scores)
            del model
    if best is not None and request.save_finetuned is not None:
        _, name, model, scores = best
        folder = Path(request.save_finetuned).expanduser()
        _save(model, tokenizer, folder,
              {"fine_tuned_from": loaded.method, "encoder": name, "label_fraction": float(largest),
               "pairs": len(nested_subset(len(train), largest, request.seed)), "steps": budget.steps,
               "max_length": length, **(direction.record() if direction else {}), **scores})
        request.progress(f"[translation] saved the best model of the largest budget ({name}, BLEU "
                         f"{scores['bleu']:.2f}) to {folder}")
    return results


def _check_model_folder(folder: Path) -> None:
    if (folder / "config.yaml").exists() or (folder / "selfsup.json").exists():
        raise SelfSupError(f"{folder}: a selfsup run or export, not a fine-tuned translation model; run `selfsup "
                           "evaluate RUN --protocol translation --train PAIRS --test PAIRS --save-finetuned DIR` and "
                           "translate with DIR")
    if not (folder / "config.json").is_file():
        raise SelfSupError(f"{folder}: no config.json; give a folder written by `selfsup evaluate --protocol "
                           "translation --save-finetuned DIR`")


def load_translation_model(folder: str | Path) -> tuple[Any, Any, int, str | None]:
    """(model, tokenizer, max_length, source language or None) of a folder saved by ``--save-finetuned``
    (offline); a model of a tagged run forces its target tag as the decoder's first token (its generation
    config)."""
    from ...encoders.hf_checkpoint import quiet_transformers
    from .tokenizer import load_tokenizer

    folder = Path(folder).expanduser()
    _check_model_folder(folder)
    import transformers

    with quiet_transformers():
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(folder), local_files_only=True)
    record = json.loads((folder / SAVED_FILE).read_text()) if (folder / SAVED_FILE).exists() else {}
    max_length = int(record.get("max_length") or (model.generation_config.max_new_tokens or 127) + 1)
    return model.eval(), load_tokenizer(folder), max_length, record.get("source_language")


def translate_file(model_dir: str | Path, input_file: str | Path, out: str | Path | None = None,
                   num_beams: int | None = None, device: str = "cpu", encoding: str = "utf-8") -> list[str]:
    """One translation per line of ``input_file`` (empty lines stay empty); written to ``out`` when given."""
    path = Path(input_file).expanduser()
    if not path.is_file():
        raise SelfSupError(f"--input {path}: no such file; give a text file with one sentence a line")
    lines = path.read_text(encoding=encoding).splitlines()
    model, tokenizer, max_length, source_language = load_translation_model(model_dir)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    texts = [lines[i].strip() for i in filled]
    if source_language:
        texts = [f"{language_tag(source_language)} {text}" for text in texts]
    translated = translate_texts(model, tokenizer, texts, max_length, device, num_beams) if filled else []
    output = [""] * len(lines)
    for i, text in zip(filled, translated):
        output[i] = text
    if out is not None:
        out_path = Path(out).expanduser()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("".join(line + "\n" for line in output), encoding="utf-8")
    return output
