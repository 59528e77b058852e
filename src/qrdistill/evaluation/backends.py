"""Generation engines for evaluation: transformers (default) or vLLM (GPU users, optional).

Both render prompts with the model's own tokenizer through `render_prompt`, so a student answers
exactly the prompt it was trained on, and both decode greedily.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

from qrdistill.evaluation.config import EvaluateConfig
from qrdistill.models import Generation, generate, load_causal_lm, load_tokenizer, render_prompt, resolve_model


class HFGenerator:
    def __init__(self, model_name: str, cfg: EvaluateConfig):
        import torch

        device = cfg.device or ("cuda" if torch.cuda.is_available() else None)
        self.cfg = cfg
        self.model, self.tokenizer = load_causal_lm(model_name, dtype=cfg.dtype, device=device,
                                                    trust_remote_code=cfg.trust_remote_code)
        self.model.eval()

    def render(self, text: str) -> str:
        return render_prompt(self.tokenizer, text)

    def generate(self, prompts: Sequence[str], on_batch: Callable[[int], None],
                 stop_when: Callable[[str], bool] | None = None) -> list[Generation]:
        return generate(self.model, self.tokenizer, prompts, max_new_tokens=self.cfg.max_new_tokens,
                        stop=self.cfg.stop, batch_size=self.cfg.batch_size, on_batch=on_batch,
                        stop_when=stop_when)

    def close(self) -> None:
        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next model needs the memory


class VLLMGenerator:
    """vLLM engine. It stops at EOS and the configured stop strings; `stop_when` (the config's
    `stop_after_answer`) is a per-step predicate that vLLM's sampling parameters cannot express,
    so it is ignored here."""

    def __init__(self, model_name: str, cfg: EvaluateConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("evaluate.backend 'vllm' needs vLLM on a CUDA machine: "
                              "pip install 'qrdistill[gpu]' (or use backend: hf)") from None
        self.cfg = cfg
        self.tokenizer = load_tokenizer(model_name, trust_remote_code=cfg.trust_remote_code)
        self.engine = LLM(model=resolve_model(model_name), dtype=cfg.dtype,
                          trust_remote_code=cfg.trust_remote_code)

    def render(self, text: str) -> str:
        return render_prompt(self.tokenizer, text)

    def generate(self, prompts: Sequence[str], on_batch: Callable[[int], None],
                 stop_when: Callable[[str], bool] | None = None) -> list[Generation]:
        from vllm import SamplingParams

        # logprobs=0 returns the chosen token's log-probability, enough for the mean.
        params = SamplingParams(temperature=0.0, max_tokens=self.cfg.max_new_tokens,
                                stop=list(self.cfg.stop) or None, logprobs=0)
        outputs = self.engine.generate(list(prompts), params, use_tqdm=False)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            length = len(completion.token_ids)
            mean_logprob = (completion.cumulative_logprob / length
                            if length and completion.cumulative_logprob is not None else None)
            results.append(Generation(text=completion.text.strip(), prompt_tokens=len(output.prompt_token_ids),
                                      completion_tokens=length, mean_logprob=mean_logprob))
        on_batch(len(prompts))
        return results

    def close(self) -> None:
        del self.engine
        gc.collect()


def open_generator(model_name: str, cfg: EvaluateConfig) -> HFGenerator | VLLMGenerator:
    return {"hf": HFGenerator, "vllm": VLLMGenerator}[cfg.backend](model_name, cfg)
