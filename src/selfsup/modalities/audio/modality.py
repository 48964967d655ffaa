"""Audio as selfsup sees it: mono waveforms at ``data.sample_rate``, clips of at most ``data.clip_seconds``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ...methods.audio_base import frame_grid
from ...pretext.audio import add_noise, audio_views
from ...pretext.masking import span_mask
from ..base import Modality, Pretext, given

if TYPE_CHECKING:  # pragma: no cover
    from ...config import RunConfig


class WaveBatch:
    """NaN-padded waveforms [B, L] → the audio encoder's input dict, trimmed to the batch's longest clip;
    with ``noise`` (fine-tuning), white noise at 20-40 dB SNR."""

    def __init__(self, noise: bool = False) -> None:
        self.noise = noise

    def __call__(self, waves: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        mask = (~torch.isnan(waves)).long()
        length = max(1, int(mask.sum(1).max()))
        waves, mask = torch.nan_to_num(waves[:, :length], nan=0.0), mask[:, :length]
        if self.noise:
            waves = add_noise(waves, mask, min_snr_db=20.0, max_snr_db=40.0, generator=generator)
        return {"input_values": waves, "attention_mask": mask}


class AudioModality(Modality):
    def load_train_data(self, data, run_dir: Path, progress: bool = True):
        from .training import load_audio_data

        return load_audio_data(data, progress=progress)

    def shard_source(self, data, encoding="utf-8", text_field="text"):
        from ...shards.write import file_source
        from .readers import find_audio_files

        return file_source(data, find_audio_files(data))

    def hold_out(self, data, limit, seed, folder):
        """Recordings of DATA held out into ``folder/heldout.txt``, the rest listed in ``folder/train.txt`` (tar
        shards: whole shards, ``folder/*.shards.json``)."""
        from ..base import hold_out_media
        from .readers import find_audio_files

        return hold_out_media(data, find_audio_files, limit, seed, folder, self.info.unit)

    def input_size(self, data: dict[str, Any]) -> int:
        """Samples per clip: ``clip_seconds`` at ``sample_rate``."""
        return int(round(float(data["clip_seconds"]) * int(data["sample_rate"])))

    def foundation_settings(self, source: str, config: RunConfig) -> dict[str, Any]:
        """A Hugging Face speech checkpoint (wav2vec 2.0, HuBERT, WavLM, data2vec-audio): the ``hf_audio`` encoder
        (its architecture, weights and feature extractor) and its feature extractor's sample rate
        (``data.sample_rate``); training clips must span at least two of its frames."""
        from ...encoders.hf_checkpoint import init_encoder
        from ...encoders.pretrained_audio import NAME, audio_checkpoint, check_sample_rate
        from ...errors import SelfSupError

        checkpoint = audio_checkpoint(source)
        settings = init_encoder(NAME, source, checkpoint.folder, config.encoder.get("name"))
        if given(config, "sample_rate"):
            check_sample_rate(checkpoint, source, config.data.sample_rate)
        (window, stride), rate = checkpoint.frame, checkpoint.sample_rate
        shortest = (window + stride) / rate  # two frames: wav2vec2's distractors, a masked frame and a context
        if float(config.data.clip_seconds) < shortest:
            raise SelfSupError(f"--init {source}: clips of {config.data.clip_seconds} s are shorter than two of its "
                               f"frames ({shortest:.3f} s at {rate} Hz); use --clip-seconds {max(shortest, 1.0):g} "
                               "or more")
        return {**settings, "data.sample_rate": rate}

    def stored_data_settings(self, stored, config):
        """The stored encoder's sample rate (its features and convolutions are tuned to it); one line for another
        ``--sample-rate``."""
        from ...errors import SelfSupError

        rate = stored.encoder.get("sample_rate") or (stored.data or {}).get("sample_rate")
        if rate is None:  # an encoder that does not record it: nothing to carry over
            return {}
        rate = int(rate)
        if given(config, "sample_rate") and config.data.sample_rate != rate:
            raise SelfSupError(f"--init {stored.folder} was trained on audio at {rate} Hz; leave out --sample-rate "
                               f"{config.data.sample_rate} (recordings are resampled to {rate} Hz)")
        return {"data.sample_rate": rate}

    # ------------------------------------------------------------------ evaluation
    def read_labeled(self, loaded, path, classes, encoding):
        """Recordings at the encoder's sample rate, centre-cropped to the run's clip length, NaN-padded, in
        order of length (batches of similar lengths waste less on padding)."""
        from ...evaluation.downstream import Labeled
        from .readers import load_labeled_audio

        data = load_labeled_audio(path, loaded.encoder.sample_rate, loaded.input_size, classes=classes)
        order = torch.argsort((~torch.isnan(data.waves)).sum(1))
        return Labeled(data.waves[order], data.labels[order], data.classes,
                       references=[str(data.paths[i]) for i in order.tolist()])

    def eval_transforms(self, loaded):
        """Fine-tuning adds light noise; features from the clips as they are."""
        return WaveBatch(noise=True), WaveBatch()

    def baseline_scores(self, name, loaded, train_set, test_set, seed):
        """``mfcc``: MFCC statistics + logistic regression on each label subset."""
        if name != "mfcc":
            return super().baseline_scores(name, loaded, train_set, test_set, seed)
        from ...evaluation.linear import linear_probe_accuracy
        from .mfcc import mfcc_statistics

        rate = loaded.encoder.sample_rate
        train_feats, test_feats = mfcc_statistics(train_set.inputs, rate), mfcc_statistics(test_set.inputs, rate)
        return lambda idx: linear_probe_accuracy(train_feats[idx], train_set.labels[idx], test_feats, test_set.labels,
                                                 seed=seed)

    def onnx_graph(self, loaded):
        """``waveform`` + ``attention_mask`` at the run's sample rate, per-clip normalisation inside the graph (:mod:`.onnx_graph`)."""
        from .onnx_graph import audio_graph

        return audio_graph(loaded)

    def embed_source(self, loaded, data, strict=False, encoding="utf-8", text_field="text"):
        """One row per recording (a folder's files in sorted order, or tar shards' samples in order),
        centre-cropped to the run's clip length, NaN-padded per batch; ``path`` names it."""
        from ...embedding import EmbedSource
        from ...shards.labelled import reference, streamed
        from ...shards.tar import SUFFIXES, count_tar, tar_samples
        from .readers import AudioReadError, audio_of_sample, find_audio_files, read_audio

        rate, crop = loaded.encoder.sample_rate, loaded.input_size
        shards = streamed(str(data), SUFFIXES, count_tar, tar_samples, strict)
        if shards is not None:
            items, count = shards
            decode = lambda item: (reference(*item), audio_of_sample(item[1], rate, crop))  # noqa: E731
        else:
            items = find_audio_files(data)
            count = len(items)
            decode = lambda path: (str(path), read_audio(path, rate, crop))  # noqa: E731
        pad = partial(torch.nn.utils.rnn.pad_sequence, batch_first=True, padding_value=float("nan"))
        return EmbedSource("path", items, decode, pad, WaveBatch(), count, (AudioReadError,), lambda exc: exc,
                           "recordings")

    # ------------------------------------------------------------------ the run report
    def report_sample(self, loaded, data, limit, seed, settings, device):
        """Up to ``limit`` recordings of ``data`` (files, or samples of its first tar shards), centre-cropped to the
        run's clip length, embedded."""
        from ...evaluation.features import extract_features
        from ..base import DataSample, sample_of_stored
        from .readers import AUDIO_EXTENSIONS, AudioClips, AudioReadError, _read, find_audio_files

        files, total = sample_of_stored(data, find_audio_files, AUDIO_EXTENSIONS, limit, seed)
        waves, kept = [], []
        for item in files:
            try:
                waves.append(torch.from_numpy(_read(item.opened(item.read()), loaded.encoder.sample_rate,
                                                    loaded.input_size)))
                kept.append(item.id)
            except AudioReadError:
                continue  # unreadable: left out
        clips = AudioClips.from_clips(waves, kept)
        feats = extract_features(loaded.encoder, clips.padded(), WaveBatch(), device=device)
        return DataSample(feats, kept, total)

    def report_items(self, loaded, references, settings):
        """Each recording's name and duration, with its waveform (:func:`.waveform.waveform_picture`)."""
        from ..base import ItemView
        from .readers import AudioReadError, read_audio
        from .waveform import waveform_picture

        views = []
        for reference in references:
            path, rate = Path(reference), loaded.encoder.sample_rate
            try:
                wave = read_audio(path, rate).numpy()
            except AudioReadError:
                views.append(ItemView(f"{path.parent.name}/{path.name} (not readable here)"))
                continue
            views.append(ItemView(f"{path.parent.name}/{path.name} · {len(wave) / rate:.2f} s", waveform_picture(wave)))
        return views

    # ------------------------------------------------------------------ what generic methods ask for
    def two_views(self, input_size: int, settings: Any) -> Pretext:
        """COLA's positives (Saeed et al. 2021): two random crops of each recording with random gain and noise."""
        return audio_views(input_size)

    def masked_inputs(self, encoder, input_size: int, settings: Any) -> Pretext:
        """data2vec for speech: spans of ``settings.mask_length`` frames started with probability
        ``settings.mask_prob / mask_length`` on the encoder's frame grid (wav2vec 2.0's masking)."""

        def pretext(batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict:
            batch = frame_grid(encoder, batch)
            positions = span_mask(batch["frame_mask"], settings.mask_prob, settings.mask_length)
            return {"student": batch, "teacher": batch, "positions": positions, "valid": batch["frame_mask"]}

        return pretext

    def normalize_targets(self, states: Tensor, batch: dict) -> Tensor:
        """Instance norm over time of each layer, over the real frames (data2vec §3.3, speech)."""
        from ...encoders.audio import standardize_over_time

        return standardize_over_time(states.float(), batch["valid"], eps=1e-5)

    # ------------------------------------------------------------------ data inspection
    def inspect_items(self, data, settings, loaded, device, batch_size):
        """Recordings: BLAKE2b of the file's bytes, a volume-free log-mel embedding (or the run's encoder),
        duration, sample rate and channels, the class subfolder when DATA has one per class."""
        from .inspection import inspect_audio

        return inspect_audio(data, settings.sample_rate, loaded, device, batch_size)

    # ------------------------------------------------------------------ speech recognition
    def evaluate_task(self, loaded, request):
        """``asr``: a character CTC head fine-tuned on minutes of transcribed speech, ``cer`` and ``wer``
        (:mod:`.asr`)."""
        if request.protocol != "asr":
            return super().evaluate_task(loaded, request)
        from .asr import evaluate_asr

        return evaluate_asr(loaded, request)

    def apply_task(self, protocol, model_dir, inputs, out, **options):
        """``asr``: (file, transcript) of each recording under ``inputs`` by a ``--save-finetuned`` speech recogniser
        (``out``: also written there, ``path<TAB>transcript``)."""
        if protocol != "asr":
            return super().apply_task(protocol, model_dir, inputs, out, **options)
        from .asr import transcribe_files

        return transcribe_files(model_dir, inputs, out)
