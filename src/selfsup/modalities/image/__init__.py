"""Images: folders of image files (any depth) or a list of paths; labeled sets are class subfolders."""

from dataclasses import dataclass
from typing import Any

from ...settings import format_bytes, setting
from ..base import ModalityInfo

# one decoded 4096 px image is 48 MiB and a batch of 256 with two float32 views 108 GiB: larger cannot train
MAX_IMAGE_SIZE = 4096


def _image_size_help(size: Any) -> str:
    """Why image_size is capped: what one decoded image of that size would take."""
    each = f": {format_bytes(3 * size * size)} at {size} px" if isinstance(size, int) and size > 0 else ""
    return f"one decoded image takes 3 x S x S bytes{each}, and a batch of augmented float32 views 8x that per image"


@dataclass
class SETTINGS:
    """``data.*`` settings of images."""

    image_size: int = setting(32, low=8, high=MAX_IMAGE_SIZE, flag="--image-size", help=_image_size_help)


INFO = ModalityInfo(
    order=0,
    name="image",
    unit="images",
    data_help="images: a folder (any depth; class folders ignored) or a .txt list of image paths",
    default_method="simclr",
    default_encoders={"any": "tiny_cnn", "transformer": "vit_micro"},
    baselines=("pixels",),
    implementation="selfsup.modalities.image.modality:ImageModality",
    auto_methods=("simclr", "byol", "vicreg", "rotation"),
)
