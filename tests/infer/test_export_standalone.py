"""The README's plain-onnxruntime example: an exported run, fed by its export.json alone
(onnxruntime, PyAV, Pillow, numpy; no harkit, no torch), predicts what ``harkit predict`` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harkit.synth import SynthConfig, render_dataset
from tests.readme import REPO, readme_block

REAL = REPO.parent / "shared" / "realdata" / "mmaction2_samples"
MARKER = "# harkit-readme-plain-onnx"

pytestmark = pytest.mark.slow


def _cli(*argv: object) -> int:
    import harkit.cli.main as main

    return main.main([str(a) for a in argv])


def test_an_export_runs_without_harkit_and_matches_predict(tmp_path: Path, capsys) -> None:
    config = SynthConfig(
        classes=["blink", "shake", "grow"],
        num_actors=3,
        clips_per_actor=1,
        test_actors=1,
        num_frames=12,
        size=64,
    )
    data = render_dataset(tmp_path / "data", config).parent
    run, store = tmp_path / "run", tmp_path / "store"
    sets = ["--set", "input.sampling.num_frames=8", "--set", "optim.epochs=3"]
    assert (
        _cli(
            "extract",
            data,
            "--recipe",
            "efficientnet-gru",
            "--store",
            store,
            *sets,
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    assert (
        _cli(
            "train",
            "--recipe",
            "efficientnet-gru",
            "--dataset",
            data,
            "--store",
            store,
            "--run",
            run,
            *sets,
            "--no-progress",
        )
        == 0
    )
    assert _cli("export", run) == 0
    spec = json.loads((run / "onnx" / "export.json").read_text())
    prep = spec["branches"][0]["preprocessing"]
    assert prep["resize_shorter_side"] == 224 and prep["center_crop"] == [224, 298]
    assert spec["sampling"]["strategy"] == "uniform" and spec["sampling"]["num_frames"] == 8
    clips = (
        sorted(REAL.glob("*.mp4"))[:2] + sorted(REAL.glob("*.avi"))[:1]
        if REAL.is_dir()
        else sorted(data.rglob("*.mp4"))[:3]
    )  # real clips where ../shared is there
    capsys.readouterr()
    assert _cli("predict", run, *clips, "--json", "--no-progress") == 0
    want = {r["source"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    check = "\nassert 'harkit' not in sys.modules and 'torch' not in sys.modules\n"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            readme_block(MARKER, "python") + check,
            str(run / "onnx"),
            *map(str, clips),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    for line, clip in zip(lines, clips, strict=True):
        source, label, prob = line.rsplit(" ", 2)
        assert source == str(clip) and label == want[str(clip)]["label"]
        assert float(prob) == pytest.approx(want[str(clip)]["confidence"], abs=0.01)
    # the ONNX files describe themselves
    import onnxruntime

    meta = onnxruntime.InferenceSession(str(run / "onnx" / "head.onnx")).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["harkit"])["classes"] == spec["classes"]
