"""Every setting is checked before any work: each numeric setting of every section (data, optim, trainer,
every registered method's hyper-parameters, the encoders' numeric arguments) at 0, -1, an absurdly large
value and the wrong type gets one line naming the setting, its valid values and the value given; the CLI
stops with exit code 2 before reading DATA or writing RUN_DIR; data that cannot fit in memory stops with
the size it needs."""

from __future__ import annotations

import inspect
import time
from dataclasses import fields

import pytest

from selfsup.config import DataConfig, RunConfig, Setting, TrainerConfig, set_value, setting_label, spec_of, validate
from selfsup.encoders import check_encoder_settings
from selfsup.encoders.base import ENCODER_SETTINGS
from selfsup.errors import SelfSupError
from selfsup.registry import encoder_names, get_encoder_builder, list_methods

from cli_checks import assert_one_line_error, run_cli

SECTIONS = ("data", "optim", "trainer")
HUGE = 10**12
WRONG_TYPES = ("abc", [1], True)
# the numeric settings where 0 is a sensible value (written out by hand, not read from the declarations)
ZERO_OK = {
    "trainer.seed", "trainer.num_workers", "optim.lr", "optim.weight_decay", "optim.warmup", "optim.momentum",
    "data.min_rating", "data.shuffle_buffer", "flip_p", "grayscale_p", "tau_base", "center_momentum", "momentum_base", "momentum",
    "ema_start", "ema_end", "ema_anneal", "loss_beta", "teacher_temp_warmup", "freeze_last_layer",
    "freeze_prototypes", "last_item_prob", "reorder", "weight", "lambda_offdiag", "invariance_weight",
    "variance_weight", "covariance_weight", "diversity_weight", "target_layer", "permutation_seed",
    "num_local_crops", "deletion_rate", "mlm.mask_prob", "mlm.random_prob", "dropout", "cosine_weight",
    "distill.teacher_input_size", "bart.mask_rate",
    *(f"{t}_token_id" for t in ("pad", "unk", "cls", "sep", "mask")),
}
NEGATIVE_OK = {"data.min_rating"}  # ratings may be negative
OWN_CHECKS = {"moco.version": "moco version must be 2 (queue of negatives) or 3"}  # Hparams.__post_init__


def numeric(spec: Setting) -> bool:
    return spec.kind in (int, float)


def config_settings():
    for section in SECTIONS:
        for f in fields(getattr(RunConfig(), section)):
            yield pytest.param(section, f, id=f"{section}.{f.name}")


def method_settings():
    for info in list_methods():
        for f in fields(info.cls.parse_hparams({})):
            yield pytest.param(info.cls, f, id=f"{info.name}.{f.name}")


def encoder_settings():
    for name in encoder_names():
        for key in inspect.signature(get_encoder_builder(name)).parameters:
            if key in ENCODER_SETTINGS:
                yield pytest.param(name, key, id=f"{name}.{key}")


def assert_names(message: str, label: str, spec: Setting, value) -> None:
    assert "\n" not in message
    assert label in message and spec.expected() in message, message
    assert f"got {value!r}" in message or f"got {float(value)!r}" in message, message


def config_error(section: str, key: str, value) -> str | None:
    config = RunConfig()
    try:
        set_value(config, f"{section}.{key}", value)
        validate(config)
    except SelfSupError as exc:
        return str(exc)
    return None


def test_every_setting_declares_its_valid_values_with_a_finite_range():
    sections = [getattr(RunConfig(), s) for s in SECTIONS] + [i.cls.parse_hparams({}) for i in list_methods()]
    for obj in sections:
        for f in fields(obj):
            spec = spec_of(f)
            assert spec is not None, f"{type(obj).__name__}.{f.name} declares no valid values"
            if numeric(spec) and spec.choices is None:
                assert spec.low is not None and spec.high is not None and spec.high < HUGE, f.name
            assert spec.accepts(getattr(obj, f.name)), f"the default of {f.name} is outside its own range"
    for key, spec in ENCODER_SETTINGS.items():
        assert not numeric(spec) or spec.high < HUGE, key


@pytest.mark.parametrize(("section", "f"), config_settings())
def test_config_settings_reject_zero_negative_huge_and_wrong_types(section, f):
    spec = spec_of(f)
    label = setting_label(section, f.name, spec)
    dotted = f"{section}.{f.name}"
    values = (0, -1, HUGE, *WRONG_TYPES) if numeric(spec) else ([1], 3.5) if spec.kind is not bool else ("abc", [1], 2)
    if dotted == "trainer.devices":  # a count, -1 (all), or device indices
        values = (0, -2, HUGE, "abc", True, [-1], "0,x")
    for value in values:
        message = config_error(section, f.name, value)
        if value == 0 and not isinstance(value, bool) and dotted in ZERO_OK or value == -1 and dotted in NEGATIVE_OK:
            assert message is None, f"{dotted}={value!r} is valid, got: {message}"
            continue
        assert message is not None, f"{dotted}={value!r} was accepted"
        assert label in message and spec.expected() in message and "got " in message, message
        if not isinstance(value, list) and value != "abc":
            assert_names(message, label, spec, value)
        assert "\n" not in message


@pytest.mark.parametrize(("method", "f"), method_settings())
def test_method_settings_reject_zero_negative_huge_and_wrong_types(method, f):
    spec = spec_of(f)
    label = setting_label("method", f.name, spec, method.name)
    values = (0, -1, HUGE, *WRONG_TYPES) if numeric(spec) else ("abc", [1], 7) if spec.kind is not str else ([1], 7)
    for value in values:
        zero_ok = value == 0 and not isinstance(value, bool) and (f.name in ZERO_OK or f"{method.name}.{f.name}" in ZERO_OK)
        try:
            method.parse_hparams({f.name: value})
        except SelfSupError as exc:
            assert not zero_ok, f"{method.name}: {f.name}=0 is valid, got: {exc}"
            message = str(exc)
            if label not in message and f"{method.name}.{f.name}" in OWN_CHECKS:  # the Hparams' own check came first
                assert OWN_CHECKS[f"{method.name}.{f.name}"] in message and f"got {value!r}" in message, message
                continue
            assert label in message and spec.expected() in message and "\n" not in message, message
            if not isinstance(value, (list, str)):
                assert_names(message, label, spec, value)
        else:
            assert zero_ok, f"{method.name}: {f.name}={value!r} was accepted"


@pytest.mark.parametrize(("name", "key"), encoder_settings())
def test_encoder_numbers_reject_zero_negative_huge_and_wrong_types(name, key):
    spec = ENCODER_SETTINGS[key]
    if not numeric(spec):
        wrong = ["en"] if key == "language_ids" else [1]  # language_ids is a list of token ids
        with pytest.raises(SelfSupError, match=f"encoder.{key} \\({name}\\)"):
            check_encoder_settings({"name": name, key: wrong})
        return
    label = setting_label("encoder", key, spec, name)
    for value in (0, -1, HUGE, "abc", True):
        try:
            check_encoder_settings({"name": name, key: value})
        except SelfSupError as exc:
            assert not (value == 0 and key in ZERO_OK), str(exc)
            if value == "abc":
                assert label in str(exc) and spec.expected() in str(exc) and "got 'abc'" in str(exc), str(exc)
            else:
                assert_names(str(exc), label, spec, value)
        else:
            assert value == 0 and key in ZERO_OK, f"encoder {name}: {key}={value!r} was accepted"


def test_an_unknown_encoder_argument_is_one_line_with_a_suggestion():
    with pytest.raises(SelfSupError, match="encoder 'bert_tiny' has no setting 'hiden_size' .*hidden_size"):
        check_encoder_settings({"name": "bert_tiny", "hiden_size": 64})


def test_valid_values_in_yaml_and_cli_forms_are_accepted_and_converted():
    config = RunConfig()
    for key, value in [("trainer.seed", 0), ("optim.weight_decay", 0), ("trainer.epochs", "3"), ("trainer.batch_size", 8.0),
                       ("optim.lr", "1e-3"), ("optim.lr", 2), ("trainer.devices", "0,1"), ("trainer.devices", 4),
                       ("trainer.devices", -1), ("trainer.devices", [0, 1]), ("trainer.devices", "auto"),
                       ("trainer.max_steps", "10"), ("data.strict", "yes"), ("optim.optimizer", "SGD"),
                       ("trainer.precision", "32-true"), ("trainer.strategy", "ddp"), ("data.cache", "stream")]:
        set_value(config, key, value)
        validate(config)
    assert config.trainer.epochs == 3 and config.trainer.batch_size == 8 and isinstance(config.trainer.batch_size, int)
    assert config.optim.lr == 2.0 and isinstance(config.optim.lr, float) and config.trainer.max_steps == 10
    assert config.data.strict is True


@pytest.mark.parametrize(("key", "value", "words"), [
    ("trainer.devices", 0, "a count in [1, 4096]"),
    ("trainer.devices", "0,x", "a list of device indices such as 0,1"),
    ("trainer.strategy", "dpp", "did you mean ddp"),
    ("data.cache", "memroy", "did you mean memory"),
    ("optim.optimizer", "adam", "one of adamw, sgd, lars"),
    ("data.strict", 2, "true or false"),
    ("data.encoding", 8, "must be text"),
])
def test_closed_choices_and_special_forms_get_one_line(key, value, words):
    message = config_error(*key.split("."), value)
    assert message is not None and words in message and "\n" not in message, message


# --------------------------------------------------------------------------- the CLI fails fast


@pytest.mark.parametrize("args", [
    ["--batch-size", "0"],
    ["--image-size", "100000"],
    ["--epochs", "-1"],
    ["--batch-size", "abc"],
    ["--max-minutes", "0"],
    ["--set", "trainer.epochs=abc"],
    ["--set", "optim.lr=[1]"],
    ["--set", "trainer.batch_size=true"],
    ["--set", "method.temperature=0"],
    ["--set", "encoder.in_chans=0"],
    ["--set", "encoder.widht=8"],
], ids=lambda a: " ".join(a))
def test_cli_stops_on_a_bad_setting_before_reading_data_or_writing_the_run(tmp_path, args):
    missing = tmp_path / "no-such-data"  # reading it would fail with another message
    out = tmp_path / "run"
    start = time.perf_counter()
    code, _, err = run_cli(["pretrain", missing, "--method", "simclr", "--out", out, *args])
    line = assert_one_line_error(code, err)
    assert "no-such-data" not in line and "not found" not in line
    assert not out.exists()
    assert time.perf_counter() - start < 5


def test_cli_batch_size_zero_names_the_flag_the_range_and_the_value(tmp_path):
    code, _, err = run_cli(["pretrain", tmp_path / "x", "--out", tmp_path / "run", "--batch-size", "0"])
    assert_one_line_error(code, err, "--batch-size / trainer.batch_size", "whole number in [2, 1048576]", "got 0")
    code, _, err = run_cli(["pretrain", tmp_path / "x", "--out", tmp_path / "run", "--image-size", "100000"])
    assert_one_line_error(code, err, "--image-size / data.image_size", "[8, 4096]", "got 100000", "3 x S x S bytes: 27.9 GiB at 100000 px")
    code, _, err = run_cli(["pretrain", tmp_path / "x", "--out", tmp_path / "run", "--epochs", "2.5"])
    assert_one_line_error(code, err, "--epochs / trainer.epochs must be a whole number in [1, 1000000]; got 2.5")


# --------------------------------------------------------------------------- memory


def test_a_forced_memory_cache_that_cannot_fit_stops_before_decoding(image_folder, monkeypatch):
    from selfsup.modalities.image import training
    from selfsup.train import data as train_data

    monkeypatch.setattr(train_data, "available_memory", lambda: 100_000)
    monkeypatch.setattr(training, "decode_unlabeled", lambda *a, **k: pytest.fail("decoded"))
    n = len(training.find_images(image_folder))
    config = DataConfig(path=str(image_folder), image_size=64, cache="memory")
    with pytest.raises(SelfSupError) as info:
        training.load_train_data(config, progress=False)
    message = str(info.value)
    need = train_data._size(n * 3 * 64 * 64)
    assert f"data.cache=memory: {n} images at 64 px (decoded) would take {need}" in message
    assert "use --cache stream" in message and "\n" not in message
    # auto streams the same data instead of stopping
    assert training.choose_cache("auto", n, 64) == "stream"


def test_a_batch_that_cannot_fit_stops_with_the_size_it_needs(image_folder, monkeypatch):
    from selfsup.modalities.image.training import load_image_data
    from selfsup.train import data as train_data

    monkeypatch.setattr(train_data, "available_memory", lambda: 2**30)
    config = DataConfig(path=str(image_folder), image_size=4096, cache="stream")
    data = load_image_data(config, progress=False)  # streamed: nothing decoded yet
    with pytest.raises(SelfSupError, match=r"one batch of 16 images at 4096 px .* would take 6.75 GiB, more than "
                                           r"the 1 GiB of memory available; lower --batch-size"):
        data.make_loader(lambda images, generator: {"view": images}, 16, TrainerConfig(), 1)
    config.image_size = 32  # the same folder at a small size fits
    assert load_image_data(config, progress=False).make_loader(lambda i, g: {"view": i}, 16, TrainerConfig(), 1)


@pytest.mark.parametrize(("args", "words"), [
    (["embed", "RUN", "DATA", "--out", "x.npy", "--batch-size", "0"], "--batch-size / embed.batch_size must be a whole "
                                                                       "number in [1, 1048576]; got 0"),
    (["evaluate", "RUN", "--train", "DATA", "--label-fractions", "0.1,1.5"], "--label-fractions / evaluate.label_fractions "
                                                                           "must be a number in (0, 1]; got 1.5"),
    (["evaluate", "RUN", "--train", "DATA", "--finetune-steps", "0"], "--finetune-steps / evaluate.finetune_steps"),
    (["evaluate", "RUN", "--train", "DATA", "--seed", "-1"], "--seed / evaluate.seed must be a whole number in "
                                                             "[0, 4294967295]; got -1"),
], ids=["embed-batch", "fractions", "finetune-steps", "seed"])
def test_other_commands_check_their_numbers_before_opening_the_run(tmp_path, args, words):
    argv = [str(tmp_path / "missing") if a in ("RUN", "DATA") else a for a in args]  # opening them would fail otherwise
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, words)
