"""Redundancy-reduction and variance-covariance losses (Barlow Twins, VICReg)."""

from __future__ import annotations

__all__: list[str] = []
