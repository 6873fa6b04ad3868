"""Recipe values have bounds: sizes and loop lengths have ceilings, rates and fractions their
ranges, and a refusal is one line naming the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from harkit.config import ConfigError
from harkit.models.recipe import MAX_UNITS, load_recipe

RECIPE = "synthetic-gru"


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("head.hidden=1e11", ["'head.hidden'", "'1e11'", f"from 1 to {MAX_UNITS}"]),
        # one clip's frames are held together: absurd counts are refused before decoding
        ("input.sampling.num_frames=1000000000", ["'input.sampling.num_frames'", "10000"]),
        ("input.sampling.max_frames=0", ["'input.sampling.max_frames'", "got 0"]),
        ("input.transform.crop_size=100000", ["'input.transform.crop_size'", "8192"]),
        ("input.transform.crop_size=[224,0]", ["'input.transform.crop_size'", "[224, 0]"]),
        ("input.transform.rotation=720", ["'input.transform.rotation'", "180"]),
        ("head.hidden=1.0e+11", ["'head.hidden'", "100000000000.0"]),
        ("head.hidden=12.5", ["'head.hidden'", "12.5"]),
        (f"head.hidden={MAX_UNITS + 1}", ["'head.hidden'", str(MAX_UNITS + 1)]),
        ("head.hidden=0", ["'head.hidden'", "got 0"]),
        ("head.hidden=[]", ["'head.hidden'", "got []"]),
        ("head.hidden=[64,-1]", ["'head.hidden'", "[64, -1]"]),
        ("head.num_layers=17", ["'head.num_layers'", "less than or equal to 16", "got 17"]),
        ("head.dropout=-0.1", ["'head.dropout'", "-0.1"]),
        ("head.fc=[64,0]", ["'head.fc.1'", "got 0"]),
        ("optim.lr=-1e-3", ["'optim.lr'", "greater than 0"]),
        ("optim.lr=.nan", ["'optim.lr'", "nan"]),
        ("optim.weight_decay=2", ["'optim.weight_decay'", "got 2"]),
        ("optim.momentum=1", ["'optim.momentum'", "less than 1"]),
        ("optim.gamma=0", ["'optim.gamma'", "greater than 0"]),
        ("optim.epochs=1.0e+9", ["'optim.epochs'", "100000", "1000000000.0"]),
        ("optim.batch_size=0", ["'optim.batch_size'", "got 0"]),
        ("optim.grad_clip=.inf", ["'optim.grad_clip'", "got inf"]),
        ("optim.early_stopping=0", ["'optim.early_stopping'", "got 0"]),
        ("optim.val_fraction=-0.1", ["'optim.val_fraction'", "-0.1"]),
        ("optim.seed=4294967296", ["'optim.seed'", "4294967296"]),
        ("optim.num_workers=100000", ["'optim.num_workers'", "256"]),
    ],
)
def test_out_of_range_values_are_one_line_errors(override: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_recipe(RECIPE, [override])
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    ("recipe", "override"),
    [
        ("c3d-gru", "network.units=0"),
        ("c3d-gru", "network.size=4"),
        ("c3d-gru", "network.size=100000"),
        ("c3d-gru", "network.dropout=1"),
        ("corehar", "network.embed=[1024,0]"),
    ],
)
def test_network_sizes_are_bounded(recipe: str, override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"key '{key}(\.\d+)?'"):
        load_recipe(recipe, [override])


def test_limits_themselves_are_allowed() -> None:
    recipe = load_recipe(
        RECIPE,
        [
            f"head.hidden=[{MAX_UNITS},1]",
            "head.num_layers=1",
            "optim.val_fraction=0",
            "optim.seed=4294967295",
            "optim.lr=10",
            "head.dropout=0.99",
        ],
    )
    assert recipe.head is not None and recipe.head.hidden == [MAX_UNITS, 1]
    assert load_recipe(RECIPE, ["head.hidden=256.0"]).head.hidden == 256  # type: ignore[union-attr]


@pytest.mark.parametrize("recipe", ["corehar", "i3d-gru-twostream", "c3d-gru"])
def test_a_non_square_crop_needs_frame_features(recipe):
    # end-to-end networks and segment (3D) backbones take square inputs
    with pytest.raises(ConfigError, match=r"non-square crop needs features mode with frame"):
        load_recipe(recipe, ["input.transform.crop_size=[224,298]"])
    assert load_recipe("efficientnet-gru", ["input.transform.crop_size=[224,298]"])


def test_a_non_square_crop_is_refused_for_segment_backbones():
    from harkit.data.transforms import TransformConfig
    from harkit.features.errors import FeatureExtractorError
    from harkit.features.preprocess import Preprocessor
    from harkit.models.recipe import FeatureSource

    with pytest.raises(FeatureExtractorError, match=r"only frame \(2D\) backbones"):
        Preprocessor(
            [FeatureSource(backbone="r3d_18", weights="none")],
            TransformConfig(crop_size=[112, 150]),
        )


def test_sampling_that_does_not_fit_the_backbone_is_one_config_error():
    # it was reported as every video "unreadable" at extraction
    with pytest.raises(
        ConfigError, match=r"'segments' does not fit frame backbone 'efficientnet_lite0'"
    ):
        load_recipe("efficientnet-gru", ["input.sampling={strategy: segments, segment_length: 4}"])
    with pytest.raises(ConfigError, match=r"'uniform' does not fit segment backbone 'i3d'"):
        load_recipe("i3d-gru-twostream", ["input.sampling={strategy: uniform, num_frames: 8}"])
