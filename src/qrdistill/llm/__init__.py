"""The completion service: prompts in, completions out, from a server or a local model.

Used by the teacher (stage 1), the judge (stage 2) and evaluation; every failure is a
`qrdistill.errors.BackendError`.

- `config.py`   `BackendConfig`: kind (openai | hf | vllm), model, sampling, retries, prices.
- `request.py`  `make_request(cfg, prompt, sample_index, label)`: a `Request`, its cache key and seed.
- `backends.py` `make_backend(cfg)` -> `.run(requests)` yields `(Request, Generation)` as each
                finishes; the local backends (hf, vllm).
- `openai.py`   the openai backend: OpenAI-compatible servers through the openai client,
                concurrent, retried, load-balanced.
- `cache.py`    `RequestCache`: every finished request in SQLite, keyed by what decides its output.
- `runner.py`   `run_cached(requests, cache, make_backend, backend=cfg)`: the cache in front of a
                backend.
- `thinking.py` `separate(generation, cfg)`: a reasoning model's thinking apart from its answer.
- `local.py`    `open_engine(kind, model)`: batched local generation (hf, vllm) with stop rules and
                log-probabilities; the local backends run on it, evaluation calls it directly.

Importing this package does not import torch (the engines load it when a model is loaded).
"""

from qrdistill.errors import BackendError
from qrdistill.llm.backends import make_backend, make_yes_probability_backend
from qrdistill.llm.cache import RequestCache
from qrdistill.llm.config import BackendConfig
from qrdistill.llm.local import HFEngine, VLLMEngine, open_engine
from qrdistill.llm.request import Request, make_request
from qrdistill.llm.runner import run_cached

__all__ = [
    "BackendConfig",
    "BackendError",
    "HFEngine",
    "Request",
    "RequestCache",
    "VLLMEngine",
    "make_backend",
    "make_request",
    "make_yes_probability_backend",
    "open_engine",
    "run_cached",
]
