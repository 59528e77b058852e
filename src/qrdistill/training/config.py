"""TrainConfig: everything the training stage reads, validated strictly (unknown keys are errors).

Baselines and ablations are each one change here:
- no routing:            routing.mode: all      (every path to every student)
- random routing:        routing.mode: random
- no peer teaching:      peer.enabled: false
- one student frozen:    students[i].frozen: true
- single-path SFT:       objective: sft_single     (one correct path per question, every student)
- answer augmentation:   objective: answer_aug     (all correct paths, every student)
- distilling step-by-step: objective: step_by_step (rationale and answer as two tasks)
- RevThink:              objective: revthink       (forward reasoning, backward question and
                                                    backward reasoning as three tasks)
The baselines are plain supervised fine-tuning by definition, so for them routing is "all" and
peer teaching is off whatever those sections say; `effective_routing_mode` / `peer_active` are
the values the run uses and `summary.json` records them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from qrdistill.utils.config import StrictConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class LoraSettings(StrictConfig):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # "all-linear" (peft's keyword) or a list of module names.
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"]
    )


class StudentConfig(StrictConfig):
    name: str  # folder name under students/, key in metrics
    model: str  # packaged alias, local folder or hub id
    lr: float = Field(2e-4, gt=0)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    # Precision and memory switches, applied when the student is loaded (training/students.py).
    # auto: bf16 on a CUDA GPU that supports it, else fp32. bf16/fp16: frozen base weights in that
    # type, LoRA weights (and their optimizer state) in fp32, forward under autocast.
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool = False  # recompute activations in backward (non-reentrant)
    # auto: flash_attention_2 when flash-attn is installed and usable (CUDA, bf16/fp16), else
    # the library default (sdpa). An explicit choice that cannot run is a config error.
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"
    compile: bool = (
        False  # torch.compile the student in place (Module.compile: same state dict keys)
    )
    trust_remote_code: bool = False
    frozen: bool = False  # still runs forward (peer for others, router signal), never updated
    load_in_4bit: bool = False  # QLoRA; needs bitsandbytes and CUDA

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "dtype" in data:
            raise ValueError(
                "students[].dtype was replaced by 'precision' (auto | bf16 | fp16 | fp32; "
                "auto is bf16 on a CUDA GPU, fp32 on CPU)"
            )
        return data

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "student name must be letters, digits, '_', '.', '-' (it names a folder)"
            )
        return value


class RoutingConfig(StrictConfig):
    mode: Literal["learned", "all", "random"] = "learned"
    encoder: str = "minilm"  # packaged alias, sentence-transformers or HF encoder name/folder
    # The router's fit (docs/METHOD.md, "Routing"): a Bayesian linear regression per student of
    # its centred loss on this many leading principal components of the path embeddings.
    components: int = Field(8, ge=1)
    prior: float = Field(1.0, gt=0)  # ridge on the whitened components, in observations
    # Per micro-step, older evidence is discounted by this factor: students change as they train.
    forget: float = Field(0.999, gt=0, le=1)
    # A student gets a path only on evidence: the predicted advantage must exceed this many
    # standard errors before the gate leaves 1/2 (3: no decisions from noise across many paths).
    margin: float = Field(3.0, ge=0)
    # Share of paths that every student computes, whatever the router says: the evidence the
    # router learns from (and the random and learned modes' common floor of compute).
    exploration_share: float = Field(0.2, ge=0.0, le=1.0)
    # The compute budget: every other path goes to exactly this many students, those with the
    # best evidence (at random where there is none). None: the paper's free subsets, each gate
    # opening on its own, with at least `min_students_per_path` students per path.
    students_per_path: int | None = Field(None, ge=1)
    # Gate temperature (logit = evidence / tau), annealed exponentially from start to end.
    tau_start: float = Field(1.0, gt=0)
    tau_end: float = Field(0.3, gt=0)
    # Free subsets only: every path goes to at least this many students (the ones it scores
    # highest for); 0 allows a path to reach nobody, as the paper's objective does.
    min_students_per_path: int = Field(1, ge=0)
    cache_dir: str | None = None  # embedding cache; default <qrdistill cache>/embeddings

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data):
        gone = sorted({"hidden", "lr"} & set(data)) if isinstance(data, dict) else []
        if gone:
            raise ValueError(
                f"routing.{', routing.'.join(gone)} no longer exist: the router is fitted in "
                "closed form, with no MLP or learning rate (docs/METHOD.md, 'Routing'); its "
                "settings are components, prior, forget, margin, exploration_share and "
                "students_per_path"
            )
        return data

    @model_validator(mode="after")
    def _budget(self) -> RoutingConfig:
        if self.students_per_path is not None and "min_students_per_path" in self.model_fields_set:
            raise ValueError(
                "routing.students_per_path (a fixed budget of students per path) and "
                "routing.min_students_per_path (a floor for free subsets) exclude each other; "
                "set one"
            )
        return self


class PeerConfig(StrictConfig):
    enabled: bool = True
    kind: Literal["hidden", "logits"] = "hidden"  # logits needs students that share a tokenizer
    dim: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    lambda_competence: float = Field(1.0, ge=0.0)  # weight of the loss that trains gamma
    # Weight of the batch-variance hinge that stops the projections collapsing to a constant.
    lambda_variance: float = Field(1.0, ge=0.0)


class TrainConfig(StrictConfig):
    students: list[StudentConfig] = Field(min_length=1)
    # The loss family (docs/METHOD.md, "Baselines and ablations"). A run's methods are variants
    # of this section (qrdistill.methods); several of them share the qr_distill objective.
    objective: Literal["qr_distill", "sft_single", "answer_aug", "step_by_step", "revthink"] = (
        "qr_distill"
    )
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    peer: PeerConfig = Field(default_factory=PeerConfig)
    lambda_entropy: float = Field(0.01, ge=0.0)
    lambda_mutual: float = Field(0.1, ge=0.0)

    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps
    batch_size: int = Field(4, ge=1)  # paths per device per micro-batch
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=8)
    # Padding-free batches: each student's routed paths of a micro-batch concatenated into one
    # row, position ids restarting per path, no attention across paths (transformers'
    # DataCollatorWithFlattening). Same losses and gradients as padded batches, no padding
    # computed. Off by default: only flash_attention_2 runs it without extra work; sdpa and eager
    # attend over the whole row under a block-diagonal mask (README, "Padding-free batches").
    padding_free: bool = False
    # The distillation loss straight from each student's last hidden states, its output head
    # applied this many response tokens at a time (each token's gradient taken there too), so
    # the [tokens, vocabulary] logits are never held whole and prompt and padding positions get none
    # (training/chunked_loss.py). Same losses and gradients as the full logits. null: the full
    # logits. Whatever it says, a student keeps the full logits where chunking would not be exact
    # (a model class not known to compute them as lm_head(hidden), a LoRA-adapted or biased head;
    # it warns), with peer.kind logits (the KL term needs every student's full distribution) and
    # in sharded runs (FSDP/ZeRO-3 hold the head's weight whole only inside the student's forward).
    # Each chunk reads the whole head weight (671 MB for Gemma-3), so smaller chunks save a little
    # memory and cost tokens/s (64 against 256: benchmarks/peak_memory.py).
    loss_chunk_tokens: int | None = Field(256, ge=1)
    overlength: Literal["truncate_prompt", "drop"] = "truncate_prompt"
    warmup_steps: int = Field(0, ge=0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(0.0, ge=0.0)
    clip: float | None = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(100, ge=1)
    checkpoint_keep: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    progress: bool = True

    # sft_single / step_by_step / revthink pick one correct path per question: this style when present
    # (chain-of-thought, the single path the baselines are defined with), else the first in
    # the file; None takes the first in the file.
    single_path_style: str | None = "chain_of_thought"
    # step_by_step's answer task: the base prompt plus this line, the extracted answer as response.
    answer_instruction: str = "Give only the final answer."
    # revthink's backward-question task: the base prompt plus this line, the teacher's backward
    # question as response (the student learns to pose it from the question alone).
    backward_question_instruction: str = (
        "Write the backward question of this question: one posed from its answer, whose answer "
        "is one of the facts this question gives."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "method" in data:
            raise ValueError(
                f"'method' was renamed to 'objective' (the loss family: qr_distill, sft_single, "
                f"answer_aug, step_by_step or revthink); write objective: {data['method']}. The "
                "variants a run compares are named under the run's `methods:` section"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"student names must be unique, got {names}")
        if all(s.frozen for s in self.students):
            raise ValueError("every student is frozen: nothing would be trained")
        if (self.routing.students_per_path or 0) > len(self.students):
            raise ValueError(
                f"routing.students_per_path is {self.routing.students_per_path} but there are "
                f"only {len(self.students)} students; use at most {len(self.students)}"
            )
        if self.routing.min_students_per_path > len(self.students):
            raise ValueError(
                f"routing.min_students_per_path is {self.routing.min_students_per_path} but there "
                f"are only {len(self.students)} students; use at most {len(self.students)}"
            )
        if (
            len(self.students) < 2
            and self.objective == "qr_distill"
            and (self.routing.mode != "all" or self.peer.enabled)
        ):
            raise ValueError(
                "routing and peer teaching need at least 2 students; with one student "
                "set routing.mode: all and peer.enabled: false"
            )
        return self

    @property
    def effective_routing_mode(self) -> str:
        return self.routing.mode if self.objective == "qr_distill" else "all"

    @property
    def peer_active(self) -> bool:
        return self.objective == "qr_distill" and self.peer.enabled and len(self.students) >= 2
