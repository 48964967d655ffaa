"""Character CTC: the vocabulary, the loss, fine-tuning on a fixed step budget, greedy decoding, CER and WER.

Connectionist temporal classification (Graves, Fernández, Gomez, Schmidhuber 2006, ICML) scores every alignment
of a label sequence to the model's frames through a *blank* symbol; the model emits one distribution over
characters per frame. Greedy decoding takes the best symbol per frame, merges repeats and drops blanks. This is
how wav2vec 2.0 is fine-tuned for speech recognition (Baevski et al. 2020, §4.3: a linear projection over
characters on top of the transformer, CTC loss, AdamW, the feature encoder frozen) and scored without a language
model. Nothing here knows what the inputs are: the caller gives items, their sizes (for batching by length),
a ``collate`` that turns a list of items into the model's input, and a model returning frame log-probabilities
and frame counts.

Transcripts are normalised as LibriSpeech's are (upper case, letters, digits and apostrophes, single spaces); the
vocabulary follows transformers' ``Wav2Vec2CTCTokenizer``: ``<pad>`` (the CTC blank, id 0), ``<unk>``, ``|`` (the
word delimiter, written for a space), then the training transcripts' characters in sorted order. Error rates are
jiwer's (Levenshtein distance over characters / words divided by the reference length; fractions, lower is
better).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import SelfSupError
from ..schedules import warmup_cosine

BLANK, UNK, DELIMITER = "<pad>", "<unk>", "|"
_DROPPED = re.compile(r"[^0-9A-Z' ]+")

def normalize_transcript(text: str) -> str:
    """Upper case; every character other than A-Z, 0-9 and the apostrophe becomes a space; single spaces."""
    return " ".join(_DROPPED.sub(" ", text.upper()).split())


@dataclass(frozen=True)
class CharVocabulary:
    """The CTC output symbols: ``<pad>`` (blank, id 0), ``<unk>`` (1), ``|`` (2, a space), then characters."""

    symbols: tuple[str, ...]

    @classmethod
    def from_transcripts(cls, transcripts: Sequence[str]) -> CharVocabulary:
        """The characters of the (normalised) training transcripts."""
        chars = sorted({c for text in transcripts for c in text} - {" "})
        return cls((BLANK, UNK, DELIMITER, *chars))

    def as_dict(self) -> dict[str, int]:
        """``vocab.json`` of a ``Wav2Vec2CTCTokenizer``."""
        return {symbol: i for i, symbol in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``'s characters (a space is ``|``, an unknown character ``<unk>``)."""
        lookup = self.as_dict()
        return [lookup.get(DELIMITER if c == " " else c, 1) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Greedy CTC decoding of one row of frame-wise best ids: repeats merged, blanks dropped, ``|`` a space."""
        out, previous = [], None
        for i in ids:
            if i != previous and i != 0:
                out.append(" " if self.symbols[i] == DELIMITER else self.symbols[i])
            previous = i
        return " ".join("".join(out).split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """``{"cer": ..., "wer": ...}`` of ``hypotheses`` against ``references`` (jiwer; fractions, 0 = perfect)."""
    try:
        import jiwer
    except ImportError:
        raise SelfSupError("--protocol asr needs jiwer for its error rates; pip install 'selfsup[asr]'") from None
    if not references or any(not r.strip() for r in references):
        raise ValueError("error_rates needs non-empty references")
    return {"cer": float(jiwer.cer(list(references), list(hypotheses))),
            "wer": float(jiwer.wer(list(references), list(hypotheses)))}


def length_batches(sizes: Sequence[int], batch_size: int, max_total: int) -> list[list[int]]:
    """Indices in order of size, cut into batches of at most ``batch_size`` items whose padded size (count x the
    largest) stays within ``max_total`` (a single larger item gets a batch of its own)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < batch_size and (len(batch) + 1) * sizes[i] <= max_total:
            batch.append(i)
        else:
            batches.append([i])
    return batches


def ctc_loss(log_probs: Tensor, frames: Tensor, targets: Sequence[Sequence[int]]) -> Tensor:
    """Mean over the batch of each row's CTC loss divided by its target length (torch's ``reduction="mean"``, as
    transformers' ``*ForCTC`` models), blank 0; impossible alignments (more characters than frames) count 0."""
    flat = torch.tensor([t for row in targets for t in row], dtype=torch.long, device=log_probs.device)
    lengths = torch.tensor([len(row) for row in targets], dtype=torch.long, device=log_probs.device)
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's CTC wants int32 targets on the CPU
        return F.ctc_loss(log_probs.transpose(0, 1).float(), flat, frames.long(), lengths, blank=0,
                          reduction="mean", zero_infinity=True)


@dataclass
class CTCData:
    """Items (anything ``collate`` takes), their sizes (for batching by length) and their normalised texts."""

    items: list
    sizes: list[int]
    texts: list[str]

    def subset(self, indices: Sequence[int]) -> CTCData:
        return CTCData([self.items[i] for i in indices], [self.sizes[i] for i in indices],
                       [self.texts[i] for i in indices])


@dataclass(frozen=True)
class CTCRecipe:
    """Fine-tuning settings: AdamW (Loshchilov & Hutter 2019) for ``steps`` updates, linear warmup over the first
    tenth then cosine decay; batches of up to ``batch_size`` items of similar size within ``max_total``."""

    steps: int = 300
    lr: float = 5e-4
    weight_decay: float = 0.01
    batch_size: int = 8
    max_total: int = 16000 * 30
    clip_norm: float = 1.0


def finetune_ctc(model: nn.Module, train: CTCData,
                 vocab: CharVocabulary, collate: Callable[[list, torch.Generator | None], object],
                 recipe: CTCRecipe, seed: int, device: str | torch.device = "cpu",
                 progress: Callable[[str], None] | None = None, name: str = "") -> tuple[nn.Module, list[float]]:
    """A deep copy of ``model`` trained with CTC on ``train`` for ``recipe.steps`` steps (only its parameters that
    require grad); returns it (eval mode) and the loss of every step. ``model(batch)`` gives (log-probabilities
    [B, T, V], real frames per row [B]); ``collate(items, generator)`` makes a batch."""
    model = copy.deepcopy(model).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    warmup = max(1, recipe.steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, recipe.steps, warmup))
    batches = length_batches(train.sizes, recipe.batch_size, recipe.max_total)
    targets = [vocab.encode(text) for text in train.texts]
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    for step in range(recipe.steps):
        chosen = batches[int(torch.randint(len(batches), (1,), generator=generator))]
        batch = _to(collate([train.items[i] for i in chosen], generator), device)
        log_probs, frames = model(batch)
        loss = ctc_loss(log_probs, frames, [targets[i] for i in chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, recipe.clip_norm)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step + 1) % max(1, recipe.steps // 4) == 0:
            progress(f"[asr] {name} step {step + 1}/{recipe.steps}: ctc loss {sum(losses[-10:]) / len(losses[-10:]):.3f}")
    return model.eval(), losses


@torch.inference_mode()
def greedy_transcripts(model: nn.Module, data: CTCData, vocab: CharVocabulary, collate: Callable[[list, torch.Generator | None], object],
                       recipe: CTCRecipe, device: str | torch.device = "cpu") -> list[str]:
    """Greedy CTC transcripts of every item of ``data``, in its order."""
    model.eval()
    out: list[str] = [""] * len(data.items)
    for chosen in length_batches(data.sizes, recipe.batch_size, recipe.max_total):
        log_probs, frames = model(_to(collate([data.items[i] for i in chosen], None), device))
        best = log_probs.argmax(-1).cpu()
        for row, i in enumerate(chosen):
            out[i] = vocab.decode(best[row, : int(frames[row])].tolist())
    return out


def _to(batch: object, device: str | torch.device) -> object:
    if isinstance(batch, dict):
        return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
    return batch.to(device) if isinstance(batch, Tensor) else batch

