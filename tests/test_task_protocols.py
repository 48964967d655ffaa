"""The shared plumbing of the downstream-task protocols (asr, translation): which modality has which, the one-line
errors of a request that does not fit, and the table and plot of metrics where lower is better."""

import pytest

from selfsup.errors import SelfSupError
from selfsup.evaluation import EvalResult, format_table
from selfsup.evaluation.downstream import check_request
from selfsup.evaluation.label_efficiency import curves, metric_axis_label


def test_each_task_belongs_to_its_modality():
    check_request("audio", ["asr"], ["scratch", "mfcc"], "train", "test")
    check_request("text", ["translation"], ["scratch"], "train.tsv", "test.tsv")
    with pytest.raises(SelfSupError, match="--protocol asr: not available for text data"):
        check_request("text", ["asr"], [], "train", "test")
    with pytest.raises(SelfSupError, match="--protocol translation: not available for image data"):
        check_request("image", ["translation"], [], "train", "test")


@pytest.mark.parametrize("protocols,baselines,train,test,message", [
    (["asr", "linear"], [], "a", "b", "--protocol asr cannot be mixed with linear"),
    (["translation"], ["tfidf"], "a", "b", "--baseline 'tfidf' is not available for --protocol translation"),
    (["asr"], ["init"], "a", "b", "init needs a run that started from a checkpoint"),
    (["asr"], ["scratch"], None, "b", "--train is needed for --protocol asr"),
    (["translation"], ["scratch"], "a", None, "--test is needed for --protocol translation"),
])
def test_a_task_request_that_does_not_fit_is_one_line(protocols, baselines, train, test, message):
    modality = "audio" if "asr" in protocols else "text"
    with pytest.raises(SelfSupError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_request(modality, protocols, baselines, train, test)


def test_init_is_a_task_baseline_of_a_run_started_from_a_checkpoint():
    check_request("text", ["translation"], ["scratch", "init"], "a", "b", from_checkpoint=True)


def test_error_rates_are_marked_lower_is_better_in_table_and_plot():
    results = [EvalResult("asr", f, n, enc, metric, v)
               for f, n in ((0.1, 10), (1.0, 100))
               for enc, v in (("pretrained", 0.3), ("scratch", 0.5))
               for metric in ("cer", "wer")]
    table = format_table(results)
    assert "cer, wer: lower is better" in table
    assert "-0.2000" in table  # the gain column: pretrained - scratch, negative = better
    assert metric_axis_label(results) == "cer (lower is better), wer (lower is better)"
    labels = {style["label"] for _, _, style in curves(results)}
    assert labels == {"asr cer · pretrained", "asr wer · pretrained", "asr cer · scratch", "asr wer · scratch"}
    accuracy = [EvalResult("linear", 1.0, 10, "pretrained", "accuracy", 0.9)]
    assert "lower is better" not in format_table(accuracy)
    assert metric_axis_label(accuracy) == "accuracy"
    assert {s["label"] for _, _, s in curves(accuracy)} == {"linear · pretrained"}
