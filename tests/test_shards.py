"""Sharded input (issue 20): `selfsup shard`, shard patterns and URLs, the epoch plan, bad shards, and every sample
read exactly once per epoch by 2 gloo processes x 2 loader workers on shards of uneven sizes."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import tarfile
from pathlib import Path

import pytest
import torch

from selfsup import api
from selfsup.errors import SelfSupError
from selfsup.shards.dataset import ShardedSamples
from selfsup.shards.loader import shard_loader
from selfsup.shards.plan import per_process, worker_pieces
from selfsup.shards.sources import expand, shard_set
from selfsup.shards.tar import SUFFIXES, count_tar, tar_samples

UNEVEN = (5, 1, 9, 3, 7)  # samples per shard: 25 in all
WORLD, WORKERS, BATCH = 2, 2, 3


def write_tars(folder: Path, sizes=UNEVEN) -> list[Path]:
    """Tar shards of ``sizes`` samples, sample n holding ``n.id`` (its number) and ``n.txt``."""
    from webdataset import TarWriter

    folder.mkdir(parents=True, exist_ok=True)
    paths, n = [], 0
    for i, size in enumerate(sizes):
        path = folder / f"train-{i:04d}.tar"
        with TarWriter(str(path)) as writer:
            for _ in range(size):
                writer.write({"__key__": f"{n:06d}", "id": str(n), "txt": f"sample {n}"})
                n += 1
        paths.append(path)
    return paths


def sample_id(raw: dict) -> int:
    return int(raw["id"])


# ------------------------------------------------------------------ the epoch plan


@pytest.mark.parametrize("counts,world,workers,batch", [(UNEVEN, 2, 2, 3), ((1, 40, 2), 3, 4, 4), ((8,), 1, 1, 8),
                                                         ((2, 2, 2, 2, 3), 2, 3, 2)])
def test_plan_reads_every_sample_once_in_equal_batches(counts, world, workers, batch):
    total = sum(counts)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    for epoch in range(3):
        seen: list[int] = []
        for rank in range(world):
            for worker in range(workers):
                for piece in worker_pieces(counts, epoch, 7, world, rank, workers, worker, batch):
                    assert 0 <= piece.start < piece.stop <= counts[piece.shard]
                    seen += range(starts[piece.shard] + piece.start, starts[piece.shard] + piece.stop)
        assert len(seen) == len(set(seen)) == world * per_process(total, world, batch)
        assert total - len(seen) < world * 2  # only what cannot be shared equally is left out


# ------------------------------------------------------------------ patterns, URLs, bad shards


def test_patterns_globs_folders_and_urls_name_the_same_shards(tmp_path):
    paths = [str(p) for p in write_tars(tmp_path / "sh")]
    assert expand(str(tmp_path / "sh/train-{0000..0004}.tar"), SUFFIXES) == paths
    assert expand(str(tmp_path / "sh/train-*.tar"), SUFFIXES) == paths
    assert expand(str(tmp_path / "sh"), SUFFIXES) == paths
    assert expand(paths[2], SUFFIXES) == [paths[2]]
    assert expand(f"file://{tmp_path}/sh/train-{{0000..0001}}.tar", SUFFIXES) == [f"file://{p}" for p in paths[:2]]
    assert expand(str(tmp_path), SUFFIXES) is None  # no shards: the modality's own reader takes it
    with pytest.raises(SelfSupError, match="matches no shards"):
        expand(str(tmp_path / "sh/valid-*.tar"), SUFFIXES)


def test_memory_urls_are_read_and_counted(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in write_tars(tmp_path / "sh", (2, 3)):
        fs.pipe(f"/i20/{path.name}", path.read_bytes())
    shards = shard_set("memory://i20/train-{0000..0001}.tar", SUFFIXES, count_tar, strict=False)
    assert shards.urls == ["memory://i20/train-0000.tar", "memory://i20/train-0001.tar"]
    assert shards.counts == [2, 3]
    assert [sample_id(s) for s in tar_samples(shards.urls[1])] == [2, 3, 4]


def test_truncated_tar_is_skipped_with_a_warning_and_strict_stops(tmp_path, caplog):
    paths = write_tars(tmp_path / "sh")
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 2])  # cut in the middle of a member
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        shards = shard_set(str(tmp_path / "sh"), SUFFIXES, count_tar, strict=False)
    assert shards.urls == [str(p) for i, p in enumerate(paths) if i != 2]
    assert shards.counts == [5, 1, 3, 7]
    assert f"skipping bad shard {paths[2]}" in caplog.text and "skipped 1 bad shard(s) of 5" in caplog.text
    with pytest.raises(SelfSupError, match=rf"{paths[2].name}: unreadable shard .*drop --strict"):
        shard_set(str(tmp_path / "sh"), SUFFIXES, count_tar, strict=True)


# ------------------------------------------------------------------ 2 gloo processes x 2 workers


def _read_epochs(rank: int, init_file: str, folder: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                                         timeout=datetime.timedelta(seconds=60))
    try:
        shards = shard_set(os.path.join(folder, "sh/train-*.tar"), SUFFIXES, count_tar, strict=False)
        samples = ShardedSamples(shards, tar_samples, sample_id, (KeyError,), BATCH, WORLD, buffer=4, seed=3)
        loader = shard_loader(samples, list, WORKERS, unit="sample", strict=True,
                              strict_error=lambda path, reason: SelfSupError(path), fork=True)
        epochs = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)  # what Lightning calls at the start of each epoch
            epochs.append([batch for batch in loader])
        with open(os.path.join(folder, f"rank{rank}.json"), "w") as fh:
            json.dump({"epochs": epochs, "len": len(loader)}, fh)
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_two_workers_read_every_sample_once_per_epoch(tmp_path):
    write_tars(tmp_path / "sh")
    torch.multiprocessing.spawn(_read_epochs, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    share = per_process(sum(UNEVEN), WORLD, BATCH)  # 12 of 25: one sample cannot be shared equally
    orders = []
    for epoch in range(2):
        batches = [rank["epochs"][epoch] for rank in ranks]
        assert [len(b) for b in batches[0]] == [len(b) for b in batches[1]] == [BATCH] * (share // BATCH)
        assert all(len(b) == ranks[0]["len"] for b in batches)  # the loader's length is what it yields
        ids = [i for rank in batches for batch in rank for i in batch]
        assert len(ids) == len(set(ids)) == WORLD * share and set(ids) <= set(range(sum(UNEVEN)))
        orders.append(ids)
    assert orders[0] != orders[1]  # a new shard order and buffer each epoch


# ------------------------------------------------------------------ selfsup shard + pretrain


def test_shard_images_keeps_labels_and_pretrain_reads_the_shards(write_images, tmp_path, capsys):
    from selfsup.cli import main

    write_images(tmp_path / "images", per_class=4, seed=0)
    assert main(["shard", str(tmp_path / "images"), "--out", str(tmp_path / "sh"), "--shard-size", "3KB",
                 "--no-progress"]) == 0
    assert "wrote 12 samples into" in capsys.readouterr().out
    index = json.loads((tmp_path / "sh/shards.json").read_text())
    assert index["classes"] == ["blob", "hstripes", "vstripes"] and len(index["shards"]) > 2
    samples = [s for p in sorted((tmp_path / "sh").glob("*.tar")) for s in tar_samples(str(p))]
    assert sum(e["samples"] for e in index["shards"]) == len(samples) == 12
    for sample in samples:  # the original bytes, the class of its folder, its path
        path = tmp_path / "images" / sample["path"].decode()
        assert sample["png"] == path.read_bytes()
        assert index["classes"][int(sample["cls"])] == Path(sample["path"].decode()).parts[0]

    run = api.pretrain(f"file://{tmp_path}/sh/train-*.tar", "simclr", tmp_path / "run", encoder="tiny_cnn",
                       image_size=16, batch_size=4, epochs=2, progress_bar=False, seed=0)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == "1"  # two epochs of 12 / 4 = 3 steps
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 6
    # resumed with more epochs: continues at epoch 2, the step count intact
    api.pretrain(f"file://{tmp_path}/sh/train-*.tar", "simclr", tmp_path / "run", encoder="tiny_cnn", image_size=16,
                 batch_size=4, epochs=3, progress_bar=False, seed=0)
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 9


def test_shard_errors_are_one_line(write_images, tmp_path):
    write_images(tmp_path / "images", per_class=2, seed=0)
    with pytest.raises(SelfSupError, match="512MB"):
        api.shard(tmp_path / "images", tmp_path / "sh", shard_size="lots")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    with pytest.raises(SelfSupError, match="not empty"):
        api.shard(tmp_path / "images", tmp_path / "full")
    with pytest.raises(SelfSupError, match="matches no shards"):
        api.pretrain(str(tmp_path / "none-{0000..0003}.tar"), "simclr", tmp_path / "run", encoder="tiny_cnn",
                     image_size=16, progress_bar=False)


def test_audio_shards_decode_as_the_files_do_and_pretrain(tmp_path):
    from cli_checks import global_step, run_cli
    from test_audio_cli import AUDIO, RATE, write_classes

    from selfsup.modalities.audio.readers import audio_of_sample, read_audio

    write_classes(tmp_path / "clips", per_class=4, seed=1)
    done = api.shard(tmp_path / "clips", tmp_path / "sh", shard_size="20KB", modality="audio", progress=False)
    assert done["classes"] == ["high", "low"] and done["samples"] == 8 and done["shards"] > 1
    for url in sorted(str(p) for p in (tmp_path / "sh").glob("*.tar")):
        for sample in tar_samples(url):
            file = tmp_path / "clips" / sample["path"].decode()
            assert torch.equal(audio_of_sample(sample, RATE), read_audio(file, RATE))
    code, _, err = run_cli(["pretrain", tmp_path / "sh", "--out", tmp_path / "run", "--max-steps", "2", *AUDIO])
    assert code == 0, err
    assert global_step(tmp_path / "run") == 2
    import numpy as np  # embed and evaluate read the shards as the folder they came from

    api.embed(tmp_path / "run", tmp_path / "sh", tmp_path / "shards.npy")
    api.embed(tmp_path / "run", tmp_path / "clips", tmp_path / "folder.npy")
    np.testing.assert_allclose(np.sort(np.load(tmp_path / "shards.npy"), axis=0),
                               np.sort(np.load(tmp_path / "folder.npy"), axis=0), atol=1e-5)
    from_shards = api.evaluate(tmp_path / "run", tmp_path / "sh", tmp_path / "sh", protocols=["knn"],
                               label_fractions=[1.0], baseline=None, seed=0)
    from_folder = api.evaluate(tmp_path / "run", tmp_path / "clips", tmp_path / "clips", protocols=["knn"],
                               label_fractions=[1.0], baseline=None, seed=0)
    assert [r.value for r in from_shards] == [r.value for r in from_folder]


def test_text_shards_keep_labels_and_pretrain_reads_parquet_and_jsonl(tmp_path):
    import pyarrow.parquet as pq
    from cli_checks import global_step, run_cli
    from test_text_cli import TEXT, write_corpus

    texts = write_corpus(tmp_path / "corpus.txt", n=60)
    lines = [f"{'animal' if i % 2 else 'place'},{text}" for i, text in enumerate(texts)]
    (tmp_path / "labeled.csv").write_text("label,text\n" + "\n".join(lines) + "\n")
    done = api.shard(tmp_path / "labeled.csv", tmp_path / "sh", shard_size="1KB", modality="text", progress=False)
    assert done["classes"] == ["animal", "place"] and done["shards"] > 1
    rows = [r for p in sorted((tmp_path / "sh").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert [r["text"] for r in rows] == texts and rows[1]["label"] == "animal"
    code, _, err = run_cli(["pretrain", f"{tmp_path}/sh/train-*.parquet", "--method", "mlm", "--out", tmp_path / "run",
                            "--epochs", "2", *TEXT])
    assert code == 0, err
    assert global_step(tmp_path / "run") == 2 * (len(texts) // 16 + (len(texts) % 16 > 1))
    from_shards = api.evaluate(tmp_path / "run", tmp_path / "sh", tmp_path / "sh", protocols=["knn"],
                               label_fractions=[1.0], baseline=None, seed=0)
    from_file = api.evaluate(tmp_path / "run", tmp_path / "labeled.csv", tmp_path / "labeled.csv", protocols=["knn"],
                             label_fractions=[1.0], baseline=None, seed=0)
    assert [r.value for r in from_shards] == [r.value for r in from_file]
    api.embed(tmp_path / "run", tmp_path / "sh", tmp_path / "shards.parquet")
    assert pq.read_table(tmp_path / "shards.parquet").column("text").to_pylist() == texts
    (tmp_path / "js").mkdir()
    for i in range(2):  # JSONL shards, no index: counted
        (tmp_path / f"js/part-{i}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i::2]))
    code, _, err = run_cli(["pretrain", f"{tmp_path}/js/part-*.jsonl", "--method", "mlm", "--out", tmp_path / "run2",
                            "--max-steps", "2", *TEXT])
    assert code == 0, err


def test_log_shards_read_as_the_log_they_came_from(tmp_path):
    from test_sequence_training import write_log

    from selfsup.modalities.sequence.readers import read_interactions

    log = write_log(tmp_path / "log.csv")
    done = api.shard(log, tmp_path / "sh", shard_size="2KB", modality="sequence", progress=False)
    assert done["shards"] > 1 and done["samples"] == len(log.read_text().splitlines()) - 1
    whole, sharded = read_interactions(log), read_interactions(f"{tmp_path}/sh/train-{{0000..{done['shards'] - 1:04d}}}.parquet")
    assert sharded.users == whole.users and sharded.item_map == whole.item_map
    assert all((a == b).all() for a, b in zip(sharded.histories, whole.histories))


def test_evaluate_and_embed_read_labelled_image_shards(labeled_pair, tmp_path):
    import numpy as np

    train, test = labeled_pair
    for name, folder in (("train", train), ("test", test)):
        api.shard(folder, tmp_path / f"{name}-sh", shard_size="4KB", progress=False)
    run = api.pretrain(train, "simclr", tmp_path / "run", encoder="tiny_cnn", image_size=16, batch_size=8,
                       max_steps=2, progress_bar=False, seed=0)
    from_shards = api.evaluate(run, tmp_path / "train-sh", f"file://{tmp_path}/test-sh/train-*.tar", protocols=["knn"],
                               label_fractions=[1.0], seed=0)
    from_folders = api.evaluate(run, train, test, protocols=["knn"], label_fractions=[1.0], seed=0)
    assert [r.value for r in from_shards] == [r.value for r in from_folders]  # the same images, labels and classes
    api.embed(run, tmp_path / "test-sh", tmp_path / "shards.npy")
    api.embed(run, test, tmp_path / "folder.npy")
    np.testing.assert_allclose(np.sort(np.load(tmp_path / "shards.npy"), axis=0),
                               np.sort(np.load(tmp_path / "folder.npy"), axis=0), atol=1e-6)


def test_damaged_parquet_and_tar_shards_at_the_command_line(tmp_path):
    from cli_checks import assert_one_line_error, run_cli

    from selfsup.shards.table import SUFFIXES as TABLE, count_rows

    texts = [f"text number {i} about a cat and a dog" for i in range(80)]
    (tmp_path / "corpus.txt").write_text("\n".join(texts) + "\n")
    api.shard(tmp_path / "corpus.txt", tmp_path / "sh", shard_size="1KB", modality="text", progress=False)
    (tmp_path / "sh/shards.json").unlink()  # no index: the shards are counted, and the damage found
    first = sorted((tmp_path / "sh").glob("*.parquet"))[0]
    first.write_bytes(first.read_bytes()[:-20])  # the footer cut off
    shards = shard_set(str(tmp_path / "sh"), TABLE, count_rows, strict=False)
    assert str(first) not in shards.urls and len(shards.urls) >= 1
    paths = write_tars(tmp_path / "tars", (4, 4))
    paths[1].write_bytes(paths[1].read_bytes()[:1500])
    code, _, err = run_cli(["pretrain", tmp_path / "tars", "--out", tmp_path / "run", "--encoder", "tiny_cnn",
                            "--strict", "--max-steps", "1", "--no-progress"])
    assert_one_line_error(code, err, "train-0001.tar: unreadable shard", "truncated", "--strict")


def test_lightning_hands_each_epoch_to_the_shards(tmp_path):
    from lightning.fabric.utilities.data import _set_sampler_epoch

    write_tars(tmp_path / "sh")
    shards = shard_set(str(tmp_path / "sh"), SUFFIXES, count_tar, strict=False)
    samples = ShardedSamples(shards, tar_samples, sample_id, (KeyError,), BATCH, 1, seed=3)
    loader = shard_loader(samples, list, 0, unit="sample", strict=False, strict_error=SelfSupError)
    _set_sampler_epoch(loader, 5)  # what Lightning's fit loop calls at the start of every epoch, resumed ones too
    assert samples.epoch == 5
    assert len(loader) == -(-per_process(25, 1, BATCH) // BATCH) == len(list(loader))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_process_ddp_run_from_shards_with_workers(image_folder, tmp_path):
    import subprocess
    import sys

    from cli_checks import assert_run_trained

    done = api.shard(image_folder, tmp_path / "sh", shard_size="7KB", progress=False)
    assert done["samples"] == 48 and len({e["samples"] for e in json.loads(
        (tmp_path / "sh/shards.json").read_text())["shards"]}) > 1  # uneven shards
    run = tmp_path / "run"
    command = [sys.executable, "-m", "selfsup.cli", "pretrain", f"{tmp_path}/sh/train-*.tar", "--method", "simclr",
               "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--num-workers", "2",
               "--epochs", "2", "--batch-size", "8", "--image-size", "16", "--encoder", "tiny_cnn", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # each process reads 24 of the 48 images per epoch: 3 batches of 8, the same in both, 2 epochs
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 6
    assert_run_trained(run)
    # resumed under DDP with one more epoch: it continues at epoch 2, the step count intact (3 more batches each)
    result = subprocess.run([*command[:command.index("--epochs") + 1], "3", *command[command.index("--epochs") + 2:]],
                            capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 9


def test_a_shard_list_names_shards_anywhere_and_a_bad_one_is_one_line(tmp_path):
    from selfsup.shards.sources import write_list

    write_tars(tmp_path / "sh")
    shards = shard_set(str(tmp_path / "sh"), SUFFIXES, count_tar, strict=False)
    listed = write_list(tmp_path / "part.shards.json", shards, [0, 2])
    again = shard_set(listed, SUFFIXES, count_tar, strict=False)
    assert again.urls == [str(Path(shards.urls[i]).resolve()) for i in (0, 2)]
    assert again.counts == [shards.counts[0], shards.counts[2]]
    for text, message in (("{", "not a shard list"), ('{"shards": []}', "the shard list is empty")):
        (tmp_path / "bad.shards.json").write_text(text)
        with pytest.raises(SelfSupError, match=message):
            shard_set(str(tmp_path / "bad.shards.json"), SUFFIXES, count_tar, strict=False)
    with pytest.raises(SelfSupError, match="no such shard list"):
        shard_set(str(tmp_path / "missing.shards.json"), SUFFIXES, count_tar, strict=False)
