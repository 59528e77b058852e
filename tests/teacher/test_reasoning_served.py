"""The `<think>` tag route against a real `transformers serve`, whole and streamed.

The served model is the packaged SmolLM2 with the chat template of an R1 distill: the template
opens the thinking block (`<think>`) at the start of the assistant's turn, so the reply holds
the thinking, `</think>` and the answer. A few-shot prompt shows the model thinking blocks, and
greedy decoding closes the one the template opened. The null twin asks the same of the packaged
SmolLM2 as it ships (no block opened), whose reply holds no thinking to take apart.
"""

from __future__ import annotations

import shutil

import pytest

from qrdistill.llm import RequestCache, make_backend, make_request, run_cached
from qrdistill.models import packaged_model_path
from qrdistill.tasks import get_task
from served_model import ServedModel, openai_backend

pytestmark = pytest.mark.server

FEW_SHOT = (
    "Q: 1 + 1?\nA: <think>1 plus 1 is 2</think> The answer is 2.\n"
    "Q: 4 + 4?\nA: <think>4 plus 4 is 8</think> The answer is 8.\n"
    "Q: 3 + 2?\nA:"
)


@pytest.fixture(scope="module")
def r1_style_model(tmp_path_factory):
    """SmolLM2 served with a chat template that opens `<think>` for the assistant."""
    source = packaged_model_path("smollm2-135m-instruct")
    folder = tmp_path_factory.mktemp("r1_style") / "smollm2-think"
    folder.mkdir()
    for file in source.iterdir():
        if file.name == "model.safetensors":
            (folder / file.name).symlink_to(file)
        else:
            shutil.copy(file, folder / file.name)
    template = (source / "chat_template.jinja").read_text()
    opened = "{{ '<|im_start|>assistant\n' }}"
    assert opened in template
    (folder / "chat_template.jinja").write_text(
        template.replace(opened, "{{ '<|im_start|>assistant\n<think>' }}")
    )
    served = ServedModel(folder, folder.parent / "serve.log").start()
    yield served
    served.stop()


def ask(served, tmp_path, name: str, **settings):
    """The few-shot prompt through the openai backend and the cache: (raw reply, completion)."""
    cfg = openai_backend(served.base_url, served.model, temperature=0.0, max_tokens=24, **settings)
    request = make_request(cfg, FEW_SHOT, 0, "the few-shot question")
    with RequestCache(tmp_path / f"{name}.sqlite") as cache:
        (generation,) = run_cached(
            [request], cache, lambda: make_backend(cfg), backend=cfg, desc=name, show_progress=False
        ).values()
        raw = cache.get_many([request.key])[request.key].text  # the reply as the server sent it
    return raw, generation


def test_served_think_tags_are_taken_apart_whole_and_streamed(r1_style_model, tmp_path):
    raw, whole = ask(r1_style_model, tmp_path, "whole", thinking="tags")
    # The reply starts inside the block the template opened, and closes it.
    assert "</think>" in raw and not raw.lstrip().startswith("<think>")
    thinking, answer = raw.split("</think>", 1)
    assert (whole.thinking, whole.text) == (thinking.strip(), answer.strip())
    assert whole.thinking and "<think>" not in whole.text and "</think>" not in whole.text
    assert get_task("gsm8k").extract_answer(whole.text) == "5"
    assert whole.completion_tokens > 0 and whole.reasoning_tokens == 0  # the server reports none

    # Streamed, with the limit sent as max_completion_tokens: the same reply, taken apart alike.
    raw_streamed, streamed = ask(
        r1_style_model,
        tmp_path,
        "streamed",
        thinking="auto",
        stream=True,
        max_tokens_param="max_completion_tokens",
    )
    assert raw_streamed == raw
    assert (streamed.thinking, streamed.text) == (whole.thinking, whole.text)
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )

    # thinking: none leaves the reply as it came.
    _, untouched = ask(r1_style_model, tmp_path, "whole", thinking="none")
    assert (untouched.thinking, untouched.text) == ("", raw)


def test_served_model_without_an_opened_block_keeps_its_reply_whole(served_model, tmp_path):
    """The null twin: the same prompt to SmolLM2 as it ships; no block leads its reply."""
    raw, generation = ask(served_model, tmp_path, "plain", thinking="tags")
    assert "</think>" not in raw
    assert (generation.thinking, generation.text) == ("", raw)
