"""Weight sources: pretrained downloads (torchvision / timm), local files, and their tags."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

if TYPE_CHECKING:
    from harkit.backbones.spec import WeightsSource

from harkit.backbones.errors import (
    BackboneError,
    WeightsHashError,
    WeightsLoadError,
    WeightsUnavailableError,
)

__all__ = [
    "PRETRAINED_TAGS",
    "STATE_DICT_SUFFIXES",
    "StateDict",
    "cached_file_sha256",
    "cached_weights_file",
    "check_file_hash",
    "checked_download",
    "download_weights",
    "expected_file_hash",
    "file_sha256",
    "harkit_weights_dir",
    "hub_state_dict",
    "hub_weights_file",
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
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")  # a weights tag: a word, never a path


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


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def cached_file_sha256(path: str | os.PathLike[str]) -> str:
    """`file_sha256`, computed once per file version (path, size, mtime) in a process."""
    stat = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def weights_tag(weights: str | os.PathLike[str] | None) -> str:
    """Stable string naming a weight source, for feature-store keys.

    ``None``/``'none'`` -> ``'none'``; tags (``imagenet``, ``kinetics``, or any plain word a
    registered backbone names its weights with) are returned as they are; a file becomes
    ``'file:<first 16 hex digits of its sha256>'`` so renaming or moving it keeps the key.
    """
    if weights is None or str(weights) == "none":
        return "none"
    text = str(weights)
    path = Path(weights)
    if text in PRETRAINED_TAGS or (_TAG.fullmatch(text) and not path.is_file()):
        return text
    if not path.is_file():
        raise WeightsLoadError(
            f"weights must be 'none', one of {list(PRETRAINED_TAGS)} or an existing file; "
            f"{str(weights)!r} is none of these"
        )
    return f"file:{cached_file_sha256(path)[:_TAG_HASH_CHARS]}"


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


_TORCH_HASH_ERROR = re.compile(r'invalid hash value \(expected "([0-9a-f]+)", got "([0-9a-f]+)"\)')


def _hash_refusal(filename: str, url: str, expected: str, actual: str, *, backbone: str) -> str:
    kind = "SHA-256" if len(expected) == 64 else "SHA-256 prefix"
    return (
        f"refused weights file {filename} for backbone {backbone!r} downloaded from {url}: "
        f"expected {kind} {expected}, got {actual}; the download was removed (a corrupt or "
        f"tampered file: retry, or fetch it yourself and check its SHA-256)"
    )


def _torch_hash_error(exc: BaseException, filename: str, url: str, *, backbone: str) -> None:
    """Raise `WeightsHashError` when ``exc`` is torch.hub's failed hash check."""
    match = _TORCH_HASH_ERROR.search(str(exc))
    if match is not None:
        expected, actual = match.groups()
        raise WeightsHashError(
            _hash_refusal(filename, url, expected, actual, backbone=backbone)
        ) from None


def _torchvision_url(weights_name: str) -> str:
    from torchvision.models import get_weight

    try:
        return str(get_weight(weights_name).url)
    except (KeyError, ValueError, AttributeError) as exc:
        raise BackboneError(f"unknown torchvision weights {weights_name!r}") from exc


def hub_state_dict(url: str, *, backbone: str, what: str) -> dict[str, torch.Tensor]:
    """The state_dict at ``url``, from the torch hub cache or downloaded into it, the download
    checked against the SHA-256 prefix in the file name (``name-<hash>.ext``, the convention
    of torchvision's and timm's URLs; ``torch.hub.load_state_dict_from_url(check_hash=True)``).
    A file with another hash is refused (`WeightsHashError`) and removed; a name without a
    hash is not downloaded; offline, `WeightsUnavailableError` names the file and its folder.
    A file already in the cache (put there by hand, or downloaded before) is used as it is."""
    filename = os.path.basename(urlparse(url).path)
    model_dir = Path(torch.hub.get_dir()) / "checkpoints"
    if not (model_dir / filename).exists() and expected_file_hash(filename) is None:
        raise WeightsUnavailableError(
            f"cannot check {what} for backbone {backbone!r}: {filename} carries no SHA-256 "
            f"prefix, so harkit does not download it. Download {url}, check it, and put "
            f"{filename} into {model_dir}/, or pass weights=PATH to the file"
        )
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(model_dir),
            map_location="cpu",
            progress=False,
            check_hash=True,
            weights_only=True,
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        _torch_hash_error(exc, filename, url, backbone=backbone)
        raise WeightsUnavailableError(
            f"cannot get {what} for backbone {backbone!r} ({exc}). "
            f"Download {url} and put {filename} into {model_dir}/ (torch.hub.get_dir() + "
            f"'/checkpoints'; set TORCH_HOME to move it), or pass weights=PATH to the file"
        ) from exc
    return dict(state)


def torchvision_state_dict(weights_name: str, *, backbone: str) -> dict[str, torch.Tensor]:
    """State dict of a torchvision weights enum member (e.g. ``'GoogLeNet_Weights.IMAGENET1K_V1'``),
    from the torch hub cache or downloaded into it with its hash checked (`hub_state_dict`).

    Offline, raises `WeightsUnavailableError` naming the file and the folder it belongs in.
    """
    return hub_state_dict(
        _torchvision_url(weights_name), backbone=backbone, what=f"{weights_name} weights"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sha256_hex(text: str | None) -> str | None:
    text = (text or "").strip('"').lower()
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def hub_weights_file(
    hub_id: str,
    filenames: Iterable[str] = ("model.safetensors", "pytorch_model.bin"),
    *,
    sha256: str | None = None,
    backbone: str,
) -> Path:
    """The first of ``filenames`` in the Hugging Face repo ``hub_id`` (``repo[@revision]``):
    from the huggingface_hub cache, or downloaded into it and checked against ``sha256`` (the
    registry's), else the SHA-256 the Hub records for the file (its LFS object id). A file with
    another hash is refused (`WeightsHashError`) and removed. Network failures propagate."""
    import huggingface_hub as hub
    from huggingface_hub.errors import EntryNotFoundError

    repo, _, revision = hub_id.partition("@")
    names = list(filenames)
    for name in names:
        cached = hub.try_to_load_from_cache(repo, name, revision=revision or None)
        if isinstance(cached, str):
            return Path(cached)
    for name in names:
        url = hub.hf_hub_url(repo, name, revision=revision or None)
        try:
            meta = hub.get_hf_file_metadata(url)
        except EntryNotFoundError:
            continue
        expected = sha256 or _sha256_hex(meta.etag)
        if expected is None:
            raise WeightsUnavailableError(
                f"cannot check {url} for backbone {backbone!r}: neither harkit nor the Hub "
                f"records its SHA-256, so harkit does not download it. Download it, check it, "
                f"and pass weights=PATH to the file"
            )
        path = Path(hub.hf_hub_download(repo, name, revision=revision or None))
        actual = file_sha256(path)
        if actual != expected:
            blob = path.resolve()
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise WeightsHashError(_hash_refusal(name, url, expected, actual, backbone=backbone))
        return path
    raise WeightsUnavailableError(
        f"the Hugging Face repo {repo} has none of {', '.join(names)} for backbone {backbone!r}"
    )


def timm_pretrained(
    architecture: str, pretrained_tag: str, *, backbone: str, sha256: str | None = None
) -> nn.Module:
    """``timm.create_model(architecture.tag, pretrained=True, num_classes=0)`` from a weights
    file fetched and hash-checked first (`hub_weights_file`; a torch.hub URL like torchvision's
    weights); offline failures become `WeightsUnavailableError` naming the file and cache."""
    import timm

    full = f"{architecture}.{pretrained_tag}" if pretrained_tag else architecture
    cfg = timm.models.get_pretrained_cfg(full)
    if cfg is not None and cfg.url and not cfg.hf_hub_id:  # timm fetches it with torch.hub
        filename = os.path.basename(urlparse(cfg.url).path)
        model_dir = Path(torch.hub.get_dir()) / "checkpoints"
        path = checked_download(
            cfg.url,
            model_dir / filename,
            sha256=sha256,
            backbone=backbone,
            what=f"timm weights {full}",
            folder_hint="torch.hub.get_dir() + '/checkpoints'; set TORCH_HOME to move it",
        )
    else:
        hub_id = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else f"timm/{full}"
        filenames = [cfg.hf_hub_filename] if cfg is not None and cfg.hf_hub_filename else None
        try:
            path = hub_weights_file(
                hub_id, *([filenames] if filenames else []), sha256=sha256, backbone=backbone
            )
        except (WeightsHashError, WeightsUnavailableError):
            raise
        except Exception as exc:  # huggingface_hub / requests / httpx raise different types
            try:
                from huggingface_hub.constants import HF_HUB_CACHE as cache
            except ImportError:  # pragma: no cover - timm depends on huggingface_hub
                cache = "~/.cache/huggingface/hub"
            folder = Path(cache) / ("models--" + hub_id.partition("@")[0].replace("/", "--"))
            raise WeightsUnavailableError(
                f"cannot get timm weights {full} for backbone {backbone!r} ({_one_line(exc)}). "
                f"Download https://huggingface.co/{hub_id}/resolve/main/model.safetensors (older "
                f"repos: pytorch_model.bin) and pass weights=PATH to that file, or let "
                f"huggingface_hub cache it under {folder}/ (HF_HUB_CACHE) while online"
            ) from exc
    try:
        return timm.create_model(
            full, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
        )
    except Exception as exc:  # a cached file that timm cannot read
        raise WeightsLoadError(
            f"cannot load timm weights {full} from {path} for backbone {backbone!r}: "
            f"{_one_line(exc)}"
        ) from None


def harkit_weights_dir() -> Path:
    """Folder of the weights harkit fetches itself (neither torchvision nor timm publish them):
    ``$HARKIT_CACHE/weights``, default ``~/.cache/harkit/weights``."""
    root = os.environ.get("HARKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "harkit") / "weights"


def expected_file_hash(filename: str, sha256: str | None = None) -> str | None:
    """What a download of ``filename`` must hash to: ``sha256`` (full hex), else the SHA-256
    prefix in the name (``name-<hash>.ext``), else ``None`` (it cannot be checked)."""
    if sha256:
        return sha256.lower()
    match = torch.hub.HASH_REGEX.search(filename)
    return match.group(1) if match and len(match.group(1)) >= 8 else None


def checked_download(
    url: str,
    path: Path,
    *,
    sha256: str | None,
    backbone: str,
    what: str,
    folder_hint: str = "$HARKIT_CACHE/weights, default ~/.cache/harkit/weights",
) -> Path:
    """``path``, downloaded from ``url`` first if it is not there, its SHA-256 checked against
    ``sha256`` or the prefix in the file name (`expected_file_hash`) before it lands there.

    A file with another hash is refused in one line (`WeightsHashError`: file, expected and
    actual hash) and nothing is left behind. A URL that cannot be checked is not downloaded,
    and a failed download raises `WeightsUnavailableError`; both say which file to put where.
    A file already in place is used as it is.
    """
    filename, folder = path.name, path.parent
    if path.is_file():
        return path
    advice = (
        f"Download {url} and put {filename} into {folder}/ ({folder_hint}), "
        f"or pass weights=PATH to the file"
    )
    expected = expected_file_hash(filename, sha256)
    if expected is None:
        raise WeightsUnavailableError(
            f"cannot get {what} for backbone {backbone!r}: harkit has no SHA-256 to check "
            f"{filename} against, so it does not download it. {advice} (check it first)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Writes a temporary file, hashes it on the way and renames it only when the hash is
        # right: an interrupted or refused download leaves nothing.
        torch.hub.download_url_to_file(url, str(path), hash_prefix=expected, progress=False)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError / HTTPError are OSErrors
        _torch_hash_error(exc, filename, url, backbone=backbone)
        raise WeightsUnavailableError(
            f"cannot get {what} for backbone {backbone!r} ({_one_line(exc)}). {advice}"
        ) from exc
    return path


def cached_weights_file(
    filename: str, url: str, *, backbone: str, what: str, sha256: str | None = None
) -> Path:
    """``harkit_weights_dir() / filename``, downloaded from ``url`` first if it is not there
    and checked against ``sha256`` (`checked_download`).

    Offline, raises `WeightsUnavailableError` naming the URL, the file and the folder it
    belongs in (the same advice as for torchvision weights).
    """
    return checked_download(
        url, harkit_weights_dir() / filename, sha256=sha256, backbone=backbone, what=what
    )


def download_weights(entry: WeightsSource, *, backbone: str, what: str = "") -> Path:
    """The file of a `WeightsSource` with a ``url``: ``harkit_weights_dir() / entry.filename``,
    downloaded first if it is not there, checked against ``entry.sha256`` or the SHA-256 prefix
    in its file name (`checked_download`). For builders of registered backbones."""
    if not entry.url:
        raise BackboneError(f"backbone {backbone!r}: weights {entry.source!r} have no url")
    return cached_weights_file(
        entry.filename,
        entry.url,
        backbone=backbone,
        what=what or f"weights {entry.filename}",
        sha256=entry.sha256,
    )


def check_file_hash(
    path: str | os.PathLike[str], sha256: str, *, backbone: str, advice: str
) -> Path:
    """``path`` when its SHA-256 is ``sha256`` (checked once per file version in a process),
    else a one-line `WeightsHashError` naming the file, both hashes and ``advice``."""
    actual = cached_file_sha256(path)
    if actual != sha256.lower():
        raise WeightsHashError(
            f"refused weights file {path} for backbone {backbone!r}: expected SHA-256 "
            f"{sha256.lower()}, got {actual}; {advice}"
        )
    return Path(path)
