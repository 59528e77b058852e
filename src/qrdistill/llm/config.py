"""Where completions come from: `BackendConfig`, the section the teacher (`generate.backend`) and
the judge (`filter.judge`) each have."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qrdistill.utils.config import StrictConfig


class BackendConfig(StrictConfig):
    """Where completions come from. The teacher and the judge each have one.

    - `openai`: any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp, `transformers
      serve`, hosted providers). `model` is the name the server expects. The key is read from the
      environment variable named by `api_key_env`; with the variable unset no key is sent, which
      is what local servers want.
    - `hf`: a local transformers model (hub id, folder or packaged alias such as
      `smollm2-135m-instruct`), generated in batches with its chat template.
    - `vllm`: the vLLM offline engine (GPU; needs `pip install vllm`).
    """

    kind: Literal["openai", "hf", "vllm"] = "hf"
    model: str = "smollm2-135m-instruct"

    # Sampling. `seed` is a base seed: each request gets its own seed derived from it, so samples
    # differ from one another yet a rerun asks for the same ones.
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = 0

    # openai backend
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"], min_length=1)
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    # Ask for all samples of a prompt (`generate.samples_per_style`) in one request with `n`: the
    # prompt is billed once. A server that answers fewer choices (`transformers serve` ignores
    # `n`) or refuses `n` is seen at the first such request; the rest are then asked one by one.
    samples_in_one_request: bool = True
    # Sent as the request's `response_format` (structured output), e.g. {"type": "json_object"}.
    # None sends nothing: not every OpenAI-compatible server takes it, and one that does not
    # refuses the request (vLLM, SGLang, llama.cpp and OpenAI take it).
    response_format: dict | None = None
    # Reasoning models. `max_tokens` caps every output token, thinking included; it is sent as
    # `max_tokens`, or as `max_completion_tokens` (OpenAI's reasoning models take only that).
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Sent as `reasoning_effort` ("low", "medium", "high") where the server takes it.
    reasoning_effort: str | None = None
    # Further fields merged into every request body, for server options the OpenAI API has no
    # name for, e.g. {"chat_template_kwargs": {"enable_thinking": true}} (vLLM, SGLang).
    extra_body: dict | None = None
    # Ask for the answer as server-sent events (`stream: true`, usage in the last event): long
    # thinking then arrives as it is written, not as one body at the end.
    stream: bool = False

    # How a reasoning model's thinking is told apart from its answer (qrdistill.llm.thinking):
    # "field": the server's reasoning parser sends it in `reasoning_content` (or `reasoning`);
    # "tags": it leads the reply between `thinking_tags` (a template may have written the
    # opening tag, as R1 distills' do); "auto": the field when the server sends one, else tags;
    # "none": nothing is separated, the reply is the answer (a model that is no reasoning model).
    thinking: Literal["auto", "field", "tags", "none"] = "none"
    thinking_tags: tuple[str, str] = ("<think>", "</think>")
    # The dry run's estimate, before any request of the stage is cached, expects every
    # completion to be this long (thinking and answer together) instead of `max_tokens`; for
    # a reasoning model, whose `max_tokens` must leave room for long thinking.
    expected_completion_tokens: int | None = Field(None, ge=1)

    # hf and vllm backends
    dtype: str = "auto"
    device: str | None = None
    batch_size: int = Field(8, ge=1)
    trust_remote_code: bool = False

    # Optional prices in USD per million tokens: the cost in usage.json, the dry run's estimate
    # and `budget.max_usd` use them.
    price_input_per_1m: float | None = Field(None, ge=0)
    price_output_per_1m: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _server_options_need_a_server(self) -> BackendConfig:
        if self.kind == "openai":
            return self
        sent = {
            "response_format": self.response_format is not None,
            "reasoning_effort": self.reasoning_effort is not None,
            "extra_body": self.extra_body is not None,
            "stream": self.stream,
            "max_tokens_param": self.max_tokens_param != "max_tokens",
        }
        for name, is_set in sent.items():
            if is_set:
                raise ValueError(
                    f"{name} is sent to an OpenAI-compatible server; the '{self.kind}' backend "
                    "cannot honour it (leave it unset)"
                )
        if self.thinking == "field":
            raise ValueError(
                f"thinking: field reads a server's reasoning field, which the '{self.kind}' "
                "backend has not; use thinking: tags"
            )
        return self

    @field_validator("thinking_tags")
    @classmethod
    def _tags_are_distinct(cls, tags: tuple[str, str]) -> tuple[str, str]:
        if not all(tag.strip() for tag in tags) or tags[0] == tags[1]:
            raise ValueError(f"thinking_tags: an opening and a different closing tag, got {tags}")
        return tags

    @field_validator("base_urls")
    @classmethod
    def _strip_trailing_slash(cls, urls: list[str]) -> list[str]:
        return [url.rstrip("/") for url in urls]

    def sampling(self) -> dict:
        """The parameters that change what is generated; part of every request's cache key."""
        sampling = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        # Only when set, so the cache keys of requests without them stay what they were.
        for name in ("response_format", "reasoning_effort", "extra_body"):
            if getattr(self, name) is not None:
                sampling[name] = getattr(self, name)
        return sampling
