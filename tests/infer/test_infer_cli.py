"""``harkit predict`` / ``harkit export`` through ``harkit.cli.main.main``: output, exit codes,
and clear one-line errors (never a traceback) for bad input."""

from __future__ import annotations

import json

import yaml

from tests.helpers.runs import CLASSES
from tests.helpers.tolerances import PROB_ATOL


def test_predict_table_and_seed004_line(cli, make_run, make_video, capsys):
    run, video = make_run("small2d"), make_video()
    code = cli("predict", run, video, "--top-k", "2")
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 1  # each result once
    label, conf = lines[0].split()[1:3]
    assert label in CLASSES and 0 <= float(conf) <= 1
    assert cli("predict", run, video, "--paper-style") == 0
    assert capsys.readouterr().out.splitlines() == [f"{video}: Class: {label}, Confidence: {conf}"]


def test_predict_folder_json_with_unreadable_file(cli, make_run, make_video, capsys, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        make_video(f"videos/v{i}.mp4", seed=i)
    (folder / "broken.avi").write_bytes(b"\x00" * 64)
    code = cli("predict", make_run("small2d"), folder, "--json", "--batch-size", "2")
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 0  # something was predicted
    assert len(rows) == 4
    errors = [r for r in rows if "error" in r]
    assert [r["source"].endswith("broken.avi") for r in errors] == [True]
    for row in rows:
        if "error" not in row:
            assert row["label"] in CLASSES and len(row["top_k"]) == 3
    assert "broken.avi" in captured.err and "Traceback" not in captured.err


def test_predict_nothing_readable_exits_nonzero(cli, make_run, capsys, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk")
    code = cli("predict", make_run("small2d"), bad, tmp_path / "missing.mp4")
    err = capsys.readouterr().err
    assert code == 1 and "bad.mp4" in err and "missing.mp4" in err and "Traceback" not in err


def _assert_clear_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.startswith("harkit: error:") and "Traceback" not in err
    for word in words:
        assert word in err


def test_bad_run_folders_are_clear_errors(cli, make_run, make_video, capsys, tmp_path):
    video = make_video()
    _assert_clear_error(
        cli("predict", tmp_path / "nope", video), capsys.readouterr().err, "not found"
    )

    no_weights = make_run("small2d", name="no_weights")
    (no_weights / "model.safetensors").unlink()
    _assert_clear_error(
        cli("predict", no_weights, video), capsys.readouterr().err, "model.safetensors"
    )

    future = make_run("small2d", name="future")
    info = json.loads((future / "run.json").read_text())
    (future / "run.json").write_text(json.dumps({**info, "format_version": 99}))
    _assert_clear_error(cli("predict", future, video), capsys.readouterr().err, "format")

    other = make_run("small2d", name="other_config")
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["head_v2"] = {"kind": "transformer"}  # a key this version does not know
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _assert_clear_error(cli("stream", other, "--source", video), capsys.readouterr().err, "head_v2")


def test_export_then_predict_with_onnx_engine(
    cli, make_run, make_video, capsys, tmp_path, fast_precision
):
    run, video = make_run("gru_features"), make_video()
    out = tmp_path / "exported"
    assert cli("export", run, "--format", "onnx", "--out", out, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert max(report["max_abs_diff"].values()) < 1e-4
    assert cli("predict", run, video, "--json") == 0
    torch_row = json.loads(capsys.readouterr().out)
    assert cli("predict", run, video, "--json", "--engine", "onnx", "--onnx-dir", out) == 0
    onnx_row = json.loads(capsys.readouterr().out)
    assert onnx_row["label"] == torch_row["label"]
    # the exported graphs are fp32; the default torch path runs in the forced precision
    assert abs(onnx_row["confidence"] - torch_row["confidence"]) < PROB_ATOL[fast_precision]
    # without an export in RUN/onnx the engine says what to do
    _assert_clear_error(
        cli("predict", run, video, "--engine", "onnx"), capsys.readouterr().err, "harkit export"
    )
    # a damaged export manifest is one line naming it, not a traceback
    for junk in ("[1, 2]", "{not json", '{"branches": [3]}'):
        (out / "export.json").write_text(junk)
        _assert_clear_error(
            cli("predict", run, video, "--engine", "onnx", "--onnx-dir", out),
            capsys.readouterr().err,
            "export.json is unreadable",
        )
