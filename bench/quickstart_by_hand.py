"""recipes/quickstart.yaml written by hand in PyTorch: the whole-process baseline of `kcli train`.

Same work: sklearn digits scaled by 1/16, 70/15/15 split, Dense(128, relu, L2 1e-4) ->
Dropout(0.2) -> Dense(10), Adam(3e-3, eps=1e-7), batch 32, a validation pass per epoch, the
best weights (by val_loss) restored at the end, the test accuracy printed. `--epochs` is the
number of epochs kcli's run took (its EarlyStopping may stop before 15).
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    epochs = parser.parse_args().epochs
    torch.manual_seed(42)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) * 0.0625
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x))
    n_test = n_val = int(0.15 * len(x))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-7)
    best, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        shuffled = train[torch.randperm(len(train))]
        for i in range(0, len(shuffled), 32):
            idx = shuffled[i : i + 32]
            loss = F.cross_entropy(model(x[idx]), y[idx]) + 1e-4 * model[0].weight.square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(model(x[val]), y[val]))
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    with torch.no_grad():
        accuracy = float((model(x[test]).argmax(1) == y[test]).float().mean())
    print(f"test_accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
