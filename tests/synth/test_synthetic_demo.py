"""The demo's synthetic data: its clips to predict are held-out people of its own classes."""

from __future__ import annotations

from pathlib import Path

from harkit.cli.demo import SYNTH, TEST_CLIPS, stages
from harkit.config import apply_overrides, parse_config
from harkit.synth import SynthConfig, clip_filename


def _config() -> SynthConfig:
    overrides = [SYNTH[i + 1] for i in range(0, len(SYNTH), 2) if SYNTH[i] == "-s"]
    return parse_config(SynthConfig, apply_overrides({}, overrides), "demo")


def test_demo_renders_people_with_time_order_pairs() -> None:
    config = _config()
    assert config.kind == "people"
    assert len(config.time_order_pairs) >= 2
    assert config.test_actors >= 2


def test_demo_predicts_held_out_clips_of_known_classes() -> None:
    config = _config()
    paired = {name for pair in config.time_order_pairs for name in pair}
    labels = []
    for clip in TEST_CLIPS:
        label = Path(clip).parent.name
        actor, number = (int(part[1:]) for part in Path(clip).stem.rsplit("_", 2)[1:])
        assert Path(clip).name == clip_filename(label, actor, number, config.container)
        assert actor in config.test_actor_ids  # never a clip the model trained on
        assert 1 <= number <= config.clips_per_actor
        labels.append(label)
    assert paired & set(labels)  # at least one clip only frame order can tell
    assert set(labels) <= set(config.class_names)


def test_demo_stages_write_under_out(tmp_path: Path) -> None:
    commands = stages(tmp_path)
    assert [c[0] for c in commands][:3] == ["data", "data", "extract"]
    assert commands[-1][0] == "predict"
    for command in commands:
        for arg in command:
            if arg.startswith("/"):
                assert Path(arg).is_relative_to(tmp_path), arg
