"""A reference I3D written from pytorch-i3d's description (``InceptionI3d``: its module names,
TF "same" zero padding, BN eps 1e-3, a 2x7x7 average pool): its random state_dicts stand in
for the Kinetics-400 checkpoints, which are not downloadable in tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels): the port's table.
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def tf_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad (T, H, W) the way the port does: total k - s if s divides n, else k - n % s."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int = 1, bn: bool = True) -> None:
        super().__init__()
        self.k, self.s = (k,) * 3, (s,) * 3
        self.conv3d = nn.Conv3d(cin, cout, k, s, padding=0, bias=not bn)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(tf_same(x, self.k, self.s))
        return F.relu(self.bn(x)) if self.bn is not None else x


class MaxPoolSame(nn.Module):
    def __init__(self, k: tuple[int, int, int], s: tuple[int, int, int]) -> None:
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(tf_same(x, self.k, self.s), self.k, self.s)


class Mixed(nn.Module):
    def __init__(self, cin: int, c: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0], 1)
        self.b1a, self.b1b = Unit3D(cin, c[1], 1), Unit3D(c[1], c[2], 3)
        self.b2a, self.b2b = Unit3D(cin, c[3], 1), Unit3D(c[3], c[4], 3)
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x))]
        return torch.cat([*branches, self.b3b(self.b3a(x))], dim=1)


class ReferenceI3D(nn.Module):
    """pytorch-i3d's InceptionI3d: same module names, so the same state_dict keys."""

    def __init__(self, in_channels: int, num_classes: int = 400) -> None:
        super().__init__()
        self.order: list[str] = []

        def add(name: str, module: nn.Module) -> None:
            self.add_module(name, module)
            self.order.append(name)

        add("Conv3d_1a_7x7", Unit3D(in_channels, 64, 7, 2))
        add("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2)))
        add("Conv3d_2b_1x1", Unit3D(64, 64, 1))
        add("Conv3d_2c_3x3", Unit3D(64, 192, 3))
        add("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2)))
        for name, (cin, channels) in MIXED.items():
            if name == "Mixed_4b":
                add("MaxPool3d_4a_3x3", MaxPoolSame((3, 3, 3), (2, 2, 2)))
            if name == "Mixed_5b":
                add("MaxPool3d_5a_2x2", MaxPoolSame((2, 2, 2), (2, 2, 2)))
            add(name, Mixed(cin, channels))
        self.logits = Unit3D(1024, num_classes, 1, bn=False)

    def endpoints(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.order:
            x = out[name] = getattr(self, name)(x)
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``extract_features`` (the 2x7x7 / 1 average pool), averaged over its positions."""
        pooled = F.avg_pool3d(self.endpoints(x)["Mixed_5c"], (2, 7, 7), stride=1)
        return pooled.mean(dim=(2, 3, 4))


def reference_i3d(in_channels: int, seed: int) -> ReferenceI3D:
    """A ReferenceI3D with seeded random weights and batch-norm statistics."""
    torch.manual_seed(seed)
    net = ReferenceI3D(in_channels)
    # Batch-norm statistics from one batch of noise keep activations input-dependent through
    # the depth; random scales and shifts make a copy mistake visible.
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    for bn in bns:
        bn.momentum = 1.0
    net.train()
    with torch.no_grad():
        net.endpoints(torch.randn(2, in_channels, 8, 64, 64))
        for bn in bns:
            bn.momentum = 0.01
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.num_batches_tracked.fill_(seed + 7)
    return net.eval()
