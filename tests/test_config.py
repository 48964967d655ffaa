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
    [("optim.lrr=1", "optim.lr"), ("trainr.epochs=1", "trainer"), ("trainer.epochs=many", "not a valid int"),
     ("data.strict=maybe", "not a valid bool"), ("epochs", "section.key=value")],
)
def test_bad_settings_explain_the_fix(item, expected):
    config = RunConfig()
    with pytest.raises(SelfSupError) as info:
        for key, value in parse_overrides([item]):
            set_value(config, key, value)
    assert expected in str(info.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("optim: [unclosed\n")
    with pytest.raises(SelfSupError, match="broken.yaml"):
        RunConfig.load(path)
