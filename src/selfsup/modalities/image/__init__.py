"""Images: folders of image files (any depth) or a list of paths; labeled sets are class subfolders."""

from ..base import ModalityInfo

INFO = ModalityInfo(
    name="image",
    unit="images",
    data_help="images: a folder (any depth; class folders ignored) or a .txt list of image paths",
    default_method="simclr",
    default_encoders={"any": "tiny_cnn", "transformer": "vit_micro"},
    implementation="selfsup.modalities.image.modality:ImageModality",
)
