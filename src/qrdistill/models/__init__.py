"""Loading language models and generating text with them, shared by every stage.

- `resolve_model(name)`: a hub id, a local folder, or a packaged alias (see `packaged.py`).
- `load_causal_lm(name, ...)`: model and tokenizer, `trust_remote_code` off unless asked.
- `render_prompt(tokenizer, text)`: the user turn in the model's chat template when it has one.
- `generate(...)`: batched, left-padded generation that decodes only new tokens and stops at EOS
  or a stop string (used by the teacher's `hf` backend and by evaluation).
- `choice_probabilities(...)`: P("Yes") vs P("No") as the next token (the local judge's score).
"""

from qrdistill.models.generation import Generation, generate
from qrdistill.models.loading import load_causal_lm, load_tokenizer, render_prompt, resolve_model
from qrdistill.models.packaged import PACKAGED_MODELS, packaged_model_path
from qrdistill.models.scoring import choice_probabilities

__all__ = [
    "Generation",
    "choice_probabilities",
    "PACKAGED_MODELS",
    "generate",
    "load_causal_lm",
    "load_tokenizer",
    "packaged_model_path",
    "render_prompt",
    "resolve_model",
]
