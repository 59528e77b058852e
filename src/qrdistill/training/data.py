"""Training data: which paths each method trains on, per-student tokenisation, length-grouped batches,
and the two batch layouts (right-padded rows, or padding-free: every path of the batch in one row).

Every student sees the same paths (the router compares students on the same path), but each
tokenises them with its own tokenizer: the prompt through `render_prompt` (its chat template
when it has one, and no extra special tokens, exactly as `qrdistill.models.generate` does at
inference), the response separately with EOS appended so students learn to stop. Labels are
-100 on prompt and padding. A path longer than `max_length` loses prompt tokens from the left
(`overlength: truncate_prompt`) or is dropped; the response, which holds the final answer, is
never cut. Counts of both are reported (per student, and the dropped ones per style too).

A path whose students learn a reasoning teacher's thinking (`ReasoningPath.learn`) is learned as
the thinking, then the answer, in each student's own thinking format: what its chat template
writes for an assistant turn with `reasoning_content` (Qwen3's `<think>` block), or, for a
student whose template has none, the plain `<think>` block of `records.tagged_block`.

RevThink (`objective: revthink`) reads the teacher's backward data beside the paths file
(`records.REVTHINK_FILE`) and makes three items per consistent triple (`revthink_items`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from qrdistill.errors import ConfigError, DataError
from qrdistill.models import render_prompt
from qrdistill.models.loading import has_chat_template
from qrdistill.records import REVTHINK_FILE, ReasoningPath, RevThinkTriple, tagged_block
from qrdistill.training.config import TrainConfig
from qrdistill.utils.io import read_jsonl_as

IGNORE = -100
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainItem:
    """One training example: a path, or one of the tasks made from a path (step_by_step's two,
    revthink's three)."""

    path_id: str
    question_id: str
    style: str
    # "path"; for step_by_step "rationale" / "answer"; for revthink "forward" /
    # "backward_question" / "backward_reasoning"
    task: str
    prompt: str  # base prompt, before the student's template
    response: str  # the answer text
    route_text: (
        str  # what the router's encoder embeds: the reasoning path (docs/METHOD.md, "Routing")
    )
    thinking: str = ""  # learned before the response, in the student's thinking format


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass
class TrainData:
    items: list[TrainItem]
    encoded: dict[str, list[Encoded]]  # student name -> one per item, same order
    counts: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def lengths(self) -> list[int]:
        return [
            max(len(enc[i].input_ids) for enc in self.encoded.values())
            for i in range(len(self.items))
        ]


def select_items(paths: list[ReasoningPath], cfg: TrainConfig) -> tuple[list[TrainItem], dict]:
    """The items an objective trains on. qr_distill takes every path of the file it is given (the
    pipeline passes the filtered file, or the unfiltered one for the no-filter ablation); the SFT
    baselines are defined on correct paths, so they keep only those."""
    counts: dict = {"paths_in_file": len(paths)}
    if cfg.objective == "qr_distill":
        chosen = list(paths)
    else:
        correct = [p for p in paths if p.correct]
        counts["paths_incorrect_skipped"] = len(paths) - len(correct)
        chosen = (
            correct
            if cfg.objective == "answer_aug"
            else _one_per_question(correct, cfg.single_path_style)
        )
    counts["paths_used"] = len(chosen)
    items: list[TrainItem] = []
    for p in chosen:
        thinking = p.thinking if p.learn == "thinking_and_answer" else ""
        if cfg.objective == "step_by_step":
            items.append(
                TrainItem(
                    p.id,
                    p.question_id,
                    p.style,
                    "rationale",
                    p.prompt,
                    p.text,
                    p.learned_text(),
                    thinking,
                )
            )
            answer = p.answer if p.answer is not None else p.gold
            items.append(
                TrainItem(
                    p.id,
                    p.question_id,
                    p.style,
                    "answer",
                    f"{p.prompt}\n{cfg.answer_instruction}",
                    answer,
                    p.learned_text(),
                )
            )
        else:
            items.append(
                TrainItem(
                    p.id,
                    p.question_id,
                    p.style,
                    "path",
                    p.prompt,
                    p.text,
                    p.learned_text(),
                    thinking,
                )
            )
    counts["styles"] = dict(Counter(i.style for i in items))
    return items, counts


def revthink_items(
    paths: list[ReasoningPath], triples: list[RevThinkTriple], cfg: TrainConfig
) -> tuple[list[TrainItem], dict]:
    """RevThink's three tasks per question whose triple the teacher judged consistent and which
    has a correct forward path (the one `sft_single` takes): question -> forward reasoning,
    question -> backward question, backward question -> backward reasoning. Each is one item of
    the same per-path loss, so the three tasks weigh alike (the paper's equal weights)."""
    correct = [p for p in paths if p.correct]
    forward = {p.question_id: p for p in _one_per_question(correct, cfg.single_path_style)}
    counts: dict = {
        "paths_in_file": len(paths),
        "triples_in_file": len(triples),
        "triples_not_consistent": sum(t.consistent is not True for t in triples),
    }
    used = [t for t in triples if t.consistent is True and t.question_id in forward]
    counts["triples_without_correct_forward"] = (
        len(triples) - counts["triples_not_consistent"] - len(used)
    )
    counts["triples_used"] = len(used)
    items: list[TrainItem] = []
    for t in used:
        p = forward[t.question_id]
        thinking = p.thinking if p.learn == "thinking_and_answer" else ""
        items += [
            TrainItem(
                p.id,
                p.question_id,
                p.style,
                "forward",
                p.prompt,
                p.text,
                p.learned_text(),
                thinking,
            ),
            TrainItem(
                p.id,
                p.question_id,
                "revthink:backward_question",
                "backward_question",
                f"{p.prompt}\n{cfg.backward_question_instruction}",
                t.backward_question,
                t.backward_question,
            ),
            TrainItem(
                p.id,
                p.question_id,
                "revthink:backward_reasoning",
                "backward_reasoning",
                t.backward_question,
                t.backward_reasoning,
                t.backward_reasoning,
            ),
        ]
    counts["styles"] = dict(Counter(i.style for i in items))
    return items, counts


def _one_per_question(paths: list[ReasoningPath], style: str | None) -> list[ReasoningPath]:
    """First path per question in file order, preferring `style`: deterministic and documented."""
    chosen: dict[str, ReasoningPath] = {}
    for p in paths:
        current = chosen.get(p.question_id)
        if current is None or (style is not None and p.style == style and current.style != style):
            chosen[p.question_id] = p
    return list(chosen.values())


# Stand-ins that a chat template cannot mistake for anything, to read its thinking format off.
_THINKING, _ANSWER = "\x00thinking\x00", "\x00answer\x00"


def thinking_format(tokenizer) -> str:
    """How a student writes a thinking then an answer, with `_THINKING` and `_ANSWER` standing
    for them: what its chat template renders after the generation prompt for an assistant turn
    with `reasoning_content`, when it renders that field; else the plain tagged block."""
    if has_chat_template(tokenizer):
        turn = [{"role": "user", "content": "?"}]
        prompt = tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
        reply = {"role": "assistant", "content": _ANSWER, "reasoning_content": _THINKING}
        full = tokenizer.apply_chat_template([*turn, reply], tokenize=False)
        if full.startswith(prompt) and _THINKING in full[len(prompt) :] and _ANSWER in full:
            return full[len(prompt) : full.index(_ANSWER) + len(_ANSWER)]
    return tagged_block(_THINKING, _ANSWER)


def student_response(item: TrainItem, tokenizer, form: str | None = None) -> str:
    """The text a student learns for `item`: its response, after its thinking in the student's
    `thinking_format` (`form`, when the caller has it already) when it has one."""
    if not item.thinking:
        return item.response
    form = form if form is not None else thinking_format(tokenizer)
    return form.replace(_THINKING, item.thinking).replace(_ANSWER, item.response)


def encode(
    tokenizer, item: TrainItem, max_length: int, overlength: str, form: str | None = None
) -> tuple[Encoded | None, bool]:
    """(encoded or None if dropped, whether the prompt was truncated). `form`: the student's
    `thinking_format`, read off its template when not given (only items with a thinking)."""
    prompt_ids = tokenizer(render_prompt(tokenizer, item.prompt), add_special_tokens=False)[
        "input_ids"
    ]
    response = student_response(item, tokenizer, form)
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    truncated = False
    room = max_length - len(response_ids)
    if len(prompt_ids) > room:
        if overlength == "drop" or room < 1:
            return None, False
        prompt_ids = prompt_ids[len(prompt_ids) - room :]
        truncated = True
    return Encoded(prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids), truncated


def build_data(paths_path: Path, cfg: TrainConfig, tokenizers: dict) -> TrainData:
    paths = read_jsonl_as(paths_path, ReasoningPath)
    if cfg.objective == "revthink":
        triples_path = Path(paths_path).with_name(REVTHINK_FILE)
        if not triples_path.exists():
            raise DataError(
                f"{triples_path} not found: objective revthink trains on the teacher's backward "
                "data, which the generate stage writes beside the paths when the run's methods "
                "include revthink"
            )
        items, counts = revthink_items(paths, read_jsonl_as(triples_path, RevThinkTriple), cfg)
    else:
        items, counts = select_items(paths, cfg)
    encoded: dict[str, list[Encoded | None]] = {name: [] for name in tokenizers}
    counts["truncated_prompt"] = {name: 0 for name in tokenizers}
    counts["dropped_overlength"] = {name: 0 for name in tokenizers}
    # Read once per student, and only when some item has a thinking to write.
    thinks = any(item.thinking for item in items)
    forms = {name: thinking_format(tok) if thinks else None for name, tok in tokenizers.items()}
    for item in items:
        for name, tok in tokenizers.items():
            enc, truncated = encode(tok, item, cfg.max_length, cfg.overlength, forms[name])
            encoded[name].append(enc)
            counts["truncated_prompt"][name] += int(truncated)
            counts["dropped_overlength"][name] += int(enc is None)
    # An item too long for any student is dropped for all, so every student sees the same items.
    keep = [i for i in range(len(items)) if all(encoded[n][i] is not None for n in tokenizers)]
    counts["items_dropped"] = len(items) - len(keep)
    kept = set(keep)
    counts["items_dropped_per_style"] = dict(
        Counter(item.style for i, item in enumerate(items) if i not in kept)
    )
    counts["items"] = len(keep)
    if counts["items_dropped"] or any(counts["truncated_prompt"].values()):
        log.warning(
            "train.max_length = %d: %d of %d items dropped as too long (per style: %s), prompts "
            "cut from the left per student: %s (the report's quality-filter section shows these)",
            cfg.max_length,
            counts["items_dropped"],
            len(items),
            counts["items_dropped_per_style"],
            counts["truncated_prompt"],
        )
    if not keep:
        raise DataError(
            f"{paths_path}: no trainable items for objective '{cfg.objective}' "
            f"(counts: {counts}); check the file, the objective or max_length"
        )
    data = TrainData(
        [items[i] for i in keep], {n: [encoded[n][i] for i in keep] for n in tokenizers}, counts
    )
    if cfg.peer_active and cfg.peer.kind == "logits":
        check_shared_tokenization(data)
    return data


def check_shared_tokenization(data: TrainData) -> None:
    """Token-level (logits) peer teaching compares position t across students, which only means
    something when every student tokenised every path identically. Checked before training."""
    names = list(data.encoded)
    for i in range(len(data)):
        first = data.encoded[names[0]][i].input_ids
        for name in names[1:]:
            if data.encoded[name][i].input_ids != first:
                raise ConfigError(
                    f"peer.kind: logits needs students that share a tokenizer, but '{names[0]}' and "
                    f"'{name}' tokenise path {data.items[i].path_id} differently; use peer.kind: hidden "
                    "(compares whole responses, works across tokenizers)"
                )


def epoch_batches(
    lengths: list[int], global_batch: int, seed: int, epoch: int, group_factor: int = 16
) -> list[list[int]]:
    """Length-grouped batches for one epoch, identical on every rank (seeded by seed and epoch).

    Shuffle, sort each window of `group_factor` batches by length so a batch pads little, then
    shuffle the batches so training does not see lengths in order.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=gen).tolist()
    window = global_batch * group_factor
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[j : j + global_batch] for j in range(0, len(chunk), global_batch)]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This rank's part of a global batch; a short last batch wraps so no rank is left empty."""
    if len(batch) < world:
        batch = (batch * world)[:world]
    return batch[rank::world]


def collate(
    encoded: list[Encoded], pad_id: int, padding_free: bool = False
) -> dict[str, torch.Tensor]:
    """Right padding to the longest in the batch (dynamic padding); padding is masked in labels.
    `padding_free`: one row without padding instead (`collate_padding_free`)."""
    if padding_free:
        return collate_padding_free(encoded)
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate_padding_free(encoded: list[Encoded]) -> dict[str, torch.Tensor]:
    """Every path of the batch concatenated into one row [1, N], no padding, by transformers'
    `DataCollatorWithFlattening`: position ids restart at 0 for every path and there is no
    attention mask, which is how transformers recognises packed sequences (sdpa and eager get a
    block-diagonal causal mask, flash_attention_2 its variable-length kernel), so no token attends
    across paths; the first label of every path is -100, so no path predicts from the one before.
    `seq_idx` [1, N] says which path each token belongs to (`per_path_sum`)."""
    from transformers import DataCollatorWithFlattening

    batch = DataCollatorWithFlattening(return_seq_idx=True)(
        [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded]
    )
    batch["seq_idx"] = batch["seq_idx"].long()  # an index (index_add_, searchsorted)
    return batch


def per_path_sum(
    values: torch.Tensor, seq_idx: torch.Tensor | None = None, n_paths: int | None = None
) -> torch.Tensor:
    """Sum of `values` [B, T, ...] over each path's positions -> [paths, ...]. A right-padded
    batch holds one path per row (`seq_idx` None); a padding-free row holds `n_paths` paths, told
    apart by `seq_idx` [1, T]."""
    if seq_idx is None:
        return values.sum(1)
    total = values.new_zeros((n_paths, *values.shape[2:]))
    return total.index_add_(0, seq_idx.flatten(), values.flatten(0, 1))


def unflatten(
    values: torch.Tensor, batch: dict[str, torch.Tensor], n_paths: int, fill: float | int
) -> torch.Tensor:
    """A padding-free row's `values` [1, N, ...] laid out as right-padded rows [n_paths, W, ...]
    (W: the longest path), `fill` elsewhere: for consumers that compare position t of a path."""
    width = int(batch["position_ids"].max()) + 1
    out = values.new_full((n_paths, width, *values.shape[2:]), fill)
    out[batch["seq_idx"][0], batch["position_ids"][0]] = values[0]
    return out
