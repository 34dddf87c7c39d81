"""GraphModel: the torch module a recipe's model becomes (one submodule per layer, run in order).

Keras masks run beside the values: a graph with a layer that makes one (Masking, Embedding
mask_zero), or a sub-model that does, keeps a mask per value (None for most) and applies each
layer's rule (LayerSpec.mask_in / mask_out: take it as `mask=`, pass it on, compute the output's,
or drop it). A graph without such a layer runs as before, with no mask bookkeeping at all. A
sub-model takes its callers' masks on its inputs and hands its outputs' masks back, as a Keras
Model called as a layer does.

A sub-model (`model.models`) becomes a NestedModel, built once and kept by the GraphModel under
the sub-model's name, so its weights are `encoder.<layer>.<weight>` in the state dict whichever
layers call it and however often; every call runs that one module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from kcli.model.graph import GraphPlan, activation_of, layer_of, output_index
from kcli.model.nested import reached_models
from kcli.model.regularizers import RegularizerSpec

# One step of a graph: (layer name, the module it runs (its own, a shared layer's or a
# sub-model's), input slots, has activation, activity regularizer or None, calls a sub-model,
# its outputs, (mask_in, mask_out): what it does with masks, kcli.model.layers.base.LayerSpec).
Step = tuple[str, str, tuple[int, ...], bool, RegularizerSpec | None, bool, int, tuple[str, str]]


def _plus(total: torch.Tensor | None, term: torch.Tensor | None) -> torch.Tensor | None:
    if term is None:
        return total
    return term if total is None else total + term


def _output_masks(
    module: nn.Module, rule: str, inputs: list, in_masks: list | None, n_out: int
) -> list:
    """The mask of each output of a layer, by its `mask_out` rule (LayerSpec.mask_out)."""
    if rule == "new" or (rule == "module" and in_masks is not None):
        out = module.compute_mask(inputs, in_masks or [None] * len(inputs))
        return list(out) if isinstance(out, tuple) else [out, *[None] * (n_out - 1)]
    if rule == "pass" and in_masks is not None:
        return [in_masks[0], *[None] * (n_out - 1)]
    return [None] * n_out


class _Graph(nn.Module):
    """The layers of one planned graph, run in topological order on a list of input tensors."""

    def __init__(self, plan: GraphPlan, models: Mapping[str, NestedModel]) -> None:
        super().__init__()
        self.input_names = list(plan.inputs)
        self.output_names = list(plan.outputs)
        # Activation modules hold no weights, so they stay out of the state dict; so do the
        # sub-models this graph calls, which the top GraphModel keeps (a plain dict).
        self.activations: dict[str, nn.Module] = {}
        self._models: dict[str, NestedModel] = dict(models)
        slot = {name: i for i, name in enumerate(self.input_names)}  # reference -> value index
        n_values = len(slot)
        slot.update({f"{name}:0": i for i, name in enumerate(self.input_names)})
        self._steps: list[Step] = []
        self._weight_regularizers: list[tuple[str, str, RegularizerSpec]] = []
        self._shared = {node.name: node.shares for node in plan.nodes if node.shares}
        self._calls = {node.name: node.spec.model for node in plan.nodes if node.submodel}
        for node in plan.nodes:
            # A Shared call adds no module (its weights are the layer's), nor does a Model call
            # (they are the sub-model's).
            if node.shares is None and node.submodel is None:
                module = node.spec.build([tuple(s) for s in node.input_shapes])
                if not node.spec.trainable:
                    module.requires_grad_(False)
                self.add_module(node.name, module)
                for weight, regularizer in node.spec.regularized_weights().items():
                    self._weight_regularizers.append((node.name, weight, regularizer))
            activation = activation_of(node)
            if activation is not None:
                self.activations[node.name] = activation.build()
            sources = tuple(slot[source] for source in node.inputs)
            module_name = self._calls.get(node.name) or node.shares or node.name
            regularizer = node.spec.activity_regularizer  # per call, as Keras adds it per call
            masking = ("all", "module") if node.submodel is not None else node.spec.masking()
            if masking[0] == "first" and len(sources) > 1:
                # Keras hands `mask` to a layer called on one tensor only: an RNN given its
                # initial states does not apply the sequence's mask (its output still has it).
                masking = ("", masking[1])
            self._steps.append(
                (
                    node.name,
                    module_name,
                    sources,
                    activation is not None,
                    regularizer,
                    node.submodel is not None,
                    node.n_outputs,
                    masking,
                )
            )
            # A layer with several outputs (an RNN's return_state) fills one slot per output:
            # `name` and `name:0` are the first, `name:k` the k-th.
            for k in range(node.n_outputs):
                slot[f"{node.name}:{k}"] = n_values + k
            slot[node.name] = n_values
            n_values += node.n_outputs
        self._output_slots = [slot[name] for name in self.output_names]
        # Whether a layer here (or in a sub-model called here) makes masks: only then does a
        # run carry masks without being handed any.
        self.makes_masks = any(step[7][1] == "new" for step in self._steps) or any(
            self._models[self._calls[step[0]]].makes_masks for step in self._steps if step[5]
        )
        # The layer whose activation a training pass may leave out (`activate_outputs=False`):
        # the single output, when it is a layer's only output, not a sub-model's (whose own
        # layers apply theirs) and not read activated by an activity regularizer.
        nodes = {node.name: node for node in plan.nodes}
        only = nodes.get(layer_of(self.output_names[0])) if len(self.output_names) == 1 else None
        self._skippable = (
            only.name
            if only is not None
            and only.submodel is None
            and not only.shapes
            and output_index(self.output_names[0]) == 0
            and only.spec.activity_regularizer is None
            else None
        )

    def layer(self, name: str) -> nn.Module:
        """The module of the layer called `name` (a Shared call's: the shared layer's; a Model
        call's: the sub-model's)."""
        if name in self._calls:
            return self._models[self._calls[name]]
        return self._modules[self._shared.get(name, name)]

    def shares(self, name: str) -> str | None:
        """The layer whose weights a Shared call `name` uses; None for a layer of its own."""
        return self._shared.get(name)

    def calls(self, name: str) -> str | None:
        """The sub-model a Model call `name` runs; None for any other layer."""
        return self._calls.get(name)

    def _run(
        self,
        values: list,
        keep_pre: bool,
        activate_outputs: bool = True,
        masks: list | None = None,
    ):
        """(outputs, their pre-activations, the activity penalty or None, the outputs' masks)
        for input values and, optionally, their masks (None, or one mask or None per input)."""
        pre_by_slot: dict[int, torch.Tensor] = {}
        activity = None
        skipped = None if activate_outputs else self._skippable
        if masks is None and self.makes_masks:
            masks = [None] * len(values)
        for step in self._steps:
            name, module_name, sources, activated, activity_regularizer, call, n_out, rule = step
            inputs = [values[i] for i in sources]
            in_masks = None
            if masks is not None:
                in_masks = [masks[i] for i in sources]
                if all(m is None for m in in_masks):
                    in_masks = None
            if call:  # a sub-model: its outputs, their logits and its own layers' penalties
                outs, pres, inner, out_masks = self._models[module_name]._run(
                    inputs, keep_pre, masks=in_masks
                )
                if keep_pre:
                    for k, pre in enumerate(pres):
                        if pre is not outs[k]:
                            pre_by_slot[len(values) + k] = pre
                    activity = _plus(activity, inner)
                values.extend(outs)
                if masks is not None:
                    masks.extend(out_masks)
                continue
            module = self._modules[module_name]
            if in_masks is not None and rule[0]:
                mask = in_masks[0] if rule[0] == "first" else in_masks
                out = module(*inputs, mask=mask)
            else:
                out = module(*inputs)
            if masks is not None:
                masks.extend(_output_masks(module, rule[1], inputs, in_masks, n_out))
            if isinstance(out, tuple):  # several outputs (return_state): one value each
                if activity_regularizer is not None and keep_pre:  # on the output, not states
                    activity = _plus(
                        activity, activity_regularizer.penalty(out[0]) / out[0].shape[0]
                    )
                values.extend(out)
                continue
            if activated and name != skipped:
                if keep_pre:
                    pre_by_slot[len(values)] = out
                out = self.activations[name](out)
            if activity_regularizer is not None and keep_pre:
                # Keras 3 divides an activity penalty by the batch size.
                activity = _plus(activity, activity_regularizer.penalty(out) / out.shape[0])
            values.append(out)
        outputs = [values[i] for i in self._output_slots]
        pres = [pre_by_slot.get(i, values[i]) for i in self._output_slots]
        out_masks = (
            [None] * len(outputs) if masks is None else [masks[i] for i in self._output_slots]
        )
        return outputs, pres, activity, out_masks

    def _own_penalty(self) -> torch.Tensor | None:
        """The L1/L2 penalty of this graph's own layers' regularized weights."""
        total = None
        for layer, weight, regularizer in self._weight_regularizers:
            total = _plus(total, regularizer.penalty(self._modules[layer].get_parameter(weight)))
        return total


class NestedModel(_Graph):
    """A sub-model: called as a layer, it takes its inputs positionally, as any layer's module,
    and returns its output (a tuple for several)."""

    def forward(self, *inputs: torch.Tensor):
        outputs, _, _, _ = self._run(list(inputs), keep_pre=False)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class GraphModel(_Graph):
    """Runs the planned layers in topological order.

    `forward` returns what Keras' model returns (activated outputs): one tensor, or a tuple for
    several outputs. `forward_train` also returns each output's pre-activation (the logits a
    crossentropy loss takes instead of probabilities) and the activity-regularization penalty.
    State-dict keys are `<layer name>.<weight name>` (`dense.kernel`, `lstm.recurrent_kernel`):
    each layer's module is registered under its own name, and each sub-model's under its name
    (`encoder.dense.kernel`).
    """

    def __init__(self, plan: GraphPlan) -> None:
        models: dict[str, NestedModel] = {}
        for name, subplan in plan.models.items():  # each after the sub-models it calls
            models[name] = NestedModel(subplan, models)
        super().__init__(plan, models)
        for name, module in models.items():
            self.add_module(name, module)
        # A frozen sub-model freezes the sub-models it calls too, wherever they are called
        # (they are one set of weights, as Keras' trainable=False on a nested Model).
        calls_of = {name: set(sub._calls.values()) for name, sub in models.items()}
        frozen = {name for name, subplan in plan.models.items() if not subplan.trainable}
        for name in reached_models(frozen, calls_of):
            models[name].requires_grad_(False)
        # Whether the output layer's activation can be left out of a training pass.
        self.output_activation_optional = self._skippable is not None

    def _inputs(self, x: torch.Tensor | Mapping[str, torch.Tensor] | Sequence) -> list:
        if isinstance(x, torch.Tensor):
            return [x]
        if isinstance(x, Mapping):
            return [x[name] for name in self.input_names]
        return list(x)

    def forward(self, x, train_outputs: bool = False, activate_outputs: bool = True):
        """The activated output(s); with `train_outputs`, what `forward_train` returns.

        The flags let a wrapper that only calls `forward` (DistributedDataParallel,
        torch.compile) run the training form too.
        """
        outputs, pres, activity, _ = self._run(self._inputs(x), train_outputs, activate_outputs)
        if train_outputs:
            return outputs, pres, activity
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def forward_train(self, x, activate_outputs: bool = True):
        """(outputs, pre-activation outputs, activity penalty or None).

        `activate_outputs=False` (only when `output_activation_optional`) leaves the output
        layer's activation out: the outputs are then the logits, as the pre-activations are.
        """
        return self.forward(x, train_outputs=True, activate_outputs=activate_outputs)

    @property
    def has_weight_penalty(self) -> bool:
        return any(graph._weight_regularizers for graph in (self, *self._models.values()))

    def weight_penalty(self) -> torch.Tensor | None:
        """Keras' L1/L2 penalty over every regularized weight, or None if there is none; a
        sub-model's weights count once, however often it is called."""
        total = self._own_penalty()
        for model in self._models.values():
            total = _plus(total, model._own_penalty())
        return total


def build_model(plan: GraphPlan) -> GraphModel:
    """The GraphModel for a plan (weights initialised from torch's global, seeded generator)."""
    return GraphModel(plan)
