"""Audio reader (selfsup.modalities.audio.readers): files, decoding, resampling, caches, collation, labeled sets."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from selfsup.modalities.audio.readers import (
    AUDIO_EXTENSIONS,
    AudioClips,
    AudioFileDataset,
    AudioReadError,
    ClipCollator,
    audio_duration,
    decode_clips,
    find_audio_files,
    load_labeled_audio,
    read_audio,
    resample,
    unlabeled_waves,
)
from selfsup.errors import SelfSupError

SR = 16000


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray | torch.Tensor, rate: int) -> float:
    wave = np.asarray(wave, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def write(path: Path, wave: np.ndarray, rate: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, **kw)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(600))
    return path


# --------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("orig", [8000, 44100])
def test_resampling_keeps_frequency_and_length_ratio(tmp_path, orig):
    wave = tone(440, 0.5, orig)
    out = read_audio(write(tmp_path / "a.wav", wave, orig, subtype="FLOAT"), SR)
    assert out.dtype == torch.float32 and out.ndim == 1
    assert len(out) == int(np.ceil(len(wave) * SR / orig))
    assert abs(peak_hz(out, SR) - 440) < 5
    # amplitude survives (no gain error), judged away from the filter's edges
    assert abs(float(out[1000:-1000].abs().max()) - 0.5) < 0.02
    direct = resample(wave, orig, SR)
    assert direct.dtype == np.float32 and np.allclose(direct, out.numpy(), atol=1e-6)


def test_resample_identity_at_equal_rates():
    wave = tone(300, 0.1, SR)
    assert resample(wave, SR, SR) is wave


def test_stereo_is_mixed_down(tmp_path):
    left = tone(440, 0.2, SR)
    opposite = read_audio(write(tmp_path / "opp.wav", np.stack([left, -left], axis=1), subtype="FLOAT"), SR)
    assert opposite.abs().max() < 1e-6
    same = read_audio(write(tmp_path / "same.wav", np.stack([left, left], axis=1), subtype="FLOAT"), SR)
    assert torch.allclose(same, torch.from_numpy(left), atol=1e-6)


@pytest.mark.parametrize("name,kw,atol", [
    ("pcm16.wav", {"subtype": "PCM_16"}, 1e-4),
    ("lossless.flac", {}, 1e-4),
    ("vorbis.ogg", {}, None),
])
def test_formats_read(tmp_path, name, kw, atol):
    wave = tone(440, 0.5, SR)
    out = read_audio(write(tmp_path / name, wave, **kw), SR)
    assert out.dtype == torch.float32 and len(out) == len(wave)
    if atol is not None:
        assert np.allclose(out.numpy(), wave, atol=atol)
    else:  # lossy: same tone, same level
        assert abs(peak_hz(out, SR) - 440) < 5
        assert np.corrcoef(out.numpy(), wave)[0, 1] > 0.95


def test_unusable_files_raise_audio_read_error(tmp_path):
    bad = corrupt(tmp_path / "bad.wav")
    with pytest.raises(AudioReadError, match="bad.wav") as info:
        read_audio(bad, SR)
    assert "\n" not in str(info.value) and info.value.path == bad
    empty = write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioReadError, match=r"empty\.wav.*empty"):
        read_audio(empty, SR)
    wave = tone(440, 0.1, SR)
    wave[10] = np.nan
    with pytest.raises(AudioReadError, match=r"nan\.wav.*NaN"):
        read_audio(write(tmp_path / "nan.wav", wave, subtype="FLOAT"), SR)
    # survives pickling (DataLoader workers send exceptions to the main process)
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, AudioReadError) and str(again) == str(info.value) and again.path == bad


def test_audio_duration(tmp_path):
    assert audio_duration(write(tmp_path / "a.flac", tone(440, 0.25, 8000), 8000)) == pytest.approx(0.25)
    assert audio_duration(corrupt(tmp_path / "bad.wav")) is None
    assert audio_duration(tmp_path / "missing.wav") is None


def test_max_samples_centre_crops(tmp_path):
    ramp = np.linspace(-1, 1, 5000, dtype=np.float32)
    path = write(tmp_path / "long.wav", ramp, subtype="FLOAT")
    out = read_audio(path, SR, max_samples=1000)
    assert torch.equal(out, torch.from_numpy(ramp[2000:3000]))
    clips = decode_clips([path, write(tmp_path / "short.wav", ramp[:300], subtype="FLOAT")], SR, progress=False, max_samples=1000)
    assert clips.lengths.tolist() == [1000, 300] and torch.equal(clips[0], out)
    # resampled long file: cropped to exactly max_samples, still the same tone
    long_tone = write(tmp_path / "tone.wav", tone(440, 2.0, 44100), 44100)
    assert len(read_audio(long_tone, SR, max_samples=4000)) == 4000
    assert abs(peak_hz(read_audio(long_tone, SR, max_samples=4000), SR) - 440) < 8


# --------------------------------------------------------------------------------------- files


def test_find_audio_files_folder_single_and_list(tmp_path):
    root = tmp_path / "data"
    a = write(root / "a.wav", tone(440, 0.05, SR))
    b = write(root / "sub" / "deeper" / "b.FLAC", tone(440, 0.05, SR))
    write(root / ".hidden.wav", tone(440, 0.05, SR))
    write(root / ".cache" / "c.wav", tone(440, 0.05, SR))
    (root / "notes.txt").write_text("not audio")
    assert find_audio_files(root) == [a, b]
    assert find_audio_files(a) == [a]
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my files\n\n../data/sub/deeper/b.FLAC\n{a}\n")
    assert find_audio_files(listing) == [b.resolve(), a]


def test_find_audio_files_errors(tmp_path):
    with pytest.raises(SelfSupError, match="no such file"):
        find_audio_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelfSupError, match=r"no audio files found.*\.flac.*\.wav"):
        find_audio_files(tmp_path / "empty")
    write(tmp_path / "x.wav", tone(440, 0.05, SR))
    listing = tmp_path / "files.lst"
    listing.write_text("x.wav\ngone1.wav\ngone2.wav\n")
    with pytest.raises(SelfSupError, match=r"files\.lst: 2 listed file\(s\) do not exist, first: .*gone1\.wav") as info:
        find_audio_files(listing)
    assert "\n" not in str(info.value)
    assert ".opus" in AUDIO_EXTENSIONS and ".mp3" in AUDIO_EXTENSIONS


# --------------------------------------------------------------------------------------- caches


def test_decode_skips_unusable_files_with_warnings(tmp_path, caplog):
    good = write(tmp_path / "good.wav", tone(440, 0.1, SR))
    bad = corrupt(tmp_path / "bad.wav")
    empty = write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        clips = decode_clips([bad, good, empty], SR, progress=False)
    assert clips.paths == [good] and len(clips) == 1
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert str(bad) in warned and str(empty) in warned and str(good) not in warned
    with pytest.raises(AudioReadError, match="bad.wav"):
        decode_clips([good, bad], SR, strict=True, progress=False)


def test_all_unreadable_is_an_error(tmp_path):
    files = [corrupt(tmp_path / "one.wav"), corrupt(tmp_path / "two.wav")]
    with pytest.raises(SelfSupError, match=r"none of the 2 audio files.*one\.wav") as info:
        decode_clips(files, SR, progress=False)
    assert not isinstance(info.value, AudioReadError)


def test_audio_clips_round_trip_in_one_storage(tmp_path):
    rng = np.random.default_rng(0)
    waves = [rng.uniform(-0.9, 0.9, n).astype(np.float32) for n in (500, 1200, 37)]
    files = [write(tmp_path / f"{i}.wav", w, subtype="FLOAT") for i, w in enumerate(waves)]
    clips = decode_clips(files, SR, progress=False)
    assert len(clips) == 3 and clips.lengths.tolist() == [500, 1200, 37] and clips.lengths.dtype == torch.int64
    assert clips.paths == files
    storage = clips.data.untyped_storage().data_ptr()
    for i, wave in enumerate(waves):
        assert torch.equal(clips[i], torch.from_numpy(wave))
        assert clips[i].untyped_storage().data_ptr() == storage
    assert torch.equal(clips[-1], clips[2])
    with pytest.raises(IndexError):
        clips[3]
    assert clips.nbytes == 1737 * 4 + 4 * 8
    packed = AudioClips.from_clips(waves, files)
    assert torch.equal(packed.data, clips.data) and torch.equal(packed.offsets, clips.offsets)
    padded = clips.padded()
    assert padded.shape == (3, 1200) and torch.isnan(padded[2, 37:]).all() and not torch.isnan(padded[1]).any()


def test_file_dataset_reads_per_item(tmp_path):
    good = write(tmp_path / "good.wav", tone(440, 0.1, SR))
    ds = AudioFileDataset([good, corrupt(tmp_path / "bad.wav")], SR)
    assert len(ds) == 2 and ds.paths[0] == good
    assert torch.equal(ds[0], read_audio(good, SR))
    with pytest.raises(AudioReadError, match="bad.wav"):
        ds[1]


# --------------------------------------------------------------------------------------- batches


def test_collator_random_crops_vary_and_stay_inside():
    ramp = torch.arange(5000, dtype=torch.float32)
    collate = ClipCollator(crop_samples=1000)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        batch = collate([ramp])
        x = batch["input_values"][0]
        assert batch["input_values"].shape == (1, 1000) and batch["attention_mask"].all()
        start = int(x[0])
        assert 0 <= start <= 4000 and torch.equal(x, ramp[start : start + 1000])  # contiguous run from the clip
        starts.add(start)
    assert len(starts) > 10


def test_collator_centre_crop_padding_and_mask():
    collate = ClipCollator(crop_samples=1000, random_crop=False)
    long, short = torch.arange(3000, dtype=torch.float32) + 1, torch.full((600,), 2.0)
    batch = collate([long, short])
    values, mask = batch["input_values"], batch["attention_mask"]
    assert values.dtype == torch.float32 and mask.dtype == torch.long and values.shape == mask.shape == (2, 1000)
    assert torch.equal(values[0], long[1000:2000])
    assert torch.equal(values[1, :600], short) and (values[1, 600:] == 0).all()
    assert mask[0].sum() == 1000 and mask[1, :600].all() and (mask[1, 600:] == 0).all()
    # every crop shorter than the crop length: padded to the longest of the batch only
    assert collate([torch.ones(700), torch.ones(800)])["input_values"].shape == (2, 800)


def test_collator_pads_batch_to_min_samples():
    batch = ClipCollator(crop_samples=16000)([torch.ones(100), torch.ones(250)])
    assert batch["input_values"].shape == (2, 400)
    assert batch["attention_mask"].sum(1).tolist() == [100, 250]
    assert (batch["input_values"][0, 100:] == 0).all()
    assert pickle.loads(pickle.dumps(ClipCollator(10, random_crop=False))).random_crop is False


# --------------------------------------------------------------------------------------- labeled sets


def labeled_folder(root: Path) -> Path:
    write(root / "dog" / "d1.wav", tone(200, 0.05, SR))  # 800 samples
    write(root / "dog" / "more" / "d2.flac", tone(200, 0.1, SR))  # 1600
    write(root / "cat" / "c1.wav", tone(900, 0.2, 8000), 8000)  # 1600 -> 3200 at 16 kHz
    return root


def test_labeled_folders(tmp_path, caplog):
    root = labeled_folder(tmp_path / "train")
    corrupt(root / "cat" / "broken.wav")
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        data = load_labeled_audio(root, SR, max_samples=2000, progress=False)
    assert "broken.wav" in caplog.text
    assert data.classes == ["cat", "dog"]
    assert [p.name for p in data.paths] == ["c1.wav", "d1.wav", "d2.flac"]
    assert data.labels.tolist() == [0, 1, 1] and data.labels.dtype == torch.int64
    assert data.waves.shape == (3, 2000) and data.waves.dtype == torch.float32  # c1 centre-cropped 3200 -> 2000
    real = (~torch.isnan(data.waves)).sum(1).tolist()
    assert real == [2000, 800, 1600]
    assert torch.isnan(data.waves[1, 800:]).all() and not torch.isnan(data.waves[1, :800]).any()
    # a test split read with the training classes, in their order
    test = load_labeled_audio(labeled_folder(tmp_path / "test"), SR, 2000, classes=["dog", "cat"], progress=False)
    assert test.classes == ["dog", "cat"] and test.labels.tolist() == [1, 0, 0]
    with pytest.raises(AudioReadError, match="broken.wav"):
        load_labeled_audio(root, SR, 2000, strict=True, progress=False)


def test_labeled_csv_relative_paths(tmp_path):
    labeled_folder(tmp_path / "audio")
    table = tmp_path / "meta" / "train.csv"
    table.parent.mkdir()
    table.write_text("id,label,path\n1,bark,../audio/dog/d1.wav\n\n2,meow,../audio/cat/c1.wav\n3,bark,../audio/dog/more/d2.flac\n")
    data = load_labeled_audio(table, SR, None, progress=False)
    assert data.classes == ["bark", "meow"] and data.labels.tolist() == [0, 1, 0]
    assert data.waves.shape == (3, 3200)
    assert (~torch.isnan(data.waves)).sum(1).tolist() == [800, 3200, 1600]
    tsv = tmp_path / "meta" / "test.tsv"
    tsv.write_text("path\tlabel\n../audio/cat/c1.wav\tmeow\n")
    test = load_labeled_audio(tsv, SR, None, classes=data.classes, progress=False)
    assert test.labels.tolist() == [1] and test.waves.shape == (1, 3200)


def test_labeled_errors(tmp_path):
    labeled_folder(tmp_path / "audio")
    with pytest.raises(SelfSupError, match=r"c1\.wav.*unknown label 'meow'"):
        bad = tmp_path / "bad.csv"
        bad.write_text("path,label\naudio/cat/c1.wav,meow\naudio/dog/d1.wav,bark\n")
        load_labeled_audio(bad, SR, None, classes=["bark", "growl"], progress=False)
    with pytest.raises(SelfSupError, match=r"cat.*unknown label 'cat'"):
        load_labeled_audio(tmp_path / "audio", SR, None, classes=["dog", "wolf"], progress=False)
    cols = tmp_path / "cols.csv"
    cols.write_text("file,class\naudio/cat/c1.wav,cat\n")
    with pytest.raises(SelfSupError, match=r"cols\.csv.*path and label.*found: file, class"):
        load_labeled_audio(cols, SR, None, progress=False)
    one = tmp_path / "one"
    write(one / "dog" / "a.wav", tone(200, 0.05, SR))
    with pytest.raises(SelfSupError, match="found 1 class"):
        load_labeled_audio(one, SR, None, progress=False)
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    (tmp_path / "hollow" / "b").mkdir()
    with pytest.raises(SelfSupError, match="no labeled audio files"):
        load_labeled_audio(tmp_path / "hollow", SR, None, progress=False)
    with pytest.raises(SelfSupError, match="no such file"):
        load_labeled_audio(tmp_path / "missing", SR, None, progress=False)


def test_unlabeled_waves(tmp_path):
    root = labeled_folder(tmp_path / "audio")
    waves, paths = unlabeled_waves(root, SR, max_samples=1000, progress=False)
    assert [p.name for p in paths] == ["c1.wav", "d1.wav", "d2.flac"]
    assert waves.shape == (3, 1000) and (~torch.isnan(waves)).sum(1).tolist() == [1000, 800, 1000]
