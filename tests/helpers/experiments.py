"""Recipes and datasets for the experiment tests: one-epoch overrides, a recipe folder with
paper numbers and ablations, and a tiny UCF101 tree in the official layout."""

from __future__ import annotations

from pathlib import Path

from harkit.synth import write_video
from tests.helpers.frames import moving_square

#: Overrides for a one-epoch run of a features recipe on tiny synthetic clips.
TINY_RUN = [
    "input.sampling.num_frames=4",
    "head.hidden=8",
    "optim.epochs=1",
    "optim.batch_size=4",
    "optim.val_fraction=0",
]

UCF_CLASSES = ("ApplyEyeMakeup", "Archery")
# UCF101's splits test groups 1-7, 8-14 and 15-21: with these four every split has a
# test group and three training groups.
UCF_GROUPS = ("g01", "g08", "g15", "g22")
UCF_CLIPS = ("c01", "c02")


def build_ucf101(shared: Path, root: Path) -> tuple[Path, Path]:
    """Videos named exactly as the real split files list them, for a few classes and groups,
    and split files restricted to them (CRLF, class ids renumbered 1..n as classInd says)."""
    real = shared / "data" / "ucf101" / "ucfTrainTestlist"
    videos, ann = root / "UCF-101", root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    ids = {c: i for i, c in enumerate(UCF_CLASSES, 1)}

    def keep(name: str) -> bool:
        _, cls, group, clip = Path(name).stem.split("_")
        return cls in ids and group in UCF_GROUPS and clip in UCF_CLIPS

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
    assert len(names) == len(UCF_CLASSES) * len(UCF_GROUPS) * len(UCF_CLIPS)
    for seed, name in enumerate(sorted(names)):
        label = UCF_CLASSES.index(name.split("/")[0])
        write_video(videos / name, moving_square(label, seed), fps=8)
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
