"""Masks against Keras: Masking and Embedding(mask_zero) models, the same weights, padded inputs.

Each case is a kcli model (`model.inputs` / `layers` / `outputs`, as a recipe writes it); the
Keras model is made from the same layer dicts (kcli spells each argument as Keras does) and wired
the same way, so Keras' own mask propagation decides what every layer sees. kcli's weights are
copied into Keras through kcli.model.nn.keras_layout, and both run sequences padded at the end,
at the start and in the middle, a different length per sample: every output must agree within
1e-5. The cases cover the recurrent layers (fused-kernel and step-loop cells, go_backwards,
return_sequences, return_state, initial states), Bidirectional (zeros at masked steps when it
returns sequences), GlobalAveragePooling1D's masked mean, layers that pass a mask on (Dense,
Dropout, LayerNormalization, TimeDistributed), layers that drop it (Conv1D, GlobalMaxPooling1D),
the merges' mask rules (Add's OR, Concatenate's, Maximum's masked maximum) and a sub-model
called on a masked sequence.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.build import build_model_from_spec  # noqa: E402
from kcli.model.nn.keras_layout import keras_tensor  # noqa: E402
from kcli.model.spec import ModelSpec  # noqa: E402

# Keras itself warns when it reads numpy inputs (its own __array__ call), and when a layer
# without mask support (Conv1D, GlobalMaxPooling1D) drops a mask, which these cases mean.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Layer .* does not support masking:UserWarning"),
]

STEPS, VOCAB = 7, 12

# Ids with 0 as padding: at the end, at the start, both, in the middle, none.
IDS = np.array(
    [
        [3, 5, 1, 0, 0, 0, 0],
        [0, 0, 0, 4, 2, 9, 11],
        [0, 7, 7, 2, 0, 0, 0],
        [6, 0, 3, 0, 8, 1, 0],
        [1, 2, 3, 4, 5, 6, 7],
    ],
    dtype=np.int64,
)


def _features(width: int) -> np.ndarray:
    """Float steps zeroed where IDS pads (the Masking cases' input)."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(*IDS.shape, width)).astype(np.float32)
    return x * (IDS != 0)[..., None]


def _seeded(model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def _rnn_weights(module) -> list[np.ndarray]:
    names = ["kernel", "recurrent_kernel"] + (["bias"] if module.bias is not None else [])
    return [keras_tensor(module, n, getattr(module, n)).detach().numpy() for n in names]


def _weights(kind: str, module) -> list[np.ndarray]:
    """kcli's weights of one layer, in Keras' order and layout."""
    if kind == "Embedding":
        return [module.embeddings.detach().numpy()]
    if kind in ("Dense", "Conv1D"):
        kernel = keras_tensor(module, "kernel", module.kernel).detach().numpy()
        return [kernel, module.bias.detach().numpy()]
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        return _rnn_weights(module)
    if kind == "Bidirectional":
        return _rnn_weights(module.forward_layer) + _rnn_weights(module.backward_layer)
    if kind == "LayerNormalization":
        return [module.gamma.detach().numpy(), module.beta.detach().numpy()]
    if kind == "TimeDistributed":
        return _weights("Dense", module.layer)
    if kind == "MultiHeadAttention":  # Keras' order: query, key, value, output; kernel, bias
        return [
            getattr(getattr(module, part), weight).detach().numpy()
            for part in ("query", "key", "value", "attention_output")
            for weight in ("kernel", "bias")
        ]
    if kind in ("Attention", "AdditiveAttention"):
        return [w.detach().numpy() for w in module.parameters()]
    return []


def _keras_layer(layer: dict):
    args = {k: v for k, v in layer.items() if k not in ("type", "inputs", "use_causal_mask")}
    if layer["type"] in ("Bidirectional", "TimeDistributed"):
        inner = dict(args.pop("layer"))
        args["layer"] = _keras_layer(inner)
    return getattr(keras.layers, layer["type"])(**args)


def _keras_model(model: dict, models: dict):
    """The Keras functional model of a kcli model dict (sub-models from `models`, built)."""
    inputs = {
        name: keras.Input(tuple(shape), name=name, dtype=model.get("dtypes", {}).get(name))
        for name, shape in model["inputs"].items()
    }
    values: dict = dict(inputs)
    previous = next(iter(inputs))
    for layer in model["layers"]:
        sources = layer.get("inputs", previous)
        sources = [sources] if isinstance(sources, str) else sources
        tensors = [values[s.split(":")[0]] for s in sources]
        tensors = [
            t[int(s.split(":")[1])] if ":" in s else (t[0] if isinstance(t, list) else t)
            for s, t in zip(sources, tensors, strict=True)
        ]
        if layer["type"] == "Model":
            out = models[layer["model"]](tensors[0] if len(tensors) == 1 else tensors)
        else:
            keras_layer = _keras_layer(layer)
            causal = {"use_causal_mask": True} if layer.get("use_causal_mask") else {}
            if layer["type"] in ("LSTM", "GRU", "SimpleRNN", "Bidirectional") and len(tensors) > 1:
                out = keras_layer(tensors[0], initial_state=tensors[1:])
            elif layer["type"] == "MultiHeadAttention":  # one input: self-attention
                out = keras_layer(*(tensors if len(tensors) > 1 else tensors * 2), **causal)
            elif len(tensors) > 1:
                out = keras_layer(tensors, **causal)
            else:
                out = keras_layer(tensors[0])
        values[layer["name"]] = list(out) if isinstance(out, (list, tuple)) else out
        previous = layer["name"]
    outputs = []
    for reference in model.get("outputs", [previous]):
        value = values[reference.split(":")[0]]
        index = int(reference.split(":")[1]) if ":" in reference else 0
        outputs.append(value[index] if isinstance(value, list) else value)
    return keras.Model(list(inputs.values()), outputs)


def _copy_weights(kcli_model, layers: list[dict], keras_model) -> None:
    for layer in layers:
        if layer["type"] in ("Model", "Shared"):
            continue
        module = kcli_model.layer(layer["name"])
        weights = _weights(layer["type"], module)
        if weights:
            keras_model.get_layer(layer["name"]).set_weights(weights)


def _compare(model: dict, feeds: dict[str, np.ndarray], models: dict | None = None) -> None:
    spec = {k: v for k, v in model.items() if k != "dtypes"}
    if models:
        spec["models"] = {
            name: {k: v for k, v in sub.items() if k != "dtypes"} for name, sub in models.items()
        }
    built = build_model_from_spec(ModelSpec.model_validate(spec), seed=0)
    ours = built.model.eval()
    _seeded(ours)
    keras_models = {name: _keras_model(sub, {}) for name, sub in (models or {}).items()}
    for name, sub in (models or {}).items():
        _copy_weights(ours._models[name], sub["layers"], keras_models[name])
    reference = _keras_model(model, keras_models)
    _copy_weights(ours, model["layers"], reference)
    want = reference([feeds[name] for name in model["inputs"]])
    want = want if isinstance(want, (list, tuple)) else [want]
    with torch.no_grad():
        got = ours({name: torch.from_numpy(x) for name, x in feeds.items()})
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(
            a.numpy(), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-5, err_msg=f"output {k}"
        )


def _embedded(*layers: dict, outputs=None, dim: int = 3) -> dict:
    model = {
        "inputs": {"ids": [STEPS]},
        "dtypes": {"ids": "int32"},
        "layers": [
            {
                "name": "emb",
                "type": "Embedding",
                "input_dim": VOCAB,
                "output_dim": dim,
                "mask_zero": True,
                "inputs": "ids",
            },  # fmt: skip
            *layers,
        ],
    }
    if outputs:
        model["outputs"] = outputs
    return model


RNN_CASES = {
    "lstm-last": [{"name": "rnn", "type": "LSTM", "units": 4}],
    "lstm-sequences": [{"name": "rnn", "type": "LSTM", "units": 4, "return_sequences": True}],
    "lstm-loop-cell": [{"name": "rnn", "type": "LSTM", "units": 4, "activation": "relu"}],
    "lstm-backwards": [{"name": "rnn", "type": "LSTM", "units": 4, "go_backwards": True}],
    "lstm-backwards-sequences": [
        {
            "name": "rnn",
            "type": "LSTM",
            "units": 4,
            "go_backwards": True,
            "return_sequences": True,
        }  # fmt: skip
    ],
    "lstm-zero-output-for-mask": [
        {
            "name": "rnn",
            "type": "LSTM",
            "units": 3,
            "return_sequences": True,
            "zero_output_for_mask": True,
        }  # fmt: skip
    ],
    "gru-sequences-gap": [
        {"name": "rnn", "type": "GRU", "units": 4, "return_sequences": True},
        {"name": "gap", "type": "GlobalAveragePooling1D"},
    ],
    "gru-reset-before": [{"name": "rnn", "type": "GRU", "units": 4, "reset_after": False}],
    "gru-backwards-sequences": [
        {"name": "rnn", "type": "GRU", "units": 3, "go_backwards": True, "return_sequences": True}
    ],
    "simple-rnn-relu": [{"name": "rnn", "type": "SimpleRNN", "units": 4, "activation": "relu"}],
    "stacked": [
        {"name": "rnn", "type": "LSTM", "units": 4, "return_sequences": True},
        {"name": "rnn2", "type": "GRU", "units": 3},
    ],
    "bidirectional-sequences": [
        {
            "name": "bi",
            "type": "Bidirectional",
            "layer": {"type": "LSTM", "units": 3, "return_sequences": True},
        },  # fmt: skip
        {"name": "gap", "type": "GlobalAveragePooling1D"},
    ],
    "bidirectional-sequences-out": [
        {
            "name": "bi",
            "type": "Bidirectional",
            "merge_mode": "sum",
            "layer": {"type": "GRU", "units": 3, "return_sequences": True},
        },  # fmt: skip
    ],
    "bidirectional-then-lstm": [
        {
            "name": "bi",
            "type": "Bidirectional",
            "layer": {"type": "LSTM", "units": 3, "return_sequences": True},
        },  # fmt: skip
        {"name": "rnn", "type": "LSTM", "units": 2},
    ],
    "bidirectional-last": [
        {
            "name": "bi",
            "type": "Bidirectional",
            "merge_mode": "ave",
            "layer": {"type": "SimpleRNN", "units": 3},
        },  # fmt: skip
    ],
    "dense-between": [
        {"name": "proj", "type": "Dense", "units": 5, "activation": "tanh"},
        {"name": "rnn", "type": "LSTM", "units": 4},
    ],
    "passers-between": [
        {"name": "drop", "type": "Dropout", "rate": 0.3},
        {"name": "norm", "type": "LayerNormalization"},
        {"name": "td", "type": "TimeDistributed", "layer": {"type": "Dense", "units": 4}},
        {"name": "act", "type": "Activation", "activation": "relu"},
        {"name": "rnn", "type": "GRU", "units": 3, "return_sequences": True},
    ],
    "conv-drops-the-mask": [
        {"name": "conv", "type": "Conv1D", "filters": 3, "kernel_size": 1},
        {"name": "rnn", "type": "LSTM", "units": 4},
    ],
    "gap-alone": [{"name": "gap", "type": "GlobalAveragePooling1D"}],
    "gap-keepdims": [{"name": "gap", "type": "GlobalAveragePooling1D", "keepdims": True}],
    "gmp-ignores-the-mask": [{"name": "gmp", "type": "GlobalMaxPooling1D"}],
}


@pytest.mark.parametrize("layers", RNN_CASES.values(), ids=RNN_CASES.keys())
def test_embedding_mask_zero_models_match_keras(layers):
    _compare(_embedded(*layers), {"ids": IDS.astype(np.int32)})


# Padding at the end only, lengths 1..7: the fused kernels run the packed batch.
RIGHT_PADDED = np.array(
    [[3, 5, 1, 0, 0, 0, 0], [4, 2, 9, 11, 6, 6, 1], [7, 0, 0, 0, 0, 0, 0], [6, 8, 3, 2, 1, 0, 0]],
    dtype=np.int32,
)
PACKED_CASES = {
    name: RNN_CASES[name]
    for name in (
        "lstm-last",
        "lstm-sequences",
        "lstm-backwards-sequences",  # reversed: padding first, the step loop
        "lstm-zero-output-for-mask",
        "gru-sequences-gap",
        "stacked",
        "bidirectional-sequences",
        "bidirectional-last",
        "dense-between",
    )
}


@pytest.mark.parametrize("layers", PACKED_CASES.values(), ids=PACKED_CASES.keys())
def test_right_padded_batches_match_keras(layers):
    _compare(_embedded(*layers), {"ids": RIGHT_PADDED})


def test_return_state_under_a_mask_matches_keras():
    model = _embedded(
        {"name": "rnn", "type": "LSTM", "units": 4, "return_state": True, "return_sequences": True},
        {"name": "rnn2", "type": "LSTM", "units": 3, "inputs": "rnn"},
        outputs=["rnn2", "rnn:1", "rnn:2"],
    )
    _compare(model, {"ids": IDS.astype(np.int32)})


def test_initial_state_under_a_mask_matches_keras():
    # As Keras: an RNN given initial states is called on several tensors, and Keras hands a
    # mask only to a layer called on one, so this GRU runs every step; its returned sequence
    # still carries the mask, which the LSTM after it applies.
    model = _embedded(
        {
            "name": "rnn",
            "type": "GRU",
            "units": 3,
            "return_sequences": True,
            "inputs": ["emb", "h0"],
        },  # fmt: skip
        {"name": "rnn2", "type": "LSTM", "units": 2, "return_sequences": True},
        outputs=["rnn", "rnn2"],
    )
    model["inputs"]["h0"] = [3]
    h0 = np.random.default_rng(2).normal(size=(len(IDS), 3)).astype(np.float32)
    _compare(model, {"ids": IDS.astype(np.int32), "h0": h0})


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_masking_then_simple_rnn_matches_keras(go_backwards):
    model = {
        "inputs": {"x": [STEPS, 2]},
        "layers": [
            {"name": "mask", "type": "Masking"},
            {
                "name": "rnn",
                "type": "SimpleRNN",
                "units": 4,
                "go_backwards": go_backwards,
                "return_sequences": True,
            },  # fmt: skip
        ],
    }
    _compare(model, {"x": _features(2)})


def test_masking_with_a_mask_value_matches_keras():
    x = _features(2)
    x[IDS == 0] = -1.0
    model = {
        "inputs": {"x": [STEPS, 2]},
        "layers": [
            {"name": "mask", "type": "Masking", "mask_value": -1.0},
            {"name": "rnn", "type": "LSTM", "units": 3},
        ],
        "outputs": ["rnn", "mask"],
    }
    _compare(model, {"x": x})


def _two_embeddings(merge: dict, second_masked: bool = True, second_dim: int = 3) -> dict:
    other = IDS[::-1].copy()
    model = {
        "inputs": {"a": [STEPS], "b": [STEPS]},
        "dtypes": {"a": "int32", "b": "int32"},
        "layers": [
            {
                "name": "ea",
                "type": "Embedding",
                "input_dim": VOCAB,
                "output_dim": 3,
                "mask_zero": True,
                "inputs": "a",
            },  # fmt: skip
            {
                "name": "eb",
                "type": "Embedding",
                "input_dim": VOCAB,
                "output_dim": second_dim,
                "mask_zero": second_masked,
                "inputs": "b",
            },  # fmt: skip
            {"name": "merge", **merge, "inputs": ["ea", "eb"]},
            {"name": "rnn", "type": "LSTM", "units": 3, "return_sequences": True},
        ],
    }
    return model, {"a": IDS.astype(np.int32), "b": other.astype(np.int32)}


MERGES = {
    "add": ({"type": "Add"}, True),
    "add-one-unmasked": ({"type": "Add"}, False),
    "average": ({"type": "Average"}, True),
    "maximum": ({"type": "Maximum"}, True),
    "minimum-one-unmasked": ({"type": "Minimum"}, False),
    "concatenate": ({"type": "Concatenate"}, True),
    "concatenate-one-unmasked": ({"type": "Concatenate"}, False),
    "concatenate-steps": ({"type": "Concatenate", "axis": 1}, True),
}


@pytest.mark.parametrize("merge, second_masked", MERGES.values(), ids=MERGES.keys())
def test_merges_combine_masks_as_keras(merge, second_masked):
    model, feeds = _two_embeddings(merge, second_masked)
    _compare(model, feeds)


def test_a_masked_sequence_into_a_sub_model_matches_keras():
    encoder = {
        "inputs": {"seq": [STEPS, 3]},
        "layers": [
            {"name": "inner_dense", "type": "Dense", "units": 4},
            {"name": "inner_rnn", "type": "GRU", "units": 3, "return_sequences": True},
        ],
    }
    model = _embedded(
        {"name": "enc", "type": "Model", "model": "encoder"},
        {"name": "rnn", "type": "LSTM", "units": 2},
    )
    _compare(model, {"ids": IDS.astype(np.int32)}, models={"encoder": encoder})


def test_a_sub_model_that_makes_the_mask_matches_keras():
    embedder = {
        "inputs": {"tokens": [STEPS]},
        "dtypes": {"tokens": "int32"},
        "layers": [
            {
                "name": "inner_emb",
                "type": "Embedding",
                "input_dim": VOCAB,
                "output_dim": 3,
                "mask_zero": True,
            },  # fmt: skip
        ],
    }
    model = {
        "inputs": {"ids": [STEPS]},
        "dtypes": {"ids": "int32"},
        "layers": [
            {"name": "embed", "type": "Model", "model": "embedder"},
            {"name": "rnn", "type": "LSTM", "units": 3},
        ],
    }
    _compare(model, {"ids": IDS.astype(np.int32)}, models={"embedder": embedder})


def _attention_model(layer: dict, n_inputs: int) -> dict:
    """Embedded query (mask_zero), value (mask_zero, other padding) and key (unmasked), the
    first n_inputs of them, into `layer`; then a GRU over its output (the query's mask)."""
    model, feeds = _two_embeddings({"type": "Add"})
    model["inputs"]["k"] = [STEPS]
    model["dtypes"]["k"] = "int32"
    feeds["k"] = np.roll(IDS, 1, axis=1).astype(np.int32)
    key = {"name": "ek", "type": "Embedding", "input_dim": VOCAB, "output_dim": 3,
           "inputs": "k"}  # fmt: skip
    embeddings = [*model["layers"][:2], key][:n_inputs]
    names = ["a", "b", "k"][:n_inputs]
    model["inputs"] = {name: model["inputs"][name] for name in names}
    model["dtypes"] = dict.fromkeys(names, "int32")
    model["layers"] = [
        *embeddings,
        {"name": "att", **layer, "inputs": ["ea", "eb", "ek"][:n_inputs]},
        {"name": "rnn", "type": "GRU", "units": 3, "return_sequences": True},
    ]
    model["outputs"] = ["att", "rnn"]
    return model, {name: feeds[name] for name in names}


ATTENTION = {
    "mha-self": ({"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2}, 1),
    "mha-query-value": ({"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3}, 2),
    "mha-key": ({"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 2}, 3),
    "mha-causal": (
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2, "use_causal_mask": True},
        2,
    ),
    # With dropout Keras takes its explicit masked-softmax path (inference here: no drops).
    "mha-dropout-path": (
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2, "dropout": 0.2},
        2,
    ),
    "attention-dot": ({"type": "Attention"}, 2),
    "attention-scaled-key": ({"type": "Attention", "use_scale": True}, 3),
    "attention-concat-causal": (
        {"type": "Attention", "score_mode": "concat", "use_causal_mask": True},
        2,
    ),
    "attention-causal": ({"type": "Attention", "use_causal_mask": True}, 2),
    "additive": ({"type": "AdditiveAttention"}, 2),
    "additive-causal": ({"type": "AdditiveAttention", "use_causal_mask": True}, 3),
}


@pytest.mark.parametrize("layer, n_inputs", ATTENTION.values(), ids=ATTENTION.keys())
def test_attention_masks_match_keras(layer, n_inputs):
    model, feeds = _attention_model(layer, n_inputs)
    _compare(model, feeds)


def test_batch_normalization_in_training_leaves_masked_steps_out_as_keras():
    # Keras' BatchNormalization takes its batch statistics over the unmasked steps only.
    model = _embedded(
        {"name": "bn", "type": "BatchNormalization", "momentum": 0.5},
        {"name": "rnn", "type": "LSTM", "units": 3, "return_sequences": True},
    )
    spec = {k: v for k, v in model.items() if k != "dtypes"}
    ours = build_model_from_spec(ModelSpec.model_validate(spec), seed=0).model
    _seeded(ours)
    reference = _keras_model(model, {})
    _copy_weights(ours, model["layers"], reference)
    bn = ours.layer("bn")
    reference.get_layer("bn").set_weights(
        [t.detach().numpy() for t in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
    )
    ids = IDS.astype(np.int32)
    want = keras.ops.convert_to_numpy(reference([ids], training=True))
    ours.train()
    with torch.no_grad():
        got = ours(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    moving = [keras.ops.convert_to_numpy(w) for w in reference.get_layer("bn").weights[2:]]
    np.testing.assert_allclose(bn.moving_mean.numpy(), moving[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), moving[1], rtol=1e-5, atol=1e-6)
