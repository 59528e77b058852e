"""Loading language models and generating text with them, shared by every stage.

- `resolve_model(name)`: a hub id, a local folder, or a packaged alias (see `packaged.py`).
- `load_causal_lm(name, ...)`: model and tokenizer, `trust_remote_code` off unless asked.
- `render_prompt(tokenizer, text)`: the user turn in the model's chat template when it has one.
- `generate(...)`: batched, left-padded generation that decodes only new tokens and stops at EOS
  or a stop string (used by the local engines of `qrdistill.llm`).
- `choice_probabilities(...)`: P("Yes") vs P("No") as the next token (the local judge's score).
- `continuation_logprobs(...)`: log P(continuation | context), as lm-evaluation-harness's
  `loglikelihood` (its multiple-choice `acc` scores).

The names are loaded on first use: `qrdistill.data` needs only `packaged.cache_dir`, and reading
a config or a dry run must not pay for importing torch (tests/core/test_import_graph.py).
"""

from importlib import import_module

_HOME = {
    "generate": "generation",
    "choice_probabilities": "scoring",
    "continuation_logprobs": "scoring",
    "load_causal_lm": "loading",
    "load_tokenizer": "loading",
    "render_prompt": "loading",
    "resolve_model": "loading",
    "PACKAGED_MODELS": "packaged",
    "packaged_model_path": "packaged",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"qrdistill.models.{_HOME[name]}"), name)
    raise AttributeError(f"module 'qrdistill.models' has no attribute '{name}'")
