"""Tiny randomly initialised causal LMs with their own tokenizers, built from a config (no download).

Two students that differ the way real ones do: different tokenizers (vocabularies and
segmentations), different architectures, one with a chat template and one without. A Gemma-3-like
one too (arch "gemma3": sliding-window layers, a window shorter than a path), like the packaged
gemma3-270m student.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?",
    "Answer: In May she sold 48 / 2 = 24 clips. Altogether 48 + 24 = 72. The answer is \\boxed{72}.",
    "Let's think step by step. First recall the facts. Then verify the answer backwards.",
    "The best answer is B. Yes. No. True. False. Neither. entailment neutral contradiction",
    "def solve():\n    total = 48 + 48 // 2\n    print(total)\n# prints 72",
    "0123456789 + - * / = ( ) { } [ ] . , ; : ? ! ' \" \\ % $ # @ & _ < >",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tokenizer(vocab_size: int, chat: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_student(
    folder: Path,
    *,
    arch: str = "llama",
    vocab_size: int = 400,
    chat: bool = True,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    vocab_rows: int | None = None,
) -> Path:
    """Save a tiny random causal LM + tokenizer to `folder` and return it. `vocab_rows`: more
    embedding rows than the tokenizer has tokens, as real models pad their vocabularies (a wide
    vocabulary relative to the hidden size, like the real students')."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    folder = Path(folder)
    tokenizer = make_tokenizer(vocab_size, chat)
    common = dict(
        vocab_size=vocab_rows or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    if arch == "gemma3":
        # One sliding-window layer, one global; the window is shorter than any training path.
        common.update(
            head_dim=hidden // 4,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"] * (layers // 2)
            + ["sliding_attention"] * (layers % 2),
        )
    config = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma3": Gemma3TextConfig}[arch](
        **common
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
