"""User-facing errors: the CLI prints the message on one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SelfSupError(Exception):
    """A mistake in the user's input or setup, with a message that says how to fix it."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest names to ``name`` among ``choices`` (for 'did you mean' messages)."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    return found or [c for c in choices if name.lower() in c.lower()][:n]


def did_you_mean(name: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or an empty string."""
    hint = closest(name, choices)
    return f" (did you mean {', '.join(prefix + h for h in hint)}?)" if hint else ""
