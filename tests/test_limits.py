"""Sizes are bounded before allocation: a huge layer or data set is refused up front, exit 2.

The bound is the machine's memory unless KCLI_MAX_MEMORY says otherwise; the message names the
recipe key, the size the request would need, and the limit.
"""

from __future__ import annotations

import pytest

from kcli.errors import KcliError
from kcli.limits import MEMORY_LIMIT_VARIABLE, memory_limit
from tests.trained import cli

TEMPLATE = """\
name: sizes
data:
  source: synthetic:classification
  params: {{n_features: 8, n_samples: {n_samples}}}
model:
  input_shape: [8]
  layers:
    - {{type: Dense, units: {units}}}
    - {{type: Dense, units: 2, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
fit: {{epochs: 1}}
"""


def write(tmp_path, units=16, n_samples=100):
    path = tmp_path / "sizes.yaml"
    path.write_text(TEMPLATE.format(units=units, n_samples=n_samples))
    return path


def test_a_layer_too_large_for_memory_is_refused_before_any_weight_is_drawn(tmp_path):
    units = 10**11
    result = cli("summarize", write(tmp_path, units=units))
    assert result.exit_code == 2, result.output
    # Dense(8 -> 1e11): 8e11 + 1e11 weights; Dense(1e11 -> 2): 2e11 + 2. Float32: 4 bytes each.
    total = 8 * units + units + 2 * units + 2
    assert f"{tmp_path / 'sizes.yaml'}:8:7: model.layers[0]:" in result.output
    assert f"the model's {total:,} weights" in result.output
    assert f"layer 'dense' alone has {9 * units:,}" in result.output
    assert "would need 4.00 TB" in result.output  # 4 * 1.1e12 bytes / 1024**4 = 4.0018
    assert MEMORY_LIMIT_VARIABLE in result.output


def test_a_synthetic_source_too_large_is_refused_before_generating(tmp_path):
    result = cli("train", write(tmp_path, n_samples=10**11), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    # 1e11 samples x 8 features; generated at about 28 bytes a value (float64 draws + noise).
    assert "data.params: synthetic:classification with 800,000,000,000 values" in result.output
    assert "would need 20.37 TB" in result.output  # 28 * 8e11 bytes / 1024**4 = 20.372
    assert not (tmp_path / "runs").exists()


def test_the_limit_can_be_lowered_and_lifted(tmp_path, monkeypatch):
    recipe = write(tmp_path, units=1000)  # 8*1000+1000 + 1000*2+2 = 11,002 weights: 44 KB
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "16KB")
    lowered = cli("summarize", recipe)
    assert lowered.exit_code == 2 and "more than the 16.00 KB allowed" in lowered.output
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "none")
    assert cli("summarize", recipe).exit_code == 0
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "1MB")
    assert cli("summarize", recipe).exit_code == 0


@pytest.mark.parametrize(
    ("text", "limit"), [("64GB", 64 * 2**30), ("512mb", 512 * 2**20), ("1000", 1000), ("0", None)]
)
def test_limit_values(text, limit, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, text)
    assert memory_limit() == limit


def test_a_bad_limit_value_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_VARIABLE, "lots")
    with pytest.raises(KcliError, match="KCLI_MAX_MEMORY='lots': expected a size like 16GB"):
        memory_limit()
    result = cli("summarize", write(tmp_path))
    assert result.exit_code == 2 and "KCLI_MAX_MEMORY='lots'" in result.output
