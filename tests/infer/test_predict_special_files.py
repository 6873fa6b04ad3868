"""``harkit predict`` over folders holding special files: each is reported with its reason,
never opened (a FIFO blocks the open forever, /dev/zero never ends), and the good videos are
still labelled."""

from __future__ import annotations

import json
import os

from tests.helpers.runs import CLASSES


def test_predict_reports_special_files_and_labels_the_rest(
    cli, make_run, make_video, capsys, tmp_path, monkeypatch
):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    good = [make_video("videos/a.mp4", seed=1), make_video("videos/sub/b.mp4", seed=2)]
    os.mkfifo(folder / "fifo.mp4")
    (folder / "sub" / "zero.mp4").symlink_to("/dev/zero")
    (folder / "gone.mp4").symlink_to(folder / "missing.mp4")
    (folder / "empty.mp4").mkdir()
    make_video("videos/wide.mp4", num_frames=4, height=48, width=80)  # over the limit below
    monkeypatch.setenv("HARKIT_MAX_PIXELS", "64x48")
    code = cli("predict", make_run("small2d"), folder, "--json", "--no-progress")
    captured = capsys.readouterr()
    rows = {r["source"]: r for r in map(json.loads, captured.out.splitlines())}
    assert code == 0 and "Traceback" not in captured.err
    assert all(rows[str(p)]["label"] in CLASSES for p in good)
    errors = {os.path.relpath(s, folder): r["error"] for s, r in rows.items() if "error" in r}
    assert errors == {
        "empty.mp4": "is a folder without frame images (.jpg, .jpeg, .png, .bmp)",
        "fifo.mp4": "is a FIFO (named pipe), not a regular file; not opened",
        "gone.mp4": f"broken symbolic link (its target {folder / 'missing.mp4'} does not exist)",
        "sub/zero.mp4": "is a character device, not a regular file; not opened",
        "wide.mp4": "frames of 80x48 (3,840 px) exceed the limit of 3,072 px "
        "(set HARKIT_MAX_PIXELS to raise it)",
    }
    assert "harkit: 5 of 7 videos could not be read" in captured.err


def test_a_newline_in_a_file_name_stays_on_its_line(cli, make_run, make_video, capsys):
    weird = make_video("videos/two\nlines é.mp4", seed=1)
    broken = weird.with_name("bad\rname.mp4")
    broken.write_bytes(b"not a video")
    code = cli("predict", make_run("small2d"), weird, broken, "--no-progress")
    captured = capsys.readouterr()
    assert code == 0
    rows = captured.out.splitlines()
    assert len(rows) == 1 and rows[0].startswith(f"{weird.parent}/two\\nlines é.mp4  ")
    assert rows[0].split("  ")[1].split()[0] in CLASSES  # "<file>  <label> <confidence> ..."
    errors = [line for line in captured.err.splitlines() if line.startswith("harkit: cannot read")]
    assert len(errors) == 1 and "bad\\rname.mp4" in errors[0]
