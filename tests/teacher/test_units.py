"""Styles, configs, cache keys and the cache itself: no model, no server."""

from __future__ import annotations

import importlib.util

import pytest

from qrdistill.models import Generation
from qrdistill.teacher import BUILTIN_STYLES, BackendConfig, GenerateConfig
from qrdistill.errors import BackendError
from qrdistill.teacher.backends import make_backend, make_request
from qrdistill.teacher.cache import RequestCache
from qrdistill.teacher.styles import apply_style
from qrdistill.errors import ConfigError
from qrdistill.utils.config import load_config


def test_the_six_paper_styles_are_built_in_and_wrap_the_base_prompt():
    assert list(BUILTIN_STYLES) == ["vanilla", "chain_of_thought", "tree_of_thought", "program",
                                    "backward", "fact_retrieval"]
    base = "Compute 1+1.\n\nGive the final answer as a number inside \\boxed{}."
    styled = {style: apply_style(template, base) for style, template in BUILTIN_STYLES.items()}
    for text in styled.values():
        assert text.startswith(base)  # braces in the prompt survive (no str.format)
    assert len(set(styled.values())) == 6
    assert GenerateConfig().styles == list(BUILTIN_STYLES)
    assert GenerateConfig().samples_per_style == 1


def test_styles_are_data_users_add_and_replace_them(tmp_path):
    path = tmp_path / "gen.yaml"
    path.write_text("styles: [vanilla, socratic]\n"
                    "style_templates:\n"
                    "  vanilla: 'Answer briefly. {prompt}'\n"
                    "  socratic: '{prompt} Ask yourself questions first.'\n")
    cfg = load_config(GenerateConfig, path)
    assert cfg.style_template("vanilla") == "Answer briefly. {prompt}"
    assert cfg.style_template("socratic") == "{prompt} Ask yourself questions first."
    with pytest.raises(ConfigError, match="unknown style"):
        load_config(GenerateConfig, base={"styles": ["sarcastic"]})
    with pytest.raises(ConfigError, match=r"\{prompt\}"):
        load_config(GenerateConfig, base={"style_templates": {"x": "no slot"}})
    with pytest.raises(ConfigError, match="unknown key 'generate_temperature'"):
        load_config(BackendConfig, base={"generate_temperature": 0.5})


def test_request_key_changes_with_everything_that_changes_the_output():
    cfg = BackendConfig(kind="openai", model="m")
    base = make_request(cfg, "prompt", 0, "label")
    variants = [
        make_request(cfg.model_copy(update={"model": "other"}), "prompt", 0, "label"),
        make_request(cfg.model_copy(update={"kind": "hf"}), "prompt", 0, "label"),
        make_request(cfg.model_copy(update={"temperature": 0.2}), "prompt", 0, "label"),
        make_request(cfg.model_copy(update={"max_tokens": 7}), "prompt", 0, "label"),
        make_request(cfg.model_copy(update={"seed": 1}), "prompt", 0, "label"),
        make_request(cfg, "prompt!", 0, "label"),
        make_request(cfg, "prompt", 1, "label"),
    ]
    assert len({base.key, *(v.key for v in variants)}) == 1 + len(variants)
    assert len({base.seed, *(v.seed for v in variants)}) == 1 + len(variants)
    # Neither the label, the endpoint, the retry policy nor the prices change what is generated.
    same = make_request(cfg.model_copy(update={"base_urls": ["http://elsewhere/v1"], "max_retries": 0,
                                               "price_input_per_1m": 3.0}), "prompt", 0, "other label")
    assert (same.key, same.seed) == (base.key, base.seed)


def test_cache_persists_each_put_and_is_created_only_by_the_first(tmp_path):
    path = tmp_path / "run" / "cache.sqlite"
    cache = RequestCache(path)
    assert cache.get_many(["a"]) == {} and len(cache) == 0
    assert not path.parent.exists()  # nothing written before the first result
    cache.put("a", "first", Generation("text a", 3, 4))
    # Another connection (another process, after a crash) sees it at once.
    with RequestCache(path) as other:
        assert other.get_many(["a", "b"]) == {"a": Generation("text a", 3, 4)}
    cache.close()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None,
                    reason="vllm is installed: the missing-package error cannot happen")
def test_vllm_backend_says_what_to_install_when_missing():
    with pytest.raises(BackendError, match="needs the vllm package"):
        make_backend(BackendConfig(kind="vllm"))
