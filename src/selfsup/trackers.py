"""The experiment trackers ``--logger`` adds beside metrics.csv: the extra each needs, and the environment that
keeps it offline. Light on purpose (no Lightning): settings are checked before training imports anything."""

from __future__ import annotations

import importlib
import os

from .errors import SelfSupError

TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}
# set before the tracker is imported (MLflow starts its usage telemetry on import): nothing leaves the machine.
# A value the user set wins, except W&B's mode: offline is what --logger wandb means.
OFFLINE_ENVIRONMENT = {
    "mlflow": {"MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_ALLOW_FILE_STORE": "true"},  # MLflow 3 keeps its file store behind this switch
    "wandb": {"WANDB_ERROR_REPORTING": "false"},
}
LOGGERS = ("csv", *TRACKER_MODULES)  # the values of trainer.logger; csv: metrics.csv only


def check_tracker(name: str) -> None:
    """Fail in one line, before any data is read, when the tracker ``name``'s package (an extra) is missing;
    set the tracker's offline environment before it is imported."""
    for variable, value in OFFLINE_ENVIRONMENT.get(name, {}).items():
        os.environ.setdefault(variable, value)
    if name == "wandb":
        os.environ["WANDB_MODE"] = "offline"
    for module in TRACKER_MODULES.get(name, ()):
        try:
            importlib.import_module(module)
            return
        except ImportError:
            continue
    if name in TRACKER_MODULES:
        raise SelfSupError(f"--logger {name} / trainer.logger={name} needs the {TRACKER_MODULES[name][0]} package, "
                           f"which is not installed: pip install 'selfsup[{name}]', or use --logger csv")
