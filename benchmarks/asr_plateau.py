"""Why CTC fine-tuning of a ``wav2vec2_tiny`` model stays on the blank plateau on LibriSpeech: short, one-at-a-time
experiments on the recipe (``--protocol asr``'s models and ``finetune_ctc``), each printing its CTC loss curve
(mean per 10 steps, per character) and CER / WER of greedy transcripts of the first ``--test-utterances`` of the
held-out speaker.

Variants (``--variant``; all from random weights, seed 0, the 50 min of the two training speakers):

- ``hf``: transformers' ``Wav2Vec2ForCTC`` as ``--protocol asr`` builds it (feature encoder frozen);
  ``--lr``, ``--batch-seconds``, ``--unfreeze`` (train the convolutional feature encoder too),
  ``--dropout 0`` (encoder and final dropout), ``--conv-norm group`` (wav2vec 2.0 BASE's GroupNorm front end);
- ``mel``: the same transformer on log-mel filter banks (``frontend=mel``, a linear CTC head);
- ``mfcc``: the ``mfcc`` baseline (MFCC + three 1-D convolutions);
- ``probe``: the ``mfcc`` baseline's convolutions on the frozen random convolutional feature encoder's output,
  ``--standardize`` per utterance and channel over time (as the MFCCs are).

    OMP_NUM_THREADS=1 python benchmarks/asr_plateau.py --variant hf --steps 300     # ~70 s on a 2-core EPYC
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from selfsup.encoders import build_encoder
from selfsup.encoders.audio import prepare_waves, standardize_over_time
from selfsup.evaluation.ctc import CharVocabulary, CTCData, CTCRecipe, error_rates, finetune_ctc, greedy_transcripts
from selfsup.modalities.audio import asr
from selfsup.modalities.audio.transcripts import read_transcribed

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "audio" / "librispeech"


class ConvProbe(nn.Module):
    """:class:`asr.MfccCTC`'s convolutions and head on a frozen convolutional feature encoder's frames."""

    def __init__(self, encoder: asr.AudioEncoder, vocab_size: int, standardize: bool, width: int = 256) -> None:
        super().__init__()
        self.hf, self.standardize = encoder.hf_model, standardize
        self.hf.requires_grad_(False)
        channels = self.hf.config.conv_dim[-1]
        self.convs = nn.Sequential(nn.Conv1d(channels, width, 5, padding=2), nn.GELU(),
                                   nn.Conv1d(width, width, 5, padding=2), nn.GELU(),
                                   nn.Conv1d(width, width, 5, padding=2), nn.GELU())
        self.head = nn.Linear(width, vocab_size)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        waves, mask = prepare_waves(batch, 400, True)
        feats = self.hf.feature_extractor(waves).transpose(1, 2)
        frames = self.hf._get_feat_extract_output_lengths(mask.sum(1)).long().clamp(1, feats.shape[1])
        if self.standardize:
            valid = (torch.arange(feats.shape[1])[None] < frames[:, None]).long()
            feats = standardize_over_time(feats, valid, eps=1e-5) * valid[..., None]
        return self.head(self.convs(feats.transpose(1, 2)).transpose(1, 2)).log_softmax(-1), frames


def model_for(args: argparse.Namespace, vocab: CharVocabulary) -> nn.Module:
    settings = {"name": "wav2vec2_tiny", "dropout": args.dropout}
    if args.variant == "mfcc":
        return asr.MfccCTC(16000, len(vocab))
    if args.variant == "mel":
        return asr.ctc_model(build_encoder({**settings, "frontend": "mel"}), vocab, 0)
    encoder = build_encoder(settings)
    if args.variant == "probe":
        return ConvProbe(encoder, len(vocab), args.standardize)
    if args.conv_norm != "layer":
        import transformers

        encoder.hf_model.config.feat_extract_norm = args.conv_norm
        encoder.hf_model = transformers.Wav2Vec2Model(encoder.hf_model.config)
    model = asr.ctc_model(encoder, vocab, 0)
    model.ctc.config.final_dropout = args.dropout
    model.ctc.dropout.p = args.dropout
    if args.unfreeze:
        model.ctc.wav2vec2.feature_extractor.requires_grad_(True)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--variant", choices=("hf", "mel", "mfcc", "probe"), default="hf")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=None, help="default: the protocol's (encoder_lr(128) or MFCC_LR)")
    p.add_argument("--batch-seconds", type=float, default=asr.BATCH_SECONDS)
    p.add_argument("--unfreeze", action="store_true")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--conv-norm", choices=("layer", "group"), default="layer")
    p.add_argument("--standardize", action="store_true")
    p.add_argument("--test-utterances", type=int, default=30)
    args = p.parse_args()
    corpus = args.data / "train-clean-100"
    train = [read_transcribed(corpus / s, 16000) for s in ("19", "26")]
    test = read_transcribed(corpus / "27", 16000)
    waves, texts = [w for t in train for w in t.waves], [x for t in train for x in t.texts]
    vocab = CharVocabulary.from_transcripts(texts)
    torch.manual_seed(0)
    model = model_for(args, vocab)
    lr = args.lr or (asr.MFCC_LR if args.variant in ("mfcc", "probe") else asr.encoder_lr(128))
    recipe = CTCRecipe(steps=args.steps, lr=lr, max_total=int(16000 * args.batch_seconds))
    start = time.time()
    tuned, losses = finetune_ctc(model, CTCData(waves, [len(w) for w in waves], texts), vocab, asr.pad_waves,
                                 recipe, 0)
    seconds = time.time() - start
    n = args.test_utterances
    held = CTCData(test.waves[:n], [len(w) for w in test.waves[:n]], test.texts[:n])
    hypotheses = greedy_transcripts(tuned, held, vocab, asr.pad_waves, recipe)
    curve = [round(sum(losses[i:i + 10]) / len(losses[i:i + 10]), 3) for i in range(0, len(losses), 10)]
    print(json.dumps({**{k: v for k, v in vars(args).items() if k != "data"}, "lr": lr,
                      "finetune_s": round(seconds), **error_rates(held.texts, hypotheses), "curve": curve,
                      "first_hypothesis": hypotheses[0][:80]}))


if __name__ == "__main__":
    main()
