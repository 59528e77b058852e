"""The shared config and IO helpers: located errors, overrides, atomic writes."""

from __future__ import annotations

import os
import stat
from typing import Literal

import pytest

from qrdistill.errors import ConfigError, DataError
from qrdistill.records import Example
from qrdistill.utils.config import StrictConfig, apply_overrides, load_config, parse_override
from qrdistill.utils.io import (
    atomic_open,
    current_umask,
    read_jsonl,
    read_jsonl_as,
    write_json,
    write_jsonl,
)


class Inner(StrictConfig):
    lr: float = 1e-3
    mode: Literal["learned", "all"] = "learned"


class Outer(StrictConfig):
    name: str = "x"
    inner: Inner = Inner()
    items: list[Inner] = [Inner(), Inner()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b=1", (["a", "b"], 1)),
        ("lr=1e-4", (["lr"], 1e-4)),
        ("x=[1, 2]", (["x"], [1, 2])),
        ("flag=false", (["flag"], False)),
        ("s=hello world", (["s"], "hello world")),
        ("e=", (["e"], "")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_override_without_equals_names_the_form():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("train.lr")


def test_overrides_reach_nested_sections_and_list_items():
    base = {"items": [{"lr": 0.1}, {"lr": 0.2}]}
    cfg = load_config(Outer, base=base, overrides=["inner.lr=0.5", "items.1.mode=all", "name=y"])
    assert cfg.inner.lr == 0.5
    assert [i.mode for i in cfg.items] == ["learned", "all"]
    assert cfg.name == "y"


def test_override_index_out_of_range():
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides({"items": [{}]}, ["items.3.lr=1"])


def test_unknown_key_is_named_with_a_suggestion_and_the_allowed_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, path)
    message = str(err.value)
    assert str(path) in message
    assert "unknown key 'inner.lrr'" in message
    assert "did you mean 'lr'" in message
    assert "allowed here: lr, mode" in message


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  mode: sometimes\n")
    with pytest.raises(ConfigError, match=r"'inner.mode'.*'learned' or 'all'.*'sometimes'"):
        load_config(Outer, path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_atomic_open_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_users_umask_not_mkstemps_0600(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_open(tmp_path / "b.bin", "wb", encoding=None) as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_jsonl_roundtrip_and_located_errors(tmp_path):
    path = tmp_path / "x.jsonl"
    assert write_jsonl(path, [{"a": 1}, {"a": 2}]) == 2
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(DataError, match=r"x.jsonl:3: not valid JSON"):
        read_jsonl(path)


def test_jsonl_as_model_names_line_and_field(tmp_path):
    path = tmp_path / "ex.jsonl"
    path.write_text(
        '{"id": "1", "task": "t", "question": "q", "gold": "1"}\n'
        '{"id": "2", "task": "t", "question": "q"}\n'
    )
    with pytest.raises(DataError, match=r"ex.jsonl:2: field 'gold': Field required"):
        read_jsonl_as(path, Example)


def test_every_user_error_is_one_line_with_exit_2(monkeypatch, capsys):
    import qrdistill.cli as cli
    from qrdistill import errors

    families = [
        cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, Exception)
    ]
    assert all(issubclass(cls, errors.QRDistillError) for cls in families)

    def fails(args):
        raise errors.CheckpointMismatch(
            "checkpoints/step-4: does not match\n  resume with its config"
        )

    monkeypatch.setattr(cli, "cmd_tasks", fails)
    assert cli.main(["tasks"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: checkpoints/step-4: does not match resume with its config"
    )
