import pytest

from harkit.data.datasets import (
    DatasetConfig,
    DatasetError,
    csv_index,
    folder_index,
    hmdb51_index,
    load_classes,
    parse_group,
    ucf101_index,
)
from harkit.data.splits import LeakageError, build_index, leaked_groups


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.mark.parametrize(
    ("split", "train", "test"), [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)]
)
def test_ucf101_official_splits(shared_dir, split, train, test):
    ann = shared_dir / "data" / "ucf101" / "ucfTrainTestlist"
    index = ucf101_index("/data/UCF-101", split=split, annotations=ann)
    assert len(index.classes) == 101
    assert index.classes[0] == "ApplyEyeMakeup" and index.classes[-1] == "YoYo"
    assert len(index.subset("train")) == train and len(index.subset("test")) == test
    assert leaked_groups(index) == []
    assert len({item.group for item in index}) == 25
    assert not any("\r" in str(item.path) or "\r" in item.label for item in index)


def write_ucf_lists(ann, lines_train, lines_test, classes=("Diving", "Jump")):
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)))
    (ann / "trainlist01.txt").write_text("\r\n".join(lines_train) + "\r\n")
    (ann / "testlist01.txt").write_text("\r\n".join(lines_test) + "\r\n")


def test_ucf101_checks_ids_and_resolves_frame_folders(tmp_path):
    ann = tmp_path / "lists"
    write_ucf_lists(ann, ["Jump/v_Jump_g08_c01.avi 2"], ["Diving/v_Diving_g01_c01.avi"])
    (tmp_path / "Jump" / "v_Jump_g08_c01").mkdir(parents=True)  # jpegs_256 layout
    index = ucf101_index(tmp_path, 1, ann)
    assert index.targets == [1, 0]
    assert index[0].path == tmp_path / "Jump" / "v_Jump_g08_c01"
    assert index[0].group == "g08" and index[1].split == "test"

    write_ucf_lists(ann, ["Jump/v_Jump_g08_c01.avi 1"], [])
    with pytest.raises(DatasetError, match=r"trainlist01.txt:1: class id 1 does not match"):
        ucf101_index(tmp_path, 1, ann)
    with pytest.raises(DatasetError, match="splits 1, 2, 3"):
        ucf101_index(tmp_path, 4, ann)


def test_ucf101_finds_split_files_beside_the_videos(tmp_path):
    # `harkit data download ucf101 ROOT` writes ROOT/UCF-101 and ROOT/ucfTrainTestlist
    write_ucf_lists(
        tmp_path / "ucfTrainTestlist",
        ["Jump/v_Jump_g08_c01.avi 2"],
        ["Diving/v_Diving_g01_c01.avi"],
    )
    index = ucf101_index(tmp_path / "UCF-101", 1)
    assert [item.split for item in index] == ["train", "test"]
    assert index[0].path == tmp_path / "UCF-101" / "Jump" / "v_Jump_g08_c01.avi"


def test_hmdb51_split_files(tmp_path):
    ann = tmp_path / "splits"
    ann.mkdir()
    (ann / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (ann / "cartwheel_test_split1.txt").write_text("d.avi 1\r\ne.avi 2\r\n")
    index = hmdb51_index(tmp_path / "videos", ann, split=1)
    assert index.classes == ["brush_hair", "cartwheel"]
    assert [(i.path.name, i.split) for i in index] == [
        ("a.avi", "train"),
        ("b.avi", "test"),
        ("d.avi", "train"),
        ("e.avi", "test"),
    ]
    (ann / "cartwheel_test_split1.txt").write_text("d.avi 7\n")
    with pytest.raises(DatasetError, match=r"cartwheel_test_split1.txt:1"):
        hmdb51_index(tmp_path, ann, split=1)


def test_ucf50_leave_one_group_out(tmp_path):
    for c in ("Biking", "Diving"):
        for g in (1, 2, 3):
            for k in (1, 2):
                touch(tmp_path / c / f"v_{c}_g{g:02d}_c{k:02d}.avi")
    index = build_index(DatasetConfig(kind="ucf50", root=tmp_path, split=2))
    test = index.subset("test")
    assert len(test) == 4 and {i.group for i in test} == {"g02"}
    assert leaked_groups(index) == []


def test_folder_and_group_parsing(tmp_path):
    touch(tmp_path / "wave" / "wave_a01_c01.mp4")
    touch(tmp_path / "wave" / "notes.txt")
    touch(tmp_path / "clap" / "clap_a02_c01.avi")
    index = folder_index(tmp_path)
    assert index.classes == ["clap", "wave"] and len(index) == 2
    assert parse_group("v_Diving_g05_c02") == "g05" and parse_group("x") is None
    with pytest.raises(DatasetError, match="not found"):
        folder_index(tmp_path / "missing")


def test_csv_manifest_relative_paths_and_errors(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split,group\nv/a.mp4,run,train,p1\n/abs/b.mp4,walk,test,\n")
    index = csv_index(manifest)
    assert index[0].path == tmp_path / "v" / "a.mp4" and index[0].group == "p1"
    assert index[1].group is None and index.classes == ["run", "walk"]
    (tmp_path / "bad.csv").write_text("file,class\na,b\n")
    with pytest.raises(DatasetError, match="header must start with 'path,label'"):
        csv_index(tmp_path / "bad.csv")


def test_class_list_round_trip_and_stability(tmp_path):
    touch(tmp_path / "data" / "b" / "x_a01_c01.mp4")
    touch(tmp_path / "data" / "a" / "y_a02_c01.mp4")
    index = folder_index(tmp_path / "data")
    index.save_classes(tmp_path / "classes.json")
    assert load_classes(tmp_path / "classes.json") == ["a", "b"]


def test_build_index_refuses_leaky_manifest_unless_allowed(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,label,split,group\na.mp4,run,train,g01\nb.mp4,run,test,g01\nc.mp4,run,test,g02\n"
    )
    with pytest.raises(LeakageError, match="g01"):
        build_index(DatasetConfig(root=tmp_path))
    index = build_index(DatasetConfig(root=manifest, allow_leakage=True))
    assert len(index) == 3


def _scandir_denied(monkeypatch, denied):
    """``os.scandir`` raising PermissionError for ``denied`` (tests run as root, where chmod
    does not stop reads)."""
    import os

    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(denied):
            raise PermissionError(13, "Permission denied", str(denied))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_folder_index_lists_special_files_named_like_videos(tmp_path):
    """They are listed (not silently dropped), so each job reports them with a reason; none
    of them is opened while listing."""
    import os

    from harkit.data.video import VideoReadError, probe

    cls = tmp_path / "wave"
    good = touch(cls / "wave_a01_c01.mp4")
    os.mkfifo(cls / "fifo.mp4")
    (cls / "dangling.mp4").symlink_to(cls / "gone.mp4")
    (cls / "folder.mp4").mkdir()
    frames = cls / "v_wave_g02_c01"  # a frame folder
    touch(frames / "0001.jpg")
    (cls / "notes").mkdir()  # neither named like a video nor holding frames
    touch(cls / ".hidden.mp4")
    index = folder_index(tmp_path)
    names = [item.path.name for item in index]
    assert names == ["dangling.mp4", "fifo.mp4", "folder.mp4", "v_wave_g02_c01", good.name]
    reasons = {}
    for item in index.items[:3]:
        with pytest.raises(VideoReadError) as err:
            probe(item.path)
        reasons[item.path.name] = err.value.reason
    assert reasons == {
        "dangling.mp4": f"broken symbolic link (its target {cls / 'gone.mp4'} does not exist)",
        "fifo.mp4": "is a FIFO (named pipe), not a regular file; not opened",
        "folder.mp4": "is a folder without frame images (.jpg, .jpeg, .png, .bmp)",
    }


def test_unreadable_class_folder_is_kept_and_reported(tmp_path, monkeypatch):
    from harkit.data.inspect import summarize

    touch(tmp_path / "clap" / "clap_a01_c01.mp4")
    touch(tmp_path / "wave" / "wave_a01_c01.mp4")
    _scandir_denied(monkeypatch, tmp_path / "wave")
    index = folder_index(tmp_path)
    assert index.classes == ["clap", "wave"]  # class indices do not shift
    assert [str(item.path) for item in index][1] == str(tmp_path / "wave")
    unreadable = summarize(index).unreadable
    assert unreadable[str(tmp_path / "wave")] == "cannot list the folder (Permission denied)"


def test_unreadable_frame_folder_is_listed_and_unreadable_root_is_one_line(tmp_path, monkeypatch):
    touch(tmp_path / "clap" / "clap_a01_c01.mp4")
    locked = tmp_path / "clap" / "v_clap_g02_c01"
    locked.mkdir()
    _scandir_denied(monkeypatch, locked)
    assert [item.path for item in folder_index(tmp_path)][1] == locked
    _scandir_denied(monkeypatch, tmp_path)
    with pytest.raises(DatasetError) as err:
        folder_index(tmp_path)
    assert str(err.value) == f"{tmp_path}: cannot list the dataset folder (Permission denied)"


def test_inspect_lists_a_video_whose_header_promises_frames_that_do_not_decode(tmp_path):
    import numpy as np

    from harkit.data.inspect import summarize
    from harkit.synth import write_video

    frames = np.random.default_rng(0).integers(0, 255, (10, 48, 64, 3), dtype=np.uint8)
    good = write_video(tmp_path / "clap" / "clap_a01_c01.avi", frames, fps=10, codec="mpeg4")
    data = good.read_bytes()
    cut = data.index(b"movi") + 4  # the header says 10 frames; no frame data follows
    (tmp_path / "clap" / "clap_a02_c01.avi").write_bytes(data[:cut])
    summary = summarize(folder_index(tmp_path))
    assert summary.unreadable == {
        str(tmp_path / "clap" / "clap_a02_c01.avi"): "no frame could be decoded"
    }
    assert summary.frames is not None and summary.frames["mean"] == 10
