from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harkit.backbones import (
    BackboneError,
    adapt_input_channels,
    build_i3d,
    create_backbone,
    inflate_batchnorm,
    inflate_conv2d,
    inflate_model,
)
from harkit.backbones.inflate import SamePadConv3d, SamePadMaxPool3d, WindowMeanPool3d


def _randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    # Default BN stats (mean 0, var 1, weight 1, bias 0) would hide a stats-copy bug.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def test_inflate_conv2d_weights_and_shapes():
    conv = nn.Conv2d(3, 5, kernel_size=7, stride=2, padding=3, bias=True)
    conv3d = inflate_conv2d(conv)
    assert conv3d.kernel_size == (7, 7, 7)
    assert conv3d.stride == (2, 2, 2)
    assert conv3d.padding == (0, 3, 3)  # time is padded by replication, not zeros
    assert torch.allclose(conv3d.weight.sum(dim=2), conv.weight, atol=1e-6)
    assert torch.equal(conv3d.bias, conv.bias)
    assert inflate_conv2d(conv, time_kernel=1, time_stride=1).kernel_size == (1, 7, 7)


@pytest.mark.parametrize("frames", [1, 2, 5, 8])
def test_inflated_stack_on_repeated_frame_equals_2d(frames: int):
    torch.manual_seed(0)
    net2d = nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.AvgPool2d(2),
    ).eval()
    _randomise_batchnorm(net2d, torch.Generator().manual_seed(1))
    net3d = inflate_model(net2d).eval()
    assert isinstance(net3d[1], nn.BatchNorm3d)
    assert isinstance(net2d[0], nn.Conv2d)  # the 2D model is left untouched
    frame = torch.randn(2, 3, 17, 17)
    clip = frame.unsqueeze(2).expand(-1, -1, frames, -1, -1)
    with torch.no_grad():
        ref = net2d(frame)
        out = net3d(clip)
    length = frames
    for _ in range(3):  # "same" length in time: ceil(T / 2) after each stride-2 layer
        length = -(-length // 2)
    assert out.shape[2] == length
    for t in range(out.shape[2]):  # every time step, including the edges
        assert torch.allclose(out[:, :, t], ref, atol=1e-5, rtol=1e-4)


def test_inflate_batchnorm_copies_statistics():
    bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)
    _randomise_batchnorm(bn, torch.Generator().manual_seed(0))
    bn3d = inflate_batchnorm(bn)
    assert bn3d.eps == 1e-3 and bn3d.momentum == 0.01
    for key, value in bn.state_dict().items():
        assert torch.equal(bn3d.state_dict()[key], value)


def test_unsupported_layers_are_refused():
    with pytest.raises(BackboneError):
        inflate_model(nn.Sequential(nn.Conv2d(3, 3, 3), nn.Dropout2d()))
    with pytest.raises(BackboneError):
        inflate_conv2d(nn.Conv2d(3, 3, 3, padding="same"))
    with pytest.raises(BackboneError, match="nope"):
        inflate_model(nn.Sequential(nn.Conv2d(3, 3, 3)), {"nope": (1, 1)})


def test_adapt_input_channels_averages_rgb():
    conv = nn.Conv2d(3, 4, 3)
    flow = adapt_input_channels(conv, 2)
    assert flow.in_channels == 2 and flow.weight.shape == (4, 2, 3, 3)
    mean = conv.weight.mean(dim=1)
    assert torch.allclose(flow.weight[:, 0], mean) and torch.allclose(flow.weight[:, 1], mean)
    assert flow(torch.randn(1, 2, 8, 8)).shape == (1, 4, 6, 6)


@pytest.fixture(scope="module")
def googlenet_2d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full torchvision GoogLeNet state_dict (aux heads, fc) with fixed random weights."""
    from torchvision.models import googlenet

    torch.manual_seed(0)
    net = googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=False)
    # Calibrate BN statistics on noise so activations stay input-dependent through the depth
    # (with the default statistics a random GoogLeNet's output barely depends on its input).
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.randn(2, 3, 160, 160))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    net.eval()
    path = tmp_path_factory.mktemp("weights") / "googlenet_random.pth"
    torch.save(net.state_dict(), path)
    return path


def test_i3d_on_repeated_frame_equals_googlenet(googlenet_2d_file: Path):
    """The I3D property: a 'boring' video of one frame gives the 2D network's features."""
    g2d = create_backbone("googlenet", weights=googlenet_2d_file)
    i3d = create_backbone("i3d", weights=googlenet_2d_file)  # a 2D file is inflated
    layers = ["inception4e"]
    torch.manual_seed(1)
    frame = torch.randn(1, 3, 224, 224)
    clip = frame.unsqueeze(2).expand(-1, -1, 6, -1, -1).contiguous()
    with torch.no_grad():
        ref = g2d.with_layers(layers)(frame)
        out = i3d.with_layers(layers)(clip)
        moving = i3d(torch.randn(1, 3, 6, 224, 224))
    assert out["pooled"].shape == (1, 1024)
    for key in ("pooled", *layers):
        scale = ref[key].abs().max()
        assert torch.allclose(out[key], ref[key], atol=1e-4 * scale, rtol=1e-4), key
    # Sanity: the features do depend on the input, so the comparison is not trivially true.
    assert (moving - ref["pooled"]).abs().max() > 1e-2 * ref["pooled"].abs().max()


def test_i3d_flow_from_2d_file(googlenet_2d_file: Path):
    flow = create_backbone("i3d_flow", weights=googlenet_2d_file)
    stem = flow.net.conv1.conv.weight
    assert stem.shape == (64, 2, 7, 7, 7)
    assert torch.allclose(stem[:, 0], stem[:, 1])
    rgb_stem = torch.load(googlenet_2d_file, weights_only=True)["conv1.conv.weight"]
    assert torch.allclose(stem.sum(dim=2)[:, 0], rgb_stem.mean(dim=1), atol=1e-6)
    assert flow(torch.randn(1, 2, 2, 64, 64)).shape == (1, 1024)


@pytest.mark.parametrize("frames", [1, 3])
def test_i3d_accepts_short_segments(frames: int):
    model = create_backbone("i3d")
    with torch.no_grad():
        assert model(torch.randn(1, 3, frames, 64, 64)).shape == (1, 1024)


def test_build_i3d_structure():
    net = build_i3d()
    assert net.conv1.conv.kernel_size == (7, 7, 7) and net.conv1.conv.stride == (2, 2, 2)
    assert net.maxpool1.kernel_size == (1, 3, 3)
    assert net.maxpool3.kernel_size == (3, 3, 3) and net.maxpool3.stride == (2, 2, 2)
    assert net.maxpool4.kernel_size == (2, 2, 2)
    assert net.inception3a.branch2[1].conv.kernel_size == (3, 3, 3)
    assert not any(isinstance(m, nn.Conv2d | nn.BatchNorm2d) for m in net.modules())


def test_same_pad_conv3d_pads_like_tensorflow():
    torch.manual_seed(0)
    conv = SamePadConv3d(2, 4, kernel_size=(3, 7, 7), stride=2, bias=False)
    x = torch.randn(1, 2, 5, 10, 11)
    # TF "same": output ceil(n / 2); total pad (out - 1) * 2 + k - n, the odd one at the end:
    # T 5 -> 3, pad 1 + 1; H 10 -> 5, pad 2 + 3; W 11 -> 6, pad 3 + 3.
    expected = F.conv3d(F.pad(x, (3, 3, 2, 3, 1, 1)), conv.weight, stride=2)
    out = conv(x)
    assert out.shape == (1, 4, 3, 5, 6)
    assert torch.allclose(out, expected, atol=1e-6)


def test_same_pad_max_pool3d_pads_like_tensorflow():
    pool = SamePadMaxPool3d((1, 3, 3), stride=(1, 2, 2))
    x = torch.rand(1, 3, 2, 4, 5)  # non-negative, like the ReLU outputs I3D pools
    # H 4 -> 2, pad 0 + 1; W 5 -> 3, pad 1 + 1; time untouched.
    expected = F.max_pool3d(F.pad(x, (1, 1, 0, 1, 0, 0)), (1, 3, 3), (1, 2, 2))
    out = pool(x)
    assert out.shape == (1, 3, 2, 2, 3)
    assert torch.equal(out, expected)


def test_window_mean_pool3d_is_the_mean_of_window_averages():
    pool = WindowMeanPool3d((2, 7, 7))
    torch.manual_seed(0)
    exact = torch.randn(2, 3, 2, 7, 7)
    assert torch.allclose(pool(exact), exact.mean(dim=(2, 3, 4), keepdim=True), atol=1e-6)
    larger = torch.randn(1, 3, 3, 7, 9)
    windows = [
        larger[:, :, t : t + 2, :, w : w + 7].mean(dim=(2, 3, 4))
        for t in range(2)
        for w in range(3)
    ]
    out = pool(larger)
    assert out.shape == (1, 3, 1, 1, 1)
    assert torch.allclose(out.flatten(1), torch.stack(windows).mean(dim=0), atol=1e-6)
    assert not torch.allclose(out.flatten(1), larger.mean(dim=(2, 3, 4)), atol=1e-4)
    small = torch.randn(1, 3, 1, 2, 3)  # smaller than the kernel: a global average
    assert torch.allclose(pool(small), small.mean(dim=(2, 3, 4), keepdim=True), atol=1e-6)
