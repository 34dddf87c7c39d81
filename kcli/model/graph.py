"""ModelSpec -> a planned graph (names, wiring, order, shapes; no torch) -> a GraphModel.

`plan_graph` is what `kcli validate` runs: it names unnamed layers as Keras does (`dense`,
`dense_1`), feeds a layer without `inputs` from the layer listed before it, orders the layers
topologically, and infers every shape, reporting each problem at the layer's place in the recipe.
The sub-models of `model.models` are planned first, each as a graph of its own (kcli.model.nested
says in what order, and a call's shape rule). `build_model` then builds one torch module per
layer, in a GraphModel that runs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kcli.errors import KcliError, Loc, Problem, ShapeError, did_you_mean
from kcli.model.activations import ActivationSpec
from kcli.model.layers.base import LayerSpec, Shape, format_shape
from kcli.model.nested import (
    call_output_shapes,
    calls_in,
    is_call,
    name_problems,
    reached_models,
    submodel_order,
    unknown_model,
)
from kcli.model.wiring import (  # noqa: F401  (assign_names, layer_of: used from here too)
    RESERVED_NAMES,
    ancestors,
    assign_names,
    layer_of,
    no_such_output,
    output_index,
    resolve_shared,
    shared_shape_problems,
    topological_order,
)

if TYPE_CHECKING:
    from kcli.model.spec import GraphSpec, ModelSpec


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
    submodel: GraphPlan | None = None  # a Model call: the plan of the sub-model it runs

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
    outputs: tuple[str, ...]  # references: `layer`, or `layer:k` for its output k
    sequential: bool
    # The top plan: every sub-model its layers call, directly or through another sub-model,
    # each after those it calls (their weights are kept once, at the top, by sub-model name).
    models: dict[str, GraphPlan] = field(default_factory=dict)
    trainable: bool = True  # a sub-model's `trainable` (the top model's is always true)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def shape_of(self, reference: str) -> Shape:
        """The shape of an input, a layer's output or `layer:k` (its output k)."""
        name = layer_of(reference)
        if name in self.inputs:
            return self.inputs[name]
        node = self.node(name)
        return node.shapes[output_index(reference)] if node.shapes else node.shape

    @property
    def output_shapes(self) -> list[Shape]:
        return [self.shape_of(name) for name in self.outputs]

    def output_link(self, reference: str) -> str | None:
        """ "softmax"/"sigmoid" when output `reference` ends in one a crossentropy can fold in."""
        node = self.node(layer_of(reference))
        index = output_index(reference)
        if node.submodel is not None:  # the sub-model's own output, whose logits it passes on
            return node.submodel.output_link(node.submodel.outputs[index])
        if node.shapes:  # a layer of several outputs (an RNN's states) applies no activation
            return None
        activation = node.spec.activation_spec()
        link = getattr(activation, "logits_link", None)
        if link == "softmax" and getattr(activation, "axis", -1) not in (-1, len(node.shape)):
            return None  # a softmax over another axis is not a distribution over classes
        return link


def plan_graph(model: ModelSpec) -> GraphPlan:
    """Name, wire, order and shape-check the layers; raise one KcliError with every problem.

    The sub-models come first, each planned for the shapes it declares; then the model, whose
    plan lists in `models` every sub-model it reaches.
    """
    defined = model.models or {}
    problems: list[Problem] = []
    for name in defined:
        if name in RESERVED_NAMES:
            problems.append(
                Problem(
                    f"the name '{name}' is reserved (a torch.nn.Module attribute)",
                    ("model", "models", name),
                )
            )
    context = _Planning(defined, {})
    for name in submodel_order(defined, problems):
        try:
            context.plans[name] = _plan(defined[name], ("model", "models", name), context)
        except KcliError as error:
            problems += error.problems
    try:
        plan = _plan(model, ("model",), context)
    except KcliError as error:
        raise KcliError([*problems, *error.problems]) from None
    calls_of = {name: set(calls_in(spec).values()) & set(defined) for name, spec in defined.items()}
    reached = reached_models(set(calls_in(model).values()) & set(defined), calls_of)
    for name in defined:
        if name not in reached:
            problems.append(
                Problem(
                    f"sub-model '{name}' is not called by any layer ({{type: Model, model: "
                    f"{name}}})",
                    ("model", "models", name),
                )
            )
    if problems:
        raise KcliError(problems)
    models = {name: context.plans[name] for name in context.plans if name in reached}
    return GraphPlan(plan.inputs, plan.nodes, plan.outputs, plan.sequential, models)


@dataclass
class _Planning:
    """What planning one graph needs of the others: every sub-model's spec, and the plans of
    those planned so far (a call of a sub-model missing from `plans` failed to plan)."""

    specs: dict[str, GraphSpec]
    plans: dict[str, GraphPlan]


def _plan(
    spec: GraphSpec,
    at: Loc,
    context: _Planning,
    inputs: dict[str, Shape] | None = None,
) -> GraphPlan:
    """One graph's plan (the model, or a sub-model at `at`), for its inputs' shapes (default:
    the declared ones)."""
    layers: list[LayerSpec] = list(spec.layers)
    inputs = inputs or spec.input_shapes()
    problems: list[Problem] = []
    top = at == ("model",)

    def problem(index: int, message: str, *field: str | int) -> None:
        problems.append(Problem(message, (*at, "layers", index, *field)))

    names = assign_names(layers, set(inputs), frozenset(context.specs))
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in inputs:
            problem(index, f"the name '{name}' is already a model input", "name")
        elif name in RESERVED_NAMES:
            problem(index, f"the name '{name}' is reserved (a torch.nn.Module attribute)", "name")
        elif name in seen:
            problem(index, f"the name '{name}' is already used by layer {seen[name]}", "name")
        seen.setdefault(name, index)
    problems += name_problems(spec, names, set(context.specs), at, top)
    for index, called in calls_in(spec).items():
        if called not in context.specs:
            problem(index, unknown_model(called, list(context.specs)), "model")

    shared = resolve_shared(layers, names, problem)
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
    order = topological_order(names, layer_wiring, set(inputs), at)
    if isinstance(order, list) and order and isinstance(order[0], Problem):
        raise KcliError(order)

    outputs = spec.output_names() or [names[-1]]
    for position, name in enumerate(outputs):
        if layer_of(name) not in seen:
            where = (*at, "outputs", *([position] if isinstance(spec.outputs, list) else []))
            problems.append(
                Problem(f"'{name}' is not a layer{did_you_mean(layer_of(name), names)}", where)
            )
    if problems:
        raise KcliError(problems)

    needed = ancestors([layer_of(n) for n in outputs], dict(zip(names, layer_wiring, strict=True)))
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
                problem(index, no_such_output(source, output_counts), "inputs")
        submodel = context.plans.get(layer.model) if is_call(layer) else None
        if missing or (is_call(layer) and submodel is None):
            continue  # fed by a layer (or calling a sub-model) that failed: already reported
        in_shapes = tuple(shapes[source] for source in wiring[index])
        try:
            if submodel is not None:
                all_shapes = _call_shapes(layer.model, submodel, list(in_shapes), context)
            else:
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
        loc = (*at, "layers", index)
        shares = shared.get(index, (None, None))[1]
        several = tuple(all_shapes) if len(all_shapes) > 1 else ()
        nodes.append(
            Node(name, layer, wiring[index], in_shapes, shape, loc, shares, several, submodel)
        )
    for position, name in enumerate(outputs):
        if name not in shapes and layer_of(name) in shapes:
            where = (*at, "outputs", *([position] if isinstance(spec.outputs, list) else []))
            problems.append(Problem(no_such_output(name, output_counts), where))
    problems += shared_shape_problems(nodes)
    if problems:
        raise KcliError(problems)
    trainable = getattr(spec, "trainable", True)
    return GraphPlan(inputs, tuple(nodes), tuple(outputs), spec.is_sequential, {}, trainable)


def _call_shapes(
    model: str, submodel: GraphPlan, given: list[Shape], context: _Planning
) -> list[Shape]:
    """A call's output shapes: the sub-model's, for the shapes the call gives it."""

    def replan(inputs: dict[str, Shape]) -> list[Shape]:
        try:
            plan = _plan(context.specs[model], ("model", "models", model), context, inputs)
        except KcliError as error:
            detail = "; ".join(p.message for p in error.problems)
            shown = ", ".join(format_shape(s) for s in inputs.values())
            raise ShapeError(f"sub-model '{model}' on input {shown}: {detail}") from None
        return plan.output_shapes

    declared = submodel.output_shapes
    return call_output_shapes(model, submodel.inputs, declared, given, replan)


def describe_shape(shape: Shape) -> str:
    return format_shape(shape)


def activation_of(node: Node) -> ActivationSpec | None:
    """The activation the graph applies after a node's module (None: linear)."""
    activation = node.spec.activation_spec()
    if activation is None or activation.type == "linear":  # type: ignore[attr-defined]
        return None
    return activation
