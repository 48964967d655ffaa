"""``selfsup embed`` at scale (issue 20, item 4): inputs streamed a batch at a time, parquet written in parts of at
most ``--part-rows`` rows (one file when one part holds everything, else a folder read as one table), the same
embeddings as the single-shot path, a re-run continuing an interrupted one without redoing finished parts, a
manifest refusing other runs, data or settings, and a progress bar; for every modality."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from selfsup import api
from selfsup.artifacts import load
from selfsup.errors import SelfSupError
from selfsup.evaluation.downstream import TokenBatch
from selfsup.evaluation.features import extract_features

from cli_checks import assert_one_line_error, run_cli

N_IMAGES = 23  # not a multiple of any part size used here


@pytest.fixture(scope="module")
def images(tmp_path_factory, write_images) -> dict:
    folder = tmp_path_factory.mktemp("embed_scale")
    data = write_images(folder / "images", per_class=8, seed=3)
    for extra in sorted(data.rglob("*.png"))[N_IMAGES:]:
        extra.unlink()
    run = api.pretrain(data, "simclr", folder / "run", encoder="tiny_cnn", image_size=16, batch_size=8, max_steps=1,
                       progress_bar=False, seed=0)
    return {"folder": folder, "data": data, "run": run}


def single_shot_images(run: Path, data: Path) -> tuple[np.ndarray, list[str]]:
    """What ``embed`` computed before it streamed: every image decoded into memory, then embedded."""
    from selfsup.modalities.image.readers import load_unlabeled
    from selfsup.pretext.image_eval import eval_transform

    loaded = load(run)
    dataset = load_unlabeled(data, loaded.input_size, progress=False)
    return extract_features(loaded.encoder, dataset.images, eval_transform(loaded.input_size)).numpy(), \
        [str(p) for p in dataset.paths]


def table_of(out: Path, key: str = "path") -> tuple[np.ndarray, list[str]]:
    table = pq.read_table(out)
    return np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32), \
        table.column(key).to_pylist()


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


# ------------------------------------------------------------------ parts


def test_parts_are_bounded_and_hold_the_single_shot_embeddings(images, tmp_path):
    expected, paths = single_shot_images(images["run"], images["data"])
    out = tmp_path / "emb.parquet"
    api.embed(images["run"], images["data"], out, batch_size=5, part_rows=5, progress=False)
    assert out.is_dir() and len(parts(out)) == math.ceil(N_IMAGES / 5)
    assert [pq.read_metadata(p).num_rows for p in parts(out)] == [5, 5, 5, 5, 3]
    got, references = table_of(out)
    assert references == paths  # sorted path order, across parts
    np.testing.assert_allclose(got, expected, atol=1e-6)
    dataset = pq.ParquetDataset(out).read()  # what pandas.read_parquet(out) reads: the manifest is skipped
    assert dataset.column_names == ["path", "embedding"] and dataset.column("path").to_pylist() == paths

    single = tmp_path / "one.parquet"  # everything in one part: one file, as before
    api.embed(images["run"], images["data"], single, batch_size=5, progress=False)
    assert single.is_file()
    np.testing.assert_allclose(table_of(single)[0], expected, atol=1e-6)
    folder = tmp_path / "as-folder"  # no suffix: always a folder of parts
    api.embed(images["run"], images["data"], folder, part_rows=100, progress=False)
    assert len(parts(folder)) == 1 and table_of(folder)[1] == paths
    npy = tmp_path / "emb.npy"
    api.embed(images["run"], images["data"], npy, batch_size=5, part_rows=5, progress=False)
    np.testing.assert_allclose(np.load(npy), expected, atol=1e-6)


def test_image_shards_stream_into_parts_as_the_folder_does(images, tmp_path):
    api.shard(images["data"], tmp_path / "sh", shard_size="4KB", progress=False)
    out = tmp_path / "shards.parquet"
    api.embed(images["run"], tmp_path / "sh", out, part_rows=4, progress=False)
    assert len(parts(out)) == math.ceil(N_IMAGES / 4)
    got, references = table_of(out)
    expected, paths = single_shot_images(images["run"], images["data"])
    by_path = dict(zip([str(Path(p).relative_to(images["data"])) for p in paths], expected))
    np.testing.assert_allclose(got, np.stack([by_path[r] for r in references]), atol=1e-6)


# ------------------------------------------------------------------ resuming


class Stop(Exception):
    pass


def test_an_interrupted_run_continues_without_redoing_finished_parts(images, tmp_path):
    out = tmp_path / "emb.parquet"
    written: list[int] = []

    def stop_after_two(index: int, path: Path) -> None:
        written.append(index)
        if len(written) == 2:
            raise Stop

    with pytest.raises(Stop):
        api.embed_files(images["run"], images["data"], out, batch_size=5, part_rows=5, progress=False,
                        on_part=stop_after_two)
    partial = tmp_path / "emb.parquet.partial"
    assert not out.exists() and len(parts(partial)) == 2  # nothing half-written is visible at OUT
    (partial / ".part-00002.parquet.tmp").write_bytes(b"half a part")  # killed while writing part 2
    finished = {p.name: p.stat().st_mtime_ns for p in parts(partial)}

    again: list[int] = []
    api.embed_files(images["run"], images["data"], out, batch_size=5, part_rows=5, progress=False,
                    on_part=lambda index, path: again.append(index))
    assert again == [2, 3, 4]  # parts 0 and 1 were kept, not recomputed
    assert {p.name: p.stat().st_mtime_ns for p in parts(out)[:2]} == finished
    assert not partial.exists() and not list(out.glob(".*"))
    uninterrupted = tmp_path / "whole.parquet"
    api.embed(images["run"], images["data"], uninterrupted, batch_size=5, part_rows=5, progress=False)
    assert table_of(out)[1] == table_of(uninterrupted)[1]
    np.testing.assert_array_equal(table_of(out)[0], table_of(uninterrupted)[0])

    done: list[int] = []  # a complete OUT and the same arguments: nothing to do
    api.embed_files(images["run"], images["data"], out, batch_size=5, part_rows=5, progress=False,
                    on_part=lambda index, path: done.append(index))
    assert done == []


def test_other_arguments_are_refused_unless_overwrite(images, tmp_path):
    out = tmp_path / "emb.parquet"
    api.embed(images["run"], images["data"], out, part_rows=5, progress=False)
    code, _, err = run_cli(["embed", images["run"], images["data"], "--out", out, "--part-rows", "7"])
    assert_one_line_error(code, err, "emb.parquet", "part_rows 5 -> 7", "--overwrite")
    other = images["folder"] / "other"
    other.mkdir(exist_ok=True)
    for path in sorted(images["data"].rglob("*.png"))[:3]:
        (other / path.name).write_bytes(path.read_bytes())
    code, _, err = run_cli(["embed", images["run"], other, "--out", out, "--part-rows", "5"])
    assert_one_line_error(code, err, "emb.parquet", "data", "--overwrite")
    code, _, err = run_cli(["embed", images["run"], other, "--out", out, "--part-rows", "5", "--overwrite",
                            "--no-progress"])
    assert code == 0, err
    assert out.is_file() and table_of(out)[1] == sorted(str(p) for p in other.iterdir())
    unfinished = tmp_path / "x.parquet"  # an interrupted run, continued with other data
    with pytest.raises(Stop):
        api.embed_files(images["run"], images["data"], unfinished, part_rows=5, progress=False, on_part=stop)
    with pytest.raises(SelfSupError, match="unfinished embedding .*--overwrite"):
        api.embed(images["run"], other, unfinished, part_rows=5, progress=False)
    mine = tmp_path / "mine.parquet"
    mine.write_bytes(b"not written by selfsup")
    code, _, err = run_cli(["embed", images["run"], images["data"], "--out", mine, "--overwrite"])
    assert_one_line_error(code, err, "mine.parquet", "not written by selfsup embed")
    assert mine.read_bytes() == b"not written by selfsup"


def stop(index: int, path: Path) -> None:
    raise Stop


def test_progress_bar_and_one_line_errors_at_the_command_line(images, tmp_path):
    code, out, err = run_cli(["embed", images["run"], images["data"], "--out", tmp_path / "e.parquet",
                              "--part-rows", "10"])
    assert code == 0, err
    assert "embedding e.parquet" in err and f"{N_IMAGES}/{N_IMAGES}" in err and "images" in err
    assert "embeddings:" in out and (tmp_path / "e.parquet").is_dir()
    code, _, err = run_cli(["embed", images["run"], images["data"], "--out", tmp_path / "q.parquet",
                            "--part-rows", "0"])
    assert_one_line_error(code, err, "--part-rows", "embed.part_rows")
    code, _, err = run_cli(["embed", images["run"], images["data"], "--out", tmp_path / "e.csv"])
    assert_one_line_error(code, err, "e.csv", ".parquet")


def test_unreadable_images_are_skipped_in_their_part(images, tmp_path):
    data = tmp_path / "mixed"
    data.mkdir()
    good = sorted(images["data"].rglob("*.png"))[:6]
    for i, path in enumerate(good):
        (data / f"{i:02d}.png").write_bytes(path.read_bytes())
    (data / "02b.png").write_bytes(b"not an image")
    out = tmp_path / "e.parquet"
    api.embed(images["run"], data, out, part_rows=4, progress=False)
    assert [pq.read_metadata(p).num_rows for p in parts(out)] == [3, 3]  # part 0 held the unreadable file
    assert len(table_of(out)[1]) == 6 and str(data / "02b.png") not in table_of(out)[1]
    code, _, err = run_cli(["embed", images["run"], data, "--out", tmp_path / "s.parquet", "--strict",
                            "--no-progress"])
    assert_one_line_error(code, err, "02b.png", "--strict")


# ------------------------------------------------------------------ the other modalities


def test_text_streams_in_parts_with_the_single_shot_embeddings(tmp_path):
    from test_text_cli import TEXT, write_corpus

    from selfsup.modalities.text.readers import encode_texts

    texts = write_corpus(tmp_path / "corpus.txt", n=50)
    code, _, err = run_cli(["pretrain", tmp_path / "corpus.txt", "--method", "mlm", "--out", tmp_path / "run",
                            "--max-steps", "1", *TEXT])
    assert code == 0, err
    loaded = load(tmp_path / "run")
    expected = extract_features(loaded.encoder, encode_texts(texts, loaded.tokenizer, loaded.input_size),
                                TokenBatch(loaded.encoder.spec.pad_token_id), batch_size=8).numpy()
    out = tmp_path / "texts.parquet"
    api.embed(tmp_path / "run", tmp_path / "corpus.txt", out, batch_size=8, part_rows=16, progress=False)
    assert len(parts(out)) == math.ceil(len(texts) / 16)
    got, references = table_of(out, "text")
    assert references == texts
    np.testing.assert_allclose(got, expected, atol=1e-5)
    api.shard(tmp_path / "corpus.txt", tmp_path / "sh", shard_size="1KB", modality="text", progress=False)
    sharded = tmp_path / "sharded.parquet"
    api.embed(tmp_path / "run", tmp_path / "sh", sharded, batch_size=8, part_rows=16, progress=False)
    assert table_of(sharded, "text")[1] == texts
    np.testing.assert_allclose(table_of(sharded, "text")[0], expected, atol=1e-5)


def test_audio_streams_in_parts_with_the_single_shot_embeddings(tmp_path):
    from test_audio_cli import AUDIO, RATE, write_classes

    from selfsup.modalities.audio.modality import WaveBatch
    from selfsup.modalities.audio.readers import unlabeled_waves

    write_classes(tmp_path / "clips", per_class=5, seed=2)
    code, _, err = run_cli(["pretrain", tmp_path / "clips", "--out", tmp_path / "run", "--max-steps", "1", *AUDIO])
    assert code == 0, err
    loaded = load(tmp_path / "run")
    waves, paths = unlabeled_waves(tmp_path / "clips", RATE, loaded.input_size, progress=False)
    expected = extract_features(loaded.encoder, waves, WaveBatch(), batch_size=4).numpy()
    out = tmp_path / "clips.parquet"
    api.embed(tmp_path / "run", tmp_path / "clips", out, batch_size=4, part_rows=4, progress=False)
    assert len(parts(out)) == math.ceil(10 / 4)
    got, references = table_of(out)
    assert references == [str(p) for p in paths]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_sequence_users_in_parts_and_items_beside_them(tmp_path):
    from test_sequence_training import N_ITEMS, N_USERS, write_log

    from selfsup.modalities.sequence.evaluation import _read_log
    from selfsup.modalities.sequence.readers import pad_histories, remap_items

    log = write_log(tmp_path / "log.csv")
    code, _, err = run_cli(["pretrain", log, "--modality", "sequence", "--out", tmp_path / "run", "--batch-size",
                            "16", "--max-length", "10", "--max-steps", "1", "--no-progress"])
    assert code == 0, err
    loaded = load(tmp_path / "run")
    interactions = _read_log(loaded, path=str(log))
    histories, _ = remap_items(interactions, loaded.item_map)
    expected = extract_features(loaded.encoder, pad_histories(histories, loaded.input_size), TokenBatch(0),
                                batch_size=8).numpy()
    out = tmp_path / "users.parquet"
    written = api.embed_files(tmp_path / "run", log, out, batch_size=8, part_rows=16, progress=False)
    assert len(parts(out)) == math.ceil(N_USERS / 16)
    got, users = table_of(out, "user")
    assert users == [str(u) for u in interactions.users] and len(users) == N_USERS
    np.testing.assert_allclose(got, expected, atol=1e-5)
    items = pq.read_table(written["item embeddings"])
    assert written["item embeddings"] == tmp_path / "users.items.parquet" and items.num_rows == N_ITEMS
    folder = api.embed_files(tmp_path / "run", log, tmp_path / "users", part_rows=100, progress=False)
    assert folder["item embeddings"] == tmp_path / "users.items.parquet"
    assert os.path.isdir(folder["embeddings"])


def test_large_images_decode_in_threads_with_the_same_rows(images, tmp_path):
    from PIL import Image

    from selfsup.modalities.image.readers import LARGE_IMAGE_PIXELS, decode_threads

    data = tmp_path / "photos"
    data.mkdir()
    side = int(LARGE_IMAGE_PIXELS ** 0.5) + 8
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    for i in range(5):
        picture = np.stack([np.add.outer(ramp * (i + 1) / 5, ramp * 0) % 256, np.add.outer(ramp * 0, ramp) % 256,
                            np.full((side, side), 40.0 * i)], axis=-1).astype(np.uint8)
        Image.fromarray(picture).save(data / f"{i}.jpg", quality=90)
    source = load(images["run"])
    from selfsup.modalities import get_modality

    assert get_modality("image").embed_source(source, data).threads == decode_threads(sorted(data.iterdir()))
    expected, paths = single_shot_images(images["run"], data)
    out = tmp_path / "photos.parquet"
    api.embed(images["run"], data, out, batch_size=2, part_rows=3, progress=False)
    got, references = table_of(out)
    assert references == paths
    np.testing.assert_allclose(got, expected, atol=1e-6)
