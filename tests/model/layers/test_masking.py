"""Keras masks in kcli: Masking, Embedding(mask_zero) and the layers that read or pass a mask.

Hand cases: the masked mean of GlobalAveragePooling1D worked out from the embedding rows; an
RNN's output on a padded sequence equals its output on the sequence without the padding; the
Masking layer's zeroing and mask; Bidirectional's zeros at masked steps. Then the graph: masks
flow only where a layer makes one (a model without one runs no mask code and the fused kernels),
through Shared calls and sub-models; the mask is computed from the inputs inside a traced graph;
a CLI run trains, evaluates, summarizes and exports an Embedding(mask_zero) -> LSTM model.
(Parity with Keras itself: tests/parity/test_masking_parity.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kcli.errors import KcliError
from kcli.model.build import build_model_from_spec
from kcli.model.layers import layer_registry
from kcli.model.nn.recurrent import RecurrentModule
from kcli.model.spec import ModelSpec


def _model(spec: dict):
    return build_model_from_spec(ModelSpec.model_validate(spec), seed=0).model.eval()


def _embedded(*layers: dict, steps: int = 5, vocab: int = 9, dim: int = 3) -> dict:
    return {
        "input_shape": [steps],
        "layers": [
            {
                "name": "emb",
                "type": "Embedding",
                "input_dim": vocab,
                "output_dim": dim,
                "mask_zero": True,
            },  # fmt: skip
            *layers,
        ],
    }


def test_masked_mean_worked_out_by_hand():
    model = _model(_embedded({"type": "GlobalAveragePooling1D"}, vocab=6, dim=2))
    with torch.no_grad():  # row i of the table is (i, 10 i)
        model.layer("emb").embeddings.copy_(torch.tensor([[i, 10.0 * i] for i in range(6)]))
    ids = torch.tensor([[1, 2, 0, 0, 0], [0, 0, 5, 0, 3], [4, 4, 4, 4, 4]])
    with torch.no_grad():
        got = model(ids)
    # (1 + 2) / 2; (5 + 3) / 2; 4: the padding's row 0 is left out of sum and count.
    want = torch.tensor([[1.5, 15.0], [4.0, 40.0], [4.0, 40.0]])
    torch.testing.assert_close(got, want)


def test_a_normalization_layer_passes_the_mask_on():
    # Keras' Normalization supports masking: the mask of Embedding(mask_zero) reaches the
    # pooling through it. Normalized rows are (i - 1) / 2 and (10 i - 1) / 2.
    normalize = {"type": "Normalization", "mean": 1.0, "variance": 4.0}
    model = _model(_embedded(normalize, {"type": "GlobalAveragePooling1D"}, vocab=6, dim=2))
    with torch.no_grad():
        model.layer("emb").embeddings.copy_(torch.tensor([[i, 10.0 * i] for i in range(6)]))
        got = model(torch.tensor([[1, 3, 0, 0, 0]]))
    # The mean of ids 1 and 3 only: ((0 + 1) / 2, (4.5 + 14.5) / 2); with the padding's three
    # rows of -0.5 counted it would be (-0.1, 3.5).
    torch.testing.assert_close(got, torch.tensor([[0.5, 9.5]]))


def test_without_mask_zero_the_mean_counts_every_step():
    spec = _embedded({"type": "GlobalAveragePooling1D"}, vocab=6, dim=2)
    spec["layers"][0]["mask_zero"] = False
    model = _model(spec)
    with torch.no_grad():
        model.layer("emb").embeddings.copy_(torch.tensor([[i, 10.0 * i] for i in range(6)]))
        got = model(torch.tensor([[1, 2, 0, 0, 0]]))
    torch.testing.assert_close(got, torch.tensor([[0.6, 6.0]]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("where", ["end", "start"])
def test_padding_leaves_an_rnn_output_as_on_the_unpadded_sequence(kind, where):
    # Trailing padding: the state stops at the last real step. Leading padding: the state
    # stays at its zero start until the first real step. Either way: the unpadded output.
    rnn = {"name": "rnn", "type": kind, "units": 4}
    padded_model = _model(_embedded(rnn, steps=7))
    plain_model = _model(_embedded(rnn, steps=4))
    plain_model.load_state_dict(padded_model.state_dict())
    real = torch.tensor([[3, 1, 4, 1], [5, 8, 2, 6]])
    pad = torch.zeros(2, 3, dtype=torch.long)
    padded = torch.cat([real, pad] if where == "end" else [pad, real], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(padded_model(padded), plain_model(real))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
def test_right_padded_batches_run_packed_and_agree_with_the_step_loop(kind, sequences, monkeypatch):
    rnn = {"name": "rnn", "type": kind, "units": 4, "return_sequences": sequences}
    model = _model(_embedded(rnn, steps=6))
    ids = torch.tensor([[3, 1, 4, 0, 0, 0], [5, 8, 2, 6, 7, 1], [2, 0, 0, 0, 0, 0]])
    calls = []
    packed = RecurrentModule.run_packed

    def spy(self, *args):
        calls.append(1)
        return packed(self, *args)

    monkeypatch.setattr(RecurrentModule, "run_packed", spy)
    with torch.no_grad():
        fast = model(ids)
        assert calls, "a right-padded batch did not run packed"
        monkeypatch.setattr("kcli.model.nn.recurrent._right_padded_lengths", lambda mask: None)
        loop = model(ids)
    torch.testing.assert_close(fast, loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "ids",
    [[[0, 3, 4, 0, 0, 0]], [[3, 0, 4, 0, 0, 0]], [[0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0]]],
    ids=["padding-first", "padding-inside", "an-empty-sequence"],
)
def test_other_masks_run_the_step_loop(ids, monkeypatch):
    model = _model(_embedded({"type": "LSTM", "units": 2}, steps=6))

    def refuse(*args):
        raise AssertionError("ran packed")

    monkeypatch.setattr(RecurrentModule, "run_packed", refuse)
    with torch.no_grad():
        model(torch.tensor(ids))


def test_a_returned_sequence_repeats_the_last_output_over_trailing_padding():
    model = _model(_embedded({"name": "rnn", "type": "GRU", "units": 3, "return_sequences": True}))
    with torch.no_grad():
        out = model(torch.tensor([[2, 7, 0, 0, 0]]))
    for t in (2, 3, 4):
        torch.testing.assert_close(out[:, t], out[:, 1])
    assert not torch.equal(out[:, 0], out[:, 1])


def test_bidirectional_returns_zeros_at_masked_steps():
    bi = {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2, "return_sequences": True}}
    model = _model(_embedded(bi))
    with torch.no_grad():
        out = model(torch.tensor([[0, 3, 4, 0, 0]]))
    assert torch.all(out[0, [0, 3, 4]] == 0)
    assert torch.all(out[0, [1, 2]] != 0)


def test_masking_zeroes_the_masked_steps_and_masks_them():
    model = _model(
        {
            "input_shape": [4, 2],
            "layers": [
                {"name": "m", "type": "Masking", "mask_value": 7.0},
                {"name": "gap", "type": "GlobalAveragePooling1D"},
            ],
            "outputs": ["m", "gap"],
        }
    )
    x = torch.tensor([[[7.0, 7.0], [1.0, 7.0], [3.0, 5.0], [7.0, 7.0]]])
    with torch.no_grad():
        masked, mean = model(x)
    # A step is masked when all its features equal mask_value: steps 0 and 3, not step 1.
    torch.testing.assert_close(masked, torch.tensor([[[0.0, 0], [1, 7], [3, 5], [0, 0]]]))
    torch.testing.assert_close(mean, torch.tensor([[2.0, 6.0]]))


def test_the_mask_rules_live_on_the_layer_specs():
    def rule(spec: dict) -> tuple[str, str]:
        return layer_registry.validate_spec(spec).masking()

    assert rule({"type": "Embedding", "input_dim": 3, "output_dim": 2}) == ("", "none")
    assert rule({"type": "Embedding", "input_dim": 3, "output_dim": 2, "mask_zero": True}) == (
        "",
        "new",
    )
    assert rule({"type": "Masking"}) == ("", "new")
    assert rule({"type": "LSTM", "units": 2}) == ("first", "module")
    assert rule({"type": "GlobalAveragePooling1D"}) == ("first", "none")
    assert rule({"type": "GlobalMaxPooling1D"}) == ("", "none")  # Keras: no mask support
    assert rule({"type": "Dense", "units": 2}) == ("", "pass")
    assert rule({"type": "Dropout", "rate": 0.1}) == ("", "pass")
    assert rule({"type": "Flatten"}) == ("", "none")
    assert rule({"type": "Concatenate"}) == ("", "module")
    assert rule({"type": "Maximum"}) == ("all", "module")
    assert rule({"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 2}) == ("all", "pass")


def test_masking_needs_a_sequence():
    spec = {"input_shape": [4], "layers": [{"type": "Masking"}]}
    with pytest.raises(KcliError, match="Masking expects a sequence"):
        _model(spec)


def test_embedding_takes_keras_3s_deprecated_input_length():
    spec = layer_registry.validate_spec(
        {"type": "Embedding", "input_dim": 3, "output_dim": 2, "input_length": 5}
    )
    assert spec.output_shape([(5,)]) == (5, 2)


def test_a_model_without_masks_keeps_the_fused_kernel(monkeypatch):
    model = _model(
        {
            "input_shape": [5],
            "layers": [
                {"type": "Embedding", "input_dim": 9, "output_dim": 3},
                {"type": "LSTM", "units": 2},
            ],
        }  # fmt: skip
    )
    assert not model.makes_masks

    def refuse(*args, **kwargs):
        raise AssertionError("the masked step loop ran without a mask")

    monkeypatch.setattr(RecurrentModule, "run_masked", refuse)
    monkeypatch.setattr(RecurrentModule, "run_loop", refuse)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 0, 0, 0]]))


def test_a_shared_rnn_applies_each_calls_own_mask():
    model = _model(
        {
            "inputs": {"a": [5], "b": [5]},
            "layers": [
                {
                    "name": "ea",
                    "type": "Embedding",
                    "input_dim": 9,
                    "output_dim": 3,
                    "mask_zero": True,
                    "inputs": "a",
                },  # fmt: skip
                {"name": "eb", "type": "Shared", "shares": "ea", "inputs": "b"},
                {"name": "rnn", "type": "GRU", "units": 3, "inputs": "ea"},
                {"name": "rnn_b", "type": "Shared", "shares": "rnn", "inputs": "eb"},
                {"name": "both", "type": "Concatenate", "inputs": ["rnn", "rnn_b"]},
            ],
        }
    )
    a = torch.tensor([[1, 2, 3, 0, 0]])
    b = torch.tensor([[0, 0, 1, 2, 3]])
    with torch.no_grad():
        out = model({"a": a, "b": b})
    # Both calls see (1, 2, 3) once their padding is masked: the same last state.
    torch.testing.assert_close(out[:, :3], out[:, 3:])


def test_a_sub_model_carries_masks_in_and_out():
    spec = {
        "models": {
            "encoder": {
                "inputs": {"seq": [5, 3]},
                "layers": [{"name": "inner", "type": "GRU", "units": 3}],
            },
        },
        "input_shape": [5],
        "layers": [
            {
                "name": "emb",
                "type": "Embedding",
                "input_dim": 9,
                "output_dim": 3,
                "mask_zero": True,
            },  # fmt: skip
            {"name": "enc", "type": "Model", "model": "encoder"},
        ],
    }
    model = _model(spec)
    ids = torch.tensor([[4, 5, 0, 0, 0]])
    with torch.no_grad():
        padded = model(ids)
        # The same GRU on the two real steps alone.
        alone = model.layer("enc").layer("inner")(model.layer("emb")(ids[:, :2]))
    torch.testing.assert_close(padded, alone)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_the_mask_is_traced_from_the_inputs():
    model = _model(_embedded({"type": "LSTM", "units": 3}))
    example = torch.tensor([[1, 2, 3, 4, 5], [1, 0, 0, 0, 0]])
    traced = torch.jit.trace(model, example, check_trace=False)
    other = torch.tensor([[0, 0, 3, 4, 5], [6, 7, 8, 0, 0], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(traced(other), model(other))


def _padded_data(path: Path, n: int = 240, steps: int = 8, vocab: int = 12) -> None:
    """Class = whether token 1 occurs among a sample's real tokens; 0-padded to `steps`,
    on either side, lengths 2..steps."""
    rng = np.random.default_rng(0)
    x = np.zeros((n, steps), np.float32)
    y = np.zeros(n, np.int64)
    for i in range(n):
        length = int(rng.integers(2, steps + 1))
        tokens = rng.integers(2, vocab, length)
        if i % 2:
            tokens[rng.integers(length)] = 1
            y[i] = 1
        start = 0 if i % 3 else steps - length
        x[i, start : start + length] = tokens
    np.savez(path, x=x, y=y)


RECIPE = """\
name: masked
seed: 3
data:
  source: padded.npz
  validation_split: 0.2
  test_split: 0.2
model:
  input_shape: [8]
  layers:
    - {type: Embedding, input_dim: 12, output_dim: 8, mask_zero: true}
    - {type: LSTM, units: 8}
    - {type: Dense, units: 2, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.02}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 3, batch_size: 32}
"""


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_masked_model_trains_evaluates_summarizes_and_exports(tmp_path: Path):
    from typer.testing import CliRunner

    from kcli.cli import app

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    _padded_data(tmp_path / "padded.npz")
    recipe = tmp_path / "masked.yaml"
    recipe.write_text(RECIPE)
    runs = tmp_path / "runs"
    result = cli("train", recipe, "--runs-dir", runs, "--json", "-q")
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    rows = np.genfromtxt(run_dir / "metrics.csv", delimiter=",", names=True)
    assert rows["loss"][-1] < rows["loss"][0]

    result = cli("eval", run_dir, "--runs-dir", runs, "--json")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout

    result = cli("summarize", recipe)
    assert result.exit_code == 0, result.output
    assert "embedding (Embedding)" in result.stdout and "lstm (LSTM)" in result.stdout

    formats = (("onnx", "model.onnx"), ("torchscript", "model.pt"), ("torch-export", "m.pt2"))
    for fmt, name in formats:
        result = cli("export", run_dir, "--format", fmt, "-o", tmp_path / name, "--runs-dir",
                     runs, "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["max_abs_diff"] <= 1e-5

    # The exported graph computes the mask from its input: padding it anew changes nothing.
    import onnxruntime

    from kcli.use.run_model import load_run_model

    model = load_run_model(run_dir).model.eval()
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.array([[3, 4, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 3, 4]], np.float32)
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)  # the same two real tokens
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(torch.from_numpy(x)).numpy(), want, atol=1e-5)
