"""Every verb refuses bad argument values with exit status 2 and one line that names the
argument (or recipe key), the value and what is allowed; never a traceback, never a silent
fallback. Nothing here trains or decodes: each case fails while parsing or loading a recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harkit.cli.main import build_parser, main

RECIPE = "synthetic-gru"
# Placeholders: {tmp} a scratch folder, {file} an existing file; {dir}.json and {dir}.mp4 are
# existing folders.
CASES: list[tuple[list[str], list[str]]] = [
    # stream
    (["stream", "run", "--source", "0", "--window", "-3"], ["--window", "'-3'", "from 1 to"]),
    (["stream", "run", "--source", "0", "--window", "0"], ["--window", "'0'"]),
    (["stream", "run", "--source", "0", "--hop", "0"], ["--hop", "'0'"]),
    (["stream", "run", "--source", "0", "--frame-jump", "0"], ["--frame-jump", "'0'"]),
    (["stream", "run", "--source", "0", "--timeout", "-1"], ["--timeout", "'-1'", "> 0"]),
    (["stream", "run", "--source", "0", "--timeout", "0"], ["--timeout", "'0'", "> 0"]),
    (["stream", "run", "--source", "0", "--timeout", "nan"], ["--timeout", "'nan'"]),
    (["stream", "run", "--source", "0", "--timeout", "inf"], ["--timeout", "'inf'", "<= 3600"]),
    (["stream", "run", "--source", "0", "--retries", "-5"], ["--retries", "'-5'", "0 to 1000"]),
    (["stream", "run", "--source", "0", "--backoff", "-1"], ["--backoff", "'-1'", ">= 0"]),
    (["stream", "run", "--source", "0", "--smoothing", "1"], ["--smoothing", "'1'", "< 1"]),
    (["stream", "run", "--source", "0", "--switch-margin", "1.5"], ["--switch-margin", "'1.5'"]),
    (["stream", "run", "--source", "0", "--switch-patience", "0"], ["--switch-patience", "'0'"]),
    (["stream", "run", "--source", "0", "--max-frames", "0"], ["--max-frames", "'0'"]),
    (
        ["stream", "run", "--source", "99999999999999999999"],
        ["--source", "'99999999999999999999'", "camera index from 0 to 1023"],
    ),
    (["stream", "run", "--source", "-1"], ["--source", "'-1'", "camera index"]),
    (["stream", "run", "--source", "gopher://cam"], ["--source", "'gopher://cam'", "rtsp"]),
    (["stream", "run", "--source", "rtsp://"], ["--source", "'rtsp://'", "HOST"]),
    (["stream", "run", "--source", "0", "--output", "x.txt"], ["--output", "'x.txt'", ".mp4"]),
    (["stream", "run", "--source", "0", "--output", "{dir}.mp4"], ["--output", "a folder"]),
    (["stream", "run", "--source", "0", "--device", "gpu"], ["--device", "'gpu'", "cuda:N"]),
    (["stream", "run", "--source", "0", "--mode", "fast"], ["--mode", "'fast'", "windowed"]),
    # predict
    (["predict", "run", "clip.mp4", "--top-k", "0"], ["--top-k", "'0'", "from 1 to"]),
    (["predict", "run", "clip.mp4", "--batch-size", "0"], ["--batch-size", "'0'"]),
    (["predict", "run", "clip.mp4", "--batch-size", "100000000"], ["--batch-size", "'100000000'"]),
    (["predict", "run", "clip.mp4", "--device", "cuda:x"], ["--device", "'cuda:x'"]),
    # a device this machine lacks is a bad argument, not a traceback from model.to()
    (
        ["predict", "run", "clip.mp4", "--device", "cuda:99"],
        ["--device", "'cuda:99'", "a device this machine has"],
    ),
    (["predict", "run", "clip.mp4", "--onnx-dir", "{file}"], ["--onnx-dir", "which is a file"]),
    # data synth / inspect / split
    (["data", "synth", "{file}"], ["argument out", "which is a file"]),
    (["data", "synth", "{tmp}/s", "-s", "num_actors"], ["--set", "'num_actors'", "KEY=VALUE"]),
    (["data", "synth", "{tmp}/s", "-s", "num_actors=1"], ["num_actors", "got 1", "equal to 2"]),
    (["data", "synth", "{tmp}/s", "-s", "colour=red"], ["colour", "unknown key"]),
    (["data", "inspect", "{tmp}", "--json", "summary.txt"], ["--json", "'summary.txt'", ".json"]),
    (["data", "inspect", "{tmp}", "--json", "{dir}.json"], ["--json", "a folder"]),
    (["data", "inspect", "{tmp}", "--split", "0"], ["--split", "'0'", "1 to 25"]),
    (["data", "inspect", "{tmp}", "--kind", "kinetics"], ["--kind", "'kinetics'", "ucf101"]),
    (["data", "split", "{tmp}", "--out", "m.json"], ["--out", "'m.json'", ".csv"]),
    (
        ["data", "split", "{tmp}", "--out", "m.csv", "--test-fraction", "1"],
        ["--test-fraction", "'1'", "> 0 and < 1"],
    ),
    (["data", "split", "{tmp}", "--out", "m.csv", "--test-fraction", "0"], ["--test-fraction"]),
    (["data", "split", "{tmp}", "--out", "m.csv", "--seed", "-1"], ["--seed", "'-1'"]),
    (["data", "split", "{tmp}", "--out", "m.csv", "--seed", str(2**32)], ["--seed", str(2**32)]),
    # flow
    (["flow", "{tmp}", "--out", "o", "--size", "0"], ["--size", "'0'"]),
    (["flow", "{tmp}", "--out", "o", "--stride", "0"], ["--stride", "'0'"]),
    (["flow", "{tmp}", "--out", "o", "--max-frames", "1"], ["--max-frames", "'1'", "from 2"]),
    (["flow", "{tmp}", "--out", "o", "--workers", "-1"], ["--workers", "'-1'"]),
    (["flow", "{tmp}", "--out", "o", "--rank", "-1"], ["--rank", "'-1'"]),
    (["flow", "{tmp}", "--out", "o", "--world-size", "0"], ["--world-size", "'0'"]),
    (["flow", "{tmp}", "--out", "o", "--backend", "ffmpeg"], ["--backend", "'ffmpeg'", "pyav"]),
    (["flow", "{tmp}", "--out", "o", "--method", "sift"], ["--method", "'sift'", "tvl1"]),
    (["flow", "{tmp}", "--out", "{file}"], ["--out", "which is a file"]),
    # extract
    (["extract", "{tmp}", "--store", "{file}"], ["--store", "which is a file"]),
    (["extract", "{tmp}", "--store", "s", "--workers", "-1"], ["--workers", "'-1'"]),
    (["extract", "{tmp}", "--store", "s", "--batch-size", "0"], ["--batch-size", "'0'"]),
    (["extract", "{tmp}", "--store", "s", "--device", "tpu"], ["--device", "'tpu'"]),
    (["extract", "{tmp}", "--store", "s", "--report", "r.txt"], ["--report", "'r.txt'", ".json"]),
    (["extract", "{tmp}", "--store", "s", "--flow-root", "{file}"], ["--flow-root", "a file"]),
    (
        ["extract", "{tmp}", "--store", "s", "--sampling", "num_frames"],
        ["--sampling", "'num_frames'", "KEY=VALUE"],
    ),
    (
        [
            "extract",
            "{tmp}",
            "--store",
            "s",
            "--backbone",
            "tiny_image",
            "--sampling",
            "num_frames=0",
        ],
        ["num_frames", "got 0", "greater than or equal to 1"],
    ),
    # info (and recipe values through --set)
    (["info", "--recipe", RECIPE, "--num-classes", "0"], ["--num-classes", "'0'"]),
    (["info", "--recipe", RECIPE, "--set", "bogus"], ["--set", "'bogus'", "KEY=VALUE"]),
    (["info", "--recipe", RECIPE, "--set", "=5"], ["--set", "'=5'"]),
    (["info", "--recipe", RECIPE, "--set", "head.bogus=1"], ["head.bogus", "unknown key"]),
    (
        ["info", "--recipe", RECIPE, "--set", "head.hidden=1e11"],
        ["head.hidden", "'1e11'", "from 1 to 65536"],
    ),
    (
        ["info", "--recipe", RECIPE, "--set", "head.hidden=1.0e+11"],
        ["head.hidden", "100000000000", "from 1 to 65536"],
    ),
    (["info", "--recipe", RECIPE, "--set", "head.hidden=12.5"], ["head.hidden", "12.5"]),
    (["info", "--recipe", RECIPE, "--set", "head.hidden=[128,0]"], ["head.hidden", "[128, 0]"]),
    (["info", "--recipe", RECIPE, "--set", "head.num_layers=0"], ["head.num_layers", "got 0"]),
    (["info", "--recipe", RECIPE, "--set", "head.dropout=1"], ["head.dropout", "less than 1"]),
    (["info", "--recipe", RECIPE, "--set", "head.fc=[99999999]"], ["head.fc.0", "99999999"]),
    (["info", "--recipe", RECIPE, "--set", "optim.lr=0"], ["optim.lr", "greater than 0"]),
    (["info", "--recipe", RECIPE, "--set", "optim.lr=.inf"], ["optim.lr", "got inf"]),
    (["info", "--recipe", RECIPE, "--set", "optim.epochs=0"], ["optim.epochs", "got 0"]),
    (
        ["info", "--recipe", RECIPE, "--set", "optim.batch_size=100000000"],
        ["optim.batch_size", "100000000", "65536"],
    ),
    (["info", "--recipe", RECIPE, "--set", "optim.val_fraction=1"], ["optim.val_fraction"]),
    (["info", "--recipe", RECIPE, "--set", "optim.gamma=1"], ["optim.gamma", "less than 1"]),
    (["info", "--recipe", RECIPE, "--set", "optim.seed=-1"], ["optim.seed", "got -1"]),
    (["info", "--recipe", RECIPE, "--set", "optim.num_workers=-1"], ["optim.num_workers"]),
    (["info", "--recipe", "c3d-gru", "--set", "network.size=100000"], ["network.size", "1024"]),
    (["info", "--recipe", RECIPE, "--set", "mode=end_to_end"], ["needs a network"]),
    # train
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--splits", "1,,x"],
        ["--splits", "'1,,x'", "1 to 25"],
    ),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--splits", "0"], ["--splits", "'0'"]),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--splits", "1,1"], ["--splits", "1,1"]),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--splits", "1,"], ["--splits", "'1,'"]),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--devices", "0"],
        ["--devices", "'0'", "'auto'"],
    ),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--devices", "many"], ["--devices"]),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--num-nodes", "0"], ["--num-nodes"]),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--clips", "0"], ["--clips", "'0'"]),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--run", "{file}"],
        ["--run", "which is a file"],
    ),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--store", "{file}"],
        ["--store", "which is a file"],
    ),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--test-fraction", "1.5"],
        ["--test-fraction", "'1.5'"],
    ),
    (["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--split", "99"], ["--split", "'99'"]),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--accelerator", "tpu"],
        ["--accelerator", "'tpu'"],
    ),
    (
        ["train", "--recipe", RECIPE, "--dataset", "{tmp}", "--set", "head.hidden=1e11"],
        ["head.hidden", "'1e11'", "65536"],
    ),
    # evaluate
    (["evaluate", "run", "--clips", "0"], ["--clips", "'0'"]),
    (["evaluate", "run", "--batch-size", "0"], ["--batch-size", "'0'"]),
    (["evaluate", "run", "--out", "{file}"], ["--out", "which is a file"]),
    (["evaluate", "run", "--store", "{file}"], ["--store", "which is a file"]),
    (["evaluate", "run", "--precision", "16"], ["--precision", "'16'"]),
    # ablate
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--grid", "head.cell"],
        ["--grid", "'head.cell'", "KEY=V1,V2"],
    ),
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--grid", "head.cell="],
        ["--grid", "'head.cell='"],
    ),
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--grid", "head.cell=gru,,lstm"],
        ["--grid", "'head.cell=gru,,lstm'", "no empty value"],
    ),
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--grid", "=gru,lstm"],
        ["--grid", "'=gru,lstm'"],
    ),
    (["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--clips", "0"], ["--clips", "'0'"]),
    (["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--devices", "-1"], ["--devices"]),
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--out", "{file}"],
        ["--out", "which is a file"],
    ),
    (
        ["ablate", "--recipe", RECIPE, "--dataset", "{tmp}", "--grid", "head.hidden=8,1e11"],
        ["head.hidden", "'1e11'", "65536"],
    ),
    # export
    (["export", "run", "--opset", "99"], ["--opset", "'99'", "7 to 20"]),
    (["export", "run", "--opset", "6"], ["--opset", "'6'"]),
    (["export", "run", "--tolerance", "0"], ["--tolerance", "'0'", "> 0"]),
    (["export", "run", "--tolerance", "-1"], ["--tolerance", "'-1'"]),
    (["export", "run", "--out", "{file}"], ["--out", "which is a file"]),
    (["export", "run", "--format", "tflite"], ["--format", "'tflite'", "onnx"]),
]


def _fill(argv: list[str], tmp: Path) -> list[str]:
    (tmp / "file.txt").write_text("not a folder\n")
    (tmp / "dir").mkdir(exist_ok=True)
    for name in ("dir.json", "dir.mp4"):  # folders named like output files
        (tmp / name).mkdir(exist_ok=True)
    return [a.format(tmp=tmp, file=tmp / "file.txt", dir=tmp / "dir") for a in argv]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals exit while parsing
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragments"), CASES, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in CASES]
)
def test_bad_value_is_one_line_exit_2(
    argv: list[str], fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(_fill(argv, tmp_path), capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_good_values_parse_to_typed_values(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--recipe",
            RECIPE,
            "--dataset",
            str(tmp_path),
            "--splits",
            "1, 2,3",
            "--devices",
            "auto",
            "--run",
            str(tmp_path),
            "--test-fraction",
            "0.25",
            "--set",
            "head.hidden=[8,8]",
        ]
    )
    assert args.splits == [1, 2, 3] and args.devices == "auto" and args.test_fraction == 0.25
    assert args.overrides == ["head.hidden=[8,8]"]
    # list items by index reach a backbone's weights (input.features.0.weights=PATH)
    args = parser.parse_args(
        ["train", "--recipe", RECIPE, "--dataset", "d", "--set", "input.features.0.weights=w.pt"]
    )
    assert args.overrides == ["input.features.0.weights=w.pt"]
    assert parser.parse_args(["train", "--recipe", RECIPE, "--dataset", "d"]).devices == 1
    assert parser.parse_args(["ablate", "--devices", "2", "--dataset", "d"]).devices == 2
    args = parser.parse_args(
        [
            "stream",
            "run",
            "--source",
            "57",
            "--window",
            "8",
            "--timeout",
            "0.5",
            "--retries",
            "0",
            "--output",
            "a.MKV",
            "--device",
            "cpu",
        ]
    )
    assert (args.source, args.window, args.timeout, args.retries) == ("57", 8, 0.5, 0)
    assert args.output == Path("a.MKV") and args.device == "cpu"
    for source in ("rtsp://cam.local:554/live", "http://127.0.0.1:8000/x.ts", "clip.mp4"):
        assert parser.parse_args(["stream", "run", "--source", source]).source == source
    grid = ["--grid", "head.hidden=[128,128],256", "--grid", "head.cell=gru,lstm"]
    assert parser.parse_args(["ablate", "--recipe", RECIPE, "--dataset", "d", *grid]).grid == [
        "head.hidden=[128,128],256",
        "head.cell=gru,lstm",
    ]


def test_refusal_through_the_installed_entry_point() -> None:
    # The real process: exit status 2, one line on stderr, nothing on stdout.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harkit.cli.main",
            "stream",
            "run",
            "--source",
            "0",
            "--window",
            "-3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "harkit stream: error: argument --window: expected an integer from 1 to 100000, "
        "got '-3' (see 'harkit stream --help')"
    ]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        ["train", "--recipe", RECIPE, "--dataset", "d", "--accelerator", "cuda"], capsys
    )
    assert code == 2 and err.strip().count("\n") == 0
    assert "--accelerator" in err and "no CUDA device" in err


def test_unwritable_output_paths_are_one_line(tmp_path: Path, capsys) -> None:
    # A file where a folder must go: every verb that writes ends in one line naming the path.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    code, err = _run(["data", "synth", str(blocker / "synth")], capsys)
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"harkit: error: {blocker}")
    assert line.endswith("a file stands where a folder is needed")


def test_extract_takes_recipe_overrides_and_refuses_flags_it_would_ignore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harkit.cli.extract import resolve_sources

    parse = build_parser().parse_args
    base = [
        "extract",
        str(tmp_path),
        "--store",
        str(tmp_path / "s"),
        "--recipe",
        "efficientnet-gru",
    ]
    sources, *_ = resolve_sources(
        parse(
            [
                *base,
                "--set",
                "input.features.0.weights=none",
                "--set",
                "input.sampling.num_frames=8",
            ]
        )
    )
    assert sources[0].weights == "none"
    _, sampling, *_ = resolve_sources(parse([*base, "--set", "input.sampling.num_frames=8"]))
    assert sampling.num_frames == 8
    for flag, value in (("--weights", "none"), ("--layer", "bn2")):
        assert main([*base, flag, value]) == 2  # it was silently ignored with --recipe
        err = capsys.readouterr().err
        assert f"{flag} applies to --backbone sources; for the recipe's sources use --set" in err
    assert (
        main(
            [
                "extract",
                str(tmp_path),
                "--store",
                str(tmp_path / "s"),
                "--backbone",
                "resnet18",
                "--set",
                "head.hidden=8",
            ]
        )
        == 2
    )
    assert "--set overrides a recipe's keys: give --recipe too" in capsys.readouterr().err


def test_extract_with_no_video_extracted_exits_1_and_a_missing_flow_root_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.mp4").write_bytes(b"not a video")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.mp4").write_bytes(b"not a video either")
    base = [
        "extract",
        str(tmp_path),
        "--store",
        str(tmp_path / "s"),
        "--backbone",
        "tiny_image",
        "--weights",
        "none",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "harkit: no video could be extracted; reasons in" in err
    flow = ["--recipe", "efficientnet-motion-gru", "--flow-root", str(tmp_path / "nowhere")]
    assert main(["extract", str(tmp_path), "--store", str(tmp_path / "s2"), *flow]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: --flow-root {tmp_path / 'nowhere'}: folder not found (the output of "
        "`harkit flow`)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--recipe", "synthetic-gru", "--dataset", "", "--run", "r"],
        ["predict", "", "a.mp4"],
        ["evaluate", " "],
    ],
)
def test_a_blank_path_is_refused_not_read_as_the_current_folder(argv, capsys) -> None:
    """--dataset '' was read as '.' ('the run folder is inside the dataset folder .')."""
    from harkit.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "expected a path, got " in capsys.readouterr().err
