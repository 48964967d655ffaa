"""A recording drawn as a small picture for the run report: its min-max envelope per pixel column."""

from __future__ import annotations

import numpy as np

WAVE_COLOUR = np.array([31, 119, 180], dtype=np.uint8)  # matplotlib's C0, as the report's plots


def waveform_picture(wave: np.ndarray, width: int = 160, height: int = 48) -> np.ndarray:
    """uint8 [height, width, 3]: white, with the waveform's envelope (the minimum and maximum of the samples
    under each column, scaled by the loudest sample) drawn in blue."""
    picture = np.full((height, width, 3), 255, dtype=np.uint8)
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if wave.size == 0:
        return picture
    peak = float(np.abs(wave).max()) or 1.0
    columns = np.array_split(wave / peak, min(width, wave.size))
    middle = (height - 1) / 2
    for x, column in enumerate(columns):
        top = int(round(middle - float(column.max()) * middle))
        bottom = int(round(middle - float(column.min()) * middle))
        picture[top:bottom + 1, x] = WAVE_COLOUR
    return picture
