"""Lightning glue: one LightningModule for every method, callbacks, checkpoint I/O, the run."""

import lightning.pytorch  # noqa: F401  (every module here uses it)

from ..library_logs import quiet_lightning

quiet_lightning()  # Lightning reset its loggers' levels on import: apply the CLI's quiet setting now
