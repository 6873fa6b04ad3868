"""CSV manifests: which column is the group, columns harkit ignores, dataset-kind detection,
and what every report says when there are no groups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harkit.cli.main as cli_main
from harkit.data.datasets import DatasetConfig, DatasetError, csv_index, load_index
from harkit.data.inspect import summarize
from harkit.data.splits import NO_GROUPS, LeakageError, build_index, leakage_status


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def actor_rows(split: bool = False) -> list[str]:
    # Actor p2 has clips in train and test: a leak, visible only if 'actor' is read.
    rows = [
        ("x1.mp4", "x", "p1", "train"),
        ("y1.mp4", "y", "p1", "train"),
        ("x2.mp4", "x", "p2", "train"),
        ("y2.mp4", "y", "p2", "test"),
        ("x3.mp4", "x", "p3", "test"),
        ("y3.mp4", "y", "p3", "test"),
    ]
    return [",".join((p, c, s, a) if split else (p, c, a)) + ",cam0" for p, c, a, s in rows]


@pytest.mark.parametrize("column", ["actor", "Actor", "PERSON", "subject", "performer", "group"])
def test_usual_group_column_names_are_read(tmp_path: Path, column: str) -> None:
    manifest = write_csv(tmp_path / "m.csv", f"path,label,{column},camera", actor_rows())
    index = csv_index(manifest)
    assert [item.group for item in index] == ["p1", "p1", "p2", "p2", "p3", "p3"]
    assert index.group_column == column
    assert index.ignored_columns == ["camera"]


def test_actor_column_drives_the_leakage_guard(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m.csv", "path,label,split,actor,camera", actor_rows(True))
    with pytest.raises(LeakageError, match=r"1 group\(s\) appear in both train and test: p2"):
        build_index(DatasetConfig(root=manifest))


def test_group_column_argument_names_any_column(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m.csv", "path,label,actor,camera", actor_rows())
    index = load_index(DatasetConfig(root=manifest, group_column="camera"))
    assert {item.group for item in index} == {"cam0"}
    assert index.group_column == "camera" and index.ignored_columns == ["actor"]
    with pytest.raises(DatasetError) as err:
        load_index(DatasetConfig(root=manifest, group_column="signer"))
    assert str(err.value) == (
        f"{manifest}: no column 'signer' for --group-column; the columns are "
        "path, label, actor, camera"
    )


def test_group_column_refused_for_a_folder_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="names a CSV manifest column, but this is a 'folder'"):
        load_index(DatasetConfig(root=tmp_path, group_column="actor"))
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["data", "inspect", str(tmp_path), "--group-column", " "])
    assert exit_.value.code == 2
    assert "argument --group-column: expected a CSV column name, got ' '" in capsys.readouterr().err


def test_inspect_lists_ignored_columns_and_the_group_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_csv(tmp_path / "m.csv", "path,label,split,actor,camera", actor_rows(True))
    text = summarize(csv_index(manifest), probe_videos=False).to_text()
    assert "3 groups" in text
    assert "groups: from column 'actor'" in text
    assert "ignored columns: camera" in text

    assert (
        cli_main.main(["data", "inspect", str(manifest), "--no-probe", "--group-column", "camera"])
        == 0
    )
    out = capsys.readouterr().out
    assert "1 groups" in out and "groups: from column 'camera'" in out
    assert "ignored columns: actor" in out and "split check: LEAKS 1 groups: cam0" in out


def test_no_groups_says_leakage_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["a.mp4,x,train", "b.mp4,y,train", "c.mp4,x,test", "d.mp4,y,test"]
    manifest = write_csv(tmp_path / "m.csv", "path,label,split", rows)
    index = build_index(DatasetConfig(root=manifest))
    assert leakage_status(index) == NO_GROUPS == "no groups: leakage not checked"
    assert cli_main.main(["data", "inspect", str(manifest), "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "split check: no groups: leakage not checked" in out
    assert "no leakage" not in out and "checked," not in out
    assert "groups: none, so leakage cannot be checked" in out

    out_csv = tmp_path / "split.csv"
    assert (
        cli_main.main(
            ["data", "split", str(manifest), "--out", str(out_csv), "--test-fraction", "0.5"]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("no groups: leakage not checked")


def test_partly_grouped_data_says_what_was_not_checked(tmp_path: Path) -> None:
    rows = ["a.mp4,x,train,p1", "b.mp4,y,test,p2", "c.mp4,x,test,"]
    index = csv_index(write_csv(tmp_path / "m.csv", "path,label,split,actor", rows))
    assert leakage_status(index) == (
        "checked, no group on two sides (train/test); 1 videos without a group not checked"
    )


def test_absolute_paths_outside_the_csv_folder_train(tmp_path: Path, make_video) -> None:
    # The issue: 'extract' worked, 'train' failed with "... is not under the video root".
    from harkit.data.clips import SkippedVideo
    from harkit.data.jobs import video_id
    from harkit.features.store import FeatureStore
    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    elsewhere = [
        make_video(f"far/{c}{i}.mp4", num_frames=6, height=16, width=16, seed=i)
        for c in ("x", "y")
        for i in range(2)
    ]
    rows = [f"{v},{v.name[0]},{'train' if i % 2 == 0 else 'test'}" for i, v in enumerate(elsewhere)]
    local = make_video("data/videos/x9.mp4", num_frames=6, height=16, width=16)
    rows.append("videos/x9.mp4,x,train")
    manifest = write_csv(tmp_path / "data" / "manifest.csv", "path,label,split", rows)

    store = tmp_path / "store"
    assert (
        cli_main.main(
            [
                "extract",
                str(manifest),
                "--recipe",
                "synthetic-gru",
                "--store",
                str(store),
                "--sampling",
                "num_frames=4",
                "--no-progress",
            ]
        )
        == 0
    )
    recipe = load_recipe("synthetic-gru", ["input.sampling.num_frames=4", "optim.val_fraction=0"])
    data = prepare_data(recipe, DatasetConfig(root=manifest), store=store, progress=False)
    items = [data.train[i] for i in range(len(data.train))]  # type: ignore[arg-type]
    assert len(items) == 3 and not any(isinstance(it, SkippedVideo) for it in items)
    # train found what extract stored (same ids), instead of extracting all 5 videos again
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    assert len(FeatureStore(folder).done_ids()) == 5
    # Ids: relative to the CSV's folder when under it, else the absolute path (unique, stable).
    assert video_id(local, manifest.parent) == "videos/x9.mp4"
    assert video_id(elsewhere[0], manifest.parent) == "_abs/" + str(elsewhere[0]).lstrip("/")


def test_annotations_without_kind_are_detected(tmp_path: Path) -> None:
    # The issue: --annotations without --kind was ignored and a random split used.
    ucf = tmp_path / "ucfTrainTestlist"
    ucf.mkdir()
    (ucf / "classInd.txt").write_text("1 Diving\r\n2 Jump\r\n")
    (ucf / "trainlist01.txt").write_text("Jump/v_Jump_g08_c01.avi 2\r\n")
    (ucf / "testlist01.txt").write_text("Diving/v_Diving_g01_c01.avi\r\n")
    for video in ("Jump/v_Jump_g08_c01.avi", "Diving/v_Diving_g01_c01.avi"):
        (tmp_path / "UCF-101" / video).parent.mkdir(parents=True)
        (tmp_path / "UCF-101" / video).write_bytes(b"")
    index = build_index(DatasetConfig(root=tmp_path / "UCF-101", annotations=ucf))
    assert index.name == "ucf101-split1"
    assert [(i.label, i.split) for i in index] == [("Jump", "train"), ("Diving", "test")]

    hmdb = tmp_path / "testTrainMulti_7030_splits"
    hmdb.mkdir()
    (hmdb / "brush_hair_test_split2.txt").write_text("a.avi 1\nb.avi 2\n")
    (tmp_path / "hmdb51" / "brush_hair" / "a").mkdir(parents=True)  # a frame folder is enough
    (tmp_path / "hmdb51" / "brush_hair" / "b.avi").write_bytes(b"")
    index = load_index(DatasetConfig(root=tmp_path / "hmdb51", annotations=hmdb, split=2))
    assert index.name == "hmdb51-split2" and index.classes == ["brush_hair"]


def test_annotations_that_nothing_reads_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann = tmp_path / "lists"
    ann.mkdir()
    (ann / "readme.txt").write_text("x")
    manifest = write_csv(tmp_path / "m.csv", "path,label,split", ["a.mp4,x,train"])
    with pytest.raises(DatasetError) as err:
        load_index(DatasetConfig(root=manifest, annotations=ann))
    assert str(err.value) == (
        f"{ann}: no UCF101 (classInd.txt + trainlist0N.txt) or HMDB51 "
        "(<class>_test_split<k>.txt) split files; pass --kind or drop --annotations"
    )
    with pytest.raises(DatasetError, match="which kind 'csv' does not read; drop --annotations"):
        load_index(DatasetConfig(kind="csv", root=manifest, annotations=ann))
    assert (
        cli_main.main(["data", "inspect", str(manifest), "--no-probe", "--annotations", str(ann)])
        == 2
    )
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "no UCF101 (classInd.txt" in err_lines[0]


def test_split_number_refused_without_official_splits(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m.csv", "path,label,split", ["a.mp4,x,train"])
    with pytest.raises(DatasetError, match=r"split 2 asked, but a 'csv' dataset has no official"):
        load_index(DatasetConfig(root=manifest, split=2))


def test_splits_refused_without_official_splits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The issue: --splits 1,2,3 on a CSV trained the same split 3 times ("66.67% ± 0.00%").
    manifest = write_csv(tmp_path / "m.csv", "path,label,split", ["a.mp4,x,train", "b.mp4,x,test"])
    argv = [
        "train",
        "--recipe",
        "synthetic-gru",
        "--dataset",
        str(manifest),
        "--splits",
        "1,2,3",
        "--run",
        str(tmp_path / "run"),
    ]
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        f"--splits 1,2,3: {manifest} is a 'csv' dataset without official splits; cross-validate "
        "it by group instead (--splits leave-one-group-out, or --splits 5-fold), or train once "
        "without --splits"
    )
    assert not (tmp_path / "run").exists()

    from harkit.experiments.splits import train_and_evaluate

    with pytest.raises(DatasetError, match=r"--splits 1,4: ucf101 has official splits 1-3 only"):
        train_and_evaluate(
            None, DatasetConfig(kind="ucf101", root=tmp_path), tmp_path / "r", splits=[1, 4]
        )  # type: ignore[arg-type]


def fake_ucf101(ann: Path) -> list[str]:
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Jump\r\n")
    train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "Jump/v_Jump_g08_c01.avi"]
    (ann / "trainlist01.txt").write_text("".join(f"{v} {i}\r\n" for i, v in enumerate(train, 1)))
    (ann / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n")
    return [*train, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"]


def test_annotations_for_a_folder_without_their_videos_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The issue: --annotations ucfTrainTestlist on a synthetic folder made it "UCF101" (13320
    # videos); extract then failed every one of them.
    ann, synth = tmp_path / "ucfTrainTestlist", tmp_path / "synth"
    videos = fake_ucf101(ann)
    write_csv(synth / "wave" / "wave_a01_c01.mp4", "x", [])
    message = (
        f"{synth} holds none of the 3 videos that {ann} lists "
        "(e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi); pass the UCF-101 video folder as "
        "the dataset"
    )
    for kind in ("auto", "ucf101"):
        with pytest.raises(DatasetError) as err:
            load_index(DatasetConfig(kind=kind, root=synth, annotations=ann))
        assert str(err.value) == message
    assert (
        cli_main.main(["data", "inspect", str(synth), "--no-probe", "--annotations", str(ann)]) == 2
    )
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].endswith(message)

    hmdb, root = tmp_path / "hmdb_splits", tmp_path / "hmdb51"
    hmdb.mkdir()
    (hmdb / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    for kind in ("auto", "hmdb51"):
        with pytest.raises(DatasetError) as err:
            load_index(DatasetConfig(kind=kind, root=root, annotations=hmdb))
        assert str(err.value) == (
            f"{root} holds none of the 2 videos that {hmdb} lists (e.g. brush_hair/a.avi); "
            "pass the HMDB51 video folder as the dataset"
        )

    # Some present (a file, a frame folder): refused in one line with the count and examples
    # (a reproduction on 24 of 13,320 videos ran on), unless allow_missing, which keeps the
    # present ones with one warning: counts are then what is used.
    ucf = tmp_path / "UCF-101"
    write_csv(ucf / videos[0], "x", [])
    (ucf / videos[1]).with_suffix("").mkdir(parents=True)
    write_csv(root / "brush_hair" / "b.avi", "x", [])
    with pytest.raises(DatasetError) as err:
        load_index(DatasetConfig(root=ucf, annotations=ann))
    assert str(err.value) == (
        f"1 of the 3 videos that {ann} lists are not under {ucf} (e.g. {videos[2]}); complete "
        "the folder, or pass --allow-missing (Python: allow_missing=True) to use the 2 present"
    )
    with caplog.at_level("WARNING", logger="harkit.data.datasets"):
        index = load_index(DatasetConfig(root=ucf, annotations=ann, allow_missing=True))
        assert len(index) == 2 and index[1].path == (ucf / videos[1]).with_suffix("")
        hmdb_index = load_index(DatasetConfig(root=root, annotations=hmdb, allow_missing=True))
        assert [item.path.name for item in hmdb_index] == ["b.avi"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"ucf101-split1: 1 of the 3 videos that {ann} lists are not under {ucf}: using the 2 "
        "present",
        f"hmdb51-split1: 1 of the 2 videos that {hmdb} lists are not under {root}: using the 1 "
        "present",
    ]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("path,label\nclip.mp4,café\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
        (b"path,label\nclip.mp4,x\x00y\n", "holds NUL bytes"),
    ],
)
def test_a_manifest_that_is_not_utf8_text_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, named: str
) -> None:
    """A spreadsheet's Latin-1 CSV was a 24-line UnicodeDecodeError traceback (exit 1)."""
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(content)
    with pytest.raises(DatasetError, match=re.escape(named)):
        csv_index(manifest)
    assert cli_main.main(["data", "inspect", str(manifest)]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_video_file_given_as_the_dataset_is_named_a_file(tmp_path: Path) -> None:
    """It said 'dataset folder not found' although the file was there."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 16)
    with pytest.raises(DatasetError, match=r"clip.mp4: a file, not a dataset; expected a folder"):
        load_index(DatasetConfig(root=video))
