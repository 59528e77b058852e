"""A reasoning model's thinking, told apart from its answer: one rule for every backend.

The backends and the request cache keep what the model sent: its reply (`Generation.text`)
and, where the server's reasoning parser sent one, its reasoning field (`Generation.thinking`).
`separate` turns that into the answer text and the thinking, by the backend's `thinking` setting;
`runner.run_cached` applies it to every completion, fresh or read back from the cache, so
changing `thinking` or `thinking_tags` (or what students learn) needs no new call.

- "field": the reasoning field (`reasoning_content`, or `reasoning` as some servers name it);
- "tags": a thinking block that leads the reply, between `thinking_tags`. The opening tag may be
  missing: R1 distills' chat templates write it into the prompt, so the reply holds only the
  thinking, the closing tag and the answer. A block that opens and never closes (the model ran
  out of tokens while thinking) is all thinking, with an empty answer;
- "auto": the field when the server sent one, else tags;
- "none": nothing is separated; the reply is the answer, as for a model that does not think.
"""

from __future__ import annotations

import dataclasses

from qrdistill.llm.config import BackendConfig
from qrdistill.records import Generation


def split_tags(reply: str, tags: tuple[str, str]) -> tuple[str, str]:
    """(thinking, answer) of a reply whose thinking may lead it between `tags`; ("", reply)
    when it holds no such block."""
    opening, closing = tags
    body = reply.lstrip()
    opened = body.startswith(opening)
    if opened:
        body = body[len(opening) :]
    end = body.find(closing)
    if end == -1:
        return (body.strip(), "") if opened else ("", reply)
    if not opened and opening in body[:end]:
        return "", reply  # a block in the middle of the reply, not thinking that leads it
    return body[:end].strip(), body[end + len(closing) :].strip()


def separate(generation: Generation, cfg: BackendConfig) -> Generation:
    """The completion with `text` the answer and `thinking` the thinking, by `cfg.thinking`."""
    mode = cfg.thinking
    if mode == "none":
        thinking, text = "", generation.text
    elif mode in ("field", "auto") and generation.thinking.strip():
        thinking, text = generation.thinking.strip(), generation.text.strip()
    elif mode == "field":
        thinking, text = "", generation.text
    else:
        thinking, text = split_tags(generation.text, cfg.thinking_tags)
    return dataclasses.replace(generation, text=text, thinking=thinking)


def unseparated(generation: Generation, cfg: BackendConfig) -> bool:
    """Whether a completion read with `thinking: none` looks like a reasoning model's: a
    reasoning field, or a reply that a thinking block leads (the run warns about these)."""
    return cfg.thinking == "none" and bool(
        generation.thinking.strip() or split_tags(generation.text, cfg.thinking_tags)[0]
    )
