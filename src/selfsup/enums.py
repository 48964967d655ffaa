"""The method families and data modalities: plain enums, importable without torch (``selfsup methods`` uses them)."""

from __future__ import annotations

from enum import Enum


class Family(str, Enum):
    """The four families of pretext tasks (plus the non-contrastive self-distillation branch, and distillation
    from a given, frozen teacher)."""

    CONTRASTIVE = "contrastive"
    SELF_DISTILLATION = "self-distillation"
    PREDICTIVE = "predictive"
    GENERATIVE = "generative"
    TRANSFORMATION = "transformation"
    CLUSTERING = "clustering"
    DISTILLATION = "distillation"


class Modality(str, Enum):
    """The names of the built-in modalities, for methods' ``modalities = frozenset({...})`` declarations. The
    modality registry (``selfsup.modalities``) is the authority: a modality added as a package or a plug-in
    needs no member here, and everything else handles modalities by name."""

    IMAGE = "image"
    TEXT = "text"
    AUDIO = "audio"
    SEQUENCE = "sequence"
