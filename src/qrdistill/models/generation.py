"""Batched generation with a local transformers model.

Decoder-only models must be left-padded for batched generation (training pads on the right);
we set the side per call so the tokenizer's own setting never matters. Only new tokens are
decoded, generation stops at EOS, at a stop string, or when a `stop_when(text)` predicate says the
text so far is complete (e.g. its final-answer line is written), and prompts are sorted by length so
a batch wastes little compute on padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from qrdistill.records import Generation


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        index = text.find(s)
        if s and index != -1:
            cut = min(cut, index)
    return text[:cut]


class _StopWhen(StoppingCriteria):
    """Finish each row as soon as `predicate(decoded new text)` holds (per row, not per batch)."""

    def __init__(self, tokenizer, prompt_length: int, predicate: Callable[[str], bool]):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.predicate = predicate

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_length :], skip_special_tokens=True
        )
        return torch.tensor(
            [self.predicate(text) for text in texts], dtype=torch.bool, device=input_ids.device
        )


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    batch_size: int = 8,
    seed: int | None = None,
    on_batch: Callable[[dict[int, Generation]], None] | None = None,
    stop_when: Callable[[str], bool] | None = None,
) -> list[Generation]:
    """Generate one completion per already-rendered prompt (see `render_prompt`).

    `on_batch(done)` is called after each batch with its completions by position in `prompts`
    (progress bars; evaluation saves them as they come, so an interruption loses one batch).
    `stop_when(text)` ends a row once it returns True for the text generated so far; the text is
    kept whole (unlike a stop string, nothing is cut).
    """
    if seed is not None:
        torch.manual_seed(seed)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    results: list[Generation | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    eos_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    if gen_eos is not None:
        eos_ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    # transformers fills a row that stopped early (stop string, `stop_when`) with pad tokens, so
    # the first pad also ends a completion; pad is a special token, never a real output.
    end_ids = eos_ids | ({tokenizer.pad_token_id} if tokenizer.pad_token_id is not None else set())
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = tokenizer(
                [prompts[i] for i in index],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            sampling = temperature > 0
            kwargs = dict(
                max_new_tokens=max_new_tokens,
                do_sample=sampling,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos_ids) or None,
                return_dict_in_generate=True,
                output_scores=not sampling,
            )
            if sampling:
                kwargs.update(temperature=temperature, top_p=top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if stop:
                kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
            if stop_when is not None:
                kwargs.update(
                    stopping_criteria=StoppingCriteriaList(
                        [_StopWhen(tokenizer, batch["input_ids"].shape[1], stop_when)]
                    )
                )
            out = model.generate(**batch, **kwargs)
            new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
            logprobs = None
            if not sampling:
                logprobs = model.compute_transition_scores(
                    out.sequences, out.scores, normalize_logits=True
                )
            for row, i in enumerate(index):
                tokens = new_tokens[row]
                length = len(tokens)
                for pos, tok in enumerate(tokens.tolist()):
                    if tok in end_ids:
                        length = pos
                        break
                text = _cut_at_stop(
                    tokenizer.decode(tokens[:length], skip_special_tokens=True), stop
                )
                mean_lp = None
                if logprobs is not None and length > 0:
                    mean_lp = float(logprobs[row, :length].float().mean())
                results[i] = Generation(
                    text=text.strip(),
                    prompt_tokens=int(batch["attention_mask"][row].sum()),
                    completion_tokens=length,
                    mean_logprob=mean_lp,
                )
            if on_batch is not None:
                on_batch({i: results[i] for i in index})
    finally:
        tokenizer.padding_side = previous_side
    return results  # type: ignore[return-value]
