"""Request backends turn prompts into completions: an OpenAI-compatible server (openai.py), a local
transformers model, or the vLLM offline engine (the last two through `local.py`'s engines). All
three take a list of `Request`s and yield `(request, Generation)` pairs as they finish, so the
caller (`runner.run_cached`) can persist each one at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from qrdistill.errors import BackendError
from qrdistill.llm.config import BackendConfig
from qrdistill.llm.local import HFEngine, VLLMEngine
from qrdistill.llm.openai import OpenAIBackend
from qrdistill.llm.request import Request, never_stop
from qrdistill.records import Generation


def make_backend(cfg: BackendConfig):
    backends = {"openai": OpenAIBackend, "hf": HFBackend, "vllm": VLLMBackend}
    return backends[cfg.kind](cfg)


def make_yes_probability_backend(cfg: BackendConfig):
    if cfg.kind != "hf":
        raise BackendError(
            f"judge_scoring: probability reads the judge's logits, which only the hf "
            f"backend has (this judge is '{cfg.kind}'); use judge_scoring: generate"
        )
    return HFYesProbabilityBackend(cfg)


def _batches(items: list, size: int, stop: Callable[[], bool]) -> Iterator[list]:
    """Batches of `size`, until `stop()` (a spent budget) says no further one should start."""
    for start in range(0, len(items), size):
        if stop():
            return
        yield items[start : start + size]


class HFBackend:
    """A local transformers model (`HFEngine`), in batches of `batch_size` requests, each batch
    seeded by its first request."""

    def __init__(self, cfg: BackendConfig):
        self.cfg = cfg
        self.engine = HFEngine(
            cfg.model, dtype=cfg.dtype, device=cfg.device, trust_remote_code=cfg.trust_remote_code
        )

    def run(
        self, requests: list[Request], stop: Callable[[], bool] = never_stop
    ) -> Iterator[tuple[Request, Generation]]:
        for batch in _batches(requests, self.cfg.batch_size, stop):
            prompts = [self.engine.render(r.prompt) for r in batch]
            outputs = self.engine.generate(
                prompts,
                max_new_tokens=self.cfg.max_tokens,
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                batch_size=len(batch),
                seed=batch[0].seed,
            )
            yield from zip(batch, outputs)


class HFYesProbabilityBackend(HFBackend):
    """A local judge scored by P("Yes") vs P("No") as its next token, answered as a judge reply."""

    def run(
        self, requests: list[Request], stop: Callable[[], bool] = never_stop
    ) -> Iterator[tuple[Request, Generation]]:
        for batch in _batches(requests, self.cfg.batch_size, stop):
            prompts = [self.engine.render(r.prompt) for r in batch]
            for request, prompt, yes in zip(
                batch, prompts, self.engine.yes_probabilities(prompts, batch_size=len(batch))
            ):
                text = f"Score: {yes:.4f}\nReason: P(Yes) = {yes:.4f} as the judge's next token"
                yield (
                    request,
                    Generation(
                        text=text,
                        prompt_tokens=self.engine.prompt_tokens(prompt),
                        completion_tokens=1,
                    ),
                )


class VLLMBackend:
    """The vLLM offline engine (GPU), with a seed per request. Prompts are rendered with the
    model's chat template and handed over as token ids (`VLLMEngine.token_prompts`), as the hf
    backend does, so no special token is added twice. Results are yielded per batch of
    `batch_size` so that a long run is persisted as it goes; vLLM schedules within a batch."""

    def __init__(self, cfg: BackendConfig):
        self.cfg = cfg
        self.engine = VLLMEngine(
            cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code
        )

    def run(
        self, requests: list[Request], stop: Callable[[], bool] = never_stop
    ) -> Iterator[tuple[Request, Generation]]:
        from vllm import SamplingParams

        for batch in _batches(requests, self.cfg.batch_size, stop):
            params = [
                SamplingParams(
                    temperature=self.cfg.temperature,
                    top_p=self.cfg.top_p,
                    max_tokens=self.cfg.max_tokens,
                    seed=r.seed,
                )
                for r in batch
            ]
            prompts = self.engine.token_prompts([self.engine.render(r.prompt) for r in batch])
            outputs = self.engine.llm.generate(
                prompts, params, use_tqdm=False, lora_request=self.engine.lora
            )
            for request, out in zip(batch, outputs):
                yield request, self.engine.finish(out)
