"""Speech recognition (``evaluate --protocol asr``, ``transcribe``) on generated "speech": each letter A-E is a
tone of its own pitch, a clip spells 2-3 short words, written as a LibriSpeech-style folder (FLAC +
``*.trans.txt``). A tiny wav2vec2 run fine-tuned with CTC must transcribe it far better than chance; the saved
model loads with transformers' ``AutoModelForCTC`` and transcribes exactly as the evaluation decoded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_checks import assert_one_line_error, run_cli
from selfsup import api
from selfsup.errors import SelfSupError
from selfsup.evaluation.ctc import CharVocabulary, error_rates, normalize_transcript
from selfsup.evaluation.subsets import budget_prefix, group_balanced_order
from selfsup.modalities.audio.asr import TEST_TRANSCRIPTS
from selfsup.modalities.audio.transcripts import read_transcribed

RATE = 16000
PITCH = {"A": 300.0, "B": 500.0, "C": 800.0, "D": 1200.0, "E": 1800.0}
LETTER, GAP, SPACE = 0.06, 0.03, 0.08  # seconds: a letter's tone, between letters, between words
SMALL = {"encoder.hidden_size": 32, "encoder.num_heads": 2, "encoder.conv_dim": 16, "encoder.num_layers": 1}


def spell(text: str, rng: np.random.Generator) -> np.ndarray:
    """The waveform of ``text``: each letter its tone (a little pitch and level jitter), gaps between letters and
    longer ones between words, light noise."""
    parts = [np.zeros(int(0.03 * RATE))]
    for w, word in enumerate(text.split()):
        if w:
            parts.append(np.zeros(int(SPACE * RATE)))
        for i, letter in enumerate(word):
            if i:
                parts.append(np.zeros(int(GAP * RATE)))
            t = np.arange(int(LETTER * RATE)) / RATE
            pitch = PITCH[letter] * rng.uniform(0.97, 1.03)
            parts.append(rng.uniform(0.3, 0.6) * np.sin(2 * math.pi * pitch * t) * np.hanning(len(t)) ** 0.3)
    parts.append(np.zeros(int(0.03 * RATE)))
    wave = np.concatenate(parts)
    return (wave + 0.005 * rng.standard_normal(len(wave))).astype(np.float32)


def random_text(rng: np.random.Generator) -> str:
    letters = list(PITCH)
    return " ".join("".join(rng.choice(letters, size=rng.integers(1, 3))) for _ in range(rng.integers(2, 4)))


def write_librispeech(root: Path, speakers: dict[str, int], seed: int) -> list[tuple[Path, str]]:
    """``root/SPEAKER/1/SPEAKER-1-NNNN.flac`` and ``SPEAKER-1.trans.txt``: ``speakers`` maps a speaker to its
    number of utterances; returns (file, transcript) of each."""
    rng = np.random.default_rng(seed)
    written = []
    for speaker, count in speakers.items():
        chapter = root / speaker / "1"
        chapter.mkdir(parents=True)
        lines = []
        for n in range(count):
            text, utterance = random_text(rng), f"{speaker}-1-{n:04d}"
            sf.write(chapter / f"{utterance}.flac", spell(text, rng), RATE)
            lines.append(f"{utterance} {text}")
            written.append((chapter / f"{utterance}.flac", text))
        (chapter / f"{speaker}-1.trans.txt").write_text("\n".join(lines) + "\n")
    return written


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr")
    write_librispeech(root / "train", {"11": 40, "12": 40}, seed=0)
    write_librispeech(root / "test", {"13": 16}, seed=1)
    run = root / "run"
    torch.manual_seed(0)
    api.pretrain(root / "train", "wav2vec2", run, modality="audio", max_steps=2, batch_size=8, clip_seconds=0.5,
                 overrides=SMALL, progress_bar=False)
    return {"root": root, "train": root / "train", "test": root / "test", "run": run}


@pytest.fixture(scope="module")
def evaluated(ws):
    lines: list[str] = []
    saved = ws["root"] / "asr_model"
    rows = api.evaluate(ws["run"], ws["train"], ws["test"], protocols=["asr"], label_fractions=[1.0],
                        baseline="mfcc", finetune_steps=300, save_finetuned=saved, progress=lines.append)
    return rows, saved, lines


def test_fine_tuning_transcribes_far_better_than_chance(evaluated, ws):
    rows, _, lines = evaluated
    scores = {(r.encoder, r.metric): r.value for r in rows}
    # an empty transcript scores 1.0, a random letter sequence about 0.8
    assert scores["pretrained", "cer"] < 0.5 and scores["pretrained", "wer"] < 0.8, scores
    assert scores["mfcc", "cer"] < 0.5, scores  # tones are easy for MFCCs too
    data = json.loads((ws["run"] / "eval.json").read_text())
    results = data["results"] if isinstance(data, dict) else data
    assert {(r["encoder"], r["metric"]) for r in results} == set(scores)
    assert all(set(r) == {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"} for r in results)
    assert {(r["protocol"], r["label_fraction"], r["n_labels"]) for r in results} == {("asr", 1.0, 80)}
    assert any("saved in" in line for line in lines)
    record = json.loads((evaluated[1] / "selfsup_asr.json").read_text())  # mfcc is not the run's network: not kept
    assert record["encoder"] == "pretrained" and record["cer"] == pytest.approx(scores["pretrained", "cer"])


def test_label_minutes_are_nested_shares_of_the_audio(ws, tmp_path):
    lines: list[str] = []
    rows = api.evaluate(ws["run"], ws["train"], ws["test"], protocols=["asr"], label_minutes=[0.2, 100],
                        baseline="scratch", finetune_steps=2, json_path=tmp_path / "e.json", progress=lines.append)
    assert {(r.encoder, r.metric) for r in rows} == {(e, m) for e in ("pretrained", "scratch") for m in ("cer", "wer")}
    small = {r.label_fraction for r in rows if r.n_labels < 80}
    assert len(small) == 1 and 0.25 < small.pop() < 0.4  # 12 s of about 38 s
    assert {r.label_fraction for r in rows if r.n_labels == 80} == {1.0}
    assert any("budget 100 min" in line and "using all of it" in line for line in lines)
    assert all(0.0 <= r.value <= 5.0 for r in rows)


def test_saved_model_loads_with_transformers_and_transcribes_as_evaluated(evaluated, ws, tmp_path):
    import transformers

    _, saved, _ = evaluated
    model = transformers.AutoModelForCTC.from_pretrained(str(saved), local_files_only=True)
    processor = transformers.AutoProcessor.from_pretrained(str(saved), local_files_only=True)
    assert type(model).__name__ == "Wav2Vec2ForCTC" and processor.tokenizer.pad_token_id == 0
    expected = dict(line.split("\t") for line in (saved / TEST_TRANSCRIPTS).read_text().splitlines())
    out = tmp_path / "out.tsv"
    code, stdout, err = run_cli(["transcribe", saved, ws["test"], "--out", out])
    assert code == 0, err
    got = dict(line.split("\t") for line in out.read_text().splitlines())
    assert got == expected and len(got) == 16
    assert stdout.strip().splitlines()[0].count("\t") == 1


def test_transcribe_a_run_folder_says_how_to_make_a_model(ws):
    code, _, err = run_cli(["transcribe", ws["run"], ws["test"]])
    assert_one_line_error(code, err, "run folder", "--save-finetuned")


def test_error_rates_are_jiwer_values_on_hand_made_strings():
    scores = error_rates(["THE CAT SAT", "HELLO"], ["THE BAT SAT", "HELO"])
    # characters: 1 substitution in 11 + 1 deletion in 5 = 2 / 16; words: 1 of 3 + 1 of 1 = 2 / 4
    assert scores["cer"] == pytest.approx(2 / 16) and scores["wer"] == pytest.approx(0.5)
    assert error_rates(["AB"], [""]) == {"cer": 1.0, "wer": 1.0}


def test_vocabulary_and_greedy_decoding():
    vocab = CharVocabulary.from_transcripts(["AB BA", "CAB"])
    assert vocab.symbols == ("<pad>", "<unk>", "|", "A", "B", "C")
    assert vocab.encode("AB Z") == [3, 4, 2, 1]
    # repeats merged, blanks (0) separate a doubled letter, | a space
    assert vocab.decode([3, 3, 0, 3, 4, 2, 2, 5, 0]) == "AAB C"
    assert normalize_transcript("  it's a Test, OK?! ") == "IT'S A TEST OK"


def test_budgets_are_speaker_balanced_and_nested():
    groups = ["a"] * 30 + ["b"] * 10 + ["c"] * 20
    seconds = [1.0] * 60
    order = group_balanced_order(groups, seconds, seed=3)
    assert sorted(order) == list(range(60)) and order == group_balanced_order(groups, seconds, seed=3)
    small, large = budget_prefix(order, seconds, 9), budget_prefix(order, seconds, 24)
    assert large[: len(small)] == small and len(small) == 9 and len(large) == 24
    per = {g: sum(groups[i] == g for i in large) for g in "abc"}
    assert per == {"a": 8, "b": 8, "c": 8}
    assert len(budget_prefix(order, seconds, 1000)) == 60


def test_a_transcript_line_without_audio_is_one_line_error(ws, tmp_path):
    root = tmp_path / "bad"
    written = write_librispeech(root, {"21": 3}, seed=5)
    written[1][0].unlink()
    with pytest.raises(SelfSupError, match=r"21-1\.trans\.txt:2: utterance 21-1-0001 has no audio file .*21-1-0001"):
        read_transcribed(root, RATE)
    code, _, err = run_cli(["evaluate", ws["run"], "--protocol", "asr", "--train", root, "--test", ws["test"],
                            "--baseline", "none"])
    assert_one_line_error(code, err, "21-1.trans.txt:2", "21-1-0001.flac")


def test_tables_of_path_and_transcript(tmp_path):
    written = write_librispeech(tmp_path / "audio", {"31": 3}, seed=6)
    table = tmp_path / "set.csv"
    table.write_text("path,transcript\n" + "".join(f"{f.relative_to(tmp_path)},{t}\n" for f, t in written))
    data = read_transcribed(table, RATE)
    assert data.texts == [t for _, t in written] and data.speakers == ["1"] * 3
    bad = tmp_path / "bad.tsv"
    bad.write_text("file\ttext\na.flac\tA B\n")
    with pytest.raises(SelfSupError, match=r"bad\.tsv: needs a header row with columns path and transcript "
                                           r"\(found: file, text\)"):
        read_transcribed(bad, RATE)
    missing = tmp_path / "missing.csv"
    missing.write_text("path,transcript\nnowhere.flac,A B\n")
    with pytest.raises(SelfSupError, match=r"missing\.csv:2: audio file .*nowhere\.flac does not exist"):
        read_transcribed(missing, RATE)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SelfSupError, match="no transcribed utterances found"):
        read_transcribed(empty, RATE)


def test_an_encoder_without_a_transformers_ctc_class_saves_a_selfsup_folder(tmp_path):
    """The log-mel front end has no transformers equivalent: a linear CTC head on its frames, saved as
    selfsup_ctc.json + model.safetensors, which transcribe reads back to the same transcripts."""
    from selfsup.encoders import build_encoder
    from selfsup.evaluation.ctc import CTCData, CTCRecipe, finetune_ctc, greedy_transcripts
    from selfsup.modalities.audio.asr import SELFSUP_CTC, EncoderCTC, ctc_model, pad_waves, save_finetuned

    written = write_librispeech(tmp_path / "data", {"41": 6}, seed=7)
    data = read_transcribed(tmp_path / "data", RATE)
    encoder = build_encoder({"name": "wav2vec2_tiny", "frontend": "mel", "n_mels": 16, "hidden_size": 32,
                             "num_heads": 2, "num_layers": 1})
    vocab = CharVocabulary.from_transcripts(data.texts)
    model = ctc_model(encoder, vocab, seed=0)
    assert isinstance(model, EncoderCTC)
    items = CTCData(data.waves, [len(w) for w in data.waves], data.texts)
    tuned, losses = finetune_ctc(model, items, vocab, pad_waves, CTCRecipe(steps=3, lr=1e-2), seed=0)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    expected = greedy_transcripts(tuned, items, vocab, pad_waves, CTCRecipe())
    save_finetuned(tuned, encoder, vocab, tmp_path / "model")
    assert (tmp_path / "model" / SELFSUP_CTC).is_file()
    rows = api.transcribe(tmp_path / "model", [f for f, _ in written])
    assert [text for _, text in rows] == expected
