"""Speech and other audio: folders of recordings (any depth) or a list of them; labeled sets are class
subfolders or a path,label table."""

from ..base import ModalityInfo

INFO = ModalityInfo(
    name="audio",
    unit="recordings",
    data_help="audio: a folder of wav/flac/ogg/mp3 files (any depth) or a .txt list of them",
    default_method="wav2vec2",
    default_encoders={"any": "wav2vec2_tiny", "transformer": "wav2vec2_tiny"},
    implementation="selfsup.modalities.audio.modality:AudioModality",
    baselines=("mfcc",),
)
