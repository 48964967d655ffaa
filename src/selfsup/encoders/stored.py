"""Starting an encoder from the weights of a selfsup run or export folder (``--init RUN_OR_EXPORT``).

Continued pretraining from one's own earlier run (a new method, newer data of the same kind: domain-adaptive
pretraining, Gururangan et al. 2020) is generic: :func:`~selfsup.encoders.build_encoder` builds the architecture
the encoder dict describes (the stored one, with the new data's fill-ins) and this module loads the folder's
weights into it strictly, as ``selfsup load`` reads them (a run's last checkpoint, best.ckpt as fallback; either
export format). Only :meth:`~selfsup.encoders.base.Encoder.fit_stored` may adapt them first (a sequence encoder's
item table grown for new items); anything else that does not fit is one line naming the folder and the first
weights that differ.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint_files import UnreadableCheckpoint, check_weights
from ..errors import SelfSupError
from .base import Encoder

FIX = ("leave out what changes the stored architecture (--encoder, --set encoder.*, a different input size such as "
       "--max-length or --image-size), or --init a run made with those settings")


def load_initial_weights(encoder: Encoder, folder: str | Path) -> None:
    """Load the encoder weights stored in the selfsup run or export ``folder`` into ``encoder`` (in place)."""
    from ..artifacts import load

    if not Path(folder).expanduser().exists():
        raise SelfSupError(f"--init {folder}: no such folder (the selfsup run or export the encoder starts from); put "
                           "it back there")
    try:
        stored = load(folder)
    except SelfSupError as exc:
        raise SelfSupError(f"--init {folder}: {exc}") from None
    state = encoder.fit_stored({key: value.detach() for key, value in stored.encoder.state_dict().items()})
    name = encoder.config.get("name")
    try:
        check_weights(Path(folder), state, encoder.state_dict(), f"encoder {name!r} as configured here")
    except UnreadableCheckpoint as mismatch:
        raise SelfSupError(f"--init {folder}: {mismatch.reason}; {FIX}") from None
    encoder.load_state_dict(state)
