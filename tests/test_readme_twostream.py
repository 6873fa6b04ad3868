"""The README's two-stream blocks (``i3d-gru-twostream``: RGB + TV-L1 flow through Kinetics
I3D), run as written in a folder holding ``data/hmdb51`` (2 classes x 3 clips of 2 frames,
this test's: TV-L1 takes seconds a pair) and ``video.mp4``, with these substitutions:

* the Kinetics-400 I3D files are state_dicts of random networks in pytorch-i3d's layout, in
  ``$HARKIT_CACHE/weights`` (what ``weights: kinetics`` reads) and at ``/path/``;
* ``--source 0`` (a webcam) -> ``--source video.mp4``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.frames import pattern_frames
from tests.readme import readme_block

pytestmark = pytest.mark.slow

TWOSTREAM = "# harkit-readme-twostream"
WEIGHTS_FILES = "# harkit-readme-i3d-weights"


def _port_state_dict(channels: int) -> dict:
    """A random pytorch-i3d network's state_dict, its batch norms set from a batch of noise
    (unit scale, no shift), so that features stay O(1) as the real network's do: the parity
    check of ``harkit export`` is an absolute bound."""
    import torch
    from torch import nn

    from tests.helpers.i3d_reference import reference_i3d

    net = reference_i3d(channels, seed=channels)
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm3d)):
        bn.reset_running_stats()
        bn.momentum = None  # the batch's own statistics
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
    net.train()
    with torch.no_grad():
        net.endpoints(torch.rand(2, channels, 16, 112, 112) * 2 - 1)
    return net.eval().state_dict()


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def twostream(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    import torch

    from harkit.synth import write_video

    work = tmp_path_factory.mktemp("twostream")
    for c, label in enumerate(("brush_hair", "cartwheel")):
        for k in range(3):
            frames = pattern_frames(2, 48, 64, seed=10 * c + k)
            write_video(work / "data/hmdb51" / label / f"{label}_{k}.avi", frames, fps=8)
    write_video(work / "video.mp4", pattern_frames(2, 48, 64, seed=99), fps=8)
    cache = tmp_path_factory.mktemp("harkit-cache")
    (cache / "weights").mkdir()
    for channels, name in ((3, "rgb_imagenet.pt"), (2, "flow_imagenet.pt")):
        torch.save(_port_state_dict(channels), cache / "weights" / name)
    env = {
        **os.environ,
        "HARKIT_CACHE": str(cache),
        "OMP_NUM_THREADS": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    block = readme_block(TWOSTREAM, "bash")
    assert block.count("--source 0 ") == 1
    out = _bash(block.replace("--source 0 ", "--source video.mp4 "), work, env)
    return SimpleNamespace(work=work, cache=cache, env=env, out=out)


PREDICTION = re.compile(r"^video\.mp4 +(brush_hair|cartwheel) (\d\.\d\d)", re.M)


def test_twostream_block_trains_predicts_streams_and_exports(twostream) -> None:
    work = twostream.work
    config = (work / "flow/flow_config.json").read_text()
    assert '"tvl1"' in config
    # predict computes the flow itself, with flow_config.json's settings, in both engines
    torch_pred, onnx_pred = PREDICTION.findall(twostream.out)
    assert torch_pred[0] == onnx_pred[0], twostream.out[-3000:]
    assert abs(float(torch_pred[1]) - float(onnx_pred[1])) <= 0.01
    # the stream's other flow method is warned about
    assert re.search(r"farneback.*differ|differ.*farneback", twostream.out), twostream.out[-3000:]
    # the files the block's comment names
    assert {"encoder_0_i3d.onnx", "encoder_1_i3d_flow.onnx", "head.onnx"} <= {
        p.name for p in (work / "runs/ts/onnx").iterdir()
    }


def test_weights_files_block_uses_the_given_files(twostream) -> None:
    folder = twostream.work / "given"
    folder.mkdir()
    for name in ("rgb_imagenet.pt", "flow_imagenet.pt"):
        (folder / name).write_bytes((twostream.cache / "weights" / name).read_bytes())
    block = readme_block(WEIGHTS_FILES, "bash").replace("/path/", f"{folder}/")
    _bash(block, twostream.work, twostream.env)
    recipe = (twostream.work / "runs/ts-files/recipe.yaml").read_text()
    assert f"{folder}/rgb_imagenet.pt" in recipe and f"{folder}/flow_imagenet.pt" in recipe
