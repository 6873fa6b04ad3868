"""The built-in recipes against the papers: paper numbers per configuration, decided values."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.config import load_yaml
from harkit.evaluate.paper import paper_numbers
from harkit.models.recipe import list_recipes, load_recipe, recipe_dir

ABLATIONS = [n for n in list_recipes() if n.startswith("ablations/")]


@pytest.mark.parametrize("name", list_recipes())
def test_every_builtin_recipe_loads_and_its_numbers_parse(name: str) -> None:
    recipe = load_recipe(name)
    for number in paper_numbers(recipe.reported):
        # A typo in a key would silently drop the number from every comparison table.
        assert number.dataset in {"ucf101", "hmdb51", "ucf50"}, number.key
        assert number.metric is not None, number.key
        assert 0 < number.value <= 100, number.key


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_ablation_states_its_own_paper_numbers(name: str) -> None:
    path = recipe_dir() / f"{name}.yaml"
    assert "reported" in load_yaml(path), f"{name}: state reported (or {{}}) from the paper"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("reported"))
    assert lines[at - 1].startswith("#"), f"{name}: quote the paper's table above 'reported'"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_variant_does_not_inherit_its_bases_paper_numbers(tmp_path: Path) -> None:
    _write(
        tmp_path / "base.yaml",
        (
            "name: base\nreported: {ucf101_top1: 90.0}\nmode: end_to_end\n"
            "network: {type: c3d_gru, units: 128}\n"
        ),
    )
    _write(tmp_path / "silent.yaml", "base: base.yaml\nname: silent\nnetwork: {units: 32}\n")
    _write(
        tmp_path / "own.yaml",
        ("base: base.yaml\nname: own\nreported: {ucf50_top1: 80.0}\nnetwork: {units: 32}\n"),
    )
    _write(tmp_path / "grandchild.yaml", "base: own.yaml\nname: grandchild\n")

    assert load_recipe(tmp_path / "base.yaml").reported == {"ucf101_top1": 90.0}
    silent = load_recipe(tmp_path / "silent.yaml")
    assert silent.reported == {}
    assert silent.network is not None and silent.network.units == 32  # the rest still merges
    # Its own numbers replace the base's rather than merging with them.
    assert load_recipe(tmp_path / "own.yaml").reported == {"ucf50_top1": 80.0}
    assert load_recipe(tmp_path / "grandchild.yaml").reported == {}


# The papers' numbers for each variant (seed 003 Tables 1-2, seed 001 Tables 1-4, seed 002
# Tables 2 and 5, seed 000 Table II); means over splits are of the tables' split rows.
PAPER = {
    "ablations/c3d-only": {"ucf50_top1": 86.17},
    "ablations/c3d-gru32": {"ucf50_top1": 88.83},
    "ablations/c3d-lstm32": {"ucf50_top1": 88.21},
    "ablations/c3d-lstm128": {"ucf50_top1": 89.36},
    "ablations/c3d-lstm-gru": {"ucf50_top1": 23.64},
    "ablations/c3d-lstm-gru32": {"ucf50_top1": 23.64},
    "ablations/cnn2d-gru": {"ucf50_top1": 85.64},
    "ablations/cnn2d-lstm": {"ucf50_top1": 76.60},
    "ablations/cnn2d-lstm-gru": {"ucf50_top1": 78.72},
    "ablations/i3d-gru-L10": {"hmdb51_top1": 83.50, "ucf101_top1": 95.31},
    "ablations/i3d-gru-L30": {"hmdb51_top1": 77.03, "ucf101_top1": 91.43},
    "ablations/i3d-gru-average": {"hmdb51_split1_top1": 83.32, "ucf101_split1_top1": 92.36},
    "ablations/i3d-gru-flow": {"hmdb51_split1_top1": 78.36, "ucf101_split1_top1": 89.91},
    "ablations/i3d-gru-rgb": {"hmdb51_split1_top1": 80.13, "ucf101_split1_top1": 90.36},
    "ablations/i3d-lstm-2x256": {"hmdb51_split1_top1": 78.91},
    "ablations/i3d-lstm-1x512": {"hmdb51_split1_top1": 82.32},
    "ablations/corehar-jump2": {"ucf101_top1": 94.2},
    "ablations/corehar-jump4": {"ucf101_top1": 93.8},
    "ablations/corehar-jump6": {"ucf101_top1": 92.2},
    "ablations/corehar-jump8": {"ucf101_top1": 90.1},
    "ablations/corehar-sgd": {"ucf101_top1": 91.36},
    "ablations/corehar-steplr": {"ucf101_top1": 92.23},
    "ablations/fusion-gru-googlenet": {"ucf101_top1": 92.23, "hmdb51_top1": 64.53},
    "ablations/fusion-gru-irv2": {"ucf101_top1": 95.51, "hmdb51_top1": 67.09},
    # The paper reports no number of their own for these.
    "ablations/corehar-last": {},
    "ablations/attn-lstm-vgg16": {},
    "ablations/efficientnet-gru-mean": {},  # harkit's baselines: no paper
    "ablations/efficientnet-motion-gru-mean": {},
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_ablation_paper_numbers_match_the_papers_tables(name: str) -> None:
    reported = load_recipe(name).reported
    expected = PAPER[name]
    assert {k: reported.get(k) for k in expected} == expected
    if not expected:
        assert reported == {}


def test_every_ablation_is_pinned() -> None:
    assert sorted(PAPER) == ABLATIONS


def test_seed_002_decisions() -> None:
    corehar = load_recipe("corehar")
    assert corehar.head is not None and corehar.head.pooling == "vote"  # Sec. 3-1: frame tags
    assert corehar.optim.batch_size == 128 and corehar.input.sampling.stride == 4
    last = load_recipe("ablations/corehar-last")
    assert last.head is not None and last.head.pooling == "last"
    for jump in (2, 4, 6, 8):  # the frame-jump table used batch 40
        recipe = load_recipe(f"ablations/corehar-jump{jump}")
        assert recipe.optim.batch_size == 40
        assert recipe.input.sampling.stride == jump
        assert recipe.head is not None and recipe.head.pooling == "vote"


def test_seed_003_decisions() -> None:
    c3d = load_recipe("c3d-gru")
    assert c3d.network is not None
    # 100x100: the layer table's shapes and parameter counts, not the text's 64x64.
    assert (c3d.network.size, c3d.network.units, c3d.network.rnn) == (100, 128, "gru")
    # Sec. 3.5: 20 frames, batch 4, lr 0.001.
    assert c3d.input.sampling.num_frames == 20 and c3d.optim.batch_size == 4
    assert c3d.optim.lr == 0.001
    for name in ("cnn2d-gru", "cnn2d-lstm", "cnn2d-lstm-gru"):  # Table 1: 32 units
        net = load_recipe(f"ablations/{name}").network
        assert net is not None and net.type == "small2d_gru" and net.units == 32
    stacked = load_recipe("ablations/c3d-lstm-gru").network
    assert stacked is not None and (stacked.rnn, stacked.units) == ("lstm_gru", 128)


def test_seed_001_decisions() -> None:
    optim = load_recipe("i3d-gru-twostream").optim
    # Sec. 4.2: RMSProp, lr 0.001, "weight decay 0.01", which is Keras' lr decay, not L2:
    # no L2 penalty.
    assert (optim.optimizer, optim.lr, optim.weight_decay) == ("rmsprop", 0.001, 0.0)
    assert optim.scheduler == "none"
