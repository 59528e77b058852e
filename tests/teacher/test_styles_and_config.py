"""Styles and the generation config: no model, no server."""

from __future__ import annotations

import pytest

from qrdistill.errors import ConfigError
from qrdistill.llm import BackendConfig
from qrdistill.teacher import BUILTIN_STYLES, GenerateConfig
from qrdistill.teacher.styles import apply_style
from qrdistill.utils.config import load_config


def test_the_six_paper_styles_are_built_in_and_wrap_the_base_prompt():
    assert list(BUILTIN_STYLES) == [
        "vanilla",
        "chain_of_thought",
        "tree_of_thought",
        "program",
        "backward",
        "fact_retrieval",
    ]
    base = "Compute 1+1.\n\nGive the final answer as a number inside \\boxed{}."
    styled = {style: apply_style(template, base) for style, template in BUILTIN_STYLES.items()}
    for text in styled.values():
        assert text.startswith(base)  # braces in the prompt survive (no str.format)
    assert len(set(styled.values())) == 6
    assert GenerateConfig().styles == list(BUILTIN_STYLES)
    assert GenerateConfig().samples_per_style == 1


def test_styles_are_data_users_add_and_replace_them(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text(
        "styles: [vanilla, socratic]\n"
        "style_templates:\n"
        "  vanilla: 'Answer briefly. {prompt}'\n"
        "  socratic: '{prompt} Ask yourself questions first.'\n"
    )
    cfg = load_config(GenerateConfig, path)
    assert cfg.style_template("vanilla") == "Answer briefly. {prompt}"
    assert cfg.style_template("socratic") == "{prompt} Ask yourself questions first."
    with pytest.raises(ConfigError, match="unknown style"):
        load_config(GenerateConfig, base={"styles": ["sarcastic"]})
    with pytest.raises(ConfigError, match=r"\{prompt\}"):
        load_config(GenerateConfig, base={"style_templates": {"x": "no slot"}})
    with pytest.raises(ConfigError, match="unknown key 'generate_temperature'"):
        load_config(BackendConfig, base={"generate_temperature": 0.5})
