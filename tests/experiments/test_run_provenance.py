"""A run knows its data: absolute locations, a fingerprint, and the videos it trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harkit.data.datasets import DatasetConfig, DatasetError
from harkit.experiments import evaluate_run
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig, render_dataset
from harkit.train import train
from harkit.train.run import RunError
from tests.helpers.experiments import TINY_RUN as TINY


def _synth(root: Path, actors: int, test_actors: int = 1) -> Path:
    config = SynthConfig(
        classes=["move_right", "move_left"],
        num_actors=actors,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=test_actors,
    )
    return render_dataset(root, config)


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A run trained with relative paths from ``tmp_path/work``; returns (run, manifest)."""
    work = tmp_path / "work"
    manifest = _synth(work / "videos", actors=4)
    monkeypatch.chdir(work)
    run = work / "run"
    train(
        load_recipe("synthetic-gru", TINY),
        DatasetConfig(root=Path("videos/manifest.csv")),
        Path("run"),
        store=Path("store"),
        progress=False,
    )
    return run, manifest


def test_evaluate_from_another_folder_uses_the_recorded_data(trained, tmp_path, monkeypatch):
    run, _ = trained
    info = json.loads((run / "run.json").read_text())
    assert Path(info["dataset_config"]["root"]).is_absolute()
    assert Path(info["store"]).is_absolute()
    assert info["videos"]["count"] == 8 and len(info["videos"]["fingerprint"]) == 16
    # a decoy dataset at the same relative path, where `evaluate` is now run from
    elsewhere = tmp_path / "elsewhere"
    _synth(elsewhere / "videos", actors=6, test_actors=3)
    monkeypatch.chdir(elsewhere)
    result = evaluate_run(run)
    assert result.clip.num_samples == 2  # the original test actor's 2 clips, not the decoy's 6


def test_changed_data_at_the_recorded_location_is_refused(trained):
    run, manifest = trained
    rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join(rows[:-1]) + "\n")  # one video fewer than at training
    with pytest.raises(RunError, match=r"not the one this run trained on \(7 videos there now, 8"):
        evaluate_run(run)


def test_evaluating_on_trained_videos_is_refused_or_marked(trained):
    run, manifest = trained
    trained = json.loads((run / "trained_videos.json").read_text())
    assert len(trained["ids"]) == len(trained["paths"]) == 6  # 3 training actors x 2 classes
    assert trained["groups"] == ["a01", "a02", "a03"]
    # another split of the same videos: its test set holds videos the run trained on
    other = DatasetConfig(root=manifest.parent, kind="folder", test_fraction=0.5, seed=3)
    with pytest.raises(DatasetError, match="were used to train"):
        evaluate_run(run, other)
    leaky = other.model_copy(update={"allow_leakage": True})
    evaluate_run(run, leaky)
    report = (run / "report" / "report.md").read_text()
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert "LEAKAGE:" in report and "LEAKAGE:" in json.dumps(metrics)


def test_a_training_person_or_a_symlinked_video_in_the_test_set_is_leakage(trained, tmp_path):
    run, manifest = trained
    rows = [r.split(",") for r in manifest.read_text().splitlines()]
    header, body = rows[0], rows[1:]
    # another manifest: one clip of a training actor as the test set (a person seen in training)
    other = manifest.parent / "other.csv"
    train_row = next(r for r in body if r[header.index("split")] == "train")
    test_rows = [r for r in body if r[header.index("split")] == "test"]
    fresh = [*train_row]
    fresh[header.index("split")] = "test"
    lines = [
        header,
        *[
            [*r[: header.index("split")], "train", *r[header.index("split") + 1 :]]
            for r in test_rows
        ],
        fresh,
    ]
    other.write_text("\n".join(",".join(r) for r in lines) + "\n")
    with pytest.raises(DatasetError, match="used to train or validate"):
        evaluate_run(run, DatasetConfig(root=other))
    # the same video by an absolute path through a symlinked folder (another id, no group
    # column) is still the same file
    link = tmp_path / "link"
    link.symlink_to(manifest.parent, target_is_directory=True)
    path_col = header.index("path")
    (manifest.parent / "via_link.csv").write_text(
        f"path,label,split\n{link / train_row[path_col]},{train_row[header.index('label')]},test\n"
        + "".join(f"{r[path_col]},{r[header.index('label')]},train\n" for r in test_rows)
    )
    with pytest.raises(DatasetError, match="used to train or validate"):
        evaluate_run(run, DatasetConfig(root=manifest.parent / "via_link.csv"))
