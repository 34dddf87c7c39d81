"""Naming and wiring of one graph's layers, for the planner (kcli.model.graph). Torch-free.

Keras-style automatic names, the references layers use for what feeds them (`layer`,
`layer:k` for output k of a layer with several), Shared calls resolved to the layer they
share, the topological order, and which layers feed the outputs.
"""

from __future__ import annotations

from collections import Counter

from kcli.errors import Loc, Problem, did_you_mean
from kcli.model.layers.base import LayerSpec, format_shape
from kcli.model.nested import is_call

# Each layer's module is an attribute of the model named after the layer (state-dict keys like
# `dense.kernel`), so a layer cannot be called like a method or attribute of torch's nn.Module.
RESERVED_NAMES = frozenset(
    {
        "forward",
        "forward_train",
        "training",
        "train",
        "eval",
        "cuda",
        "cpu",
        "to",
        "float",
        "double",
        "half",
        "type",
        "apply",
        "parameters",
        "buffers",
        "children",
        "modules",
        "state_dict",
        "layer",
        "activations",
        "weight_penalty",
        "input_names",
        "output_names",
        "dump_patches",
        "call_super_init",
        "T_destination",
        "zero_grad",
        "share_memory",
        "shares",
        "calls",
        "has_weight_penalty",
        "output_activation_optional",
    }
)


def assign_names(
    layers: list[LayerSpec], taken: set[str], models: frozenset[str] = frozenset()
) -> list[str]:
    """Explicit names as given; the others Keras-style: `dense`, `dense_1`, ... skipping taken.

    A sub-model's call is named after the sub-model (`encoder`, `encoder_1` ...), as Keras names
    a Model object; no other layer is given a sub-model's name (in `models`).
    """
    taken = set(taken) | {layer.name for layer in layers if layer.name}
    counters: Counter[str] = Counter()
    names = []
    for layer in layers:
        if layer.name:
            names.append(layer.name)
            continue
        base = layer.default_name()
        own = layer.model if is_call(layer) else None  # type: ignore[attr-defined]
        while True:
            count = counters[base]
            counters[base] += 1
            candidate = base if count == 0 else f"{base}_{count}"
            if candidate not in taken and (candidate not in models or candidate == own):
                break
        taken.add(candidate)
        names.append(candidate)
    return names


def layer_of(reference: str) -> str:
    """The layer (or model input) a wiring reference names: `encoder:1` -> `encoder`."""
    name, colon, index = reference.rpartition(":")
    return name if colon and index.isdigit() else reference


def output_index(reference: str) -> int:
    """Which output of its layer a reference names: `encoder:1` -> 1, `encoder` -> 0."""
    name = layer_of(reference)
    return int(reference[len(name) + 1 :]) if name != reference else 0


def no_such_output(reference: str, output_counts: dict[str, int]) -> str:
    name = layer_of(reference)
    count = output_counts.get(name, 1)
    hint = " (set return_state: true for an RNN's states)" if count == 1 else ""
    return (
        f"'{reference}' is not an output of '{name}': it has {count} "
        f"({', '.join(f'{name}:{k}' for k in range(count))}){hint}"
    )


def shared_shape_problems(nodes: list) -> list[Problem]:
    """A Shared call fed shapes other than those its shared layer was built for (`nodes`: the
    planned kcli.model.graph.Node objects)."""
    built_for = {node.name: node.input_shapes for node in nodes}
    problems = []
    for node in nodes:
        if node.shares and node.shares in built_for and node.input_shapes != built_for[node.shares]:
            got = ", ".join(format_shape(s) for s in node.input_shapes)
            want = ", ".join(format_shape(s) for s in built_for[node.shares])
            problems.append(
                Problem(
                    f"layer '{node.name}' shares the weights of '{node.shares}', built for "
                    f"input {want}, but gets {got}",
                    (*node.loc, "inputs"),
                )
            )
    return problems


def resolve_shared(layers: list[LayerSpec], names: list[str], problem) -> dict:
    """index of a Shared call -> (the shared layer's spec, its name), following chains."""
    from kcli.model.layers.shared import Shared

    index_of = {name: index for index, name in enumerate(names)}
    resolved = {}
    for index, layer in enumerate(layers):
        if not isinstance(layer, Shared):
            continue
        seen, target = {index}, layer.shares
        while target in index_of and isinstance(layers[index_of[target]], Shared):
            if index_of[target] in seen:
                break
            seen.add(index_of[target])
            target = layers[index_of[target]].shares
        if target not in index_of:
            problem(
                index,
                f"shares '{target}', which is not a layer{did_you_mean(target, names)}",
                "shares",
            )
        elif isinstance(layers[index_of[target]], Shared):
            problem(index, f"shares '{layer.shares}', which comes back to itself", "shares")
        elif is_call(layers[index_of[target]]):
            called = layers[index_of[target]].model
            problem(
                index,
                f"shares '{target}', a call of sub-model '{called}': call the sub-model again "
                f"({{type: Model, model: {called}}}), which shares its weights",
                "shares",
            )
        else:
            resolved[index] = (layers[index_of[target]], target)
    return resolved


def topological_order(
    names: list[str], wiring: list[tuple[str, ...]], inputs: set[str], at: Loc
) -> list[int] | list[Problem]:
    """Layer indices in an order where every layer comes after its inputs (stable)."""
    index_of = {name: i for i, name in enumerate(names)}
    pending = {i: {s for s in wiring[i] if s not in inputs} for i in range(len(names))}
    order: list[int] = []
    done: set[str] = set()
    while pending:
        ready = [i for i, needs in pending.items() if needs <= done]
        if not ready:
            cycle = find_cycle(pending, index_of)
            members = " -> ".join(names[i] for i in [*cycle, cycle[0]])
            return [Problem(f"layers form a cycle: {members}", (*at, "layers", min(cycle)))]
        for i in ready:
            order.append(i)
            done.add(names[i])
            del pending[i]
    return order


def find_cycle(pending: dict[int, set[str]], index_of: dict[str, int]) -> list[int]:
    """Layer indices on one cycle among layers that can never become ready."""
    path: list[int] = []
    current = min(pending)
    while current not in path:
        path.append(current)
        current = min(index_of[s] for s in pending[current] if index_of[s] in pending)
    cycle = path[path.index(current) :]
    # Feeding order reads naturally: a -> b means a feeds b.
    return cycle[::-1]


def ancestors(outputs: list[str], wiring: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen or name not in wiring:
            continue
        seen.add(name)
        stack.extend(wiring[name])
    return seen
