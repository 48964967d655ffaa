"""Self-distillation and online-clustering losses (DINO, SwAV)."""

from __future__ import annotations

__all__: list[str] = []
