"""Speech recognition (``selfsup evaluate RUN --protocol asr``): a character CTC head fine-tuned on minutes of
transcribed speech, as wav2vec 2.0 is evaluated (Baevski et al. 2020, §4.3 and Table 1: 10 min / 1 h / 10 h of
Libri-light labels, Kahn et al. 2020).

The models (each ``model(batch) -> (log-probabilities [B, T, V], frames [B])``):

- a wav2vec 2.0-style encoder with the convolutional front end (selfsup's ``wav2vec2_*`` presets, which the
  ``wav2vec2``, ``hubert`` and ``data2vec`` methods train, and ``hf_audio`` checkpoints): transformers' own CTC
  model of its family (``Wav2Vec2ForCTC``, ``HubertForCTC``, ``Data2VecAudioForCTC``, ``WavLMForCTC``) with the
  encoder's weights, its convolutional feature encoder frozen as in the paper (:class:`HFCTC`); a fine-tuned one
  saves as a folder ``AutoModelForCTC`` + ``AutoProcessor`` load. Its features are only as good as that front
  end: a random one (``scratch``) or one pretrained for minutes on a CPU (<= 100 steps) kept every recipe tried
  (learning rate 3e-4 to 1e-2, no dropout, GroupNorm, unfrozen) on the all-blank CTC plateau for ~1,500 updates
  on LibriSpeech, where the same transformer on log-mel frames or the ``mfcc`` baseline leave it in ~150
  (``benchmarks/asr_plateau.py``, benchmarks/RESULTS.md);
- any other audio encoder (the log-mel front end): a linear CTC head on its frame states (:class:`EncoderCTC`),
  saved as a selfsup folder (:data:`SELFSUP_CTC`) that ``selfsup transcribe`` reads;
- the ``mfcc`` baseline: three 1-D convolutions over per-utterance-normalised MFCCs with deltas (20 ms hop),
  trained from scratch (:class:`MfccCTC`).

``scratch`` is the run's network at random initialisation and ``init`` the checkpoint the run started from, both
fine-tuned exactly like the run's encoder (same recipe, steps and label subsets).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ...encoders.audio import AudioEncoder, prepare_waves, standardize_over_time
from ...errors import SelfSupError
from ...evaluation.ctc import CharVocabulary, CTCData, CTCRecipe, error_rates, finetune_ctc, greedy_transcripts
from ...evaluation.label_efficiency import EvalResult
from ...evaluation.subsets import budget_prefix, group_balanced_order
from ...evaluation.tasks import TaskRequest

SELFSUP_CTC = "selfsup_ctc.json"  # a non-transformers fine-tuned model: encoder config + vocabulary (+ weights)
TEST_TRANSCRIPTS = "test_transcripts.tsv"  # the saved model's greedy transcripts of --test, path<TAB>transcript
SAVED_RECORD = "selfsup_asr.json"  # beside a saved model: which encoder and budget it is, and its test CER
MFCC_LR = 2e-3
BATCH_SECONDS = 30  # audio per fine-tuning batch (at most 8 utterances of similar length)


def encoder_lr(width: int) -> float:
    """AdamW's peak learning rate for a transformer ``width`` wide: 3e-3 up to 128 (selfsup's tiny presets),
    falling with the square of the width (8e-5 at 768, close to the 5e-5 of wav2vec 2.0 BASE's fine-tuning)."""
    return 3e-3 * min(1.0, 128 / max(1, width)) ** 2


def pad_waves(waves: Sequence[Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """1-D waveforms → the audio encoder's input dict (zero-padded ``input_values`` [B, L], ``attention_mask``)."""
    length = max(len(w) for w in waves)
    values = torch.zeros(len(waves), length)
    mask = torch.zeros(len(waves), length, dtype=torch.long)
    for row, wave in enumerate(waves):
        values[row, : len(wave)], mask[row, : len(wave)] = wave, 1
    return {"input_values": values, "attention_mask": mask}


class HFCTC(nn.Module):
    """transformers' ``*ForCTC`` model fed as the selfsup encoder it came from (sample mask, per-clip norm)."""

    def __init__(self, ctc: nn.Module, frame_window: int, normalize: bool, attention_mask: bool) -> None:
        super().__init__()
        self.ctc, self.frame_window, self.normalize, self.attention_mask = ctc, frame_window, normalize, attention_mask

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        waves, mask = prepare_waves(batch, self.frame_window, self.normalize)
        logits = self.ctc(waves, attention_mask=mask if self.attention_mask else None).logits
        frames = self.ctc._get_feat_extract_output_lengths(mask.sum(1)).long().clamp(1, logits.shape[1])
        return logits.float().log_softmax(-1), frames


class EncoderCTC(nn.Module):
    """A linear CTC head (after dropout) on an encoder's frame states [B, T, D]."""

    def __init__(self, encoder: nn.Module, vocab_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder, self.dropout, self.head = encoder, nn.Dropout(dropout), nn.Linear(int(encoder.dim), vocab_size)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        states = self.encoder(batch)
        frames = self.encoder.frame_mask(batch, states.shape[1]).sum(1)
        return self.head(self.dropout(states)).float().log_softmax(-1), frames.long().clamp_min(1)


class MfccCTC(nn.Module):
    """The ``mfcc`` baseline: 39 MFCC + delta features per 20 ms (25 ms windows), standardised per utterance, three
    1-D convolutions (kernel 5, 256 channels, GELU; 13 frames of context) and a linear CTC head, from random
    initialisation (a small version of Wav2Letter, Collobert, Puhrsch, Synnaeve 2016, on MFCCs)."""

    def __init__(self, sample_rate: int, vocab_size: int, width: int = 256, layers: int = 3) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.window, self.hop = round(0.025 * sample_rate), round(0.020 * sample_rate)
        convs: list[nn.Module] = []
        for i in range(layers):
            convs += [nn.Conv1d(39 if i == 0 else width, width, 5, padding=2), nn.GELU(), nn.Dropout(0.1)]
        self.convs = nn.Sequential(*convs)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        from ...features.audio import mfcc

        waves, mask = batch["input_values"], batch["attention_mask"]
        feats = mfcc(waves.float(), self.sample_rate, win_length=self.window, hop_length=self.hop)
        frames = ((mask.sum(1) - self.window).clamp_min(0) // self.hop + 1).clamp(1, feats.shape[1])
        valid = (torch.arange(feats.shape[1], device=feats.device)[None] < frames[:, None]).long()
        feats = standardize_over_time(feats, valid, eps=1e-5) * valid[..., None]
        states = self.convs(feats.transpose(1, 2)).transpose(1, 2)
        return self.head(states).float().log_softmax(-1), frames.long()


def has_transformers_ctc(encoder: nn.Module) -> bool:
    """A wav2vec 2.0-style encoder whose whole model transformers has a ``*ForCTC`` class for."""
    return isinstance(encoder, AudioEncoder) and encoder.frontend == "conv"


def ctc_model(encoder: nn.Module, vocab: CharVocabulary, seed: int) -> nn.Module:
    """The CTC model fine-tuned for ``encoder`` (a copy: the encoder is not touched), its head seeded."""
    import copy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if not has_transformers_ctc(encoder):
            return EncoderCTC(copy.deepcopy(encoder), len(vocab))
        import transformers

        config = copy.deepcopy(encoder.hf_model.config)
        config.update({"vocab_size": len(vocab), "pad_token_id": 0, "ctc_loss_reduction": "mean",
                       "ctc_zero_infinity": True, "architectures": None, "final_dropout": 0.1})
        ctc = transformers.AutoModelForCTC.from_config(config)
    base = getattr(ctc, ctc.base_model_prefix)
    missing, unexpected = base.load_state_dict(encoder.hf_model.state_dict(), strict=False)
    leftover = [k for k in (*missing, *unexpected) if "masked_spec_embed" not in k]
    if leftover:  # pragma: no cover - the same config builds the same modules
        raise SelfSupError(f"--protocol asr: the encoder's weights do not fit {type(ctc).__name__} ({leftover[0]})")
    ctc.freeze_feature_encoder()  # wav2vec 2.0 §4.3: the convolutional feature encoder is not fine-tuned
    return HFCTC(ctc.train(), encoder.frame_window, encoder.normalize, encoder.attention_mask)


def _budgets(request: TaskRequest, seconds: list[float]) -> list[tuple[str, float]]:
    """(name, seconds) of each label budget: ``label_minutes`` or ``label_fractions`` of the audio."""
    total = sum(seconds)
    if request.label_minutes:
        return [(f"{m:g} min", 60.0 * m) for m in request.label_minutes]
    return [(f"{f:g} of the audio", f * total) for f in request.label_fractions]


def evaluate_asr(loaded, request: TaskRequest) -> list[EvalResult]:
    """Fine-tune a CTC head with the run's encoder (and the baselines) on each label budget of ``request.train``;
    ``cer`` and ``wer`` of greedy transcripts of the whole ``request.test``."""
    from ...evaluation.downstream import _encoders
    from .transcripts import read_transcribed

    say = request.progress
    rate = int(loaded.encoder.sample_rate)
    train = read_transcribed(request.train, rate, request.encoding)
    test = read_transcribed(request.test, rate, request.encoding)
    vocab = CharVocabulary.from_transcripts(train.texts)
    seconds, total = train.seconds, sum(train.seconds)
    say(f"[asr] --train: {len(train.texts)} utterances, {total / 60:.1f} min, {len(set(train.speakers))} speakers; "
        f"--test: {len(test.texts)} utterances, {sum(test.seconds) / 60:.1f} min; {len(vocab) - 3} characters")
    order = group_balanced_order(train.speakers, seconds, request.seed)
    recipe = CTCRecipe(steps=request.finetune_steps or CTCRecipe.steps, max_total=rate * BATCH_SECONDS)
    models: dict[str, Callable[[], nn.Module]] = {
        name: (lambda enc=enc: ctc_model(enc, vocab, request.seed))
        for name, enc in _encoders(loaded, [b for b in request.baselines if b != "mfcc"], request.seed).items()}
    if "mfcc" in request.baselines:
        models["mfcc"] = lambda: MfccCTC(rate, len(vocab))
    test_data = CTCData(test.waves, [len(w) for w in test.waves], test.texts)
    results: list[EvalResult] = []
    done: dict[tuple[int, ...], list[EvalResult]] = {}
    budgets = _budgets(request, seconds)
    largest = tuple(budget_prefix(order, seconds, budgets[-1][1]))  # the utterances of the largest budget
    best: tuple[float, str, nn.Module, list[str], str] | None = None  # its lowest-CER model of the run's network
    for name, budget in budgets:
        chosen = budget_prefix(order, seconds, budget)
        share = 1.0 if len(chosen) == len(seconds) else sum(seconds[i] for i in chosen) / total
        if budget > total:
            say(f"[asr] budget {name}: --train holds only {total / 60:.1f} min of transcribed audio; using all of it")
        if tuple(chosen) in done:  # the same utterances as a smaller budget: the same scores
            results += [dataclasses.replace(r, label_fraction=share) for r in done[tuple(chosen)]]
            continue
        rows: list[EvalResult] = []
        for encoder_name, make in models.items():
            model = make()
            lr = MFCC_LR if isinstance(model, MfccCTC) else encoder_lr(int(loaded.encoder.dim))
            tuned, _ = finetune_ctc(model, CTCData([train.waves[i] for i in chosen], [len(train.waves[i]) for i in chosen],
                                                   [train.texts[i] for i in chosen]),
                                    vocab, pad_waves, dataclasses.replace(recipe, lr=lr), request.seed,
                                    request.device, say, f"{encoder_name} ({name})")
            hypotheses = greedy_transcripts(tuned, test_data, vocab, pad_waves, recipe, request.device)
            scores = error_rates(test.texts, hypotheses)
            say(f"[asr] {encoder_name} on {name} ({len(chosen)} utterances): cer {scores['cer']:.3f}, "
                f"wer {scores['wer']:.3f}")
            rows += [EvalResult("asr", share, len(chosen), encoder_name, metric, value)
                     for metric, value in scores.items()]
            if (request.save_finetuned is not None and tuple(chosen) == largest and not isinstance(tuned, MfccCTC)
                    and (best is None or scores["cer"] < best[0])):
                best = (scores["cer"], encoder_name, tuned.cpu(), hypotheses, name)
        done[tuple(chosen)] = rows
        results += rows
    if best is not None and request.save_finetuned is not None:
        cer, encoder_name, tuned, hypotheses, name = best
        save_finetuned(tuned, loaded.encoder, vocab, request.save_finetuned)
        write_transcripts(request.save_finetuned / TEST_TRANSCRIPTS, test.paths, hypotheses)
        (request.save_finetuned / SAVED_RECORD).write_text(json.dumps(
            {"fine_tuned_from": loaded.method, "encoder": encoder_name, "budget": name, "utterances": len(largest),
             "steps": recipe.steps, "cer": cer}, indent=2), encoding="utf-8")
        say(f"[asr] the best fine-tuned model of budget {name} ({encoder_name}, cer {cer:.3f}) saved in "
            f"{request.save_finetuned}")
    return results


def write_transcripts(path: Path, files: Sequence[Path], texts: Sequence[str]) -> None:
    """``path<TAB>transcript`` lines."""
    Path(path).write_text("".join(f"{f}\t{t}\n" for f, t in zip(files, texts)), encoding="utf-8")


def save_finetuned(model: nn.Module, encoder: nn.Module, vocab: CharVocabulary, folder: Path) -> None:
    """A transformers CTC model: ``config.json`` + weights (``AutoModelForCTC``), ``vocab.json`` and the tokenizer
    and feature extractor files (``AutoProcessor``, a ``Wav2Vec2Processor``). Otherwise :data:`SELFSUP_CTC`
    (the encoder's config and the vocabulary), ``vocab.json`` and ``model.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab.as_dict(), indent=1), encoding="utf-8")
    if isinstance(model, HFCTC):
        import transformers

        model.ctc.save_pretrained(str(folder))
        tokenizer = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>",
                                                      pad_token="<pad>", word_delimiter_token="|")
        transformers.Wav2Vec2Processor(feature_extractor=encoder.feature_extractor(),
                                       tokenizer=tokenizer).save_pretrained(str(folder))
        return
    from safetensors.torch import save_file

    (folder / SELFSUP_CTC).write_text(json.dumps({"encoder": model.encoder.config, "vocab": list(vocab.symbols),
                                                  "sample_rate": int(encoder.sample_rate)}, indent=1),
                                      encoding="utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))


def load_recogniser(folder: str | Path) -> tuple[Callable[[Tensor], str], int]:
    """(transcribe one 1-D waveform, its sample rate) from a ``--save-finetuned`` folder; one line for a folder
    that is not one."""
    folder = Path(folder).expanduser()
    how = (f"make one with: selfsup evaluate RUN --protocol asr --train LABELED --test LABELED --save-finetuned "
           f"{folder}")
    if not folder.is_dir():
        raise SelfSupError(f"{folder}: no such folder; transcribe takes a fine-tuned speech recogniser, {how}")
    if (folder / SELFSUP_CTC).is_file():
        return _selfsup_recogniser(folder)
    if not ((folder / "config.json").is_file() and (folder / "vocab.json").is_file()):
        what = "a run folder" if (folder / "config.yaml").is_file() else "not a fine-tuned speech recogniser"
        raise SelfSupError(f"{folder}: {what} (no vocab.json and config.json, or {SELFSUP_CTC}); {how}")
    import transformers

    from ...encoders.hf_checkpoint import quiet_transformers

    with quiet_transformers():
        model = transformers.AutoModelForCTC.from_pretrained(str(folder), local_files_only=True).eval()
        processor = transformers.AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    rate = int(processor.feature_extractor.sampling_rate)

    @torch.inference_mode()
    def recognise(wave: Tensor) -> str:
        inputs = processor(wave.numpy(), sampling_rate=rate, return_tensors="pt")
        ids = model(**inputs).logits.argmax(-1)
        return " ".join(processor.batch_decode(ids)[0].split())

    return recognise, rate


def _selfsup_recogniser(folder: Path) -> tuple[Callable[[Tensor], str], int]:
    from safetensors.torch import load_file

    from ...encoders import build_encoder

    spec = json.loads((folder / SELFSUP_CTC).read_text(encoding="utf-8"))
    vocab = CharVocabulary(tuple(spec["vocab"]))
    model = EncoderCTC(build_encoder(spec["encoder"], initial_weights=False), len(vocab))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()

    @torch.inference_mode()
    def recognise(wave: Tensor) -> str:
        log_probs, frames = model(pad_waves([wave]))
        return vocab.decode(log_probs[0, : int(frames[0])].argmax(-1).tolist())

    return recognise, int(spec["sample_rate"])


def transcribe_files(folder: str | Path, audio: Sequence[str | Path], out: str | Path | None = None
                     ) -> list[tuple[Path, str]]:
    """(file, greedy transcript) of every recording under ``audio`` (files, folders or list files); ``out``: also
    written there (:func:`write_transcripts`)."""
    from .readers import find_audio_files, read_audio

    recognise, rate = load_recogniser(folder)
    files = [f for item in audio for f in find_audio_files(item)]
    rows = [(f, recognise(read_audio(f, rate))) for f in files]
    if out is not None:
        write_transcripts(Path(out), [f for f, _ in rows], [t for _, t in rows])
    return rows

