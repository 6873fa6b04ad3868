"""Any timm or torchvision classification model as a backbone: ``timm/<model>[.<tag>]`` and
``torchvision/<model>``.

Input size, mean and std come from the model's own pretrained config (timm) or default
weights enum (torchvision), as the preprocessing of its ``imagenet`` weights entry (frames are
resized to the crop, bilinear, like every harkit backbone); the feature size is probed with a forward pass on the
meta device (no memory, no compute). The classifier is removed: timm's ``num_classes=0``,
torchvision's last ``nn.Linear``. ``imagenet`` names the model's default pretrained weights.
Intermediate layers are not offered (``layers`` is empty): timm's stage outputs are not all
channels-first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from harkit.backbones.errors import BackboneError, UnknownBackboneError
from harkit.backbones.spec import (
    BackboneSpec,
    Preprocessing,
    WeightsSource,
    register_backbone_family,
)
from harkit.backbones.weights import load_into, timm_pretrained, torchvision_state_dict

__all__ = ["timm_spec", "torchvision_spec"]

IMAGENET = "imagenet"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _probe_dim(make: Callable[[], nn.Module], shape: tuple[int, ...], name: str) -> int:
    """Feature size of ``make()``'s output for one input of ``shape``."""
    x = torch.empty(1, *shape, device="meta")
    with torch.random.fork_rng(devices=[]):  # resolving a name must not move the global RNG
        try:
            with torch.device("meta"):
                net = make()
        except Exception:  # a constructor that reads tensor values on init (RegNet)
            net = make().to("meta")
    try:
        with torch.no_grad():
            out = net.eval()(x)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"backbone {name!r}: cannot run it on {tuple(shape)} ({reason})"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BackboneError(f"backbone {name!r} does not pool to a feature vector (got {what})")
    return int(out.shape[1])


# ---------------------------------------------------------------------------------------------
# timm


def _timm_parts(spec: BackboneSpec) -> tuple[str, str]:
    import timm

    return timm.models.split_model_name_tag(spec.name.removeprefix("timm/"))


def build_timm(
    spec: BackboneSpec, tag: str | None, state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    """A timm backbone without its classifier: pretrained weights by ``tag``, or random,
    then ``state_dict`` (a local file) with the classifier keys of timm's config dropped."""
    import timm

    if tag is not None:
        entry = spec.weights[tag]
        arch, _, pretrained_tag = entry.source.partition(".")
        return timm_pretrained(arch, pretrained_tag, backbone=spec.name, sha256=entry.sha256)
    arch, _ = _timm_parts(spec)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    if state_dict is not None:
        classifier = model.pretrained_cfg.get("classifier") or ()
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        load_into(model, state_dict, name=spec.name, ignore_prefixes=[f"{h}." for h in heads])
    return model


def timm_spec(model: str) -> BackboneSpec:
    """Spec of ``timm/<model>``: ``model`` is a timm architecture, optionally ``.<tag>``."""
    import timm
    from timm.data import resolve_data_config

    name = f"timm/{model}"
    arch, tag = timm.models.split_model_name_tag(model)
    if not timm.is_model(arch):
        raise UnknownBackboneError(
            f"unknown backbone {name!r}: timm has no model {arch!r} (timm.list_models() names them)"
        )
    try:
        cfg = timm.models.get_pretrained_cfg(model)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        cfg = None
    if tag and cfg is None:
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
        raise UnknownBackboneError(
            f"unknown backbone {name!r}: timm model {arch!r} has no pretrained tag {tag!r}; "
            f"its tags: {', '.join(tags) or '(none)'}"
        )
    data = resolve_data_config({}, pretrained_cfg=cfg.to_dict() if cfg is not None else {})
    channels, height, width = data["input_size"]
    has_weights = cfg is not None and bool(cfg.hf_hub_id or cfg.url or cfg.file)
    dim = _probe_dim(
        lambda: timm.create_model(arch, pretrained=False, num_classes=0),
        (channels, height, width),
        name,
    )
    prep = Preprocessing(int(width), tuple(data["mean"]), tuple(data["std"]))
    return BackboneSpec(
        name=name,
        kind="frame",
        preprocessing=prep,
        feature_dim=dim,
        in_channels=int(channels),
        builder=build_timm,
        weights={IMAGENET: WeightsSource(f"{arch}.{cfg.tag}", prep)} if has_weights else {},
        default_weights=IMAGENET if has_weights else "none",
        source="timm",
        description=f"timm {arch}"
        + (f" ({cfg.tag} weights)" if has_weights else " (no pretrained weights)")
        + f", pooled {dim}-d, {width} px",
    )


# ---------------------------------------------------------------------------------------------
# torchvision

# The Inception models: aux heads off (a trainable encoder would return them), and
# transform_input on, as torchvision sets it for its pretrained weights, so the ImageNet
# mean/std of their transforms() is right for them and for random init.
_TV_KWARGS: dict[str, dict[str, bool]] = {
    "googlenet": {"aux_logits": False, "transform_input": True, "init_weights": True},
    "inception_v3": {"aux_logits": False, "transform_input": True, "init_weights": True},
}
_TV_AUX = ("aux1.", "aux2.", "AuxLogits.")


def _tv_model_name(spec: BackboneSpec) -> str:
    return spec.name.removeprefix("torchvision/")


def _tv_classifier(model: nn.Module, name: str) -> str:
    """Qualified name of the classifier: the last ``nn.Linear`` registered."""
    linears = [key for key, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise BackboneError(
            f"backbone 'torchvision/{name}': no nn.Linear classifier to remove (e.g. "
            "SqueezeNet's is a convolution); use a timm/ model or a registered backbone"
        )
    return linears[-1]


def _tv_headless(name: str) -> tuple[nn.Module, str]:
    """torchvision ``name`` without its classifier, and the classifier's name."""
    from torchvision.models import get_model

    model = get_model(name, weights=None, **_TV_KWARGS.get(name, {}))
    classifier = _tv_classifier(model, name)
    parent, _, child = classifier.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
    return model, classifier


def _build_torchvision(
    spec: BackboneSpec, tag: str | None, state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    name = _tv_model_name(spec)
    if tag is not None:  # before building: an offline failure should be quick
        state_dict = torchvision_state_dict(spec.weights[tag].source, backbone=spec.name)
    model, classifier = _tv_headless(name)
    if state_dict is not None:
        load_into(model, state_dict, name=spec.name, ignore_prefixes=(f"{classifier}.", *_TV_AUX))
    return model


def torchvision_spec(model: str) -> BackboneSpec:
    """Spec of ``torchvision/<model>``, a torchvision classification model."""
    import torchvision.models as tvm

    name = f"torchvision/{model}"
    if model not in tvm.list_models(module=tvm):
        raise UnknownBackboneError(
            f"unknown backbone {name!r}: torchvision has no classification model {model!r} "
            "(torchvision.models.list_models(module=torchvision.models) names them)"
        )
    try:
        default = tvm.get_model_weights(model).DEFAULT
    except (ValueError, KeyError, AttributeError):
        default = None
    weights: dict[str, WeightsSource] = {}
    if default is not None:
        transform = default.transforms()
        size = int(transform.crop_size[0])
        prep = Preprocessing(size, tuple(transform.mean), tuple(transform.std))
        enum = f"{type(default).__name__}.{default.name}"
        weights = {IMAGENET: WeightsSource(enum, prep, url=default.url)}
    else:
        prep = Preprocessing(224, _IMAGENET_MEAN, _IMAGENET_STD)
    size = prep.input_size
    dim = _probe_dim(lambda: _tv_headless(model)[0], (3, size, size), name)
    return BackboneSpec(
        name=name,
        kind="frame",
        preprocessing=prep,
        feature_dim=dim,
        builder=_build_torchvision,
        weights=weights,
        default_weights=IMAGENET if weights else "none",
        source="torchvision",
        description=f"torchvision {model}"
        + (f" ({weights[IMAGENET].source})" if weights else " (no pretrained weights)")
        + f", classifier removed, {dim}-d, {size} px",
    )


register_backbone_family("timm", timm_spec)
register_backbone_family("torchvision", torchvision_spec)
