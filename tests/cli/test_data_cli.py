import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from harkit import __version__
from harkit.cli.main import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 2
    assert "data" in capsys.readouterr().out


@pytest.mark.slow
def test_synth_inspect_split_round_trip(tmp_path, capsys):
    out = tmp_path / "synth"
    assert (
        main(
            [
                "data",
                "synth",
                str(out),
                "-s",
                "num_actors=3",
                "-s",
                "clips_per_actor=1",
                "-s",
                "test_actors=1",
                "-s",
                "num_frames=12",
            ]
        )
        == 0
    )
    assert (out / "manifest.csv").is_file()

    report = tmp_path / "summary.json"
    assert main(["data", "inspect", str(out), "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "unreadable: 0" in text and "split check: no leakage" in text
    summary = json.loads(report.read_text())
    assert summary["num_groups"] == 3 and summary["frames"]["min"] == 12

    manifest = tmp_path / "split" / "m.csv"
    assert (
        main(
            [
                "data",
                "split",
                str(out),
                "--kind",
                "folder",
                "--out",
                str(manifest),
                "--test-fraction",
                "0.34",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(manifest.open()))
    sides = {}
    for row in rows:
        sides.setdefault(row["group"], set()).add(row["split"])
        assert (manifest.parent / row["path"]).is_file()
    assert all(len(s) == 1 for s in sides.values())
    assert json.loads((manifest.parent / "classes.json").read_text()) == sorted(
        {r["label"] for r in rows}
    )


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harkit: error:") and "nowhere" in err and "Traceback" not in err
    assert main(["data", "synth", str(tmp_path), "-s", "num_actors=zero"]) == 2
    assert "num_actors" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`harkit ... | head` printed 'harkit: error: Broken pipe' and exited 2."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with contextlib.redirect_stdout(ClosedPipe()):
        code = main(["info", "--list"])
    assert code == 141 and capsys.readouterr().err == ""
