"""`kcli export`: ONNX / torch.export / TorchScript take raw features and match the run's model;
safetensors holds the weights. A torch.export program that disagrees or fails is not written."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from tests.trained import cli, runs_dir, trained


def export(run_dir, fmt, path):
    result = cli("export", run_dir, "--format", fmt, "-o", path, "--runs-dir", runs_dir(), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def raw_sample(run_dir, n=5):
    """n raw samples of the run's data (a batch size neither traced nor checked by export)."""
    from kcli.data.raw import take
    from kcli.data.sources import load_source_arrays
    from kcli.use.run_model import load_run_model

    run_model = load_run_model(run_dir)
    recipe = run_model.loaded.recipe
    raw = load_source_arrays(recipe.data.source_spec(), run_model.recipe_dir, seed=recipe.seed)
    return run_model, take(raw.x, np.arange(10, 10 + n))


def expected_outputs(run_model, raw):
    """The run's PyTorch model on the preprocessed (numpy, preprocess.json) sample."""
    x = run_model.preprocessing.transform_x(raw)
    with torch.no_grad():
        if isinstance(x, dict):
            return run_model.model({k: torch.from_numpy(v) for k, v in x.items()}).numpy()
        return run_model.model(torch.from_numpy(x)).numpy()


def artifact_inputs(run_model, raw):
    names = list(run_model.plan.inputs)
    if isinstance(raw, dict):
        return [np.asarray(raw[name], np.float32) for name in names]
    return [np.asarray(raw, np.float32)]


FAMILIES = ["mlp", "cnn", "rnn", "embedding", "graph"]


@pytest.mark.parametrize("kind", FAMILIES)
def test_onnx_matches_the_pytorch_model_on_raw_features(kind, tmp_path):
    import onnxruntime

    run_dir = trained(kind)
    document = export(run_dir, "onnx", tmp_path / "model.onnx")
    assert document["max_abs_diff"] <= document["tolerance"] == 1e-5
    run_model, raw = raw_sample(run_dir)
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    # Input and output names are the recipe's; the batch axis is symbolic (dynamic).
    assert [i.name for i in session.get_inputs()] == list(run_model.plan.inputs)
    assert [o.name for o in session.get_outputs()] == list(run_model.plan.outputs)
    assert all(isinstance(i.shape[0], str) for i in session.get_inputs())
    feeds = dict(zip(run_model.plan.inputs, artifact_inputs(run_model, raw), strict=True))
    (out,) = session.run(None, feeds)
    np.testing.assert_allclose(out, expected_outputs(run_model, raw), rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind", FAMILIES)
def test_torchscript_matches_the_pytorch_model_on_raw_features(kind, tmp_path):
    run_dir = trained(kind)
    document = export(run_dir, "torchscript", tmp_path / "model.pt")
    assert document["max_abs_diff"] <= 1e-5
    run_model, raw = raw_sample(run_dir)
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    with torch.no_grad():
        out = loaded(*(torch.from_numpy(a) for a in artifact_inputs(run_model, raw))).numpy()
    np.testing.assert_allclose(out, expected_outputs(run_model, raw), rtol=0, atol=1e-5)


def torch_export_outputs(path, inputs):
    """The saved program, as a user loads it, on raw inputs (one array per model input)."""
    module = torch.export.load(str(path)).module()
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in inputs)).numpy()


@pytest.mark.parametrize("kind", FAMILIES)
def test_torch_export_matches_the_pytorch_model_at_batch_1_and_5(kind, tmp_path):
    run_dir = trained(kind)
    document = export(run_dir, "torch-export", tmp_path / "model.pt2")
    assert document["format"] == "torch-export" and document["path"] == str(tmp_path / "model.pt2")
    assert document["max_abs_diff"] <= document["tolerance"] == 1e-5
    run_model, raw = raw_sample(run_dir)
    inputs = artifact_inputs(run_model, raw)  # the graph family: two named inputs, in order
    assert list(document["inputs"]) == list(run_model.plan.inputs)
    expected = expected_outputs(run_model, raw)
    five = torch_export_outputs(tmp_path / "model.pt2", inputs)
    one = torch_export_outputs(tmp_path / "model.pt2", [a[:1] for a in inputs])
    assert five.shape[0] == 5 and one.shape[0] == 1
    np.testing.assert_allclose(five, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(one, expected[:1], rtol=0, atol=1e-5)
    extra = {"kcli.json": ""}  # the run's recipe and preprocessing travel in the file
    torch.export.load(str(tmp_path / "model.pt2"), extra_files=extra)
    metadata = json.loads(extra["kcli.json"])
    assert json.loads(metadata["kcli.preprocess"]) == run_model.preprocessing.to_json()


def test_torch_export_default_path_and_lines():
    result = cli("export", trained("graph"), "-f", "torch-export", "--runs-dir", runs_dir())
    assert result.exit_code == 0, result.output
    assert (trained("graph") / "export" / "graph.pt2").is_file()
    assert "max |difference|" in result.stdout and "tolerance 1e-05" in result.stdout
    assert "preprocessing folded in: standardize (left), scale" in result.stdout
    assert "inputs: left [4], right [3] (batch axis dynamic); outputs: probs" in result.stdout
    assert f"wrote {trained('graph') / 'export' / 'graph.pt2'}" in result.stdout


def test_folded_steps_are_reported():
    document = export(trained("cnn"), "onnx", trained("cnn") / "cnn.onnx")
    assert document["folded"] == ["scale", "reshape", "minmax", "reshape"]
    assert document["inputs"] == {"input": [8, 8, 1]}


def test_safetensors_round_trip_is_exact(tmp_path):
    from safetensors import safe_open

    run_dir = trained("rnn")
    document = export(run_dir, "safetensors", tmp_path / "w.safetensors")
    assert document["max_abs_diff"] == 0.0 and document["tolerance"] == 0.0
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    with safe_open(str(tmp_path / "w.safetensors"), "pt") as handle:
        assert set(handle.keys()) == set(state)
        for key in state:
            assert torch.equal(handle.get_tensor(key), state[key]), key
        metadata = handle.metadata()
    assert "Bidirectional" in metadata["kcli.recipe"]
    assert json.loads(metadata["kcli.preprocess"])["steps"][0]["step"]["type"] == "standardize"


def test_default_path_is_inside_the_run():
    result = cli("export", trained("mlp"), "--format", "torchscript", "--runs-dir", runs_dir())
    assert result.exit_code == 0, result.output
    assert (trained("mlp") / "export" / "mlp.pt").is_file()
    assert "max |difference|" in result.stdout and "tolerance 1e-05" in result.stdout


# ---- bad input ---------------------------------------------------------------------------------
def bad(*args):
    result = cli("export", *args, "--runs-dir", runs_dir())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr


def test_unknown_format():
    message = bad(trained("mlp"), "--format", "onxx")
    assert "unknown export format 'onxx'" in message and "did you mean 'onnx'" in message
    assert "one of onnx, torch-export, torchscript, safetensors" in message
    assert "did you mean 'torch-export'" in bad(trained("mlp"), "--format", "torch_export")


def test_output_folder_missing(tmp_path):
    assert "does not exist" in bad(trained("mlp"), "-f", "onnx", "-o", tmp_path / "no" / "m.onnx")


def test_not_a_run(tmp_path):
    assert "not a run folder" in bad(tmp_path, "-f", "onnx")


def test_missing_extra_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    assert 'pip install "kcli-keras[export]" (in a checkout: pip install -e ".[export]")' in bad(
        trained("mlp"), "-f", "onnx"
    )


@pytest.mark.parametrize(
    ("fmt", "says"),
    [("onnx", "ONNX cannot express"), ("torch-export", "torch.export cannot trace")],
)
def test_a_layer_the_exporter_cannot_take_is_named(fmt, says, monkeypatch, tmp_path):
    import kcli.use.run_model

    class DataDependent(torch.nn.Module):
        """Python control flow on a tensor's value: no static graph can hold it."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) if float(x.sum()) > -1e30 else x

    load = kcli.use.run_model.load_run_model

    def patched(*args, **kwargs):
        run_model = load(*args, **kwargs)
        run_model.model._modules["dense"] = DataDependent(run_model.model.layer("dense"))
        return run_model

    monkeypatch.setattr(kcli.use.run_model, "load_run_model", patched)
    message = bad(trained("mlp"), "-f", fmt, "-o", tmp_path / "model")
    assert f"{says} layer dense (Dense)" in message
    assert list(tmp_path.iterdir()) == []


def test_a_torch_export_program_that_disagrees_is_not_written(monkeypatch, tmp_path):
    from kcli.model.nn.deploy import DeployModel

    forward = DeployModel.forward  # the exported program computes 1e-3 more than the run's model
    monkeypatch.setattr(DeployModel, "forward", lambda self, *x: forward(self, *x) + 1e-3)
    message = bad(trained("graph"), "-f", "torch-export", "-o", tmp_path / "m.pt2")
    assert "the torch-export artifact does not match the run's model" in message
    assert "> tolerance 1e-05; nothing written" in message
    assert list(tmp_path.iterdir()) == []  # no file, no temp file left behind


def test_a_torch_export_program_that_fails_at_batch_1_is_not_written(monkeypatch, tmp_path):
    load = torch.export.load

    class BatchOfTwoOrMore:
        """A loaded program with the guard older torch put on a dynamic batch (size >= 2)."""

        def __init__(self, program):
            self.program = program

        def module(self):
            inner = self.program.module()

            def run(*inputs):
                if inputs[0].shape[0] < 2:
                    raise RuntimeError("Expected input at *args[0].shape[0] to be >= 2, got 1")
                return inner(*inputs)

            return run

    monkeypatch.setattr(torch.export, "load", lambda *a, **k: BatchOfTwoOrMore(load(*a, **k)))
    message = bad(trained("mlp"), "-f", "torch-export", "-o", tmp_path / "m.pt2")
    assert "the torch-export program does not run on a batch of 1: RuntimeError" in message
    assert list(tmp_path.iterdir()) == []
