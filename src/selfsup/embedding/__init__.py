"""``selfsup embed`` at any scale: a modality's inputs streamed through the encoder into bounded parts.

- :mod:`.source`: what a modality hands over (:class:`EmbedSource`: its raw items in order, how one decodes, how
  a batch is collated and fed to the encoder) and what the user chose (:class:`EmbedOptions`).
- :mod:`.parts`: the output: ``.npy`` (one array, small inputs), or parquet written in parts of at most
  ``part_rows`` rows in ``OUT.partial/`` with a manifest (run, data, settings), which a re-run with the same
  arguments continues (finished parts kept, a partial one redone) and which becomes ``OUT`` when complete: one
  parquet file when it fits one part, else a folder of parts that ``pyarrow.parquet.read_table(OUT)`` and
  ``pandas.read_parquet(OUT)`` read as one table.
- :mod:`.stream`: the loop: decode, batch, embed, write, with a progress bar; nothing but one part's
  embeddings and one batch of decoded inputs is held in memory.

Nothing here branches on a modality; each one's ``Modality.embed_source`` says what its inputs are.
"""

from .source import EmbedOptions, EmbedSource

__all__ = ["EmbedOptions", "EmbedSource"]
