"""WebDataset tar shards (Aizman et al. 2019, "High Performance I/O For Large Scale Deep Learning"): one sample
is the files sharing a key (``000042.jpg`` + ``000042.cls``), read and written with the ``webdataset`` library."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import Any

from .sources import open_shard

SUFFIXES = (".tar",)
LABEL_KEY = "cls"  # WebDataset's convention: the class index as text


def count_tar(url: str) -> int:
    """Samples in the tar shard ``url``: its members' keys, read from the headers (a local or seekable file skips
    the contents). Raises ``ValueError`` on a truncated tar (a member running past the end of the file, or no
    end-of-archive marker: tarfile itself takes a short read for the end) and ``tarfile.TarError`` on a damaged one."""
    from webdataset.tariterators import base_plus_ext

    keys, last = 0, None
    with open_shard(url) as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        with tarfile.open(fileobj=fh, mode="r:") as tar:
            for member in tar:
                if member.offset_data + member.size > size:
                    raise ValueError(f"truncated in {member.name}: {size} bytes, the member ends at "
                                     f"{member.offset_data + member.size}")
                if not member.isreg():
                    continue
                key, _ = base_plus_ext(member.name)
                if key is not None and key != last:
                    keys, last = keys + 1, key
            if tar.offset + 2 * tarfile.BLOCKSIZE > size:
                raise ValueError(f"truncated after {tar.offset} bytes: no end-of-archive marker")
    return keys


def tar_samples(url: str) -> Iterator[dict[str, Any]]:
    """The samples of the tar shard ``url`` in order: ``{"__key__", "__url__", extension: bytes, ...}``; raises on a
    truncated or damaged tar after the samples before the damage."""
    from webdataset.handlers import reraise_exception
    from webdataset.tariterators import group_by_keys, tar_file_expander

    with open_shard(url) as fh:
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": fh}], handler=reraise_exception),
                                 handler=reraise_exception)


class TarShards:
    """Writes samples into tar shards ``DIR/train-0000.tar``, ... of at most ``max_bytes`` each (WebDataset's
    ``ShardWriter``) and counts the samples of each."""

    suffix = ".tar"

    def __init__(self, folder: str, max_bytes: int) -> None:
        from webdataset import ShardWriter

        self.writer = ShardWriter(f"{folder}/train-%04d.tar", maxsize=max_bytes, maxcount=10**12, verbose=0)
        self.counts: dict[str, int] = {}

    def write(self, sample: dict[str, Any]) -> None:
        self.writer.write(sample)
        name = self.writer.fname.rsplit("/", 1)[-1]
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self) -> None:
        self.writer.close()
