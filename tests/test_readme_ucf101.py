"""The README's benchmark blocks on a tiny UCF101 of this test's making: the download and
official-splits workflow, ``harkit reproduce``, and the many-machines blocks (torchrun and
SLURM), each run as written but for these substitutions:

* ``/data`` and ``/shared`` -> one temporary folder, also the working folder (so ``cache/``
  and ``/shared/cache/`` are one store, as on a shared file system);
* ``--set optim.epochs=1`` on every ``harkit train`` and ``harkit reproduce``: fusion-gru's
  GRU 1000 x 2 for 30 epochs is about 15 s a run on 2 cores, and the blocks make 13 runs;
* ``harkit data download ucf101`` runs in this process with ``SOURCES['ucf101']`` pointing at a
  server on 127.0.0.1 and without the official MD5s (the archives hold 2 classes x 3 groups
  of 8-frame clips and split files of this test's: split k tests group k);
* the ImageNet weights of Inception-ResNet-V2 and GoogLeNet are state_dicts of random models,
  put where timm (``HF_HUB_CACHE``, offline) and torchvision (``TORCH_HOME``) look for them;
* the many-machines blocks: ``node0.cluster:29500`` -> 127.0.0.1 and a free port, 4 nodes ->
  2 (both here), and ``srun`` is a stand-in that starts the tasks here with the SLURM_*
  variables srun sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import socket
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.frames import pattern_frames
from tests.readme import REPO, readme_block

pytestmark = pytest.mark.slow

UCF101 = "# harkit-readme-ucf101"
REPRODUCE = "# harkit-readme-reproduce"
TORCHRUN_EXTRACT = "# harkit-readme-torchrun-extract"
SRUN_EXTRACT = "# harkit-readme-srun-extract"
TORCHRUN_TRAIN = "# harkit-readme-torchrun-train"
CLASSES = ("ApplyEyeMakeup", "Basketball")
HF_SNAPSHOT = "0" * 40

# srun as far as these blocks use it: --nodes N --ntasks-per-node M, tasks started here
SRUN = """\
import os, subprocess, sys
args, opts = sys.argv[1:], {}
while args[0].startswith("--"):
    opts[args[0]] = int(args[1]); args = args[2:]
n = opts.get("--nodes", 1) * opts.get("--ntasks-per-node", 1)
procs = [subprocess.Popen(args, env={**os.environ, "SLURM_PROCID": str(i), "SLURM_NTASKS": str(n),
         "SLURM_STEP_NUM_TASKS": str(n), "SLURM_NODEID": str(i), "SLURM_LOCALID": "0"})
         for i in range(n)]
sys.exit(max(p.wait() for p in procs))
"""


def _archives(folder: Path) -> tuple[bytes, bytes]:
    """UCF101.rar and the split ZIP, laid out as the real ones."""
    from harkit.synth import write_video
    from tests.helpers.archives import make_zip, rar_files

    videos, lists = {}, {}
    for cid, name in enumerate(CLASSES, 1):
        for group in (1, 2, 3):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            clip = write_video(folder / rel, pattern_frames(8, seed=10 * cid + group), fps=8)
            videos[f"UCF-101/{rel}"] = clip.read_bytes()
            for split in (1, 2, 3):
                kind = "test" if group == split else "train"
                line = rel if kind == "test" else f"{rel} {cid}"
                lists.setdefault(f"ucfTrainTestlist/{kind}list0{split}.txt", []).append(line)
    files = {
        name: "".join(f"{line}\r\n" for line in lines).encode() for name, lines in lists.items()
    }
    files["ucfTrainTestlist/classInd.txt"] = "".join(
        f"{i} {name}\r\n" for i, name in enumerate(CLASSES, 1)
    ).encode()
    return rar_files(videos), make_zip(files)


def _random_imagenet_weights(torch_home: Path, hf_cache: Path) -> None:
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file

    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    torch.save(googlenet.state_dict(), checkpoints / "googlenet-1378be20.pth")
    repo = hf_cache / "models--timm--inception_resnet_v2.tf_in1k"
    (repo / "snapshots" / HF_SNAPSHOT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HF_SNAPSHOT)
    irv2 = timm.create_model("inception_resnet_v2", pretrained=False)
    state = {k: v.contiguous() for k, v in irv2.state_dict().items()}
    save_file(state, repo / "snapshots" / HF_SNAPSHOT / "model.safetensors")


@contextlib.contextmanager
def _serve(folder: Path):
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _paths(block: str, root: Path) -> str:
    """``/data`` and ``/shared`` -> ``root``; one epoch for every ``train`` and ``reproduce``."""
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        command, hash_, comment = line.partition("  #")
        if re.search(r"\bharkit\)? (?:train|reproduce) ", command) and not line.startswith("#"):
            line = f"{command} --set optim.epochs=1{hash_}{comment}"
        lines.append(line)
    return re.sub(r"(?<![\w/.])/(?:data|shared)\b", str(root), "\n".join(lines) + "\n")


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The UCF101 block, run: a downloaded tiny UCF101, its features in ``cache/``, a run per
    official split in ``runs/fusion``."""
    import harkit.data.download as download
    from harkit.cli.main import main

    root = tmp_path_factory.mktemp("ucf101")
    served = tmp_path_factory.mktemp("served")
    source = download.SOURCES["ucf101"]
    videos, splits = _archives(tmp_path_factory.mktemp("clips"))
    (served / source.videos.name).write_bytes(videos)
    (served / source.splits.name).write_bytes(splits)
    home = tmp_path_factory.mktemp("weights")
    _random_imagenet_weights(home / "torch", home / "hf")
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n{SRUN}")
    (bin_dir / "srun").chmod(0o755)
    env = {
        **os.environ,
        "TORCH_HOME": str(home / "torch"),
        "HF_HUB_CACHE": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(var, None)

    lines = readme_block(UCF101, "bash").split("\n", 2)
    download_line, rest = lines[1], lines[2]
    assert download_line.split("#")[0].split() == ["harkit", "data", "download", "ucf101", "/data"]
    with _serve(served) as url:
        local = dataclasses.replace(
            source,
            videos=dataclasses.replace(
                source.videos, urls=(f"{url}/{source.videos.name}",), md5=None
            ),
            splits=dataclasses.replace(
                source.splits, urls=(f"{url}/{source.splits.name}",), md5=None
            ),
        )
        printed = io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
            mp.setitem(download.SOURCES, "ucf101", local)
            assert main(["data", "download", "ucf101", str(root)]) == 0
    out = _bash(_paths(rest, root), root, env)
    return SimpleNamespace(root=root, env=env, download=printed.getvalue(), out=out, srun=bin_dir)


MEAN_LINE = re.compile(
    r"^mean top-1 over splits 1,2,3 \(clip-level, 1 clip per video\): \d+\.\d\d% ± \d+\.\d\d% "
    r"-> runs/fusion/splits\.md$",
    re.M,
)


def test_ucf101_block_downloads_extracts_and_trains_every_official_split(ucf) -> None:
    root = ucf.root
    # the README's "-> /data/UCF-101 + /data/ucfTrainTestlist"
    assert (
        f"ready: harkit data inspect {root}/UCF-101 --kind ucf101 --annotations "
        f"{root}/ucfTrainTestlist" in ucf.download
    )
    assert "6 videos: 6 extracted, 0 already done, 0 failed" in ucf.out
    for k in (1, 2, 3):
        assert (root / f"runs/fusion/split{k}/model.safetensors").is_file()
    # evaluate --splits, the block's last command: the mean over the three splits
    assert MEAN_LINE.search(ucf.out), ucf.out[-3000:]
    assert (root / "runs/fusion/splits.md").is_file()
    # the block's last comment: a subset writes its own table, the full mean stays
    full = (root / "runs/fusion/splits.md").read_text()
    _bash("harkit evaluate runs/fusion --splits 1,2", root, ucf.env)
    assert (root / "runs/fusion/splits-1-2.md").is_file()
    assert (root / "runs/fusion/splits.md").read_text() == full


def test_reproduce_block_writes_the_paper_table(ucf) -> None:
    out = _bash(_paths(readme_block(REPRODUCE, "bash"), ucf.root), ucf.root, ucf.env)
    folder = ucf.root / "runs/fusion-gru-ucf101"
    assert not (folder / "features").exists(), out[-3000:]  # --store cache/: the features above
    table = (folder / "reproduce.md").read_text()
    assert "**Recipe overridden** (`optim.epochs=1`" in table  # this test's one epoch, said
    # the recipe and the two ablations whose base is fusion-gru, with the paper's number
    for name in ("fusion-gru", "fusion-gru-googlenet", "fusion-gru-irv2"):
        assert name in table, table
        for k in (1, 2, 3):
            assert (folder / name / f"split{k}" / "report" / "report.md").is_file()
    assert "97.97" in table
    assert (folder / "reproduce.json").is_file() and (folder / "reproduce.csv").is_file()


RANK_LINE = re.compile(r"rank (\d+)/(\d+): (\d+) videos: (\d+) extracted, ")


def test_many_machines_blocks_extract_and_train_across_nodes(ucf) -> None:
    root, nodes = ucf.root, 2

    def launch(block: str, path: str = ucf.env["PATH"]) -> list[str]:
        script = _paths(block, root).replace("--nnodes 4", f"--nnodes {nodes}")
        script = script.replace("--nodes 4", f"--nodes {nodes}").replace(
            "--num-nodes 4", f"--num-nodes {nodes}"
        )
        script = script.replace("node0.cluster:29500", f"127.0.0.1:{_free_port()}")
        procs = [
            subprocess.Popen(
                ["bash", "-e", "-c", script],
                cwd=root,
                env={**ucf.env, "NODE": str(node), "PATH": path},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for node in range(nodes if "torchrun" in script else 1)
        ]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * len(procs), [o[-3000:] for o in outs]
        return outs

    # torchrun: one agent per "node"; the store is already full from the UCF101 block
    text = "".join(launch(readme_block(TORCHRUN_EXTRACT, "bash")))
    ranks = sorted(RANK_LINE.findall(text))
    assert [r[:2] for r in ranks] == [("0", "2"), ("1", "2")], text[-3000:]
    assert sum(int(r[2]) for r in ranks) == 6  # each video on exactly one rank
    path = f"{ucf.srun}{os.pathsep}{ucf.env['PATH']}"  # the stand-in srun, for this block only
    text = "".join(launch(readme_block(SRUN_EXTRACT, "bash"), path))
    assert sorted(r[:2] for r in RANK_LINE.findall(text)) == [("0", "2"), ("1", "2")], text[-3000:]
    # what the README says each rank prints is what they print
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"prints its share \(`(.*?)`\)", readme)
    assert shown is not None and RANK_LINE.match(shown.group(1)), shown
    launch(readme_block(TORCHRUN_TRAIN, "bash"))
    from harkit.train.run import read_run_info

    info = read_run_info(root / "runs/fusion-gru")
    assert info.num_nodes == nodes
