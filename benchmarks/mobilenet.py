"""MobileNetV2 (Sandler et al. 2018), the torchvision layout, written out because torchvision does not import
beside this torch build. Randomly initialised with a seed: the benchmark measures speed, not accuracy."""

from __future__ import annotations

import torch
from torch import nn

CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(inp, out, k=3, s=1, groups=1, act=True):
    layers = [nn.Conv2d(inp, out, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(out)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, t):
        super().__init__()
        hidden = inp * t
        layers = [conv_bn(inp, hidden, 1)] if t != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, out, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.res = stride == 1 and inp == out

    def forward(self, x):
        return x + self.block(x) if self.res else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        layers, c = [conv_bn(3, 32, 3, 2)], 32
        for t, out, n, s in CFG:
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(conv_bn(c, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def build():
    torch.manual_seed(0)
    return MobileNetV2().eval()
