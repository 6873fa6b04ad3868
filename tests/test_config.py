import pytest
import yaml
from pydantic import ConfigDict

from harkit.config import ConfigError, StrictModel, apply_overrides, load_config, save_config


class Head(StrictModel):
    hidden: int = 8
    cell: str = "gru"


class Run(StrictModel):
    lr: float = 1e-3
    head: Head = Head()


def test_load_with_overrides_and_save(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: 0.01\nhead:\n  hidden: 16\n")
    run = load_config(Run, path, ["head.cell=lstm", "lr=1e-4"])
    assert run.lr == 1e-4 and run.head.hidden == 16 and run.head.cell == "lstm"
    save_config(run, tmp_path / "out" / "resolved.yaml")
    assert (
        yaml.safe_load((tmp_path / "out" / "resolved.yaml").read_text())["head"]["cell"] == "lstm"
    )


def test_errors_name_file_key_and_expectation(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lr: fast\nhead:\n  hiden: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(Run, path)
    message = str(err.value)
    assert str(path) in message
    assert "key 'lr': input should be a valid number" in message and "'fast'" in message
    assert "key 'head.hiden': unknown key" in message
    assert "\n" not in message  # the CLI prints one line


def test_yaml_never_builds_python_objects_and_errors_are_one_line(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "r.yaml"
    path.write_text(f"lr: !!python/object/apply:os.system [\"touch '{marker}'\"]\n")
    with pytest.raises(ConfigError) as err:
        load_config(Run, path)
    assert not marker.exists()
    assert str(err.value) == (
        f"{path}: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system' (harkit reads plain YAML: no "
        "!!python tags) at line 1, column 5"
    )
    path.write_text("lr: [1, 2\nhead: {}\n")
    with pytest.raises(ConfigError, match=r"invalid YAML: .* at line \d+, column \d+$") as err:
        load_config(Run, path)
    assert "\n" not in str(err.value)
    path.write_bytes(b"\x80\x04\x95 not text")
    with pytest.raises(ConfigError, match="cannot read as UTF-8 text"):
        load_config(Run, path)


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(Run, tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="'lr' is not a mapping"):
        apply_overrides({"lr": 1}, ["lr.x=2"])


def test_overrides_index_lists():
    data = {"input": {"features": [{"backbone": "a", "weights": "imagenet"}, {"backbone": "b"}]}}
    result = apply_overrides(data, ["input.features.0.weights=/w/mine.pth", "input.features.1=x"])
    assert result["input"]["features"] == [{"backbone": "a", "weights": "/w/mine.pth"}, "x"]
    assert data["input"]["features"][0]["weights"] == "imagenet"  # the input is not changed
    assert apply_overrides({"a": [[1, 2]]}, ["a.0.1=5"]) == {"a": [[1, 5]]}


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("input.features.2.weights=x", "index 2 is out of range, 'input.features' has 2 items"),
        ("input.features.-1.weights=x", "'input.features' is a list, index it with 0..1"),
        ("input.features.first=x", "'input.features' is a list, index it with 0..1"),
        ("input.none.0=x", "'input.none' is an empty list"),
        ("input.features.0.weights.sub=x", "'input.features.0.weights' is not a mapping or a list"),
    ],
)
def test_list_override_errors_are_one_line(override: str, error: str):
    data = {"input": {"features": [{"weights": "imagenet"}, {}], "none": []}}
    with pytest.raises(ConfigError) as err:
        apply_overrides(data, [override], source="r.yaml")
    assert str(err.value) == f"r.yaml: cannot set '{override.partition('=')[0]}': {error}"


def _alias_bomb(levels: int, width: int = 10) -> str:
    lines = ["name: x", f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * width)}]")
    lines.append(f"description: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    from harkit.models.recipe import load_recipe

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(10))  # 1.4 KB that expands to 10^10 leaves
    built = []
    construct = yaml.SafeLoader.construct_document
    monkeypatch.setattr(
        yaml.SafeLoader,
        "construct_document",
        lambda self, node: built.append(node) or construct(self, node),
    )
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert built == []  # refused from the node graph: no Python object was built from it
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    assert message == (
        f"{path}: invalid YAML: 23,456,790,135 nodes once its aliases are followed (at most "
        "100,000)"
    )
    flow = (
        "{"
        + ", ".join(line.replace(": &", ": &", 1) for line in _alias_bomb(10).splitlines()[1:-1])
        + "}"
    )
    with pytest.raises(ConfigError, match="aliases are followed"):
        apply_overrides({}, [f"description={flow}"])
    # a few aliases, as people write them, are fine
    small = tmp_path / "small.yaml"
    small.write_text("a: &x [1, 2]\nb: *x\nc: *x\n")
    assert load_config(_Loose, small).model_extra == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


class _Loose(StrictModel):
    model_config = ConfigDict(extra="allow")


def test_a_huge_bad_value_is_quoted_short(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: " + yaml.safe_dump(list(range(20_000)), default_flow_style=True))

    class Named(StrictModel):
        name: str

    with pytest.raises(ConfigError) as err:
        load_config(Named, path)
    message = str(err.value)
    assert len(message) < 400 and "characters)" in message


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.epochs=true", "epochs: expected a number, not true"),
        ("optim.lr=false", "lr: expected a number, not false"),
        ("head.hidden=true", "hidden: expected a number, not true"),
    ],
)
def test_true_or_false_is_not_a_number(override: str, named: str) -> None:
    """YAML's true became epochs 1, lr 1.0 and a 1-unit GRU without a word."""
    from harkit.models.recipe import load_recipe

    with pytest.raises(ConfigError, match=named):
        load_recipe("synthetic-gru", [override])
    assert load_recipe("synthetic-gru", ["optim.epochs=3"]).optim.epochs == 3
