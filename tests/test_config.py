"""Run configuration: YAML, --set overrides, type coercion, and helpful errors."""

from __future__ import annotations

import pytest

from selfsup.config import RunConfig, parse_overrides, set_value
from selfsup.errors import SelfSupError


def test_yaml_then_overrides_with_types(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-3\ntrainer:\n  epochs: 3\n  max_minutes: 2\nmethod:\n  name: byol\n  tau_base: 0.9\n")
    config = RunConfig.load(path)
    assert config.optim.lr == pytest.approx(1e-3) and isinstance(config.optim.lr, float)
    assert config.trainer.epochs == 3 and config.trainer.max_minutes == 2.0
    assert config.method == {"name": "byol", "tau_base": 0.9}
    for key, value in parse_overrides(["trainer.epochs=7", "data.strict=yes", "optim.weight_decay=5e-4"]):
        set_value(config, key, value)
    assert config.trainer.epochs == 7 and config.data.strict is True
    assert config.optim.weight_decay == pytest.approx(5e-4)
    saved = tmp_path / "saved.yaml"
    config.save(saved)
    assert RunConfig.load(saved) == config


@pytest.mark.parametrize(
    ("item", "expected"),
    [("optim.lrr=1", "optim.lr"), ("trainr.epochs=1", "trainer"), ("trainer.epochs=many", "trainer.epochs must be a whole number in [1, 1000000]; got 'many'"),
     ("data.strict=maybe", "data.strict must be true or false; got 'maybe'"), ("epochs", "section.key=value")],
)
def test_bad_settings_explain_the_fix(item, expected):
    config = RunConfig()
    with pytest.raises(SelfSupError) as info:
        for key, value in parse_overrides([item]):
            set_value(config, key, value)
    assert expected in str(info.value)


def test_method_settings_take_the_type_of_their_default():
    from selfsup.methods.byol import BYOL

    hp = BYOL.parse_hparams({"proj_hidden_dim": 64.0, "tau_base": 1, "flip_p": "0.25"})
    assert hp.proj_hidden_dim == 64 and isinstance(hp.proj_hidden_dim, int)
    assert isinstance(hp.tau_base, float) and hp.flip_p == 0.25
    with pytest.raises(SelfSupError, match=r"proj_hidden_dim \(byol\) must be a whole number in \[1, 65536\]; got 64.5"):
        BYOL.parse_hparams({"proj_hidden_dim": 64.5})
    with pytest.raises(SelfSupError, match=r"tau_base \(byol\) must be a number in \[0, 1\]; got 'high'"):
        BYOL.parse_hparams({"tau_base": "high"})


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("optim: [unclosed\n")
    with pytest.raises(SelfSupError, match="broken.yaml"):
        RunConfig.load(path)


def test_precision_auto_uses_bf16_only_where_the_cpu_has_it(tmp_path, monkeypatch):
    from selfsup import runtime

    with_bf16 = tmp_path / "cpuinfo_bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "cpuinfo_avx2"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert runtime.cpu_has_native_bf16(str(with_bf16)) is True
    assert runtime.cpu_has_native_bf16(str(without)) is False
    assert runtime.cpu_has_native_bf16(str(tmp_path / "missing")) is False

    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto") == "32-true"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", "cpu") == "bf16-mixed"
    assert runtime.resolve_precision("16-mixed") == "16-mixed"  # an explicit choice is kept


def test_no_method_named_means_the_modality_default():
    from selfsup.config import DataConfig, RunConfig
    from selfsup.train.run import resolve

    assert resolve(RunConfig()).method["name"] == "simclr"
    text = resolve(RunConfig(data=DataConfig(modality="text")))
    assert text.method["name"] == "mlm" and text.encoder["name"] == "bert_tiny"
