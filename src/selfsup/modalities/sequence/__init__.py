"""Behaviour sequences: an interaction log (user, item, timestamp rows) turned into per-user item histories."""

from dataclasses import dataclass

from ...settings import setting
from ..base import ModalityInfo


@dataclass
class SETTINGS:
    """``data.*`` settings of interaction logs (``max_length``: the most recent items kept per history)."""

    max_length: int = setting(128, low=2, high=65536, flag="--max-length")
    user_column: str = setting("user")
    item_column: str = setting("item")
    timestamp_column: str = setting("timestamp")
    rating_column: str = setting("")  # optional; with min_rating, rows rated below it are dropped (implicit feedback)
    min_rating: float | None = setting(None, kind=float, low=-1e9, high=1e9)
    # an earlier run's item_map.json (set by --init RUN): its items keep their ids, the log's new ones follow
    item_map: str = setting("")
    # logs grouped on disk (parquet shards, --cache stream): interactions per sorting bucket (≈ 50 bytes each)
    group_rows: int = setting(1_000_000, low=1, high=10**11)


INFO = ModalityInfo(
    order=3,
    name="sequence",
    unit="histories",
    data_help="sequence: a .csv/.tsv/.parquet interaction log with user, item, timestamp columns",
    default_method="sasrec",
    default_encoders={"any": "sasrec_tiny", "transformer": "sasrec_tiny"},
    implementation="selfsup.modalities.sequence.modality:SequenceModality",
    auto_methods=("sasrec", "bert4rec", "cl4srec"),
    pairwise_protocol="ranking",
    pairwise_needs_test=False,
    prepared_files=frozenset({"item_map.json", "item_map.json.tmp", "histories", "histories.tmp"}),
)
