"""A frozen teacher given as any checkpoint ``--init`` accepts (``Method.teacher_from_init``: ``distill``'s
``method.teacher``), built the way a student would start from it, for training and for ``--baseline teacher``.

The teacher is built ONLY from what the run's modality says about the source
(:meth:`~selfsup.modalities.base.Modality.init_settings`: the ``encoder.*`` settings that load it and the
``data.*`` settings its inputs need, e.g. a text checkpoint's tokenizer), plus the settings the training data
fills in for every encoder (vocabulary size and token ids, image size, sample rate). So every kind of source
the modality learns to start from works as a teacher too. The teacher is never trained and never saved with
the run's weights: a resumed run rebuilds it from the source, and ``RUN/teacher.json`` records the data
fill-ins (to rebuild it for evaluation) and both parameter counts.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig, set_value
from .encoders import Encoder, build_encoder
from .errors import SelfSupError
from .modalities import get_modality

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

TEACHER_FILE = "teacher.json"


def parameter_count(module: nn.Module) -> int:
    """Every parameter of ``module``, trainable or not."""
    return sum(p.numel() for p in module.parameters())


def _label(method: str, setting: str, source: str) -> str:
    return f"{method}: method.{setting}={source}"


def _ask_modality(config: RunConfig, source: str, data: Any = None) -> dict[str, Any]:
    probe = copy.deepcopy(config)
    probe.encoder = {}  # the student's --encoder is not the teacher's
    if data is not None:
        probe.data = data
    return get_modality(config.data.modality).init_settings(str(source), probe)


def _conflict(label: str, name: str, teacher: Any, given: Any) -> SelfSupError:
    return SelfSupError(f"{label}: the teacher reads its inputs with data.{name}={teacher}, but this run has "
                        f"data.{name}={given}; a distilled student reads the teacher's inputs: leave that setting out, "
                        f"or start the student (--init) from a checkpoint with the same {name}")


def _checkpoint_settings(config: RunConfig, source: str, label: str) -> dict[str, Any]:
    """The modality's settings for starting from ``source`` (``init_settings``), asked with the run's data settings
    and no encoder. When the modality refuses them because of a data setting the teacher needs otherwise (text:
    another tokenizer, given by --tokenizer or by the student's own --init), the one line names that setting."""
    try:
        return _ask_modality(config, source)
    except SelfSupError as exc:
        refused = SelfSupError(f"{label}: {exc}")
    try:  # the same source with the data settings at their defaults: which of the run's does the teacher differ in?
        fresh = _ask_modality(config, source, type(config.data)(path=config.data.path, modality=config.data.modality))
    except SelfSupError:
        raise refused from None
    for key, value in fresh.items():
        section, _, name = key.partition(".")
        if section == "data" and getattr(config.data, name) != value:
            raise _conflict(label, name, value, getattr(config.data, name)) from None
    raise refused from None


def missing_teacher(method: str, setting: str) -> SelfSupError:
    return SelfSupError(f"method {method!r} learns from a teacher: add --set method.{setting}=SOURCE (a Hugging "
                        "Face model folder or cached model id, or anything else --init accepts)")


def adopt_teacher_data(config: RunConfig, method: str, setting: str) -> None:
    """Give the run the data settings its teacher needs (``data.tokenizer`` of a text checkpoint: the student
    reads the same token ids), where the user left them at their defaults; one line when the run has another."""
    source = config.method.get(setting)
    if not source:
        raise missing_teacher(method, setting)
    label = _label(method, setting, source)
    defaults = type(config.data)()
    for key, value in _checkpoint_settings(config, source, label).items():
        section, _, name = key.partition(".")
        if section != "data" or getattr(config.data, name) == value:
            continue
        if getattr(config.data, name) != getattr(defaults, name):
            raise _conflict(label, name, value, getattr(config.data, name))
        set_value(config, key, value, source=f"method.{setting}")


def build_teacher(config: RunConfig, method: str, setting: str, fill_ins: dict[str, Any]) -> Encoder:
    """The teacher ``config.method[setting]`` names, in eval mode: the encoder the modality's
    ``init_settings`` describe, given the training data's ``fill_ins`` (``TrainData.encoder_kwargs``)."""
    source = config.method.get(setting)
    if not source:
        raise missing_teacher(method, setting)
    label = _label(method, setting, source)
    settings = _checkpoint_settings(config, source, label)
    encoder = {key.partition(".")[2]: value for key, value in settings.items() if key.startswith("encoder.")}
    try:
        teacher = build_encoder({**encoder, **fill_ins})
    except SelfSupError as exc:
        raise SelfSupError(f"{label}: {exc}") from None
    return teacher.eval()


def save_teacher_record(run_dir: Path, source: str, teacher: Encoder, student: Encoder,
                        fill_ins: dict[str, Any]) -> dict[str, Any]:
    """Write ``RUN/teacher.json``: the source, the data fill-ins the teacher was built with, its config and the
    parameter counts of student and teacher. Returns the record."""
    record = {"source": str(source), "data": fill_ins, "encoder": teacher.config,
              "parameters": {"student": parameter_count(student), "teacher": parameter_count(teacher)}}
    tmp = run_dir / (TEACHER_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(run_dir / TEACHER_FILE)
    return record


def teacher_record(run: str | Path) -> dict[str, Any] | None:
    """``RUN/teacher.json`` of a distilled run folder; None for any other run or an export."""
    path = Path(run).expanduser() / TEACHER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def rebuild_teacher(run: str | Path, record: dict[str, Any]) -> Encoder:
    """The teacher of the distilled run folder ``run`` (``record``: its :func:`teacher_record`), rebuilt from the
    run's ``method`` settings as training built it."""
    from .registry import get_method

    config = RunConfig.load(Path(run).expanduser() / "config.yaml")
    info = get_method(config.method["name"], config.data.modality)
    return build_teacher(config, info.name, info.cls.teacher_setting, record["data"])
