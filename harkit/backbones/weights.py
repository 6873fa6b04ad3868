"""Weight sources: pretrained downloads (torchvision / timm), local files, and their tags."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from harkit.backbones.errors import BackboneError, WeightsLoadError, WeightsUnavailableError

__all__ = [
    "PRETRAINED_TAGS",
    "STATE_DICT_SUFFIXES",
    "StateDict",
    "cached_weights_file",
    "file_sha256",
    "harkit_weights_dir",
    "is_weights_file",
    "load_into",
    "load_state_dict_file",
    "state_dict_source",
    "timm_pretrained",
    "torchvision_state_dict",
    "weights_tag",
]

PRETRAINED_TAGS = ("imagenet", "kinetics")
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
_TAG_HASH_CHARS = 16


def is_weights_file(weights: str | os.PathLike[str]) -> bool:
    """True when ``weights`` names a state-dict file rather than a tag."""
    return str(weights) not in ("none", "default", *PRETRAINED_TAGS) and (
        Path(weights).suffix.lower() in STATE_DICT_SUFFIXES or Path(weights).is_file()
    )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_tag(weights: str | os.PathLike[str] | None) -> str:
    """Stable string naming a weight source, for feature-store keys.

    ``None``/``'none'`` -> ``'none'``; pretrained tags are returned as they are; a file becomes
    ``'file:<first 16 hex digits of its sha256>'`` so renaming or moving it keeps the key.
    """
    if weights is None or str(weights) == "none":
        return "none"
    if str(weights) in PRETRAINED_TAGS:
        return str(weights)
    path = Path(weights)
    if not path.is_file():
        raise WeightsLoadError(
            f"weights must be 'none', one of {list(PRETRAINED_TAGS)} or an existing file; "
            f"{str(weights)!r} is none of these"
        )
    return f"file:{file_sha256(path)[:_TAG_HASH_CHARS]}"


class StateDict(dict[str, torch.Tensor]):
    """A state_dict that remembers the file it was read from, so that a builder's error about
    its keys can name the file (``source`` is ``''`` when unknown)."""

    source: str = ""


def state_dict_source(state_dict: Mapping[str, torch.Tensor], default: str = "state_dict") -> str:
    """The file a state_dict was read from (`StateDict.source`), or ``default``."""
    return getattr(state_dict, "source", "") or default


def _unwrap(obj: object, path: Path) -> StateDict:
    # Training checkpoints often nest the weights ({'state_dict': ...} or {'model': ...}).
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsLoadError(f"{path} does not contain a state_dict (name -> tensor mapping)")
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    out = StateDict(state)
    out.source = str(path)
    return out


def load_state_dict_file(path: str | os.PathLike[str]) -> StateDict:
    """Read a ``.pt``/``.pth``/``.bin`` (torch.load, weights_only) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsLoadError(f"weights file not found: {path}")
    expected = "a state_dict saved with torch.save, or a .safetensors file"
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise WeightsLoadError(f"cannot read weights file {path}: {exc.strerror}") from None
    if not head:
        raise WeightsLoadError(f"weights file {path} is empty (0 bytes); expected {expected}")
    is_safetensors = path.suffix.lower() == ".safetensors"
    # torch.save writes a zip archive (or, before torch 1.6, a pickle: protocol byte 0x80)
    if not is_safetensors and not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise WeightsLoadError(
            f"weights file {path} is not a PyTorch checkpoint (neither a zip archive nor a "
            f"pickle: truncated or another format?); expected {expected}"
        )
    try:
        if is_safetensors:
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4"
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with disallowed objects, ...
        text = str(exc).strip()
        if "weights only load failed" in text.lower():  # torch's long advice is for trusted files
            reason = "it holds objects other than tensors and plain values"
        else:
            reason = text.splitlines()[0] if text else type(exc).__name__
        raise WeightsLoadError(f"cannot read weights file {path}: {reason}") from None
    return _unwrap(obj, path)


def _short(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    name: str,
    ignore_prefixes: Iterable[str] = (),
) -> nn.Module:
    """Load ``state_dict`` strictly, after dropping keys under ``ignore_prefixes`` (classifier,
    auxiliary heads) that the feature network does not have.

    Missing / unexpected keys and shape mismatches raise `WeightsLoadError` naming them.
    """
    own = model.state_dict()
    prefixes = tuple(ignore_prefixes)
    state = {k: v for k, v in state_dict.items() if k in own or not k.startswith(prefixes)}
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (file vs model): {_short(mismatched)}")
    if problems:
        raise WeightsLoadError(f"weights do not fit backbone {name!r}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model


def torchvision_state_dict(weights_name: str, *, backbone: str) -> dict[str, torch.Tensor]:
    """State dict of a torchvision weights enum member (e.g. ``'GoogLeNet_Weights.IMAGENET1K_V1'``),
    from the torch hub cache or downloaded into it.

    Offline, raises `WeightsUnavailableError` naming the file and the folder it belongs in.
    """
    from torchvision.models import get_weight

    try:
        url = get_weight(weights_name).url
    except (KeyError, ValueError, AttributeError) as exc:
        raise BackboneError(f"unknown torchvision weights {weights_name!r}") from exc
    filename = os.path.basename(urlparse(url).path)
    model_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(model_dir),
            map_location="cpu",
            progress=False,
            check_hash=False,
            weights_only=True,
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise WeightsUnavailableError(
            f"cannot get {weights_name} weights for backbone {backbone!r} ({exc}). "
            f"Download {url} and put {filename} into {model_dir}/ (torch.hub.get_dir() + "
            f"'/checkpoints'; set TORCH_HOME to move it), or pass weights=PATH to the file"
        ) from exc
    return dict(state)


def timm_pretrained(architecture: str, pretrained_tag: str, *, backbone: str) -> nn.Module:
    """``timm.create_model(architecture.tag, pretrained=True, num_classes=0)``, with offline
    failures turned into `WeightsUnavailableError` naming the Hugging Face file and cache."""
    import timm

    full = f"{architecture}.{pretrained_tag}" if pretrained_tag else architecture
    cfg = timm.models.get_pretrained_cfg(full)
    try:
        return timm.create_model(full, pretrained=True, num_classes=0)
    except Exception as exc:  # huggingface_hub / requests / urllib all raise different types
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__  # messages stay one line
        if cfg is not None and cfg.url and not cfg.hf_hub_id:  # timm fetches it with torch.hub
            filename = os.path.basename(urlparse(cfg.url).path)
            model_dir = Path(torch.hub.get_dir()) / "checkpoints"
            raise WeightsUnavailableError(
                f"cannot get timm weights {full} for backbone {backbone!r} ({reason}). "
                f"Download {cfg.url} and put {filename} into {model_dir}/ (torch.hub.get_dir() "
                f"+ '/checkpoints'; set TORCH_HOME to move it), or pass weights=PATH to the file"
            ) from exc
        hub_id = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else f"timm/{full}"
        try:
            from huggingface_hub.constants import HF_HUB_CACHE as cache
        except ImportError:  # pragma: no cover - timm depends on huggingface_hub
            cache = "~/.cache/huggingface/hub"
        folder = Path(cache) / ("models--" + hub_id.replace("/", "--"))
        raise WeightsUnavailableError(
            f"cannot get timm weights {full} for backbone {backbone!r} ({reason}). Download "
            f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors (older repos: "
            f"pytorch_model.bin) and pass weights=PATH to that file, or let huggingface_hub "
            f"cache it under {folder}/ (HF_HUB_CACHE) while online"
        ) from exc


def harkit_weights_dir() -> Path:
    """Folder of the weights harkit fetches itself (neither torchvision nor timm publish them):
    ``$HARKIT_CACHE/weights``, default ``~/.cache/harkit/weights``."""
    root = os.environ.get("HARKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "harkit") / "weights"


def cached_weights_file(filename: str, url: str, *, backbone: str, what: str) -> Path:
    """``harkit_weights_dir() / filename``, downloaded from ``url`` first if it is not there.

    Offline, raises `WeightsUnavailableError` naming the URL, the file and the folder it
    belongs in (the same advice as for torchvision weights).
    """
    folder = harkit_weights_dir()
    path = folder / filename
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Writes a temporary file and renames it: an interrupted download leaves nothing.
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError / HTTPError are OSErrors
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise WeightsUnavailableError(
            f"cannot get {what} for backbone {backbone!r} ({reason}). Download {url} and put "
            f"{filename} into {folder}/ ($HARKIT_CACHE/weights, default ~/.cache/harkit/weights), "
            f"or pass weights=PATH to the file"
        ) from exc
    return path
