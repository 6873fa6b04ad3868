"""Skip reports grow by one line per video (no rewrite of the whole file), stay valid JSON,
and survive a job killed in the middle of a line."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harkit.data.clips import SkipReport, read_skip_report
from harkit.data.jobs import open_skip_report

REPO = Path(__file__).resolve().parents[2]


def _entries(n: int, start: int = 0) -> dict[str, str]:
    return {
        f"/videos/class{i % 7}/v_{i:05d} ü.avi": f'cannot decode ({i}): "bad"\nframes'
        for i in range(start, start + n)
    }


def test_many_appends_read_back_as_the_same_mapping(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    want = _entries(600)
    report = open_skip_report(path)
    for video, reason in want.items():
        report.record(video, reason)
        report.record(video, "a second reason is not recorded")
    assert json.loads(path.read_text()) == want  # valid JSON after every record, in order
    lines = path.read_text().splitlines()
    assert len(lines) == len(want) + 1 and lines[-1] == "}"  # one line per video
    report.close()
    again = open_skip_report(path)
    assert again.entries == want and list(again.entries) == list(want)
    again.record("/videos/late.avi", "late")
    assert json.loads(path.read_text()) == {**want, "/videos/late.avi": "late"}


def test_the_file_only_grows_by_the_new_line(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    report = SkipReport(path)
    report.record("a.avi", "bad")
    before = path.read_bytes()
    inode = path.stat().st_ino
    report.record("b.avi", "worse")
    after = path.read_bytes()
    assert path.stat().st_ino == inode  # written in place, not a new file renamed over it
    assert after[: len(before) - 2] == before[:-2]  # only the closing "}\n" was overwritten
    assert after[len(before) - 2 :] == b',"b.avi": "worse"\n}\n'


def test_a_torn_last_line_is_left_out_reported_and_mended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "skipped.json"
    want = _entries(50)
    report = SkipReport(path)
    for video, reason in want.items():
        report.record(video, reason)
    report.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-2] + b',"/videos/cut.avi": "cannot dec')  # killed mid-write
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="harkit.data.clips"):
        mended = open_skip_report(path)
    assert mended.entries == want and mended.torn == ',"/videos/cut.avi": "cannot dec'
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{path}: its last line was cut off")
    assert json.loads(path.read_text()) == want  # mended: valid JSON again
    mended.record("/videos/cut.avi", "cannot decode")
    assert json.loads(path.read_text()) == {**want, "/videos/cut.avi": "cannot decode"}
    # cut after a whole entry line but before the closing brace: every entry kept
    path.write_bytes(path.read_bytes()[:-2])
    assert read_skip_report(path) == ({**want, "/videos/cut.avi": "cannot decode"}, "")


def test_a_report_torn_in_its_first_line_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    path.write_text('{"/videos/a.avi": "can')
    report = open_skip_report(path, lambda: {"/videos/b.avi": "from the manifest"})
    assert report.entries == {"/videos/b.avi": "from the manifest"}
    assert json.loads(path.read_text()) == report.entries


def test_an_older_indented_report_is_read_and_then_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    old = _entries(20)
    path.write_text(json.dumps(old, indent=1, sort_keys=True))  # as harkit wrote it before
    report = open_skip_report(path)
    assert report.entries == old
    report.record("/videos/new.avi", "bad")
    assert json.loads(path.read_text()) == {**old, "/videos/new.avi": "bad"}
    assert len(path.read_text().splitlines()) == len(old) + 2  # now one line per entry


def test_two_writers_of_one_report_keep_every_entry(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    a, b = SkipReport(path), SkipReport(path)
    for i in range(20):
        (a if i % 2 else b).record(f"/v/{i}.avi", str(i))
    assert json.loads(path.read_text()) == {f"/v/{i}.avi": str(i) for i in range(20)}


WRITER = """
import sys
from harkit.data.clips import SkipReport
report = SkipReport(sys.argv[1])
i = 0
while True:
    report.record(f"/videos/v{i:06d}.avi", "cannot decode: " + "x" * (i % 97))
    print(i, flush=True)  # printed once the entry is in the file
    i += 1
"""


@pytest.mark.slow
def test_kill_9_mid_report_loses_no_recorded_entry(tmp_path: Path) -> None:
    path = tmp_path / "skipped.json"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    recorded = -1
    while recorded < 2000 and time.monotonic() < deadline:
        recorded = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    report = open_skip_report(path)  # whatever the kill cut, the file reads (and is mended)
    assert all(f"/videos/v{i:06d}.avi" in report.entries for i in range(recorded + 1))
    assert json.loads(path.read_text()) == report.entries


def test_the_skip_warning_names_the_video_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    report = SkipReport(tmp_path / "skipped.json")
    with caplog.at_level(logging.WARNING, logger="harkit.data.clips"):
        report.record("/v/a.mp4", "/v/a.mp4: file is empty (0 bytes)")  # a decoder's error
        report.record("/v/b.mp4", "no frames")
    assert caplog.messages == [
        "skipping unreadable video /v/a.mp4: file is empty (0 bytes)",
        "skipping unreadable video /v/b.mp4: no frames",
    ]
