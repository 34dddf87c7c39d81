"""GraphModel: the torch module a recipe's model becomes (one submodule per layer, run in order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from kcli.model.graph import GraphPlan, activation_of
from kcli.model.regularizers import RegularizerSpec


class GraphModel(nn.Module):
    """Runs the planned layers in topological order.

    `forward` returns what Keras' model returns (activated outputs): one tensor, or a tuple for
    several outputs. `forward_train` also returns each output's pre-activation (the logits a
    crossentropy loss takes instead of probabilities) and the activity-regularization penalty.
    State-dict keys are `<layer name>.<weight name>` (`dense.kernel`, `lstm.recurrent_kernel`):
    each layer's module is registered under its own name.
    """

    def __init__(self, plan: GraphPlan) -> None:
        super().__init__()
        self.input_names = list(plan.inputs)
        self.output_names = list(plan.outputs)
        # Activation modules hold no weights, so they stay out of the state dict.
        self.activations: dict[str, nn.Module] = {}
        slot = {name: i for i, name in enumerate(self.input_names)}  # reference -> value index
        n_values = len(slot)
        slot.update({f"{name}:0": i for i, name in enumerate(self.input_names)})
        # Each step: (layer name, the module it runs: its own, or a shared layer's, input
        # slots, has activation, activity regularizer or None).
        self._steps: list[tuple[str, str, tuple[int, ...], bool, RegularizerSpec | None]] = []
        self._weight_regularizers: list[tuple[str, str, RegularizerSpec]] = []
        self._shared = {node.name: node.shares for node in plan.nodes if node.shares}
        for node in plan.nodes:
            if node.shares is None:  # a Shared call adds no module: its weights are the layer's
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
            module_name = node.shares or node.name
            regularizer = node.spec.activity_regularizer  # per call, as Keras adds it per call
            self._steps.append(
                (node.name, module_name, sources, activation is not None, regularizer)
            )
            # A layer with several outputs (an RNN's return_state) fills one slot per output:
            # `name` and `name:0` are the first, `name:k` the k-th.
            for k in range(node.n_outputs):
                slot[f"{node.name}:{k}"] = n_values + k
            slot[node.name] = n_values
            n_values += node.n_outputs
        self._output_slots = [slot[name] for name in self.output_names]
        self._has_activity = any(step[4] is not None for step in self._steps)
        # Whether the output layer's activation can be left out of a training pass: not when
        # an activity regularizer reads the activated output.
        self.output_activation_optional = len(self.output_names) == 1 and all(
            regularizer is None
            for name, _, _, _, regularizer in self._steps
            if name == self.output_names[0]
        )

    def layer(self, name: str) -> nn.Module:
        """The module of the layer called `name` (a Shared call's: the shared layer's)."""
        return self._modules[self._shared.get(name, name)]

    def shares(self, name: str) -> str | None:
        """The layer whose weights a Shared call `name` uses; None for a layer of its own."""
        return self._shared.get(name)

    def _inputs(self, x: torch.Tensor | Mapping[str, torch.Tensor] | Sequence) -> list:
        if isinstance(x, torch.Tensor):
            return [x]
        if isinstance(x, Mapping):
            return [x[name] for name in self.input_names]
        return list(x)

    def _run(self, x, keep_pre: bool, activate_outputs: bool = True):
        values = self._inputs(x)
        pre_by_slot: dict[int, torch.Tensor] = {}
        activity = None
        skipped = None if activate_outputs else self.output_names[0]
        for name, module_name, sources, activated, activity_regularizer in self._steps:
            out = self._modules[module_name](*[values[i] for i in sources])
            if isinstance(out, tuple):  # several outputs (return_state): one value each
                if activity_regularizer is not None and keep_pre:  # on the output, not states
                    term = activity_regularizer.penalty(out[0]) / out[0].shape[0]
                    activity = term if activity is None else activity + term
                values.extend(out)
                continue
            if activated and name != skipped:
                if keep_pre:
                    pre_by_slot[len(values)] = out
                out = self.activations[name](out)
            if activity_regularizer is not None and keep_pre:
                # Keras 3 divides an activity penalty by the batch size.
                term = activity_regularizer.penalty(out) / out.shape[0]
                activity = term if activity is None else activity + term
            values.append(out)
        outputs = [values[i] for i in self._output_slots]
        pres = [pre_by_slot.get(i, values[i]) for i in self._output_slots]
        return outputs, pres, activity

    def forward(self, x, train_outputs: bool = False, activate_outputs: bool = True):
        """The activated output(s); with `train_outputs`, what `forward_train` returns.

        The flags let a wrapper that only calls `forward` (DistributedDataParallel,
        torch.compile) run the training form too.
        """
        outputs, pres, activity = self._run(x, train_outputs, activate_outputs)
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
        return bool(self._weight_regularizers)

    def weight_penalty(self) -> torch.Tensor | None:
        """Keras' L1/L2 penalty over every regularized weight, or None if there is none."""
        total = None
        for layer, weight, regularizer in self._weight_regularizers:
            term = regularizer.penalty(self._modules[layer].get_parameter(weight))
            total = term if total is None else total + term
        return total


def build_model(plan: GraphPlan) -> GraphModel:
    """The GraphModel for a plan (weights initialised from torch's global, seeded generator)."""
    return GraphModel(plan)
