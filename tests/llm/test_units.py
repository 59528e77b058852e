"""Request keys, the request cache and backend errors of the completion service."""

from __future__ import annotations

import importlib.util

import pytest

from qrdistill.errors import BackendError
from qrdistill.llm import BackendConfig, RequestCache, make_backend, make_request
from qrdistill.records import Generation


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
    same = make_request(
        cfg.model_copy(
            update={
                "base_urls": ["http://elsewhere/v1"],
                "max_retries": 0,
                "price_input_per_1m": 3.0,
            }
        ),
        "prompt",
        0,
        "other label",
    )
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


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None,
    reason="vllm is installed: the missing-package error cannot happen",
)
def test_vllm_backend_says_what_to_install_when_missing():
    with pytest.raises(BackendError, match="needs the vllm package"):
        make_backend(BackendConfig(kind="vllm"))
