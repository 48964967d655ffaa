"""Text: one text per line of .txt files, or a text field of .jsonl/.csv/.tsv records; labeled sets are
label<TAB>text rows; sentence pairs score<TAB>sentence1<TAB>sentence2."""

from ..base import ModalityInfo

INFO = ModalityInfo(
    name="text",
    unit="texts",
    data_help="text: a .txt file (one text per line), a folder of them, or a .jsonl/.csv/.tsv with a text field",
    default_method="mlm",
    default_encoders={"any": "bert_tiny", "transformer": "bert_tiny"},
    implementation="selfsup.modalities.text.modality:TextModality",
    baselines=("tfidf",),
    pairwise_protocol="similarity",
    prepared_files=frozenset({"tokenizer", "tokenizer.tmp"}),
)
