"""Declared settings: a setting's valid values live next to its default.

:func:`setting` makes a dataclass field whose metadata holds a :class:`Setting` (type, range or choices, the
CLI flag, why); :func:`check_fields` checks any dataclass of such fields (the run config's sections, a
method's ``Hparams``, a modality's data settings) with one-line errors. Torch-free and free of the rest of
the package, so that every layer (modalities included) can declare settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .errors import SelfSupError, did_you_mean

SETTING = "selfsup.setting"  # the metadata key of a declared field
def _fmt(x: float) -> str:
    if isinstance(x, int) or x.is_integer() and abs(x) < 1e7:
        return str(int(x))
    return f"{x:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def format_bytes(n: float) -> str:
    """``n`` bytes for people: ``27.9 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


@dataclass(frozen=True)
class Setting:
    """The valid values of one setting: a kind (int, float, bool, str, or object with ``valid``) and a range
    ``low``..``high`` (``low_open``/``high_open``: the end itself is excluded), or ``choices``.

    ``optional``: None is valid too (it means what ``help`` says, e.g. "the method's default"). ``flag`` is
    the CLI flag that sets it, for messages. ``valid``/``expect``: a custom test and its description.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    optional: bool = False
    flag: str = ""
    help: str | Callable[[Any], str] = ""  # why, or what null means; a function of the value given
    valid: Callable[[Any], bool] | None = None
    expect: str = ""

    def options(self) -> tuple[Any, ...]:
        choices = self.choices() if callable(self.choices) else self.choices
        return tuple(choices or ())

    def expected(self) -> str:
        """What the setting takes, e.g. ``a whole number in [1, 1048576]``."""
        if self.expect:
            text = self.expect
        elif self.choices is not None:
            options = [str(c) for c in self.options()]
            text = "one of " + ", ".join(options[:8]) + (f", ... ({len(options)} in all)" if len(options) > 8 else "")
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is str:
            text = "text"
        else:
            text = "a whole number" if self.kind is int else "a number"
            if self.low is not None and self.high is not None:
                text += (f" in {'(' if self.low_open else '['}{_fmt(self.low)}, "
                         f"{_fmt(self.high)}{')' if self.high_open else ']'}")
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_fmt(self.low)}"
        return text + (", or null" if self.optional else "")

    def is_kind(self, value: Any) -> bool:
        """Whether ``value`` has the setting's type (a bool is not a number; a whole number is an int)."""
        if value is None:
            return self.optional
        if self.kind in (int, float):
            return (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and (self.kind is float or isinstance(value, int)) and math.isfinite(value))
        return isinstance(value, self.kind)

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.valid is not None:
            return self.valid(value)
        if not self.is_kind(value):
            return False
        if self.choices is not None:
            return value in self.options()
        if self.low is not None and (value < self.low or self.low_open and value == self.low):
            return False
        return not (self.high is not None and (value > self.high or self.high_open and value == self.high))

    def check(self, value: Any, name: str) -> None:
        """Raise a one-line :class:`SelfSupError` naming ``name``, the valid values and ``value`` unless valid."""
        if not self.accepts(value):
            raise SelfSupError(self.message(value, name))

    def message(self, value: Any, name: str) -> str:
        hint = did_you_mean(value, [str(c) for c in self.options()]) if isinstance(value, str) and self.choices else ""
        help = self.help(value) if callable(self.help) else self.help
        why = f" ({help})" if help else ""
        return f"{name} must be {self.expected()}; got {value!r}{hint}{why}"


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, kind: type | None = None,
            low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
            choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None, flag: str = "",
            help: str | Callable[[Any], str] = "",
            valid: Callable[[Any], bool] | None = None, expect: str = "") -> Any:
    """A dataclass field with its valid values declared next to its default (see :class:`Setting`).

    ``kind`` defaults to the default's type; a None default makes the setting optional (give ``kind``).
    """
    sample = default_factory() if default_factory is not MISSING else default
    if kind is None:
        if sample is MISSING or sample is None:
            raise TypeError("setting(): give kind= when there is no default to take the type from")
        kind = type(sample)
    spec = Setting(kind, low, high, low_open, high_open, choices, default is None, flag, help, valid, expect)
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={SETTING: spec})
    return field(default=default, metadata={SETTING: spec})


def spec_of(f: Field) -> Setting | None:
    """The :class:`Setting` declared for a dataclass field, or None."""
    return f.metadata.get(SETTING)


def setting_label(section: str, name: str, spec: Setting | None, owner: str = "") -> str:
    """How messages name a setting: ``--batch-size / trainer.batch_size``, ``method.temperature (simclr)``."""
    label = f"{spec.flag} / {section}.{name}" if spec is not None and spec.flag else f"{section}.{name}"
    return f"{label} ({owner})" if owner else label


def check_fields(obj: Any, section: str, owner: str = "") -> None:
    """Check every declared field of the dataclass instance ``obj``; the first invalid one raises."""
    for f in fields(obj):
        spec = spec_of(f)
        if spec is not None:
            spec.check(getattr(obj, f.name), setting_label(section, f.name, spec, owner))


