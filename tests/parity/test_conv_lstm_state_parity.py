"""ConvLSTM1D/2D's return_state and initial_state against Keras: [output, h, c], from given states.

As test_return_state_parity.py does for the RNNs: kcli's weights are copied into Keras through
kcli.model.nn.keras_layout, both start from the same h and c (channels-last, the state's shape
(*spatial', filters)) and every output is compared, forwards and with go_backwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.layers import layer_registry  # noqa: E402
from kcli.model.nn.keras_layout import keras_tensor  # noqa: E402

BATCH = 2

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CASES = {
    # (time, *spatial, channels), the layer's arguments
    "ConvLSTM1D": ((4, 6, 2), {"kernel_size": 3, "padding": "same"}),
    "ConvLSTM2D": ((3, 5, 4, 2), {"kernel_size": 2, "strides": 2}),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("with_initial", [False, True], ids=["zeros", "initial"])
def test_conv_lstm_states_match_keras(kind, go_backwards, return_sequences, with_initial):
    shape, arguments = CASES[kind]
    arguments = {
        "filters": 3,
        **arguments,
        "return_state": True,
        "go_backwards": go_backwards,
        "return_sequences": return_sequences,
    }
    spec = layer_registry.validate_spec({"type": kind, **arguments})
    state = spec.output_shapes([shape])[1]
    shapes = [shape, *([state] * 2 if with_initial else [])]
    module = spec.build(shapes).eval()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.4)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(BATCH, *shape)).astype("float32")
    states = [rng.normal(size=(BATCH, *s)).astype("float32") for s in shapes[1:]]

    layer = getattr(keras.layers, kind)(**arguments)
    layer.build((BATCH, *shape))
    names = ["kernel", "recurrent_kernel", "bias"]
    layer.set_weights([keras_tensor(module, n, getattr(module, n)).detach().numpy() for n in names])
    called = layer(x, initial_state=list(states)) if with_initial else layer(x)
    want = [keras.ops.convert_to_numpy(t) for t in called]
    with torch.no_grad():
        got = module(torch.from_numpy(x), *map(torch.from_numpy, states))
    assert len(got) == len(want) == 3
    assert spec.output_shapes(shapes) == [tuple(w.shape[1:]) for w in want]
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)
