"""Speech and other audio: folders of recordings (any depth) or a list of them; labeled sets are class
subfolders or a path,label table."""

from dataclasses import dataclass

from ...settings import setting
from ..base import ModalityInfo


@dataclass
class SETTINGS:
    """``data.*`` settings of audio."""

    # every recording is resampled to this rate (Hz) and mixed down to mono
    sample_rate: int = setting(16000, low=1000, high=384000, flag="--sample-rate")
    # training crops (random) and evaluation clips (centre) are at most this long
    clip_seconds: float = setting(2.0, low=0, high=3600, low_open=True, flag="--clip-seconds")
    # longer recordings are centre-cropped to this when read
    max_seconds: float = setting(60.0, low=0, high=3600, low_open=True,
                                 help="a decoded recording takes 4 x sample_rate bytes per second")


INFO = ModalityInfo(
    order=2,
    name="audio",
    unit="recordings",
    data_help="audio: a folder of wav/flac/ogg/mp3 files (any depth) or a .txt list of them",
    default_method="wav2vec2",
    default_encoders={"any": "wav2vec2_tiny", "transformer": "wav2vec2_tiny"},
    implementation="selfsup.modalities.audio.modality:AudioModality",
    auto_methods=("wav2vec2", "simclr", "speed", "data2vec"),
    baselines=("mfcc",),
    task_protocols=("asr",),
    task_baselines=("mfcc",),
)
