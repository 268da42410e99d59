"""Quantization that holds accuracy (issue 9): an outlier channel collapses plain int8; the budget search brings it
back with equalization, and `inspect` names the layer that breaks."""

from __future__ import annotations

import numpy as np
import pytest

SEED = 0
OUTLIER = 100.0  # one conv1 channel scaled x100, the next layer's matching inputs / 100: the float function is unchanged


def outlier_cnn(scale: float = OUTLIER):
    """A small CNN trained on builtin:digits (seeded, ~3 s), then given one outlier channel the way BatchNorm folding
    leaves them: conv1's channel 0 x``scale``, conv2's input channel 0 / ``scale`` (ReLU is positively homogeneous,
    so the float outputs are the same)."""
    import torch
    import torch.nn as nn

    from edgeport.demo.datasets import digits_as_float

    class OutlierCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(4)
            self.fc = nn.Linear(16 * 7 * 7, 10)

        def forward(self, x):
            x = self.relu1(self.conv1(x))
            x = self.pool(self.relu2(self.conv2(x)))
            return self.fc(x.flatten(1))

    torch.manual_seed(SEED)
    m = OutlierCNN()
    x, y = digits_as_float("train", "NCHW")
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(3):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(X[b]), Y[b]).backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        m.conv1.weight[0] *= scale
        m.conv1.bias[0] *= scale
        m.conv2.weight[:, 0] /= scale
    return m
