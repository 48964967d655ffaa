"""Sharded datasets, modality-free: where the shards are, how many samples each holds, which samples each DDP
process and loader worker reads in an epoch, and what happens to a bad shard.

- :mod:`.sources`: DATA as a shard pattern (``shards/train-{0000..0127}.tar``), a glob, a folder of shards or an
  fsspec URL (``s3://``, ``gs://``, ``file://``, ``memory://``) -> the shard URLs; the ``shards.json`` index
  ``selfsup shard`` writes beside them (samples per shard, classes); the counting pass that skips bad shards.
- :mod:`.plan`: an epoch's shard order and each (process, worker)'s contiguous range of samples.
- :mod:`.dataset`: the ``IterableDataset`` reading that range (shuffle buffer, unreadable samples reported as
  ``train/streaming.py`` does for files).
- :mod:`.tar` (WebDataset) and :mod:`.table` (pyarrow): reading and writing the two shard formats.
- :mod:`.write`: ``selfsup shard``: samples -> shards of a bounded size, with a progress bar and the index.

The modalities say what a sample is (decode an image, a clip, a text); nothing here branches on one.
"""
