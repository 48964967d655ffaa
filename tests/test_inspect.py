"""`selfsup inspect`: every modality finds a planted exact duplicate, near-duplicate, leak, unreadable item and
outlier, and flags nothing among the distinct items; the JSON schema, --write-clean, one-line errors, the blocked
similarity search (a block smaller than n finds the same neighbours as one block), --run with a real encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from selfsup import api
from selfsup.cli import main
from selfsup.inspection.neighbors import nearest

JSON_KEYS = {"unreadable", "exact_duplicates", "near_duplicates", "leaks", "outliers"}


def flagged(findings) -> set[str]:
    """Every item named by a duplicate, near-duplicate or outlier finding."""
    names = {name for group in findings.exact_duplicates for name in group}
    names |= {p[k] for p in findings.near_duplicates for k in ("a", "b")}
    return names | {o["path"] for o in findings.outliers}


def check_planted(findings, *, copy: tuple[str, str], near: tuple[str, str], leak: tuple[str, str], bad: str,
                  odd: str) -> None:
    """The planted findings, each found, and nothing else flagged."""
    assert findings.unreadable[0][0] == bad and len(findings.unreadable) == 1
    assert [sorted(g) for g in findings.exact_duplicates] == [sorted(copy)]
    assert [{p["a"], p["b"]} for p in findings.near_duplicates] == [set(near)]
    assert [(p["data"], p["against"]) for p in findings.leaks] == [leak]
    assert [o["path"] for o in findings.outliers] == [odd]
    assert flagged(findings) == {*copy, *near, odd}


# ------------------------------------------------------------------------------------------------ images
def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).convert("RGB").resize((64, 64),
                                                                                                Image.BICUBIC)


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory) -> tuple[Path, Path]:
    """24 images sharing a coarse pattern (alike, none a near-duplicate) in two class folders, plus a byte copy,
    a resized JPEG re-encoding, an unrelated image and an undecodable file; a test folder holding a re-encoding
    of one of them."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    base = rng.random((8, 8))
    data, test = root / "data", root / "test"
    for i in range(24):
        folder = data / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        _image(0.5 * base + 0.5 * rng.random((8, 8))).save(folder / f"{i:02d}.png")
    shutil.copy(data / "dog" / "00.png", data / "cat" / "copy.png")
    Image.open(data / "cat" / "01.png").resize((48, 48)).save(data / "dog" / "near.jpg", quality=85)
    _image(rng.random((8, 8))).save(data / "cat" / "odd.png")
    (data / "dog" / "bad.png").write_bytes(b"not a png")
    test.mkdir()
    Image.open(data / "dog" / "02.png").save(test / "seen.jpg", quality=90)
    _image(0.5 * base + 0.5 * rng.random((8, 8))).save(test / "new.png")
    return data, test


def test_images_planted_findings(image_sets):
    data, test = image_sets
    findings = api.inspect(data, against=test)
    check_planted(findings, copy=(f"{data}/dog/00.png", f"{data}/cat/copy.png"),
                  near=(f"{data}/cat/01.png", f"{data}/dog/near.jpg"), leak=(f"{data}/dog/02.png", f"{test}/seen.jpg"),
                  bad=f"{data}/dog/bad.png", odd=f"{data}/cat/odd.png")
    summary = findings.summary
    assert summary["class_balance"] == {"cat": 14, "dog": 13}  # bad.png is not counted: unreadable
    assert summary["distributions"]["width (px)"]["min"] == 48 and summary["distributions"]["width (px)"]["max"] == 64
    assert summary["counts"]["leak_rate"] == 0.5


def test_json_schema_clean_list_and_cli(image_sets, tmp_path, capsys):
    data, test = image_sets
    out, clean = tmp_path / "found.json", tmp_path / "keep.txt"
    assert main(["inspect", str(data), "--against", str(test), "--json", str(out), "--write-clean", str(clean)]) == 0
    printed = capsys.readouterr().out
    assert "exact duplicate groups: 1" in printed and "near-duplicate pairs: 1" in printed and "outliers: 1" in printed
    found = json.loads(out.read_text())
    assert JSON_KEYS <= set(found)
    assert found["unreadable"] == [f"{data}/dog/bad.png"]
    assert all(set(p) == {"a", "b", "similarity"} for p in found["near_duplicates"])
    assert all(set(p) == {"data", "against", "similarity"} for p in found["leaks"])
    assert all(set(p) == {"path", "score"} for p in found["outliers"])
    assert found["thresholds"]["near_duplicate_cosine"] == pytest.approx(0.8125)
    kept = clean.read_text().splitlines()
    # 27 readable, minus the later copy, the second of the near pair and the DATA image leaking into the test set
    assert len(kept) == 24 == found["counts"]["kept_by_write_clean"]
    assert str((data / "cat" / "copy.png").resolve()) in kept and str((data / "dog" / "00.png").resolve()) not in kept
    assert str((data / "dog" / "02.png").resolve()) not in kept
    again = api.inspect(clean)  # the list reads back as DATA: nothing left to clean
    assert not again.exact_duplicates and not again.near_duplicates


def test_image_shards_give_the_findings_of_their_folder(image_sets, tmp_path, capsys):
    data, test = image_sets
    api.shard(data, tmp_path / "sh", shard_size="20KB", progress=False)
    assert len(list((tmp_path / "sh").glob("*.tar"))) > 1
    findings = api.inspect(f"{tmp_path}/sh/train-*.tar", against=test)  # names: the paths the shards keep
    check_planted(findings, copy=("dog/00.png", "cat/copy.png"), near=("cat/01.png", "dog/near.jpg"),
                  leak=("dog/02.png", f"{test}/seen.jpg"), bad="dog/bad.png", odd="cat/odd.png")
    assert findings.summary["class_balance"] == {"cat": 14, "dog": 13}
    code = main(["inspect", str(tmp_path / "sh"), "--write-clean", str(tmp_path / "keep.txt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "samples of tar shards cannot be listed" in err[0]


# ------------------------------------------------------------------------------------------------ text
def _sentences(rng, n: int) -> list[str]:
    common = "the a of to and in is it that was".split()
    vocab = [f"w{i}" for i in range(400)]
    lines = []
    for _ in range(n):
        words = list(rng.choice(common, 8, replace=False)) + list(rng.choice(vocab, 4, replace=False))
        rng.shuffle(words)
        lines.append(" ".join(words))
    return lines


def test_text_planted_findings(tmp_path):
    rng = np.random.default_rng(1)
    lines = _sentences(rng, 30)
    words = lines[3].split()
    words[5] = "changed"
    lines += [lines[0], " ".join(words), "zebra quantum xylophone marmalade cathedral"]
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "a.txt").write_text("\n".join(lines) + "\n")
    (data / "b.txt").write_bytes("caf\u00e9 latte\n".encode("latin-1"))  # not utf-8
    test = tmp_path / "test.txt"
    test.write_text(lines[7] + "\n" + _sentences(np.random.default_rng(9), 1)[0] + "\n")
    findings = api.inspect(data, against=test, modality="text")
    check_planted(findings, copy=(f"{data}/a.txt:1", f"{data}/a.txt:31"), near=(f"{data}/a.txt:4", f"{data}/a.txt:32"),
                  leak=(f"{data}/a.txt:8", f"{test}:1"), bad=f"{data}/b.txt", odd=f"{data}/a.txt:33")
    assert "not valid utf-8" in findings.summary["unreadable_reasons"][f"{data}/b.txt"]
    assert findings.summary["distributions"]["words"]["max"] == 12
    clean = tmp_path / "clean.txt"
    api.inspect(data, against=test, modality="text", write_clean=clean)
    kept = clean.read_text().splitlines()
    assert len(kept) == 33 - 3 and lines[0] in kept and lines[7] not in kept
    # the same texts in parquet shards: the same findings, rows named SHARD:ROW; --write-clean lists texts
    (data / "b.txt").unlink()
    api.shard(data, tmp_path / "sh", shard_size="1KB", modality="text", progress=False)
    shards = sorted((tmp_path / "sh").glob("*.parquet"))
    assert len(shards) > 1
    found = api.inspect(tmp_path / "sh", against=test, modality="text", write_clean=tmp_path / "clean2.txt")
    import pyarrow.parquet as pq

    where: dict[str, list[str]] = {}
    for shard in shards:
        for row, text in enumerate(pq.read_table(shard).column("text").to_pylist(), 1):
            where.setdefault(text, []).append(f"{shard}:{row}")
    assert [sorted(g) for g in found.exact_duplicates] == [sorted(where[lines[0]])] and len(where[lines[0]]) == 2
    assert [{p["a"], p["b"]} for p in found.near_duplicates] == [{*where[lines[3]], *where[" ".join(words)]}]
    assert [(p["data"], p["against"]) for p in found.leaks] == [(*where[lines[7]], f"{test}:1")]
    assert sorted((tmp_path / "clean2.txt").read_text().splitlines()) == sorted(kept)


def test_text_class_balance(tmp_path):
    table = tmp_path / "labeled.tsv"
    table.write_text("label\ttext\npos\tgood film\npos\tgreat fun\nneg\tdull and slow\n")
    assert api.inspect(table, modality="text").summary["class_balance"] == {"neg": 1, "pos": 2}


# ------------------------------------------------------------------------------------------------ audio
SR = 16000


def _tone(f0: float, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    envelope = np.interp(t, np.linspace(0, 1, 6), r.random(6))
    wave = sum(np.sin(2 * np.pi * f0 * h * t + r.random() * 6) / h for h in range(1, 6)) * envelope
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def test_audio_planted_findings(tmp_path):
    rng = np.random.default_rng(0)
    data, test = tmp_path / "clips", tmp_path / "test"
    for i in range(16):
        folder = data / ("yes" if i % 2 else "no")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{i:02d}.wav", _tone(120 * 1.12 ** i, i), SR)
    shutil.copy(data / "no" / "00.wav", data / "yes" / "copy.wav")
    quieter = 0.5 * _tone(120 * 1.12, 1) + 0.002 * rng.standard_normal(SR).astype(np.float32)
    sf.write(data / "no" / "near.flac", quieter, SR, subtype="PCM_16")  # re-encoded, half as loud, faint hiss
    sf.write(data / "yes" / "odd.wav", (0.3 * rng.standard_normal(SR)).astype(np.float32), SR)
    (data / "no" / "bad.wav").write_bytes(b"RIFF not really")
    test.mkdir()
    sf.write(test / "seen.ogg", _tone(120 * 1.12 ** 4, 4), SR)
    sf.write(test / "new.wav", _tone(90, 99), SR)  # below every DATA pitch
    findings = api.inspect(data, against=test, modality="audio")
    check_planted(findings, copy=(f"{data}/no/00.wav", f"{data}/yes/copy.wav"),
                  near=(f"{data}/yes/01.wav", f"{data}/no/near.flac"), leak=(f"{data}/no/04.wav", f"{test}/seen.ogg"),
                  bad=f"{data}/no/bad.wav", odd=f"{data}/yes/odd.wav")
    assert findings.summary["distributions"]["duration (s)"]["median"] == 1.0
    assert findings.summary["class_balance"] == {"no": 9, "yes": 10}
    api.shard(data, tmp_path / "sh", shard_size="100KB", modality="audio", progress=False)  # the same, from shards
    sharded = api.inspect(tmp_path / "sh", against=test, modality="audio")
    check_planted(sharded, copy=("no/00.wav", "yes/copy.wav"), near=("yes/01.wav", "no/near.flac"),
                  leak=("no/04.wav", f"{test}/seen.ogg"), bad="no/bad.wav", odd="yes/odd.wav")
    assert sharded.summary["class_balance"] == {"no": 9, "yes": 10}


# ------------------------------------------------------------------------------------------------ sequences
def _log(path: Path, histories: dict[str, list[str]]) -> Path:
    rows = ["user,item,timestamp"]
    for user, items in histories.items():
        rows += [f"{user},{item},{t}" for t, item in enumerate(items)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_sequence_planted_findings(tmp_path):
    rng = np.random.default_rng(0)
    popular = [f"p{i}" for i in range(14)]
    histories = {f"u{u:02d}": list(rng.choice(popular, 10, replace=False)) + [f"own{u}_{j}" for j in range(3)]
                 for u in range(24)}
    histories["u90"] = list(histories["u00"])  # the same history
    histories["u91"] = list(reversed(histories["u01"]))  # the same items in another order
    histories["u92"] = [f"rare{j}" for j in range(12)]
    data = _log(tmp_path / "log.csv", histories)
    with open(data, "a") as fh:
        fh.write("u03,,5\n")  # no item: malformed
    test = _log(tmp_path / "test.csv", {"t1": histories["u05"], "t2": [f"other{j}" for j in range(8)]})
    findings = api.inspect(data, against=test, modality="sequence")
    check_planted(findings, copy=("u00", "u90"), near=("u01", "u91"), leak=("u05", "t1"), bad=f"{data}:{2 + 13 * 24 + 13 * 2 + 12}",
                  odd="u92")
    assert findings.summary["distributions"]["history length (items)"]["max"] == 13


# ------------------------------------------------------------------------------------------------ engine
def test_blocked_search_equals_one_block():
    """Memory does not grow with n²: a block of 7 rows (n = 50) finds the same neighbours as one block."""
    vectors = torch.randn(50, 16)
    vectors[10] = vectors[3] + 0.01
    whole = nearest(vectors, None, 5, block=4096)
    blocked = nearest(vectors, None, 5, block=7)
    assert torch.equal(whole.indices, blocked.indices)
    assert torch.allclose(whole.similarities, blocked.similarities)
    assert (whole.indices != torch.arange(50)[:, None]).all()  # never its own neighbour
    assert whole.indices[3, 0] == 10
    cross = nearest(vectors[:5], vectors, 3, block=2)
    assert (cross.indices[:, 0] == torch.arange(5)).all()  # a row of the base equal to the query comes first


def test_blocked_findings_equal(image_sets):
    data, test = image_sets
    one, small = api.inspect(data, against=test), api.inspect(data, against=test, block=3)
    assert one.to_json() == small.to_json()


# ------------------------------------------------------------------------------------------------ errors
def test_one_line_errors(image_sets, tmp_path, capsys):
    data, _ = image_sets
    log = _log(tmp_path / "log.csv", {"a": ["x", "y"]})
    cases = [
        (["inspect", str(tmp_path / "missing")], "no such file or folder"),
        (["inspect", str(data), "--against", str(log)], "--against"),
        (["inspect", str(tmp_path / "empty")], "no images found"),
        (["inspect", str(data), "--threshold", "2"], "--threshold"),
        (["inspect", str(data), "--run", str(tmp_path)], "not a selfsup run"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("selfsup: error:") and len(err.splitlines()) == 1 and expected in err, err


# ------------------------------------------------------------------------------------------------ --run
def test_run_encoder_embeddings(image_sets, tmp_path):
    """With --run the run's encoder compares the images (its embeddings are what `selfsup embed` writes), and
    RUN/inspection.json is written."""
    data, test = image_sets
    run = tmp_path / "run"
    api.pretrain(data, "simclr", run, encoder="tiny_cnn", max_steps=1, batch_size=8, image_size=16,
                 progress_bar=False, overrides={"trainer.num_workers": 0})
    findings = api.inspect(data, run=run, against=test, threshold=0.999)
    assert findings.summary["embedding"].startswith("the run's encoder")
    assert [sorted(g) for g in findings.exact_duplicates] == [sorted([f"{data}/dog/00.png", f"{data}/cat/copy.png"])]
    written = json.loads((run / "inspection.json").read_text())
    assert JSON_KEYS <= set(written) and written["run"] == str(run)
    from selfsup.artifacts import load
    from selfsup.config import RunConfig
    from selfsup.modalities import get_modality

    items = get_modality("image").inspect_items(data, RunConfig().data, load(run), "cpu", 64)
    embedded = np.load(api.embed(run, data, tmp_path / "emb.npy"))  # the same sorted files, bad.png skipped
    assert embedded.shape[0] == len(items.ids) == findings.summary["counts"]["readable"]
    assert np.allclose(items.embeddings.numpy(), embedded, atol=1e-5)


def test_sequence_run_encoder(tmp_path):
    """A sequence run compares users by its encoder; identical histories stay exact duplicates."""
    rng = np.random.default_rng(0)
    histories = {f"u{u:02d}": [f"i{j}" for j in rng.choice(30, 8, replace=False)] for u in range(30)}
    histories["u99"] = list(histories["u00"])
    data = _log(tmp_path / "log.csv", histories)
    run = tmp_path / "run"
    api.pretrain(data, None, run, modality="sequence", max_steps=1, batch_size=8, progress_bar=False)
    findings = api.inspect(data, run=run)
    assert findings.summary["embedding"].startswith("the run's encoder") and findings.summary["modality"] == "sequence"
    assert findings.exact_duplicates == [["u00", "u99"]]
    assert (run / "inspection.json").is_file()
