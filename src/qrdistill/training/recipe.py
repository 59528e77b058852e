"""The training loop, in one place: load students and data, build the objective, optimise, log,
checkpoint, resume, save the students. Everything it uses lives in a small module next to it (data, router,
peer, objective, checkpoint, export); nothing here is hidden in callbacks.

Distributed runs use `accelerate` (CPU, one GPU, `accelerate launch` for DDP; FSDP/DeepSpeed via
accelerate's own config). The data order, the global batches and the routing noise are computed
identically on every rank from the seed; each rank trains on its shard of a global batch of
`batch_size * world_size` paths. Per-path statistics are gathered so that logs, routing
statistics and the non-finite check are the same on every rank.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate.utils import DistributedType

from qrdistill.errors import ConfigError, TrainingDiverged
from qrdistill.models import load_tokenizer
from qrdistill.models.loading import resolve_precision
from qrdistill.models.packaged import cache_dir
from qrdistill.training import checkpoint
from qrdistill.training.config import TrainConfig
from qrdistill.training.data import TrainData, build_data, collate, epoch_batches, shard
from qrdistill.training.export import save_student
from qrdistill.training.objective import TERMS, QRDistillObjective, StepOutput
from qrdistill.training.router import embed_texts, no_preference_band, step_draws, tau_at
from qrdistill.training.state import LogWindow, Progress, RoutingTally
from qrdistill.training.students import load_student
from qrdistill.utils.interrupt import StopRequest
from qrdistill.utils.io import atomic_open, iter_jsonl, repair_torn_tail, write_json

logger = logging.getLogger(__name__)


def train(
    cfg: TrainConfig,
    paths_path: Path,
    out_dir: Path,
    *,
    resume: bool = False,
    method: str | None = None,
) -> Path:
    """Train the configured students on `paths_path` (ReasoningPath JSONL) into `out_dir`.
    `method`: the name of the run's method (variant) this trains, recorded in summary.json
    beside the objective; None when training outside a run."""
    recipe = Recipe(cfg, Path(paths_path), Path(out_dir), resume=resume, method=method)
    try:
        return recipe.setup().run()
    finally:
        # Accelerate keeps every model and optimizer it prepared: a process that trains several
        # methods in turn (`qrdistill run`) would hold all their students without this.
        if hasattr(recipe, "acc"):
            recipe.acc.free_memory()


class Recipe:
    """`Recipe(...)` only records the settings; `setup()` is five named steps (accelerator,
    data, students, router inputs, optimizer); `run` is the loop (`fit`), then `export`.
    `optimizer_step` is one step over a window of micro-batches (`epoch_plan`), `micro_step`
    one forward through the objective. The loop's state is `progress`, `_log` and `_routing`
    (dataclasses in state.py, saved in every checkpoint)."""

    def __init__(
        self,
        cfg: TrainConfig,
        paths_path: Path,
        out_dir: Path,
        *,
        resume: bool = False,
        method: str | None = None,
    ):
        self.cfg, self.out, self.resume, self.method = cfg, out_dir, resume, method
        self.paths_path = paths_path
        self.names = [s.name for s in cfg.students]
        self.ckpt_dir = out_dir / "checkpoints"

    def setup(self) -> Recipe:
        """The heavy part: accelerator, data (every path tokenised before any model loads, so
        data problems surface in seconds), students, router inputs, optimizer. Returns self."""
        self._setup_accelerator()
        self._setup_data(self.paths_path)
        students = self._setup_students()
        self._setup_router_inputs()
        model = QRDistillObjective(
            students, self.cfg, self.embeddings, every_rank_runs_every_student=self.sharded
        )
        self._setup_optimizer(model)
        self.progress = Progress.start(len(self.names))
        self._log = LogWindow.empty(len(self.names), 1 + len(TERMS))
        self._routing = RoutingTally.empty(len(self.styles), len(self.names))
        return self

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        log_with = None if self.cfg.report_to == "none" else self.cfg.report_to
        if log_with and importlib.util.find_spec(log_with) is None:
            raise ConfigError(
                f"report_to: {log_with} needs the '{log_with}' package (pip install {log_with}); "
                "metrics.jsonl is written either way, report_to: none needs nothing"
            )
        # A student with no routed row in a micro-batch runs nothing, so under DDP some
        # parameters get no gradient on some ranks.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.acc = Accelerator(log_with=log_with, project_dir=str(self.out), kwargs_handlers=[ddp])
        set_seed(self.cfg.seed)

    def _setup_data(self, paths_path: Path) -> None:
        """Tokenise every path for every student before any model is loaded, so data and
        tokenizer problems surface in seconds."""
        self.tokenizers = {
            s.name: load_tokenizer(s.model, trust_remote_code=s.trust_remote_code)
            for s in self.cfg.students
        }
        self.data: TrainData = build_data(paths_path, self.cfg, self.tokenizers)
        # config + data, checked on resume
        self.fingerprint = checkpoint.fingerprint(self.cfg, paths_path)
        self.lengths = self.data.lengths()
        self.chars = torch.tensor([len(i.response) for i in self.data.items], dtype=torch.float32)
        self.styles = sorted(set(i.style for i in self.data.items))
        self.style_index = torch.tensor([self.styles.index(i.style) for i in self.data.items])
        # Two halves of the questions (alternating in sorted order, so every style has paths in
        # both): a routing preference must show in each (`_write_routing`). By question, not by
        # path, so the paths of one question never stand on both sides.
        questions = sorted({i.question_id for i in self.data.items})
        rank = {q: n for n, q in enumerate(questions)}
        self.half_index = torch.tensor([rank[i.question_id] % 2 for i in self.data.items])

    def _setup_students(self) -> list[torch.nn.Module]:
        return [load_student(s)[0] for s in self.cfg.students]

    def _setup_router_inputs(self) -> None:
        """The frozen encoder's embedding of every path, computed once (and cached on disk)."""
        self.embeddings = None
        if self.cfg.effective_routing_mode == "learned":
            routing = self.cfg.routing
            root = Path(routing.cache_dir) if routing.cache_dir else cache_dir() / "embeddings"
            with self.acc.main_process_first():  # one rank fills the cache, the others read it
                self.embeddings = embed_texts(
                    [i.route_text for i in self.data.items], routing.encoder, root
                )

    def _setup_optimizer(self, model: QRDistillObjective) -> None:
        cfg = self.cfg
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg), weight_decay=cfg.weight_decay)
        self.global_batch = cfg.batch_size * self.acc.num_processes
        n_batches = len(epoch_batches(self.lengths, self.global_batch, cfg.seed, 0))
        self.windows_per_epoch = math.ceil(n_batches / cfg.grad_accum)
        self.total_steps = cfg.epochs * self.windows_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.total_steps)
        # The scheduler is stepped by us once per optimizer step (not prepared: accelerate would
        # step it once per process).
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)

    # ----------------------------------------------------------------------------- the loop
    def run(self) -> Path:
        """Train (`fit`), then write the students and the run's summary (`export`)."""
        self.fit()
        self.export()
        return self.out

    def fit(self) -> None:
        """The loop, from a fresh start or the last checkpoint, up to a final checkpoint."""
        self._start_or_resume()
        bar = None
        if self.acc.is_main_process and self.cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.total_steps, initial=self.progress.step, desc="train", dynamic_ncols=True
            )
        progress = self.progress
        stop = StopRequest("finishing the optimizer step in flight, then saving a checkpoint")
        with stop:
            for epoch in range(progress.epoch, self.cfg.epochs):
                self._epoch(epoch, bar, stop)
                if progress.step >= self.total_steps:
                    break
        if self._routing.paths.sum() > 0:  # stopped by max_steps inside an epoch
            self._write_routing(progress.epoch, partial=True)
        if bar is not None:
            bar.close()
        self.save_checkpoint()

    def _epoch(self, epoch: int, bar, stop: StopRequest) -> None:
        """The optimizer steps of one epoch, from where `progress` stands; on Ctrl-C, the step
        in flight finishes, a checkpoint is written at that step and KeyboardInterrupt raised."""
        progress = self.progress
        batches, windows = self.epoch_plan(epoch)
        for w in range(progress.window, len(windows)):
            if progress.step >= self.total_steps:
                break
            started = time.perf_counter()
            self.optimizer_step(epoch, [(b, batches[b]) for b in windows[w]], len(batches))
            progress.epoch_seconds += time.perf_counter() - started
            progress.window, progress.step = w + 1, progress.step + 1
            saved = self._after_step(epoch + (w + 1) / len(windows), bar)
            if self._stop_agreed(stop):
                if bar is not None:
                    bar.close()
                if not saved:
                    self.save_checkpoint()
                logger.warning(
                    "stopped after optimizer step %d of %d; checkpoint %s written, a rerun "
                    "continues from it",
                    progress.step,
                    self.total_steps,
                    self.ckpt_dir / f"step-{progress.step}",
                )
                raise KeyboardInterrupt
        if progress.window >= len(windows):
            self._write_routing(epoch)
            progress.epoch, progress.window = epoch + 1, 0
            progress.epoch_times.append(round(progress.epoch_seconds, 3))
            progress.epoch_seconds = 0.0

    def epoch_plan(self, epoch: int) -> tuple[list[list[int]], list[list[int]]]:
        """The epoch's micro-batches (path indices, seeded by epoch) and its gradient-accumulation
        windows (indices into the batches): one optimizer step per window."""
        batches = epoch_batches(self.lengths, self.global_batch, self.cfg.seed, epoch)
        accum = self.cfg.grad_accum
        windows = [
            list(range(i, min(i + accum, len(batches)))) for i in range(0, len(batches), accum)
        ]
        return batches, windows

    def take_route_rates(self) -> dict[str, float]:
        """Each student's share of the paths routed to it since the epoch's tally began, and a
        fresh tally: what callers that drive `optimizer_step` themselves (benchmarks) read in
        place of routing.jsonl."""
        tally = self._routing
        paths = float(tally.paths.sum())
        self._routing = RoutingTally.empty(len(self.styles), len(self.names))
        if not paths:
            return {}
        return {n: float(tally.routed[:, j].sum()) / paths for j, n in enumerate(self.names)}

    def _stop_agreed(self, stop: StopRequest) -> bool:
        """Whether any process was asked to stop. Under DDP a Ctrl-C can reach the ranks
        between different steps: the flag is summed over ranks so that all stop after the
        same step (and write one checkpoint together)."""
        if self.acc.num_processes == 1:
            return stop.requested
        flag = torch.tensor([float(stop.requested)], device=self.acc.device)
        return bool(self.acc.reduce(flag, reduction="sum").item() > 0)

    def _after_step(self, epoch: float, bar) -> bool:
        """Log every `log_every` steps (and the last), checkpoint every `checkpoint_every`;
        True when it wrote a checkpoint."""
        step = self.progress.step
        if step % self.cfg.log_every == 0 or step == self.total_steps:
            row = self._log_row(epoch)
            if bar is not None:
                bar.set_postfix({n: row.get(f"loss/{n}") for n in self.names})
        if bar is not None:
            bar.update(1)
        if step % self.cfg.checkpoint_every == 0 and step < self.total_steps:
            self.save_checkpoint()
            return True
        return False

    def optimizer_step(
        self, epoch: int, window: list[tuple[int, list[int]]], n_batches: int
    ) -> None:
        """One optimizer step over a gradient-accumulation window of micro-batches."""
        self.model.train()
        for k, (b, batch) in enumerate(window):
            # Gradients are all-reduced once per window, on its last micro-batch.
            last = k == len(window) - 1
            with nullcontext() if last else self.acc.no_sync(self.model):
                out = self.micro_step(batch, epoch * n_batches + b)
                self.acc.backward(out.loss / len(window))
        if self.cfg.clip is not None:
            self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def micro_step(self, batch: list[int], micro_id: int) -> StepOutput:
        """Forward one micro-batch: every student gets the whole local batch, already collated;
        the objective decides the gates and runs each student on its routed rows only."""
        rank, world = self.acc.process_index, self.acc.num_processes
        per_rank = math.ceil(len(batch) / world)
        padded = (batch * world)[
            : per_rank * world
        ]  # equal shards, so per-path rows can be gathered
        local = shard(padded, rank, world)
        device = self.acc.device
        inputs = [
            {
                k: v.to(device)
                for k, v in collate(
                    [self.data.encoded[n][i] for i in local],
                    self.tokenizers[n].pad_token_id,
                    padding_free=self.cfg.padding_free,
                ).items()
            }
            for n in self.names
        ]
        # The routing draws for the whole global batch, so every rank draws the same numbers
        # and takes its rows; the objective decides the gates from them, whatever the mode.
        noise, explore = step_draws(
            self.cfg.seed,
            micro_id,
            len(padded),
            len(self.names),
            self.cfg.routing.exploration_share,
        )
        kwargs: dict = {
            "chars": self.chars[local].to(device),
            "noise": noise[rank::world],
            "explore": explore[rank::world],
            "tau": self._tau() or 1.0,
        }
        if self.embeddings is not None:
            kwargs["embeddings"] = self.embeddings[local].to(device)
        out = self.model(inputs, **kwargs)
        self._record(out, [padded[r::world] for r in range(world)])
        return out

    def _tau(self) -> float | None:
        if self.cfg.effective_routing_mode != "learned":
            return None
        routing = self.cfg.routing
        return tau_at(self.progress.step, self.total_steps, routing.tau_start, routing.tau_end)

    # ----------------------------------------------------------------------------- statistics
    def _record(self, out: StepOutput, shards: list[list[int]]) -> None:
        """Gather per-path rows from every rank, check they are finite, update the log and the
        routing statistics (identically on every rank)."""
        s = len(self.names)
        rows = torch.cat([out.per_path, out.gates, out.probs, out.shadow_probs], dim=1).float()
        rows = self.acc.gather(rows).cpu()
        scalars = torch.stack([out.loss.detach().float()] + [out.terms[k].float() for k in TERMS])
        scalars = self.acc.gather(scalars.unsqueeze(0)).cpu()
        tokens = (
            self.acc.gather(torch.stack([out.tokens, out.forward_only_tokens]).unsqueeze(0))
            .cpu()
            .sum(0)
        )
        index = torch.tensor([i for part in shards for i in part])
        per_path, gates, probs, shadow = rows.split(s, dim=1)
        computed = gates > 0
        if not (torch.isfinite(per_path[computed]).all() and torch.isfinite(scalars).all()):
            self._diverged(per_path, computed, scalars)
        self._log.add(scalars, per_path, gates)
        self.progress.count_tokens(tokens)
        self._routing.add(self.style_index[index], self.half_index[index], gates, probs, shadow)

    def _diverged(
        self, per_path: torch.Tensor, computed: torch.Tensor, scalars: torch.Tensor
    ) -> None:
        finite = torch.isfinite(per_path) | ~computed
        bad = [n for n, ok in zip(self.names, finite.all(0)) if not ok]
        terms = [t for t, ok in zip(("total",) + TERMS, torch.isfinite(scalars).all(0)) if not ok]
        last = checkpoint.latest(self.ckpt_dir)
        raise TrainingDiverged(
            f"non-finite loss at optimizer step {self.progress.step + 1} (epoch {self.progress.epoch}): "
            f"students {bad or 'none'}, terms {terms or 'none'}. Training stopped; the last good "
            f"checkpoint is {last if last else 'none (no checkpoint written yet)'}. Lower the learning "
            "rate, use float32, or check the data; --resume restarts from that checkpoint."
        )

    def _log_row(self, epoch: float) -> dict:
        log = self._log
        values = (log.scalars / max(1, log.n)).tolist()
        # "objective" is the optimised total; "loss/<student>" is the plain mean loss over the
        # paths the student computed; "tokens/<student>" counts the real tokens it trained on.
        row: dict = {
            "step": self.progress.step,
            "epoch": round(epoch, 4),
            "objective": values[0],
            **dict(zip(TERMS, values[1:])),
            "tau": self._tau(),
        }
        for j, name in enumerate(self.names):
            routed = float(log.routed[j])
            row[f"loss/{name}"] = float(log.routed_loss[j]) / routed if routed else None
            row[f"route_rate/{name}"] = routed / max(1, log.paths)
            row[f"tokens/{name}"] = self.progress.tokens[j]
            if self.cfg.students[j].frozen:
                row[f"forward_only_tokens/{name}"] = self.progress.forward_only_tokens[j]
        for group in self.optimizer.param_groups:
            row[f"lr/{group['name']}"] = group["lr"]
        if self.acc.is_main_process:
            _append_jsonl(self.out / "metrics.jsonl", row)
            if self.cfg.report_to != "none":
                self.acc.log(
                    {k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"]
                )
        self.last_row = row
        self._log = LogWindow.empty(len(self.names), 1 + len(TERMS))
        return row

    def _write_routing(self, epoch: int, partial: bool = False) -> None:
        """One row per (style, student): the routed share, the mean gate probability, and two
        bands. `band_low`..`band_high`: where the share would fall if every path were routed at
        the student's overall share this epoch (binomial, 95 %). `null_band`: how far from the
        student's overall mean gate probability the shadow router (same evidence, paths and
        losses paired at random) put any style: what this router makes of no signal at these
        settings and counts. `half_leans`: the cell's mean gate probability minus the student's
        overall mean, in each half of the questions (`half_index`). A cell is
        `outside_band`, a preference, only when its share leaves the binomial band, its mean
        gate probability leaves the null band, and it leans the same way in both halves."""
        r = self._routing
        n_paths = float(r.paths.sum())
        overall = r.routed.sum(0) / max(1.0, n_paths)
        per_style = r.paths.clamp(min=1).unsqueeze(1)
        prob, shadow = r.prob / per_style, r.shadow / per_style
        seen = r.paths > 0
        student_mean = r.prob.sum(0) / max(1.0, n_paths)  # [S] over every path
        lean = prob - student_mean
        null_band = (shadow - r.shadow.sum(0) / max(1.0, n_paths)).abs()[seen].amax(0)
        half_lean = r.half_prob / r.half_paths.clamp(min=1).unsqueeze(2) - student_mean
        # A half without paths of the style cannot confirm a lean.
        both_halves = (half_lean.sign() == lean.sign()).all(0) & (half_lean != 0).all(0)
        both_halves &= (r.half_paths > 0).all(0).unsqueeze(1)
        shared = {
            "epoch": epoch,
            "partial": partial,
            "unrouted_share": r.unrouted / n_paths if n_paths else None,
            "all_share": r.everyone / n_paths if n_paths else None,
            # Paths at least 2 students computed: the only ones that tell the router anything.
            "shared_share": r.shared / n_paths if n_paths else None,
        }
        rows = []
        for a, style in enumerate(self.styles):
            total = int(r.paths[a])
            for j, name in enumerate(self.names):
                rate = float(r.routed[a, j]) / total if total else None
                low, high = no_preference_band(float(overall[j]), total)
                chance = rate is not None and low <= rate <= high
                rows.append(
                    {
                        **shared,
                        "style": style,
                        "student": name,
                        "count": int(r.routed[a, j]),
                        "total": total,
                        "rate": rate,
                        "mean_prob": float(prob[a, j]) if total else None,
                        "shadow_mean_prob": float(shadow[a, j]) if total else None,
                        "band_low": low,
                        "band_high": high,
                        "null_band": float(null_band[j]),
                        "half_leans": [
                            float(half_lean[h, a, j]) if r.half_paths[h, a] else None
                            for h in (0, 1)
                        ],
                        "outside_band": rate is not None
                        and not chance
                        and abs(float(lean[a, j])) > float(null_band[j])
                        and bool(both_halves[a, j]),
                    }
                )
        if self.acc.is_main_process:
            for row in rows:
                _append_jsonl(self.out / "routing.jsonl", row)
            outside = [f"{row['style']}->{row['student']}" for row in rows if row["outside_band"]]
            logger.info(
                "routing, epoch %s: %.0f%% of paths to nobody, %.0f%% to every student, %.0f%% to "
                "at least 2 (the router's evidence); %s",
                epoch,
                100 * (shared["unrouted_share"] or 0),
                100 * (shared["all_share"] or 0),
                100 * (shared["shared_share"] or 0),
                f"outside the no-preference band: {', '.join(outside)}"
                if outside
                else "no (style, student) cell outside the no-preference band",
            )
        self.last_routing = rows
        self._routing = RoutingTally.empty(len(self.styles), len(self.names))

    # ----------------------------------------------------------------------------- state
    def _start_or_resume(self) -> None:
        self.last_row, self.last_routing = None, []
        found = checkpoint.resumable(self.ckpt_dir, self.fingerprint) if self.resume else None
        if found is None:
            if self.acc.is_main_process:  # a fresh run never mixes with an older one's files
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
                for name in ("metrics.jsonl", "routing.jsonl", "summary.json"):
                    (self.out / name).unlink(missing_ok=True)
            self.acc.wait_for_everyone()
        else:
            if self.sharded:
                deepspeed = self.acc.distributed_type == DistributedType.DEEPSPEED
                kwargs = {"load_module_strict": False} if deepspeed else {}
                self.acc.load_state(str(found), **kwargs)
            progress = checkpoint.load(
                found,
                None if self.sharded else self.acc.unwrap_model(self.model),
                None if self.sharded else self.optimizer,
                self.scheduler,
                self.acc.process_index,
            )
            self.progress = Progress.from_json(progress["position"])
            if self.acc.is_main_process:
                logger.info(
                    "resuming from %s: optimizer step %d of %d done",
                    found,
                    self.progress.step,
                    self.total_steps,
                )
            self._log = LogWindow.from_json(progress["log"])
            self._routing = RoutingTally.from_json(progress["routing"])
            self.last_row = progress["last_row"]
            self.last_routing = progress.get(
                "last_routing", []
            )  # summary.json's routing_last_epoch
            if self.acc.is_main_process:  # drop rows logged after the checkpoint
                _truncate_jsonl(
                    self.out / "metrics.jsonl", lambda r: r["step"] <= self.progress.step
                )
                _truncate_jsonl(
                    self.out / "routing.jsonl", lambda r: r["epoch"] < self.progress.epoch
                )
            self.acc.wait_for_everyone()
        if self.cfg.report_to != "none":
            self.acc.init_trackers("qrdistill", config=_flat(self.cfg.model_dump(mode="json")))

    @property
    def sharded(self) -> bool:
        """FSDP / DeepSpeed: no rank holds the whole model or optimizer state, so checkpoints go
        through accelerate's save_state / load_state (untested here: needs GPUs)."""
        return self.acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)

    def save_checkpoint(self) -> None:
        step = self.progress.step
        if self.sharded:  # every rank writes its shards and its RNG state into the staging folder
            # DeepSpeed can leave the frozen base out of its checkpoint; FSDP's shards hold it.
            deepspeed = self.acc.distributed_type == DistributedType.DEEPSPEED
            kwargs = {"exclude_frozen_parameters": True} if deepspeed else {}
            self.acc.save_state(str(checkpoint.staging_dir(self.ckpt_dir, step)), **kwargs)
        else:
            checkpoint.save_rank_rng(self.ckpt_dir, step, self.acc.process_index)
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            progress = {
                "position": self.progress.to_json(),
                "last_row": self.last_row,
                "fingerprint": self.fingerprint,
                "last_routing": self.last_routing,
                "log": self._log.to_json(),
                "routing": self._routing.to_json(),
            }
            checkpoint.commit(
                self.ckpt_dir,
                step,
                None if self.sharded else self.acc.unwrap_model(self.model),
                None if self.sharded else self.optimizer,
                self.scheduler,
                progress,
                self.cfg.checkpoint_keep,
            )
        self.acc.wait_for_everyone()

    def export(self) -> None:
        """Every student's weights under students/<name>, and summary.json."""
        self.acc.wait_for_everyone()
        # Every rank takes part: under FSDP/DeepSpeed this gathers the sharded weights.
        state = self.acc.get_state_dict(self.model)
        model = self.acc.unwrap_model(self.model)
        if self.acc.is_main_process:
            exported = {}
            for i, (scfg, student) in enumerate(zip(self.cfg.students, model.students)):
                prefix = f"students.{i}."
                own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                path = save_student(
                    student,
                    scfg,
                    resolve_precision(scfg.precision),
                    self.out / "students" / scfg.name,
                    state_dict=own,
                )
                exported[scfg.name] = str(path)
            write_json(
                self.out / "summary.json",
                {
                    "method": self.method,  # the run's variant name, or None outside a run
                    "objective": self.cfg.objective,
                    "effective": {
                        "routing_mode": self.cfg.effective_routing_mode,
                        "peer": self.cfg.peer_active,
                    },
                    "config": self.cfg.model_dump(mode="json"),
                    "fingerprint": {k: self.fingerprint[k] for k in ("sha256", "data")},
                    "counts": self.data.counts,
                    "world_size": self.acc.num_processes,
                    "steps": self.progress.step,
                    "epochs_completed": self.progress.epoch,
                    # Seconds of each finished epoch's optimizer steps, on the main process
                    # (the joined report's Table 3: joint against separate training).
                    "epoch_seconds": self.progress.epoch_times,
                    "final": self.last_row,
                    "routing_last_epoch": self.last_routing,
                    "students": exported,
                },
            )
        if self.cfg.report_to != "none":
            self.acc.end_training()
        self.acc.wait_for_everyone()


def param_groups(model: QRDistillObjective, cfg: TrainConfig) -> list[dict]:
    """One AdamW group per student and the peer modules, each with its own lr (the router is
    fitted in closed form: it has no parameters). Every trainable parameter is in exactly one
    group (tested)."""
    groups = [
        {"name": s.name, "lr": s.lr, "params": [p for p in student.parameters() if p.requires_grad]}
        for s, student in zip(cfg.students, model.students)
    ]
    if model.peer is not None:
        groups.append({"name": "peer", "lr": cfg.peer.lr, "params": list(model.peer.parameters())})
    return [g for g in groups if g["params"]]


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler
    return get_scheduler(
        name, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps
    )


def _flat(config: dict, prefix: str = "") -> dict:
    """TensorBoard's hparams take scalars only: nested keys joined by '.', other values as text."""
    flat: dict = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return flat


def _append_jsonl(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def _truncate_jsonl(path: Path, keep) -> None:
    if not path.exists():
        return
    repair_torn_tail(path)  # a crash mid-append may have cut the last row short
    rows = [r for _, r in iter_jsonl(path) if keep(r)]
    with atomic_open(path) as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
