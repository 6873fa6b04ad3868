import numpy as np
import torch

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
