"""Lightning glue: one LightningModule for every method, callbacks, checkpoint I/O, the run."""
