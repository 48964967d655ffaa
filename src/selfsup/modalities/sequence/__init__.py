"""Behaviour sequences: an interaction log (user, item, timestamp rows) turned into per-user item histories."""

from ..base import ModalityInfo

INFO = ModalityInfo(
    name="sequence",
    unit="histories",
    data_help="sequence: a .csv/.tsv/.parquet interaction log with user, item, timestamp columns",
    default_method="sasrec",
    default_encoders={"any": "sasrec_tiny", "transformer": "sasrec_tiny"},
    implementation="selfsup.modalities.sequence.modality:SequenceModality",
    pairwise_protocol="ranking",
    pairwise_needs_test=False,
    prepared_files=frozenset({"item_map.json", "item_map.json.tmp"}),
)
