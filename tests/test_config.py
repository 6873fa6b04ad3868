import pytest
import yaml

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
