"""ModelSpec -> a planned graph (names, wiring, order, shapes; no torch) -> a GraphModel.

`plan_graph` is what `kcli validate` runs: it names unnamed layers as Keras does (`dense`,
`dense_1`), feeds a layer without `inputs` from the layer listed before it, orders the layers
topologically, and infers every shape, reporting each problem at the layer's place in the recipe.
`build_model` then builds one torch module per layer, in a GraphModel that runs them in order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kcli.errors import KcliError, Loc, Problem, ShapeError, did_you_mean
from kcli.model.activations import ActivationSpec
from kcli.model.layers.base import LayerSpec, Shape, format_shape, keras_snake_case

if TYPE_CHECKING:
    from kcli.model.spec import ModelSpec


@dataclass(frozen=True)
class Node:
    """One layer in the planned graph."""

    name: str
    spec: LayerSpec
    inputs: tuple[str, ...]  # names of layers or model inputs
    input_shapes: tuple[Shape, ...]
    shape: Shape  # output shape, batch excluded
    loc: Loc  # where the layer is in the recipe
    shares: str | None = None  # a Shared call: the layer whose module and weights it uses
    shapes: tuple[Shape, ...] = ()  # every output's shape when it has several (return_state)

    @property
    def n_outputs(self) -> int:
        return max(len(self.shapes), 1)

    @property
    def type(self) -> str:
        return self.spec.type  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GraphPlan:
    """The whole model, torch-free: inputs, layers in run order, outputs."""

    inputs: dict[str, Shape]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    sequential: bool

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def shape_of(self, name: str) -> Shape:
        return self.inputs[name] if name in self.inputs else self.node(name).shape

    @property
    def output_shapes(self) -> list[Shape]:
        return [self.shape_of(name) for name in self.outputs]

    def output_link(self, name: str) -> str | None:
        """ "softmax"/"sigmoid" when output `name` ends in one a crossentropy can fold in."""
        node = self.node(name)
        activation = node.spec.activation_spec()
        link = getattr(activation, "logits_link", None)
        if link == "softmax" and getattr(activation, "axis", -1) not in (-1, len(node.shape)):
            return None  # a softmax over another axis is not a distribution over classes
        return link


# Each layer's module is an attribute of the model named after the layer (state-dict keys like
# `dense.kernel`), so a layer cannot be called like a method or attribute of torch's nn.Module.
_RESERVED_NAMES = frozenset(
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
    }
)


def assign_names(layers: list[LayerSpec], taken: set[str]) -> list[str]:
    """Explicit names as given; the others Keras-style: `dense`, `dense_1`, ... skipping taken."""
    taken = set(taken) | {layer.name for layer in layers if layer.name}
    counters: Counter[str] = Counter()
    names = []
    for layer in layers:
        if layer.name:
            names.append(layer.name)
            continue
        base = keras_snake_case(layer.type)  # type: ignore[attr-defined]
        while True:
            count = counters[base]
            counters[base] += 1
            candidate = base if count == 0 else f"{base}_{count}"
            if candidate not in taken:
                break
        taken.add(candidate)
        names.append(candidate)
    return names


def plan_graph(model: ModelSpec) -> GraphPlan:
    """Name, wire, order and shape-check the layers; raise one KcliError with every problem."""
    layers: list[LayerSpec] = list(model.layers)
    inputs = model.input_shapes()
    problems: list[Problem] = []

    def problem(index: int, message: str, *field: str | int) -> None:
        problems.append(Problem(message, ("model", "layers", index, *field)))

    names = assign_names(layers, set(inputs))
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in inputs:
            problem(index, f"the name '{name}' is already a model input", "name")
        elif name in _RESERVED_NAMES:
            problem(index, f"the name '{name}' is reserved (a torch.nn.Module attribute)", "name")
        elif name in seen:
            problem(index, f"the name '{name}' is already used by layer {seen[name]}", "name")
        seen.setdefault(name, index)

    shared = _resolve_shared(layers, names, problem)
    # What each layer computes: its own spec, or for a Shared call the shared layer's (whose
    # input count and shape rule apply); the wiring stays the call's own.
    computes = [shared.get(index, (layer, None))[0] for index, layer in enumerate(layers)]
    known = set(inputs) | set(names)
    wiring: list[tuple[str, ...]] = []
    for index, layer in enumerate(layers):
        given = layer.input_names()
        if given == []:
            problem(index, "inputs is an empty list: name the layer(s) or input(s) feeding it")
        if given is None:
            if index > 0:
                given = [names[index - 1]]
            elif len(inputs) == 1:
                given = list(inputs)
            else:
                problem(index, f"must name its inputs: the model has inputs {', '.join(inputs)}")
                given = []
        for source in given:
            source = layer_of(source)  # `encoder:1` is output 1 of layer encoder
            if source not in known:
                options = sorted(known - {names[index]})
                problem(
                    index,
                    f"input '{source}' is neither a layer nor a model input"
                    f"{did_you_mean(source, options)}",
                    "inputs",
                )
            if source == names[index]:
                problem(index, f"layer '{source}' cannot feed itself", "inputs")
        low, high = computes[index].n_inputs
        if given and (len(given) < low or (high is not None and len(given) > high)):
            want = (
                str(low) if low == high else f"at least {low}" if high is None else f"{low}-{high}"
            )
            kind = computes[index].type  # type: ignore[attr-defined]
            problem(index, f"{kind} takes {want} input(s), got {len(given)}", "inputs")
        wiring.append(tuple(given))
    if problems:
        raise KcliError(problems)

    # Order and reachability go by layer; `layer:k` references stay in the wiring.
    layer_wiring = [tuple(layer_of(source) for source in sources) for sources in wiring]
    order = _topological_order(names, layer_wiring, set(inputs))
    if isinstance(order, list) and order and isinstance(order[0], Problem):
        raise KcliError(order)

    outputs = model.output_names() or [names[-1]]
    for position, name in enumerate(outputs):
        if name not in seen:
            where = (
                ("model", "outputs", position)
                if isinstance(model.outputs, list)
                else ("model", "outputs")
            )
            problems.append(Problem(f"'{name}' is not a layer{did_you_mean(name, names)}", where))
    if problems:
        raise KcliError(problems)

    needed = _ancestors(outputs, dict(zip(names, layer_wiring, strict=True)))
    for index, name in enumerate(names):
        if name not in needed:
            problem(index, f"layer '{name}' does not feed any model output ({', '.join(outputs)})")
    if problems:
        raise KcliError(problems)

    shapes: dict[str, Shape] = dict(inputs)  # by reference: `layer` and `layer:k`
    shapes.update({f"{name}:0": shape for name, shape in inputs.items()})
    output_counts: dict[str, int] = {}
    nodes: list[Node] = []
    for index in order:
        layer, name = computes[index], names[index]
        missing = [source for source in wiring[index] if source not in shapes]
        for source in missing:
            if layer_of(source) in shapes:  # the layer is planned: no such output of it
                count = output_counts.get(layer_of(source), 1)
                hint = " (set return_state: true for an RNN's states)" if count == 1 else ""
                problem(
                    index,
                    f"'{source}' is not an output of '{layer_of(source)}': it has {count} "
                    f"({', '.join(f'{layer_of(source)}:{k}' for k in range(count))}){hint}",
                    "inputs",
                )
        if missing:
            continue  # else fed by a layer whose shape failed: that one is already reported
        in_shapes = tuple(shapes[source] for source in wiring[index])
        try:
            all_shapes = [tuple(out) for out in layer.output_shapes(list(in_shapes))]
        except ShapeError as err:
            detail = "; ".join(p.message for p in err.problems)
            problem(index, f"layer '{name}': {detail}")
            continue
        shape = all_shapes[0]
        shapes[name] = shape
        output_counts[name] = len(all_shapes)
        for k, out in enumerate(all_shapes):
            shapes[f"{name}:{k}"] = out
        loc = ("model", "layers", index)
        shares = shared.get(index, (None, None))[1]
        several = tuple(all_shapes) if len(all_shapes) > 1 else ()
        nodes.append(Node(name, layer, wiring[index], in_shapes, shape, loc, shares, several))
    built_for = {node.name: node.input_shapes for node in nodes}
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
    if problems:
        raise KcliError(problems)
    return GraphPlan(inputs, tuple(nodes), tuple(outputs), model.is_sequential)


def layer_of(reference: str) -> str:
    """The layer (or model input) a wiring reference names: `encoder:1` -> `encoder`."""
    name, colon, index = reference.rpartition(":")
    return name if colon and index.isdigit() else reference


def _resolve_shared(layers: list[LayerSpec], names: list[str], problem) -> dict:
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
        else:
            resolved[index] = (layers[index_of[target]], target)
    return resolved


def _topological_order(
    names: list[str], wiring: list[tuple[str, ...]], inputs: set[str]
) -> list[int] | list[Problem]:
    """Layer indices in an order where every layer comes after its inputs (stable)."""
    index_of = {name: i for i, name in enumerate(names)}
    pending = {i: {s for s in wiring[i] if s not in inputs} for i in range(len(names))}
    order: list[int] = []
    done: set[str] = set()
    while pending:
        ready = [i for i, needs in pending.items() if needs <= done]
        if not ready:
            cycle = _find_cycle(pending, index_of)
            members = " -> ".join(names[i] for i in [*cycle, cycle[0]])
            return [Problem(f"layers form a cycle: {members}", ("model", "layers", min(cycle)))]
        for i in ready:
            order.append(i)
            done.add(names[i])
            del pending[i]
    return order


def _find_cycle(pending: dict[int, set[str]], index_of: dict[str, int]) -> list[int]:
    """Layer indices on one cycle among layers that can never become ready."""
    path: list[int] = []
    current = min(pending)
    while current not in path:
        path.append(current)
        current = min(index_of[s] for s in pending[current] if index_of[s] in pending)
    cycle = path[path.index(current) :]
    # Feeding order reads naturally: a -> b means a feeds b.
    return cycle[::-1]


def _ancestors(outputs: list[str], wiring: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen or name not in wiring:
            continue
        seen.add(name)
        stack.extend(wiring[name])
    return seen


def describe_shape(shape: Shape) -> str:
    return format_shape(shape)


def activation_of(node: Node) -> ActivationSpec | None:
    """The activation the graph applies after a node's module (None: linear)."""
    activation = node.spec.activation_spec()
    if activation is None or activation.type == "linear":  # type: ignore[attr-defined]
        return None
    return activation
