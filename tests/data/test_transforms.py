import numpy as np
import pytest
import torch
from pydantic import ValidationError

from harkit.config import ConfigError
from harkit.data.transforms import ClipTransform, TransformConfig


def constant_clip(t=6, h=60, w=80, seed=0):
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.repeat(frame[None], t, axis=0)


def test_eval_output_shape_and_normalisation():
    clip = np.full((4, 60, 80, 3), 128, dtype=np.uint8)
    out = ClipTransform(TransformConfig(), input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)(clip)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full_like(out, (128 / 255 - 0.5) / 0.25))


def test_input_size_comes_from_backbone():
    clip = constant_clip()
    assert ClipTransform(TransformConfig(), input_size=299)(clip).shape[-1] == 299
    assert ClipTransform(TransformConfig(crop_size=40, resize=48), 299)(clip).shape[-1] == 40


def test_a_height_width_crop_keeps_the_whole_4_3_frame():
    # a bar at each side edge: a centre square cuts both off, a [30, 40] crop keeps both
    clip = np.full((2, 60, 80, 3), 0, dtype=np.uint8)
    clip[:, :, :6] = clip[:, :, -6:] = 255
    config = TransformConfig(crop_size=[30, 40])
    out = ClipTransform(config, input_size=224, mean=(0.0,) * 3, std=(1.0,) * 3)(clip)
    assert out.shape == (2, 3, 30, 40)
    assert out[..., 0].min() > 0.9 and out[..., -1].min() > 0.9
    square = ClipTransform(TransformConfig(crop_size=30), 224, (0.0,) * 3, (1.0,) * 3)(clip)
    assert square[..., 0].max() < 0.1 and square[..., -1].max() < 0.1
    # a portrait frame is narrower than the crop: zeros either side, nothing stretched
    portrait = ClipTransform(config, 224, (0.0,) * 3, (1.0,) * 3)(
        np.full((1, 80, 60, 3), 255, np.uint8)
    )
    assert portrait.shape == (1, 3, 30, 40)
    assert portrait[..., 0].max() == 0 and portrait[..., 20].min() == 1


@pytest.mark.parametrize("value", [[224], [224, 0], [1, 2, 3], "wide", 100_000, [224, True]])
def test_bad_crop_sizes_are_one_clear_error(value):
    with pytest.raises(ValidationError) as err:
        TransformConfig(crop_size=value)
    assert err.value.error_count() == 1
    assert "[height, width], each 1 to 8192" in str(err.value)


def test_a_resize_below_the_crop_is_a_config_error():
    # a stranger's --set input.transform.resize=100 under a 224 backbone gave a traceback
    with pytest.raises(ConfigError, match=r"input.transform.resize \(100\) must be >= .*224"):
        ClipTransform(TransformConfig(resize=100), input_size=224)


def test_random_parameters_are_shared_by_every_frame_of_a_clip():
    config = TransformConfig(resize=56, crop_size=40, random_crop=True, hflip=0.5, rotation=5)
    transform = ClipTransform(config, input_size=40, train=True)
    clip = constant_clip()
    outputs = []
    for seed in range(8):
        torch.manual_seed(seed)
        out = transform(clip)
        for t in range(1, len(out)):  # identical input frames -> identical output frames
            torch.testing.assert_close(out[t], out[0])
        outputs.append(out[0])
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:])  # but random per clip


def test_flip_applies_to_the_whole_clip():
    clip = constant_clip(seed=1)
    plain = ClipTransform(TransformConfig(), input_size=48)(clip)
    flipped = ClipTransform(TransformConfig(hflip=1.0), input_size=48, train=True)(clip)
    torch.testing.assert_close(flipped, plain.flip(-1))


def test_augmentation_is_off_in_eval():
    config = TransformConfig(random_crop=True, hflip=1.0, rotation=10, resize=56)
    clip = constant_clip(seed=2)
    a = ClipTransform(config, input_size=40)(clip)
    b = ClipTransform(TransformConfig(resize=56), input_size=40)(clip)
    torch.testing.assert_close(a, b)
