"""Fixtures for experiment tests: the training tests' in-memory feature data (``toy``), a
small features recipe, and a tiny UCF101 tree in the official layout (``ucf``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harkit.models.builder import feature_dims
from harkit.models.recipe import Recipe, load_recipe
from harkit.synth import write_video
from tests.train.conftest import toy  # shared with the training tests

#: Overrides for a one-epoch run of a features recipe on tiny synthetic clips.
TINY_RUN = [
    "input.sampling.num_frames=4",
    "head.hidden=8",
    "optim.epochs=1",
    "optim.batch_size=4",
    "optim.val_fraction=0",
]


def small_recipe(*extra: str, head: str = "recurrent") -> Recipe:
    """fusion-gru on a resnet18 layer1 (random weights), a 16-unit head, 2 epochs."""
    return load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            f"head.type={head}", "head.hidden=[16]", "head.fc=[]",
            "optim.batch_size=8", "optim.epochs=2", "optim.lr=0.01", *extra,
        ],
    )  # fmt: skip


@pytest.fixture
def small() -> Callable[..., Recipe]:
    return small_recipe


@pytest.fixture
def dim() -> Callable[[Recipe], int]:
    """The head's input size for a features recipe."""

    def dim_of(recipe: Recipe) -> int:
        return sum(feature_dims(recipe))

    return dim_of


CLASSES = ("ApplyEyeMakeup", "Archery")
# UCF101's splits test groups 1-7, 8-14 and 15-21: with these four every split has a
# test group and three training groups.
GROUPS = ("g01", "g08", "g15", "g22")
CLIPS = ("c01", "c02")


def _frames(label: int, seed: int) -> np.ndarray:
    """8 frames of 32x32: a bright square moving right (class 0) or left (class 1)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (8, 32, 32, 3), dtype=np.uint8)
    for t in range(8):
        x = 2 + 3 * t if label == 0 else 26 - 3 * t
        frames[t, 12:20, x : x + 6] = 230
    return frames


def build_ucf101(shared: Path, root: Path) -> tuple[Path, Path]:
    """Videos named exactly as the real split files list them, for a few classes and groups,
    and split files restricted to them (CRLF, class ids renumbered 1..n as classInd says)."""
    real = shared / "data" / "ucf101" / "ucfTrainTestlist"
    videos, ann = root / "UCF-101", root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    ids = {c: i for i, c in enumerate(CLASSES, 1)}

    def keep(name: str) -> bool:
        _, cls, group, clip = Path(name).stem.split("_")
        return cls in ids and group in GROUPS and clip in CLIPS

    (ann / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for c, i in ids.items()).encode())
    names: set[str] = set()
    for k in (1, 2, 3):
        train = [line.split()[0] for line in (real / f"trainlist0{k}.txt").read_text().splitlines()]
        test = [line.strip() for line in (real / f"testlist0{k}.txt").read_text().splitlines()]
        train, test = [n for n in train if n and keep(n)], [n for n in test if n and keep(n)]
        assert train and test, f"split {k} needs train and test videos"
        names.update(train + test)
        lines = [f"{n} {ids[n.split('/')[0]]}" for n in train]
        (ann / f"trainlist0{k}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
        (ann / f"testlist0{k}.txt").write_bytes(("\r\n".join(test) + "\r\n").encode())
    assert len(names) == len(CLASSES) * len(GROUPS) * len(CLIPS)
    for seed, name in enumerate(sorted(names)):
        write_video(videos / name, _frames(CLASSES.index(name.split("/")[0]), seed), fps=8)
    return videos, ann


def write_recipes(folder: Path) -> Path:
    """A weight-free recipe with paper numbers, and one ablation of it."""
    (folder / "ablations").mkdir(parents=True)
    recipe = folder / "tiny-gru.yaml"
    recipe.write_text(
        "base: synthetic-gru\n"
        "name: tiny-gru\n"
        "reported: {ucf101_top1: 97.97, hmdb51_top1: 73.12}\n"
        "input: {sampling: {num_frames: 8}}\n"
        "head: {hidden: 16}\n"
        "optim: {epochs: 1, batch_size: 4}\n"
    )
    (folder / "ablations" / "tiny-lstm.yaml").write_text(
        "base: ../tiny-gru.yaml\n"
        "name: tiny-lstm\n"
        "reported: {ucf101_split1_top1: 90.36}\n"
        "head: {cell: lstm}\n"
    )
    (folder / "ablations" / "other.yaml").write_text("base: synthetic-gru\nname: other\n")
    return recipe


@pytest.fixture
def ucf(shared_dir, tmp_path):
    videos, ann = build_ucf101(shared_dir, tmp_path / "data")
    return videos, ann, write_recipes(tmp_path / "recipes")


__all__ = ["build_ucf101", "dim", "small", "small_recipe", "toy", "ucf", "write_recipes"]
