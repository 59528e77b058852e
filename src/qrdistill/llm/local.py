"""Local engines: a model on this machine that turns rendered prompts into completions in batches.

`HFEngine` (transformers) and `VLLMEngine` (the vLLM offline engine, GPU) have one interface:

    engine = open_engine("hf", "smollm2-135m-instruct", dtype="float32")
    prompts = [engine.render(text) for text in texts]        # the model's chat template
    outputs = engine.generate(prompts, max_new_tokens=256, stop_when=rule, on_batch=save)
    engine.close()                                           # frees the memory for the next model

`on_batch(done)` gets each finished batch's completions by position in `prompts`, as they come.

The teacher's and judge's request backends (`backends.py`) run on them, and evaluation uses them
directly for greedy decoding with stop rules and log-probabilities. A model that cannot be loaded,
or a missing vllm package, is a `BackendError` naming the model.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path

from qrdistill.errors import BackendError
from qrdistill.records import Generation
from qrdistill.utils.io import read_json


class HFEngine:
    """A transformers causal LM: batched, left-padded generation (`qrdistill.models.generate`)
    that stops at EOS, at a stop string, or when `stop_when(text so far)` holds; greedy decoding
    also gives each completion's mean token log-probability.

    `device`: None leaves the model where transformers loads it (CPU); "auto" is CUDA when
    available, else the same as None.
    """

    kind = "hf"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "float32",
        device: str | None = None,
        trust_remote_code: bool = False,
    ):
        import torch

        from qrdistill.models import load_causal_lm

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else None
        try:
            self.model, self.tokenizer = load_causal_lm(
                model, dtype=dtype, device=device, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as err:
            raise BackendError(f"hf backend: cannot load model '{model}': {err}") from None
        self.model.eval()

    def render(self, text: str) -> str:
        from qrdistill.models import render_prompt

        return render_prompt(self.tokenizer, text)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        stop_when: Callable[[str], bool] | None = None,
        batch_size: int = 8,
        seed: int | None = None,
        on_batch: Callable[[dict[int, Generation]], None] | None = None,
    ) -> list[Generation]:
        from qrdistill.models import generate

        return generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            batch_size=batch_size,
            seed=seed,
            on_batch=on_batch,
            stop_when=stop_when,
        )

    def yes_probabilities(self, prompts: Sequence[str], batch_size: int) -> list[float]:
        """P("Yes") against P("No") as the next token of each rendered prompt."""
        from qrdistill.models import choice_probabilities

        rows = choice_probabilities(
            self.model, self.tokenizer, prompts, ("Yes", "No"), batch_size=batch_size
        )
        return [yes for yes, _ in rows]

    def loglikelihoods(self, requests: Sequence[tuple[str, str]], batch_size: int) -> list[float]:
        """log P(continuation | context) of each (context, continuation): plain text, no chat
        template (lm-evaluation-harness's `loglikelihood`)."""
        from qrdistill.models import continuation_logprobs

        return continuation_logprobs(self.model, self.tokenizer, requests, batch_size=batch_size)

    def prompt_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt)["input_ids"])

    def close(self) -> None:
        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next model needs the memory


class VLLMEngine:
    """The vLLM offline engine (GPU), held to the hf engine's rules so both answer alike:

    - the same token ids reach the model: a rendered prompt is tokenized here, as the hf engine
      does, without adding special tokens again (the chat template already wrote any BOS; vLLM
      would add a second one to a text prompt), and handed to vLLM as token ids;
    - the same stop rule: `stop_when` is a predicate over the text so far, which vLLM's sampling
      parameters cannot express, so each completion is cut afterwards at the first token where it
      holds, exactly where the hf engine stops (greedy decoding makes the tokens up to there the
      same). vLLM decodes on past that point, which costs time but changes no answer.

    vLLM schedules a whole call itself: `batch_size` does not apply."""

    kind = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise BackendError(
                "backend 'vllm' needs the vllm package on a CUDA machine, which is not "
                "installed (pip install 'qrdistill[gpu]'); or use the hf backend"
            ) from None
        from qrdistill.models import resolve_model
        from qrdistill.models.artifacts import read_trained_student

        self.name, self.trust_remote_code = model, trust_remote_code
        self._tokenizer = None
        # A trained student is served as vLLM serves adapters: its base with LoRA enabled, the
        # adapter attached to every request (a 4-bit base through vLLM's bitsandbytes loader).
        student = read_trained_student(model)
        kwargs, self.lora = {}, None
        if student is not None:
            model = student.base
            trust_remote_code = trust_remote_code or student.trust_remote_code
            if student.load_in_4bit:
                kwargs["quantization"] = "bitsandbytes"
            if student.adapter:
                from vllm.lora.request import LoRARequest

                rank = read_json(Path(self.name) / "adapter_config.json")["r"]
                kwargs.update(enable_lora=True, max_lora_rank=max(16, rank))
                self.lora = LoRARequest("student", 1, str(Path(self.name).resolve()))
        self.llm = LLM(
            model=resolve_model(model), dtype=dtype, trust_remote_code=trust_remote_code, **kwargs
        )

    @property
    def tokenizer(self):
        from qrdistill.models import load_tokenizer

        if self._tokenizer is None:  # the same tokenizer as training and the hf engine
            self._tokenizer = load_tokenizer(self.name, trust_remote_code=self.trust_remote_code)
        return self._tokenizer

    def render(self, text: str) -> str:
        from qrdistill.models import render_prompt

        return render_prompt(self.tokenizer, text)  # the same template code path as the hf engine

    def token_prompts(self, prompts: Sequence[str]) -> list[dict]:
        """Rendered prompts as vLLM token prompts, tokenized as the hf engine tokenizes them."""
        return [
            {"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]}
            for p in prompts
        ]

    def finish(
        self,
        output,
        stop: Sequence[str] = (),
        stop_when: Callable[[str], bool] | None = None,
        greedy: bool = False,
    ) -> Generation:
        """A vLLM request output as the hf engine would have returned it: cut at the first token
        where `stop_when(text so far)` holds (the text so far decoded as the hf engine decodes
        it), with the mean log-probability of the tokens kept (greedy only)."""
        from qrdistill.models.generation import _cut_at_stop

        completion = output.outputs[0]
        tokens, text = list(completion.token_ids), completion.text
        if stop_when is not None:
            for length in range(1, len(tokens) + 1):
                so_far = self.tokenizer.decode(tokens[:length], skip_special_tokens=True)
                if stop_when(so_far):
                    tokens, text = tokens[:length], _cut_at_stop(so_far, stop)
                    break
        mean_logprob = None
        if greedy and tokens and completion.logprobs:
            chosen = [step[token].logprob for step, token in zip(completion.logprobs, tokens)]
            mean_logprob = sum(chosen) / len(chosen)
        return Generation(
            text=text.strip(),
            prompt_tokens=len(output.prompt_token_ids),
            completion_tokens=len(tokens),
            mean_logprob=mean_logprob,
        )

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        stop_when: Callable[[str], bool] | None = None,
        batch_size: int = 8,
        seed: int | None = None,
        on_batch: Callable[[dict[int, Generation]], None] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams

        # logprobs=0 returns the chosen token's log-probability, enough for the mean (greedy only,
        # like the hf engine).
        greedy = temperature == 0
        params = SamplingParams(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_new_tokens,
            stop=list(stop) or None,
            seed=seed,
            logprobs=0 if greedy else None,
        )
        outputs = self.llm.generate(
            self.token_prompts(prompts), params, use_tqdm=False, lora_request=self.lora
        )
        results = [self.finish(output, stop, stop_when, greedy) for output in outputs]
        if on_batch is not None:  # vLLM schedules the whole call: one batch
            on_batch(dict(enumerate(results)))
        return results

    def close(self) -> None:
        del self.llm
        gc.collect()


ENGINES = {"hf": HFEngine, "vllm": VLLMEngine}


def open_engine(
    kind: str, model: str, *, dtype: str, device: str | None = None, trust_remote_code: bool = False
) -> HFEngine | VLLMEngine:
    """Load `model` (packaged alias, local folder or hub id) in the engine `kind` ("hf" or "vllm")."""
    return ENGINES[kind](model, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
