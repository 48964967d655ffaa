"""How much library logging the `selfsup` command shows; importing this imports neither torch nor Lightning."""

from __future__ import annotations

import logging
import sys

QUIET = False  # set by the CLI unless -v: hide Lightning's info messages
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def quiet_lightning() -> None:
    """Lower Lightning's loggers to errors when the CLI asked for quiet, if Lightning is imported.

    Lightning sets its loggers to INFO when it is imported, so ``selfsup.train`` calls this right
    after importing it; the CLI calls it too, for a Lightning imported earlier. A no-op otherwise.
    """
    if QUIET and any(name in sys.modules for name in _LIGHTNING_LOGGERS):
        for name in _LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
