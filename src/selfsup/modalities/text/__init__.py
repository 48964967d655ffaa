"""Text: one text per line of .txt files, or a text field of .jsonl/.csv/.tsv records; labeled sets are
label<TAB>text rows; sentence pairs score<TAB>sentence1<TAB>sentence2."""

from dataclasses import dataclass

from ...settings import setting
from ..base import ModalityInfo
from .languages import valid_languages


@dataclass
class SETTINGS:
    """``data.*`` settings of text."""

    encoding: str = setting("utf-8", flag="--encoding")  # of the text files (e.g. latin-1)
    text_field: str = setting("text")  # the field holding the text in .jsonl / .csv / .tsv files
    # wordpiece | bpe (trained on DATA, saved in the run folder) | a tokenizer folder
    tokenizer: str = setting("wordpiece", flag="--tokenizer")
    vocab_size: int = setting(8000, low=16, high=2**20, flag="--vocab-size")  # of a trained tokenizer
    lowercase: bool = setting(True)  # a trained tokenizer lowercases (and strips accents for wordpiece)
    max_length: int = setting(128, low=2, high=65536, flag="--max-length")  # tokens per text (longer ones are truncated)
    # several languages (mBART): each text starts with its language's tag (__en__), a special token of the tokenizer
    languages: str = setting("", valid=valid_languages, expect="language codes separated by commas, e.g. en,de",
                             help="'': one language, no tags; e.g. en,de: a tag per text from its file name "
                                  "(train.de, news.de.txt, de/), its language_field or a tag it starts with")
    language_field: str = setting("language")  # the field naming a text's language in .jsonl / .csv / .tsv rows


INFO = ModalityInfo(
    order=1,
    name="text",
    unit="texts",
    data_help="text: a .txt file (one text per line), a folder of them, or a .jsonl/.csv/.tsv with a text field",
    default_method="mlm",
    default_encoders={"any": "bert_tiny", "transformer": "bert_tiny"},
    implementation="selfsup.modalities.text.modality:TextModality",
    auto_methods=("simcse", "mlm", "tsdae"),
    baselines=("tfidf",),
    pairwise_protocol="similarity",
    task_protocols=("translation",),
    prepared_files=frozenset({"tokenizer", "tokenizer.tmp"}),
)
