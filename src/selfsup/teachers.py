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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .config import RunConfig, set_value
from .encoders import Encoder, build_encoder
from .errors import SelfSupError
from .modalities import get_modality

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .methods.base import Method

TEACHER_FILE = "teacher.json"


def parameter_count(module: nn.Module) -> int:
    """Every parameter of ``module``, trainable or not."""
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class TeacherSource:
    """What a run's method settings say about its teacher: the source (``method.teacher``) and, for sources that
    need one (a timm weights file), the teacher's architecture (``method.teacher_encoder``, as ``--encoder`` for
    ``--init``)."""

    method: str
    setting: str
    source: str
    encoder: str = ""

    @classmethod
    def of(cls, config: RunConfig, method: type[Method]) -> TeacherSource:
        """The teacher of ``config``'s method ``method``; one line when its setting is missing."""
        setting = method.teacher_setting or ""
        source = config.method.get(setting)
        if not source:
            raise SelfSupError(f"method {method.name!r} learns from a teacher: add --set method.{setting}=SOURCE (a "
                               "Hugging Face model folder or cached model id, or anything else --init accepts)")
        encoder = config.method.get(method.teacher_encoder_setting or "") or ""
        return cls(method.name, setting, str(source), str(encoder))

    @property
    def label(self) -> str:
        return f"{self.method}: method.{self.setting}={self.source}"

    def ask_modality(self, config: RunConfig, data: Any = None) -> dict[str, Any]:
        """The run's modality's ``init_settings`` for the source, given the run's settings with the teacher's
        encoder (not the student's) and, when given, other ``data`` settings."""
        probe = copy.deepcopy(config)
        probe.encoder = {"name": self.encoder} if self.encoder else {}
        if data is not None:
            probe.data = data
        return get_modality(config.data.modality).init_settings(self.source, probe)

    def conflict(self, name: str, teacher: Any, given: Any) -> SelfSupError:
        return SelfSupError(f"{self.label}: the teacher reads its inputs with data.{name}={teacher}, but this run has "
                            f"data.{name}={given}; a distilled student reads the teacher's inputs: leave that setting "
                            f"out, or start the student (--init) from a checkpoint with the same {name}")

    def settings(self, config: RunConfig) -> dict[str, Any]:
        """:meth:`ask_modality` with the run's data settings. When the modality refuses them because of a data
        setting the teacher needs otherwise (text: another tokenizer, given by --tokenizer or by the student's own
        --init), the one line names that setting; its ``--encoder`` becomes ``method.teacher_encoder``."""
        try:
            return self.ask_modality(config)
        except SelfSupError as exc:  # the modality speaks of --encoder, which is the teacher's setting here
            refused = SelfSupError(f"{self.label}: " + str(exc).replace("--encoder ", "--set method.teacher_encoder="))
        try:  # with the data settings at their defaults: which of the run's does the teacher differ in?
            fresh = self.ask_modality(config, type(config.data)(path=config.data.path, modality=config.data.modality))
        except SelfSupError:
            raise refused from None
        for key, value in fresh.items():
            section, _, name = key.partition(".")
            if section == "data" and getattr(config.data, name) != value:
                raise self.conflict(name, value, getattr(config.data, name)) from None
        raise refused from None


def adopt_teacher_data(config: RunConfig, method: type[Method]) -> None:
    """Give the run the data settings its teacher needs (``data.tokenizer`` of a text checkpoint: the student
    reads the same token ids), where the user left them at their defaults; one line when the run has another."""
    teacher = TeacherSource.of(config, method)
    defaults = type(config.data)()
    for key, value in teacher.settings(config).items():
        section, _, name = key.partition(".")
        if section != "data" or getattr(config.data, name) == value:
            continue
        if getattr(config.data, name) != getattr(defaults, name):
            raise teacher.conflict(name, value, getattr(config.data, name))
        set_value(config, key, value, source=f"method.{teacher.setting}")


class ResizedTeacher(Encoder):
    """A teacher that reads every batch at its own input size (``method.teacher_input_size``): ``resize`` (the
    modality's :meth:`~selfsup.modalities.base.Modality.resized_inputs`) runs before each of its passes, so a small
    student learns at its own size from a teacher at the size it was pretrained for; the view itself (crop, flip,
    colours) stays the one both see."""

    def __init__(self, encoder: Encoder, resize: Callable[[Any], Any]) -> None:
        super().__init__()
        self.encoder = encoder
        self.resize = resize
        self.dim = encoder.dim
        self.config = encoder.config

    def forward(self, inputs: Any) -> Any:
        return self.encoder(self.resize(inputs))

    def pool(self, tokens: Any, mask: Any = None) -> Any:
        return self.encoder.pool(tokens, mask)

    def embed(self, inputs: Any) -> Any:
        return self.encoder.embed(self.resize(inputs))


def build_teacher(config: RunConfig, method: type[Method], fill_ins: dict[str, Any]) -> Encoder:
    """The teacher of ``config``'s ``method``, in eval mode: the encoder the modality's ``init_settings``
    describe, given the training data's ``fill_ins`` (``TrainData.encoder_kwargs``), at its own input size when
    ``method.teacher_input_size`` gives one (:class:`ResizedTeacher`)."""
    teacher = TeacherSource.of(config, method)
    encoder = {key.partition(".")[2]: value for key, value in teacher.settings(config).items()
               if key.startswith("encoder.")}
    size = int(config.method.get("teacher_input_size") or 0)
    resize = None
    if size:
        resize, fill_ins = get_modality(config.data.modality).resized_inputs(size, fill_ins)
    try:
        built = build_encoder({**encoder, **fill_ins})
    except SelfSupError as exc:
        sized = "" if size else "; an image teacher pretrained at another size: --set method.teacher_input_size=SIZE"
        raise SelfSupError(f"{teacher.label}: {exc}{sized}") from None
    return (ResizedTeacher(built, resize) if resize is not None else built).eval()


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
    return build_teacher(config, get_method(config.method["name"], config.data.modality).cls, record["data"])
