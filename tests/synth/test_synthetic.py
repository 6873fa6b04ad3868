"""The built-in synthetic dataset: layout, splits, determinism, time-order pairs, video files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from pydantic import ValidationError

from harkit.data.video import rgb_converter
from harkit.errors import HarkitError
from harkit.synth import (
    BACKGROUNDS,
    PEOPLE_CLASSES,
    PEOPLE_ORDER_FREE_CLASSES,
    PEOPLE_TIME_ORDER_PAIRS,
    SHAPES,
    SYNTH_CLASSES,
    TIME_ORDER_PAIRS,
    SynthConfig,
    actor_style,
    figure_style,
    render_clip,
    render_dataset,
    resolve_encoder,
    write_video,
)

SMALL = SynthConfig(num_actors=3, clips_per_actor=2, num_frames=12, size=64, test_actors=1)
# noiseless solid backgrounds make the object measurable exactly
CLEAN = SynthConfig(num_frames=20, size=96, noise_std=0.0, backgrounds=["solid"])


def _decode(path: Path) -> tuple[np.ndarray, list[str]]:
    to_rgb = rgb_converter()  # not to_ndarray(format=...): see harkit.data.video
    with av.open(str(path)) as container:
        frames, kinds = [], []
        for frame in container.decode(video=0):
            frames.append(to_rgb(frame))
            kinds.append(PictureType(int(frame.pict_type)).name)
    return np.stack(frames), kinds


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_dataset(tmp_path_factory.mktemp("synth") / "out", SMALL)


# ---------------------------------------------------------------------------------------------
# measuring the object in frames of a solid-background clip


def _background(video: np.ndarray) -> np.ndarray:
    corners = video[:, [0, 0, -1, -1], [0, -1, 0, -1]].reshape(-1, 3).astype(np.float64)
    return np.median(corners, axis=0)


def _diff(video: np.ndarray) -> np.ndarray:
    return np.abs(video.astype(np.float64) - _background(video)).max(axis=-1)


def _centroids(video: np.ndarray, threshold: float = 40.0) -> np.ndarray:
    mask = _diff(video) > threshold
    ys, xs = np.mgrid[0 : video.shape[1], 0 : video.shape[2]]
    count = mask.sum(axis=(1, 2))
    assert (count > 0).all(), "object not found in every frame"
    return np.stack([(mask * xs).sum((1, 2)) / count, (mask * ys).sum((1, 2)) / count], axis=1)


def _area(video: np.ndarray) -> np.ndarray:
    return (_diff(video) > 40.0).sum(axis=(1, 2)).astype(float)


def _contrast(video: np.ndarray) -> np.ndarray:
    return _diff(video).sum(axis=(1, 2))


def _turn(video: np.ndarray) -> float:
    """Total clockwise-on-screen rotation (degrees) of the white marker about the object."""
    centre = _centroids(video)
    white = video.min(axis=-1) > 200
    ys, xs = np.mgrid[0 : video.shape[1], 0 : video.shape[2]]
    count = white.sum(axis=(1, 2))
    assert (count > 0).all(), "marker not found in every frame"
    mx, my = (white * xs).sum((1, 2)) / count, (white * ys).sum((1, 2)) / count
    angle = np.degrees(np.arctan2(my - centre[:, 1], mx - centre[:, 0]))
    step = (np.diff(angle) + 180.0) % 360.0 - 180.0
    return float(step.sum())


def _trend(label: str, video: np.ndarray) -> float:
    """Signed change that the forward class of a pair makes positive."""
    if label in ("move_right", "move_left"):
        xy = _centroids(video)
        return float(xy[-1, 0] - xy[0, 0])
    if label in ("move_down", "move_up"):
        xy = _centroids(video)
        return float(xy[-1, 1] - xy[0, 1])
    if label in ("grow", "shrink"):
        area = _area(video)
        return float(np.log(area[-1] / area[0]))
    if label in ("rotate_cw", "rotate_ccw"):
        return _turn(video)
    if label in ("fade_in", "fade_out"):
        contrast = _contrast(video)
        return float(np.log(contrast[-1] / contrast[0]))
    raise AssertionError(label)


# ---------------------------------------------------------------------------------------------
# classes and config


def test_class_list_and_pairs() -> None:
    assert len(SYNTH_CLASSES) >= 8
    assert len(set(SYNTH_CLASSES)) == len(SYNTH_CLASSES)
    paired = [name for pair in TIME_ORDER_PAIRS for name in pair]
    assert len(set(paired)) == len(paired)
    assert set(paired) <= set(SYNTH_CLASSES)
    assert len(paired) > len(SYNTH_CLASSES) / 2


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        SynthConfig(size=65)
    with pytest.raises(ValidationError):
        SynthConfig(num_actors=3, test_actors=3)
    with pytest.raises(ValidationError):
        SynthConfig(classes=["move_left", "jump"])
    with pytest.raises(ValidationError):
        SynthConfig(frames=10)  # type: ignore[call-arg]
    assert SynthConfig(classes=["shrink", "grow"]).class_names == ["grow", "shrink"]
    assert SynthConfig(num_actors=6, test_actors=2).test_actor_ids == [5, 6]


# ---------------------------------------------------------------------------------------------
# dataset layout, splits, files


def test_manifest_layout(small_dataset: Path) -> None:
    text = small_dataset.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "path,label,split,group"
    rows = _rows(small_dataset)
    assert len(rows) == len(SYNTH_CLASSES) * SMALL.num_actors * SMALL.clips_per_actor
    assert {row["label"] for row in rows} == set(SYNTH_CLASSES)
    assert len({row["path"] for row in rows}) == len(rows)
    for row in rows:
        path = Path(row["path"])
        assert not path.is_absolute()
        assert path.parent.name == row["label"]
        assert path.name.startswith(f"{row['label']}_{row['group']}_c")
        assert path.suffix == ".mp4"
        assert (small_dataset.parent / path).is_file()
    assert (small_dataset.parent / "move_left" / "move_left_a02_c01.mp4").is_file()


def test_split_is_group_aware(small_dataset: Path) -> None:
    rows = _rows(small_dataset)
    train = {row["group"] for row in rows if row["split"] == "train"}
    test = {row["group"] for row in rows if row["split"] == "test"}
    assert {row["split"] for row in rows} == {"train", "test"}
    assert test == {"a03"}
    assert train == {"a01", "a02"}
    assert not train & test
    per_class_test = [r for r in rows if r["split"] == "test" and r["label"] == "grow"]
    assert len(per_class_test) == SMALL.clips_per_actor


def test_videos_decode_to_the_rendered_frames(small_dataset: Path) -> None:
    root = small_dataset.parent
    for row in _rows(small_dataset):
        video, _ = _decode(root / row["path"])
        assert video.shape == (SMALL.num_frames, SMALL.size, SMALL.size, 3)
        assert video.dtype == np.uint8
    decoded, _ = _decode(root / "rotate_ccw" / "rotate_ccw_a02_c02.mp4")
    rendered = render_clip("rotate_ccw", 2, 2, SMALL)
    assert np.abs(decoded.astype(float) - rendered).mean() < 6.0
    with av.open(str(root / "grow" / "grow_a01_c01.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == SMALL.fps
        if resolve_encoder("h264") != "mpeg4":
            assert stream.codec_context.name == "h264"


def test_rerun_is_resumable(tmp_path: Path) -> None:
    config = SynthConfig(
        classes=["move_left", "blink"],
        num_actors=2,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=1,
    )
    manifest = render_dataset(tmp_path, config)
    videos = sorted(tmp_path.glob("*/*.mp4"))
    assert len(videos) == 4
    before = {path: path.stat().st_mtime_ns for path in videos}
    text = manifest.read_text(encoding="utf-8")

    # a killed run's temp file is cleaned up, a missing video is rendered, the rest are kept
    (tmp_path / "blink" / ".blink_a01_c01.mp4.abc123.tmp").write_bytes(b"half a video")
    videos[0].unlink()
    assert render_dataset(tmp_path, config) == manifest
    assert manifest.read_text(encoding="utf-8") == text
    assert not list(tmp_path.glob("*/.*.tmp"))
    for path in videos[1:]:
        assert path.stat().st_mtime_ns == before[path]
    assert _decode(videos[0])[0].shape == (8, 32, 32, 3)

    render_dataset(tmp_path, config)
    for path in videos[1:]:
        assert path.stat().st_mtime_ns == before[path]


def test_other_config_in_same_folder(tmp_path: Path) -> None:
    config = SynthConfig(
        classes=["grow", "shrink"],
        num_actors=2,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=1,
    )
    render_dataset(tmp_path, config)
    target = tmp_path / "grow" / "grow_a01_c01.mp4"
    old = _decode(target)[0]
    other = config.model_copy(update={"seed": 5})
    with pytest.raises(HarkitError, match="different synthetic config"):
        render_dataset(tmp_path, other)
    render_dataset(tmp_path, other, overwrite=True)
    new = _decode(target)[0]
    assert np.abs(new.astype(float) - render_clip("grow", 1, 1, other)).mean() < 6.0
    assert not np.array_equal(old, new)


# ---------------------------------------------------------------------------------------------
# rendering


def test_render_is_deterministic() -> None:
    for label in SYNTH_CLASSES:
        first = render_clip(label, 2, 1, SMALL)
        assert first.shape == (SMALL.num_frames, SMALL.size, SMALL.size, 3)
        assert first.dtype == np.uint8
        assert np.array_equal(first, render_clip(label, 2, 1, SMALL))
    base = render_clip("grow", 1, 1, SMALL)
    assert not np.array_equal(base, render_clip("grow", 1, 2, SMALL))
    assert not np.array_equal(base, render_clip("grow", 2, 1, SMALL))
    reseeded = SMALL.model_copy(update={"seed": 1})
    assert not np.array_equal(base, render_clip("grow", 1, 1, reseeded))


def test_actors_differ_in_look() -> None:
    config = SynthConfig(num_actors=len(SHAPES))
    styles = [actor_style(actor, config) for actor in range(1, len(SHAPES) + 1)]
    assert {style.shape for style in styles} == set(SHAPES)
    assert len({style.color for style in styles}) == len(styles)
    assert len({round(style.radius, 3) for style in styles}) > 1
    assert actor_style(3, config) == actor_style(3, config)


def test_backgrounds_vary_between_clips() -> None:
    firsts = [render_clip("shake", 1, clip, SynthConfig(num_frames=4))[0] for clip in range(1, 7)]
    means = {tuple(np.round(frame.reshape(-1, 3).mean(0))) for frame in firsts}
    assert len(means) == len(firsts)
    gradient = render_clip("blink", 1, 1, SynthConfig(backgrounds=["gradient"], noise_std=0))
    assert np.ptp(gradient[0, :8, :8].reshape(-1, 3), axis=0).max() > 0  # not a flat colour


def test_noise_level() -> None:
    noisy_config = CLEAN.model_copy(update={"noise_std": 4.0})
    clean = render_clip("fade_in", 1, 1, CLEAN).astype(float)
    noisy = render_clip("fade_in", 1, 1, noisy_config).astype(float)
    unclipped = (clean > 20) & (clean < 235)
    noise = (noisy - clean)[unclipped]
    assert abs(noise.std() - 4.0) < 0.5
    assert abs(noise.mean()) < 0.5  # at most the rounding of the clean clip


@pytest.mark.parametrize(("forward", "backward"), TIME_ORDER_PAIRS)
def test_pairs_differ_only_in_time_order(forward: str, backward: str) -> None:
    for actor in (1, 2, 3, 4):
        for clip in (1, 2):
            fwd = render_clip(forward, actor, clip, CLEAN)
            bwd = render_clip(backward, actor, clip, CLEAN)
            assert _trend(forward, fwd) > 0.0, (forward, actor, clip)
            assert _trend(backward, bwd) < 0.0, (backward, actor, clip)
            # played backwards, each class is a clip of the other
            assert _trend(forward, bwd[::-1]) > 0.0
            assert _trend(backward, fwd[::-1]) < 0.0


def test_move_pair_direction_in_decoded_video(tmp_path: Path) -> None:
    config = SynthConfig(
        classes=["move_right", "move_left"],
        num_actors=2,
        clips_per_actor=2,
        num_frames=16,
        backgrounds=["solid"],
        test_actors=1,
    )
    manifest = render_dataset(tmp_path, config)
    for row in _rows(manifest):
        video, _ = _decode(tmp_path / row["path"])
        dx = _centroids(video)[:, 0]
        sign = 1.0 if row["label"] == "move_right" else -1.0
        assert sign * (dx[-1] - dx[0]) > 0.2 * config.size, row
        assert -sign * (dx[::-1][-1] - dx[::-1][0]) > 0.2 * config.size
        assert np.all(sign * np.diff(dx) > -1.0), row  # monotonic up to coding noise


def test_order_free_classes() -> None:
    for clip in (1, 2, 3):
        blink = _contrast(render_clip("blink", 1, clip, CLEAN))
        assert (blink == 0).any() and (blink > 0).any()
        shake = _centroids(render_clip("shake", 1, clip, CLEAN))
        steps = np.diff(shake, axis=0)
        turns = (np.sign(steps[1:, 0]) != np.sign(steps[:-1, 0])).sum()
        assert turns >= len(steps) // 4
    for label in SYNTH_CLASSES:
        if label != "blink":
            assert (_contrast(render_clip(label, 2, 1, CLEAN)) > 0).all(), label


# ---------------------------------------------------------------------------------------------
# write_video


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_write_video_with_bframes_keeps_frame_order(tmp_path: Path, suffix: str) -> None:
    frames = render_clip("move_right", 1, 1, SynthConfig(num_frames=24, size=64))
    # a stripe whose grey level counts the frames, since a held object repeats frames
    frames[:, :8] = np.arange(24, dtype=np.uint8)[:, None, None, None] * 10
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=25, bframes=2)
    assert path.is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    decoded, kinds = _decode(path)
    assert decoded.shape == frames.shape
    if resolve_encoder("h264") == "libx264":
        assert "B" in kinds
    error = np.abs(decoded[:, None].astype(float) - frames[None].astype(float)).mean((2, 3, 4))
    assert list(error.argmin(axis=1)) == list(range(len(frames)))


def test_write_video_mpeg4(tmp_path: Path) -> None:
    frames = render_clip("grow", 1, 1, SynthConfig(num_frames=6, size=32))
    path = write_video(tmp_path / "clip.avi", frames, fps=10, codec="mpeg4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert _decode(path)[0].shape == frames.shape


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "a.mp4", np.zeros((0, 32, 32, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_avi_dataset(tmp_path: Path) -> None:
    config = SynthConfig(
        classes=["fade_in", "fade_out"],
        num_actors=2,
        clips_per_actor=1,
        num_frames=10,
        size=48,
        container="avi",
        test_actors=1,
    )
    rows = _rows(render_dataset(tmp_path, config))
    assert all(row["path"].endswith(".avi") for row in rows)
    for row in rows:
        assert _decode(tmp_path / row["path"])[0].shape == (10, 48, 48, 3)


def test_turn_measure_sees_direction() -> None:
    # guards the rotation check above against a measurement that is always positive
    clip = render_clip("rotate_cw", 1, 1, CLEAN)
    assert math.copysign(1.0, _turn(clip)) == -math.copysign(1.0, _turn(clip[::-1]))


# ---------------------------------------------------------------------------------------------
# people: articulated stick figures

PEOPLE = SynthConfig(kind="people", num_frames=12, size=64, noise_std=0.0, backgrounds=["solid"])


def _figure_mask(video: np.ndarray) -> np.ndarray:
    """Pixels that differ from the (solid) background: the figure, per frame."""
    return np.abs(video.astype(np.int16) - _background(video).astype(np.int16)).max(-1) > 12


def test_people_config_and_classes() -> None:
    assert len(set(PEOPLE_CLASSES)) == len(PEOPLE_CLASSES)
    paired = [name for pair in PEOPLE_TIME_ORDER_PAIRS for name in pair]
    assert set(paired) | set(PEOPLE_ORDER_FREE_CLASSES) == set(PEOPLE_CLASSES)
    assert PEOPLE.class_names == list(PEOPLE_CLASSES)
    assert PEOPLE.time_order_pairs == PEOPLE_TIME_ORDER_PAIRS
    assert SynthConfig().time_order_pairs == TIME_ORDER_PAIRS
    subset = SynthConfig(kind="people", classes=["stand_up", "squat_down", "wave"])
    assert subset.class_names == ["squat_down", "stand_up", "wave"]
    assert subset.time_order_pairs == [("squat_down", "stand_up")]
    with pytest.raises(ValidationError):
        SynthConfig(kind="people", classes=["raise_arms", "move_left"])  # a shapes class
    with pytest.raises(ValidationError):
        SynthConfig(classes=["raise_arms", "lower_arms"])  # people classes, shapes kind
    with pytest.raises(ValueError, match="unknown people class"):
        render_clip("move_left", 1, 1, PEOPLE)


def test_people_shapes_and_determinism() -> None:
    for label in PEOPLE_CLASSES:
        video = render_clip(label, 2, 1, PEOPLE)
        assert video.shape == (PEOPLE.num_frames, PEOPLE.size, PEOPLE.size, 3)
        assert video.dtype == np.uint8
        assert np.array_equal(video, render_clip(label, 2, 1, PEOPLE))
        covered = _figure_mask(video).mean(axis=(1, 2))
        assert (covered > 0.03).all() and (covered < 0.5).all(), label  # a figure, not noise
    base = render_clip("wave", 1, 1, PEOPLE)
    assert not np.array_equal(base, render_clip("wave", 1, 2, PEOPLE))
    assert not np.array_equal(
        base, render_clip("wave", 1, 1, PEOPLE.model_copy(update={"seed": 3}))
    )


def test_people_actors_differ() -> None:
    styles = [figure_style(actor, PEOPLE) for actor in range(1, 7)]
    assert len({s.shirt for s in styles}) == len(styles)
    assert len({round(s.height, 2) for s in styles}) == len(styles)
    assert len({round(s.tempo, 2) for s in styles}) > 1
    assert figure_style(4, PEOPLE) == figure_style(4, PEOPLE)
    sizes = [_figure_mask(render_clip("wave", actor, 1, PEOPLE)).mean() for actor in (1, 2, 3)]
    assert max(sizes) - min(sizes) > 0.005  # actors of different sizes cover different areas


@pytest.mark.parametrize(("forward", "backward"), PEOPLE_TIME_ORDER_PAIRS)
def test_people_pairs_are_exact_reverses(forward: str, backward: str) -> None:
    # the same motion both ways: the figure moves in opposite directions over the clip
    fwd, bwd = render_clip(forward, 1, 1, PEOPLE), render_clip(backward, 1, 1, PEOPLE)
    top = lambda v: np.array([np.argmax(m.any(1)) for m in _figure_mask(v)])  # noqa: E731
    area = lambda v: _figure_mask(v).mean(axis=(1, 2))  # noqa: E731
    if forward == "raise_arms":  # hands go above the head, then come down
        assert top(fwd)[-1] < top(fwd)[0] and top(bwd)[-1] > top(bwd)[0]
    else:  # squatting and bending lower the head
        assert top(fwd)[-1] > top(fwd)[0] and top(bwd)[-1] < top(bwd)[0]
    assert area(fwd)[0] != area(fwd)[-1]


def test_people_reversal_is_exact() -> None:
    # backward classes reverse the frames of a forward render drawn from their own stream
    from harkit.synth.people import render_people
    from harkit.synth.scene import pixel_noise, random_stream

    noisy = PEOPLE.model_copy(update={"noise_std": 4.0, "backgrounds": list(BACKGROUNDS)})
    for forward, backward in PEOPLE_TIME_ORDER_PAIRS:
        rng = random_stream(noisy, 4, PEOPLE_CLASSES.index(backward), 2, 1)
        frames = render_people(forward, 2, noisy, rng)
        frames += pixel_noise(rng, frames.shape, noisy.noise_std)
        expected = np.clip(frames[::-1], 0, 255) + np.float32(0.5)
        assert np.array_equal(render_clip(backward, 2, 1, noisy), expected.astype(np.uint8))
        rng = random_stream(PEOPLE, 4, PEOPLE_CLASSES.index(backward), 2, 1)
        frames = render_people(forward, 2, PEOPLE, rng)
        expected = np.clip(frames[::-1], 0, 255) + np.float32(0.5)
        assert np.array_equal(render_clip(backward, 2, 1, PEOPLE), expected.astype(np.uint8))


def test_people_order_free_classes_are_periodic() -> None:
    for label in PEOPLE_ORDER_FREE_CLASSES:
        masks = _figure_mask(render_clip(label, 1, 1, PEOPLE.model_copy(update={"num_frames": 24})))
        change = np.abs(np.diff(masks.astype(np.int8), axis=0)).sum(axis=(1, 2))
        assert (change > 0).mean() > 0.8, label  # moving all the time, not a one-off ramp


def test_people_dataset_files(tmp_path: Path) -> None:
    config = PEOPLE.model_copy(
        update={
            "classes": ["raise_arms", "lower_arms"],
            "num_actors": 2,
            "test_actors": 1,
            "clips_per_actor": 1,
        }
    )
    manifest = render_dataset(tmp_path, config)
    rows = _rows(manifest)
    assert [r["label"] for r in rows] == ["raise_arms", "raise_arms", "lower_arms", "lower_arms"]
    video, _ = _decode(tmp_path / rows[0]["path"])
    assert video.shape == (config.num_frames, config.size, config.size, 3)
    rendered = render_clip("raise_arms", 1, 1, config).astype(np.int16)
    assert np.abs(video.astype(np.int16) - rendered).mean() < 4.0


def test_people_shared_scene_is_one_room() -> None:
    def ratio_spread(config: SynthConfig) -> float:
        first = render_clip("wave", 1, 1, config)[0].astype(np.float64)
        other = render_clip("clap", 2, 2, config)[0].astype(np.float64)
        # the corner column, left of where any figure stands
        a, b = first[:, :4].reshape(-1, 3) + 1.0, other[:, :4].reshape(-1, 3) + 1.0
        return float(np.std(a / b) / np.mean(a / b))

    room = PEOPLE.model_copy(update={"backgrounds": ["texture"], "shared_scene": True})
    assert ratio_spread(room) < 0.05  # the same texture, only the light differs
    assert ratio_spread(room.model_copy(update={"shared_scene": False})) > 0.1
