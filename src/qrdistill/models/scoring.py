"""Probabilities of short answers ("Yes" / "No") as a model's next token, from its logits.

A small local judge rarely follows an output format, but its next-token distribution after
"Answer Yes or No" is always there: P(Yes) / (P(Yes) + P(No)) is a calibrated-enough score of
"sound" that needs no parsing (docs/METHOD.md, "Stage 2": a probability of "sound" as the judge's score).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _first_token_ids(tokenizer, word: str) -> set[int]:
    """Ids of the first token of the word's common spellings ("Yes", " Yes", "yes", " yes")."""
    ids = set()
    for variant in {word, word.lower(), word.capitalize()}:
        for text in (variant, " " + variant):
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(tokens[0])
    return ids


@torch.inference_mode()
def choice_probabilities(
    model,
    tokenizer,
    prompts: Sequence[str],
    choices: Sequence[str] = ("Yes", "No"),
    batch_size: int = 8,
) -> list[list[float]]:
    """For each rendered prompt, the probability of each choice as the next token, renormalised
    over the choices (so the values of a row sum to 1)."""
    token_sets = [_first_token_ids(tokenizer, c) for c in choices]
    # A first token shared by two choices (e.g. a bare space) says nothing about which: drop it.
    shared = {t for i, a in enumerate(token_sets) for b in token_sets[i + 1 :] for t in a & b}
    token_sets = [ids - shared for ids in token_sets]
    if any(not ids for ids in token_sets):
        raise ValueError(f"choices {list(choices)} have no distinct first token in this tokenizer")
    device = next(model.parameters()).device
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last position of every row is then its next token
    rows: list[list[float]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(
                list(prompts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            probs = model(**batch).logits[:, -1, :].float().softmax(-1)
            mass = torch.stack([probs[:, sorted(ids)].sum(-1) for ids in token_sets], dim=-1)
            rows += (mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)).tolist()
    finally:
        tokenizer.padding_side = previous_side
    return rows


@torch.inference_mode()
def continuation_logprobs(
    model, tokenizer, requests: Sequence[tuple[str, str]], batch_size: int = 8
) -> list[float]:
    """For each (context, continuation), the sum of log P(continuation's tokens | context), as
    lm-evaluation-harness's `loglikelihood` requests compute it: trailing spaces of the context
    move to the continuation, the continuation's tokens are those of context + continuation past
    the context's own tokens, and the model reads context tokens + continuation tokens. Encoded
    with the tokenizer's default special tokens (a BOS where the model's tokenizer adds one).

    The model reads only what the answer needs, context + continuation minus its last token, and
    requests that need the same tokens share one row (the options of a question whose
    continuations are one token each, like BoolQ's " no" / " yes", need only the context). Rows
    are left-padded with explicit positions, so the needed logits are every row's last ones and
    only those are computed."""
    pairs = []
    for context, continuation in requests:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = tokenizer(context)["input_ids"]
        whole = tokenizer(context + continuation)["input_ids"]
        pairs.append((context_ids, whole[len(context_ids) :]))
    if any(not continuation for _, continuation in pairs):
        raise ValueError("a continuation encodes to no token; it has no log-probability")
    reads = sorted({tuple(ctx + cont[:-1]) for ctx, cont in pairs}, key=len)
    # For each distinct row: the log-probabilities of its last `keep` positions.
    keep = {read: 0 for read in reads}
    for ctx, cont in pairs:
        read = tuple(ctx + cont[:-1])
        keep[read] = max(keep[read], len(cont))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tails: dict[tuple[int, ...], torch.Tensor] = {}
    for start in range(0, len(reads), batch_size):
        rows = reads[start : start + batch_size]
        width, last = max(len(r) for r in rows), max(keep[r] for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=last,
        ).logits
        logprobs = logits.float().log_softmax(-1).cpu()
        for i, row in enumerate(rows):
            tails[row] = logprobs[i, last - keep[row] :]
    sums = []
    for ctx, cont in pairs:
        tail = tails[tuple(ctx + cont[:-1])]
        # The row's last position predicts the continuation's last token, and so on backwards.
        picked = tail[len(tail) - len(cont) :].gather(1, torch.tensor(cont).unsqueeze(1))
        sums.append(float(picked.sum()))
    return sums
