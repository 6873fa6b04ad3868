import numpy as np
import pytest

from harkit.config import ConfigError, parse_config
from harkit.data.sampling import SamplingConfig, sample_indices


def cfg(**kw):
    return SamplingConfig(**kw)


def test_uniform_spreads_linearly_and_includes_ends():
    s = sample_indices(100, cfg(strategy="uniform", num_frames=20))
    assert s.indices.shape == (20,) and s.mask.all()
    assert s.indices[0] == 0 and s.indices[-1] == 99
    assert np.all(np.diff(s.indices) > 0)


def test_uniform_is_deterministic_even_in_training():
    a = sample_indices(100, cfg(num_frames=8), train=True, rng=np.random.default_rng(1))
    b = sample_indices(100, cfg(num_frames=8), train=True, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.indices, b.indices)


def test_tsn_centres_for_eval_random_offsets_for_training():
    config = cfg(strategy="tsn", num_frames=4)
    np.testing.assert_array_equal(sample_indices(40, config).indices, [5, 15, 25, 35])
    a = sample_indices(40, config, train=True, rng=np.random.default_rng(0)).indices
    b = sample_indices(40, config, train=True, rng=np.random.default_rng(0)).indices
    c = sample_indices(40, config, train=True, rng=np.random.default_rng(1)).indices
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for k, i in enumerate(a):  # one frame inside each segment
        assert 10 * k <= i < 10 * (k + 1)


def test_stride_frame_jump_with_max_frames():
    s = sample_indices(30, cfg(strategy="stride", stride=4))
    np.testing.assert_array_equal(s.indices, np.arange(0, 30, 4))
    s = sample_indices(100, cfg(strategy="stride", stride=4, max_frames=5))
    np.testing.assert_array_equal(s.indices, [0, 4, 8, 12, 16])
    t = sample_indices(
        100, cfg(strategy="stride", stride=4), train=True, rng=np.random.default_rng(3)
    ).indices
    assert 0 <= t[0] < 4 and np.all(np.diff(t) == 4)


def test_all_frames():
    np.testing.assert_array_equal(sample_indices(7, cfg(strategy="all")).indices, np.arange(7))


def test_segments_last_short_and_masked():
    s = sample_indices(45, cfg(strategy="segments", segment_length=20))
    assert s.indices.shape == (3, 20) and s.mask.shape == (3, 20)
    np.testing.assert_array_equal(s.indices[1], np.arange(20, 40))
    assert s.mask[:2].all() and s.mask[2].sum() == 5
    assert (s.indices[2, 5:] == 44).all()  # padding repeats the last real frame
    assert s.length == 3


def test_short_video_rule_pads_with_last_frame_and_masks():
    for strategy in ("uniform", "tsn"):
        s = sample_indices(5, cfg(strategy=strategy, num_frames=8))
        np.testing.assert_array_equal(s.indices, [0, 1, 2, 3, 4, 4, 4, 4])
        np.testing.assert_array_equal(s.mask, [1, 1, 1, 1, 1, 0, 0, 0])
        assert s.length == 5


def test_invalid_inputs():
    with pytest.raises(ValueError):
        sample_indices(0, cfg())
    with pytest.raises(ConfigError, match="strategy"):
        parse_config(SamplingConfig, {"strategy": "random"}, "recipe.yaml")
    with pytest.raises(ConfigError, match="num_frames"):
        parse_config(SamplingConfig, {"num_frames": 0}, "recipe.yaml")


def test_describe_changes_with_what_matters():
    assert (
        cfg(strategy="stride", stride=4).describe() != cfg(strategy="stride", stride=2).describe()
    )
    assert cfg(num_frames=16, stride=3).describe() == cfg(num_frames=16).describe()


@pytest.mark.parametrize("strategy", ["stride", "all"])
def test_capped_sampling_allocates_only_the_kept_indices(strategy):
    import tracemalloc

    tracemalloc.start()
    try:
        s = sample_indices(10**9, cfg(strategy=strategy, stride=3, max_frames=5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    step = 3 if strategy == "stride" else 1
    assert s.indices.tolist() == [step * k for k in range(5)]
    assert peak < 2**20  # not the 2.5-8 GB of indices up to 1e9
