"""evaluate(): prediction rows, the same questions for every model, resume, ensembles, summary."""

import importlib.util

import pytest

import qrdistill.evaluation.runner as runner
from qrdistill.errors import BackendError
from qrdistill.evaluation import EvalModel, EvaluateConfig, evaluate
from qrdistill.evaluation.lm_eval_scores import choice_request, choice_scores, lm_eval_scores
from qrdistill.records import Example, Generation, ReasoningPath
from qrdistill.tasks import get_task
from qrdistill.utils.io import read_json, read_jsonl, write_jsonl

EXAMPLES = [
    {
        "id": "q1",
        "task": "gsm8k",
        "question": "Natalia sold 48 clips in April and half as many in May. "
        "How many clips did she sell?",
        "gold": "72",
    },
    {
        "id": "q2",
        "task": "arc_challenge",
        "question": "Which is a liquid at room temperature?",
        "choices": ["iron", "water", "salt"],
        "gold": "B",
    },
    {
        "id": "q3",
        "task": "strategyqa",
        "question": "Is the sky blue on a clear day?",
        "gold": "yes",
    },
]
FIELDS = {
    "question_id",
    "task",
    "method",
    "student",
    "model",
    "response",
    "answer",
    "correct",
    "mean_logprob",
    "completion_tokens",
    "lm_eval",
}


@pytest.fixture()
def test_file(tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, EXAMPLES)
    return path


@pytest.fixture()
def opened(monkeypatch):
    """Record which models evaluate() actually loads and generates with."""
    names = []
    real = runner.open_engine

    def recording(kind, model_name, **options):
        names.append(model_name)
        return real(kind, model_name, **options)

    monkeypatch.setattr(runner, "open_engine", recording)
    return names


def _loglikelihoods(model_dir, request) -> list[float]:
    """Each option's log-likelihood, one unbatched forward pass per option, straight from the
    model's logits: what the evaluation's batched scorer must reproduce."""
    import torch

    from qrdistill.models import load_causal_lm

    model, tok = load_causal_lm(str(model_dir))
    values = []
    for context, continuation in request.continuations():
        ctx = tok(context)["input_ids"]
        cont = tok(context + continuation)["input_ids"][len(ctx) :]
        with torch.no_grad():
            logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
        values.append(sum(float(logits[len(ctx) - 1 + k, t]) for k, t in enumerate(cont)))
    return values


def models_for(tiny_students):
    a, b = tiny_students
    return [
        EvalModel(method="zero_shot", student="a", model=str(a)),
        EvalModel(method="zero_shot", student="b", model=str(b)),
    ]


def test_prediction_rows_with_tiny_students(tiny_students, test_file, tmp_path, opened):
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=2)
    models = models_for(tiny_students)
    out = tmp_path / "eval"
    assert evaluate(cfg, test_file, models, out) == out / "predictions.jsonl"

    rows = read_jsonl(out / "predictions.jsonl")
    singles = [r for r in rows if not r["student"].startswith("ensemble:")]
    assert [(r["method"], r["student"], r["question_id"]) for r in singles] == [
        ("zero_shot", s, q) for s in ("a", "b") for q in ("q1", "q2", "q3")
    ]
    examples = {e["id"]: e for e in EXAMPLES}
    for row in singles:
        assert set(row) == FIELDS
        example = examples[row["question_id"]]
        task = get_task(example["task"])
        assert row["task"] == example["task"]
        assert row["model"] == str(tiny_students[0 if row["student"] == "a" else 1])
        assert isinstance(row["response"], str)
        assert row["answer"] == task.extract_answer(row["response"], example.get("choices"))
        assert row["correct"] == task.is_correct(
            row["response"], example["gold"], example.get("choices")
        )
        from_answer = lm_eval_scores(task, row["response"], example["gold"], example.get("choices"))
        if example["task"] == "arc_challenge":  # and lm-eval's log-likelihood scores
            request = choice_request(Example(**example))
            model = tiny_students[0 if row["student"] == "a" else 1]
            expected = choice_scores(request, _loglikelihoods(model, request))
            assert row["lm_eval"] == {**from_answer, **expected}
        else:
            assert row["lm_eval"] == from_answer
        assert row["completion_tokens"] in range(1, 9)  # at least one token, within the budget
        assert row["mean_logprob"] <= 0.0
    # Each model's own file holds exactly its rows.
    assert read_jsonl(out / "models" / "zero_shot__a.jsonl") == singles[:3]

    ensembles = {
        (r["student"], r["question_id"]) for r in rows if r["student"].startswith("ensemble:")
    }
    assert ensembles == {
        (kind, q) for kind in ("ensemble:vote", "ensemble:confidence") for q in ("q1", "q2", "q3")
    }

    summary = read_json(out / "summary.json")
    assert {(s["method"], s["student"], s["task"]) for s in summary} == {
        ("zero_shot", student, task)
        for student in ("a", "b", "ensemble:vote", "ensemble:confidence")
        for task in ("gsm8k", "arc_challenge", "strategyqa")
    }
    for s in summary:
        assert s["n"] == 1 and s["accuracy"] == s["correct"] / s["n"]
        assert 0.0 <= s["ci_low"] <= s["accuracy"] <= s["ci_high"] <= 1.0
    assert read_json(out / "paired.json") == []  # no qr_distill to compare against

    # Resume: a rerun loads nothing, a new model is the only one generated.
    assert opened == [str(m) for m in tiny_students]
    opened.clear()
    evaluate(cfg, test_file, models, out)
    assert opened == []
    assert read_jsonl(out / "predictions.jsonl") == rows
    retrained = [
        models[0],
        models[1].model_copy(update={"fingerprint": "retrained"}),
        EvalModel(method="qr_distill", student="a", model=str(tiny_students[0])),
    ]
    evaluate(cfg, test_file, retrained, out)
    assert opened == [str(tiny_students[1]), str(tiny_students[0])]
    # A different generation setting re-generates every model.
    opened.clear()
    evaluate(cfg.model_copy(update={"max_new_tokens": 4}), test_file, models, out)
    assert opened == [str(m) for m in tiny_students]


def test_an_interrupted_model_continues_with_the_questions_it_had_not_answered(
    tiny_students, test_file, tmp_path, monkeypatch
):
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=1, ensembles=False)
    model = models_for(tiny_students)[:1]
    evaluate(cfg, test_file, model, tmp_path / "full")
    real = runner.open_engine

    def wrapping(wrap):
        """open_engine whose engines' generate is wrap(the real generate)."""

        def open_wrapped(kind, name, **options):
            engine = real(kind, name, **options)
            engine.generate = wrap(engine.generate)
            return engine

        return open_wrapped

    def stop_after_one_batch(generate):
        def save_then_stop(done, on_batch):
            on_batch(done)
            raise KeyboardInterrupt  # Ctrl-C while the next batch would run

        return lambda prompts, *, on_batch, **kw: generate(
            prompts, on_batch=lambda done: save_then_stop(done, on_batch), **kw
        )

    monkeypatch.setattr(runner, "open_engine", wrapping(stop_after_one_batch))
    out = tmp_path / "continued"
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, test_file, model, out)
    [partial] = (out / "models").glob("zero_shot__a.partial-*.jsonl")
    assert [r["index"] for r in read_jsonl(partial)] == [0]
    with partial.open("a") as handle:
        handle.write('{"index": 1, "text": "cut sh')  # torn by the interruption: dropped

    asked = []

    def counting(generate):
        return lambda prompts, **kw: asked.extend(prompts) or generate(prompts, **kw)

    monkeypatch.setattr(runner, "open_engine", wrapping(counting))
    evaluate(cfg, test_file, model, out)
    assert len(asked) == 2  # q2 and q3 only
    assert read_jsonl(out / "predictions.jsonl") == read_jsonl(
        tmp_path / "full" / "predictions.jsonl"
    )
    assert read_json(out / "summary.json") == read_json(tmp_path / "full" / "summary.json")
    assert not list((out / "models").glob("*.partial-*"))


def test_limit_gives_every_model_the_same_first_questions(tiny_students, test_file, tmp_path):
    cfg = EvaluateConfig(max_new_tokens=4, limit=2, ensembles=False)
    evaluate(cfg, test_file, models_for(tiny_students), tmp_path / "eval")
    rows = read_jsonl(tmp_path / "eval" / "predictions.jsonl")
    assert [(r["student"], r["question_id"]) for r in rows] == [
        ("a", "q1"),
        ("a", "q2"),
        ("b", "q1"),
        ("b", "q2"),
    ]


class ScriptedEngine:
    """Answers each question with a fixed response; records the prompts and stop rules it got."""

    RESPONSES = {
        "Natalia": "48 / 2 = 24 in May, 48 + 24 = 72.\nThe answer is \\boxed{72}.",
        "liquid": "Water melts at 0 degrees.\nThe best answer is C.",
        "sky": "Rayleigh scattering makes it blue.\nThe answer is yes.",
    }

    def __init__(self, calls):
        self.calls = calls

    def render(self, text):
        return f"<user>{text}</user>"

    def generate(self, prompts, *, on_batch, stop_when=None, **options):
        self.calls.append((prompts, stop_when))
        responses = [next(r for key, r in self.RESPONSES.items() if key in p) for p in prompts]
        done = [
            Generation(text=r, prompt_tokens=len(p), completion_tokens=7, mean_logprob=-0.5)
            for p, r in zip(prompts, responses)
        ]
        on_batch(dict(enumerate(done)))
        return done

    def close(self):
        pass


def test_answers_are_extracted_and_verified_per_task(test_file, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "open_engine", lambda kind, name, **options: ScriptedEngine(calls))
    cfg = EvaluateConfig(instruction="Think step by step.", ensembles=False)
    evaluate(
        cfg, test_file, [EvalModel(method="qr_distill", student="a", model="scripted")], tmp_path
    )

    rows = {r["question_id"]: r for r in read_jsonl(tmp_path / "predictions.jsonl")}
    assert {q: (r["answer"], r["correct"]) for q, r in rows.items()} == {
        "q1": ("72", True),
        "q2": ("C", False),
        "q3": ("yes", True),
    }
    assert rows["q1"]["response"] == ScriptedEngine.RESPONSES["Natalia"]
    assert rows["q1"]["completion_tokens"] == 7 and rows["q1"]["mean_logprob"] == -0.5
    # lm-eval's conventions beside ours: no "####" line, so strict-match misses the boxed 72.
    assert {q: r["lm_eval"] for q, r in rows.items()} == {
        "q1": {"strict_match": False, "flexible_extract": True},
        "q2": {"letter_match": False},
        "q3": None,
    }

    # One call per task, each prompt = the model's rendering of the task prompt + the instruction,
    # each with its task's stop rule.
    assert len(calls) == 3
    for (prompts, stop_when), example in zip(calls, EXAMPLES):
        base = get_task(example["task"]).build_prompt(example)
        assert prompts == [f"<user>{base}\n\nThink step by step.</user>"]
    stop_math, stop_choice = calls[0][1], calls[1][1]
    assert stop_math("\\boxed{72}.\nQuestion:") and not stop_math(
        "The best answer is B.\nQuestion:"
    )
    assert stop_choice("The best answer is B.\nQuestion:") and not stop_choice(
        "\\boxed{72}.\nQuestion:"
    )
    assert not stop_math("\\boxed{72}.\n")  # a first answer may still be corrected

    summary = read_json(tmp_path / "summary.json")
    assert [(s["task"], s["n"], s["correct"], s["accuracy"], s["lm_eval"]) for s in summary] == [
        ("gsm8k", 1, 1, 1.0, {"strict_match": 0.0, "flexible_extract": 1.0}),
        ("arc_challenge", 1, 0, 0.0, {"letter_match": 0.0}),
        ("strategyqa", 1, 1, 1.0, None),
    ]


def test_without_the_chat_template_the_model_gets_the_plain_prompt(
    test_file, tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(runner, "open_engine", lambda kind, name, **options: ScriptedEngine(calls))
    model = [EvalModel(method="m", student="a", model="scripted")]
    evaluate(EvaluateConfig(chat_template=False), test_file, model, tmp_path)
    for (prompts, _), example in zip(calls, EXAMPLES):
        assert prompts == [get_task(example["task"]).build_prompt(example) + "\n\n"]
        assert "<user>" not in prompts[0]

    # The setting is part of the fingerprint: with the template, the model answers again.
    calls.clear()
    evaluate(EvaluateConfig(chat_template=False), test_file, model, tmp_path)
    assert calls == []
    evaluate(EvaluateConfig(), test_file, model, tmp_path)
    assert [prompts[0].startswith("<user>") for prompts, _ in calls] == [True, True, True]


def test_stop_rules_can_be_turned_off(test_file, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "open_engine", lambda kind, name, **options: ScriptedEngine(calls))
    model = [EvalModel(method="m", student="a", model="scripted")]
    evaluate(
        EvaluateConfig(stop_after_answer=False, stop_on_loop=False),
        test_file,
        model,
        tmp_path / "off",
    )
    assert [stop_when for _, stop_when in calls] == [None, None, None]
    calls.clear()
    evaluate(EvaluateConfig(stop_after_answer=False), test_file, model, tmp_path / "loop_only")
    stop_math = calls[0][1]
    assert stop_math("<h2>" * 12) and not stop_math("\\boxed{72}.\nQuestion:")


def test_duplicate_model_names_are_rejected(test_file, tmp_path):
    model = EvalModel(method="m", student="a", model="x")
    with pytest.raises(ValueError, match="share a method and student"):
        evaluate(EvaluateConfig(), test_file, [model, model], tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None,
    reason="vllm is installed: the missing-package error cannot happen",
)
def test_vllm_backend_without_vllm_says_how_to_get_it():
    with pytest.raises(BackendError, match="pip install 'qrdistill\\[gpu\\]'"):
        runner.open_engine("vllm", "any", dtype="auto")


def test_answer_budget_is_the_teachers_longest_path_in_each_students_tokens(
    test_file, tmp_path, monkeypatch, tiny_students
):
    from qrdistill.models import load_tokenizer

    budgets: dict[str, set[int]] = {}

    class BudgetRecorder(ScriptedEngine):
        def __init__(self, name):
            super().__init__([])
            self.name = name

        def generate(self, prompts, *, max_new_tokens, **options):
            budgets.setdefault(self.name, set()).add(max_new_tokens)
            return super().generate(prompts, **options)

    monkeypatch.setattr(runner, "open_engine", lambda kind, name, **o: BudgetRecorder(name))
    texts = [
        "In May she sold 48 / 2 = 24 clips. " * 5 + "\\boxed{72}",
        "The best answer is B.",
        "def solve():\n    total = 48 + 48 // 2\n    print(total)\n# prints 72\n" * 3,
    ]
    paths = tmp_path / "paths.jsonl"
    write_jsonl(
        paths,
        [
            ReasoningPath(
                id=f"q{i}::vanilla::0",
                question_id=f"q{i}",
                task="gsm8k",
                style="vanilla",
                prompt="p",
                gold="72",
                text=text,
            ).model_dump(mode="json")
            for i, text in enumerate(texts)
        ],
    )
    names = [str(path) for path in tiny_students]
    models = [EvalModel(method="m", student=s, model=name) for s, name in zip("ab", names)]
    cfg = EvaluateConfig(ensembles=False)
    evaluate(cfg, test_file, models, tmp_path / "derived", paths_path=paths)
    longest = {
        name: max(
            len(load_tokenizer(name)(t, add_special_tokens=False)["input_ids"]) for t in texts
        )
        for name in names
    }
    assert budgets == {name: {longest[name]} for name in names}
    assert longest[names[0]] != longest[names[1]]  # the tokenizers differ, so do the budgets

    # A budget set in the config is every student's; without paths the default is 256.
    for setting, expected in ((EvaluateConfig(ensembles=False, max_new_tokens=40), 40), (cfg, 256)):
        budgets.clear()
        given = paths if expected == 40 else None
        evaluate(setting, test_file, models, tmp_path / f"b{expected}", paths_path=given)
        assert budgets == {name: {expected} for name in names}


@pytest.mark.parametrize("learn", ["thinking_and_answer", "answer"])
def test_answer_budget_covers_the_thinking_students_learn(
    learn, test_file, tmp_path, monkeypatch, tiny_students
):
    """A reasoning teacher's path: the budget is what students learned from it, the thinking
    included when they learn it (the null twin, "answer", counts the answer alone)."""
    from qrdistill.models import load_tokenizer

    budgets: set[int] = set()

    class BudgetRecorder(ScriptedEngine):
        def generate(self, prompts, *, max_new_tokens, **options):
            budgets.add(max_new_tokens)
            return super().generate(prompts, **options)

    monkeypatch.setattr(runner, "open_engine", lambda kind, name, **o: BudgetRecorder([]))
    path = ReasoningPath(
        id="q0::vanilla::0",
        question_id="q0",
        task="gsm8k",
        style="vanilla",
        prompt="p",
        gold="72",
        text="The answer is \\boxed{72}.",
        thinking="In May she sold 48 / 2 = 24 clips. " * 5,
        learn=learn,
    )
    write_jsonl(tmp_path / "paths.jsonl", [path.model_dump(mode="json")])
    name = str(tiny_students[0])
    models = [EvalModel(method="m", student="a", model=name)]
    evaluate(
        EvaluateConfig(ensembles=False),
        test_file,
        models,
        tmp_path / "e",
        paths_path=tmp_path / "paths.jsonl",
    )
    learned = path.learned_text()
    assert (learned == path.text) == (learn == "answer")
    assert budgets == {len(load_tokenizer(name)(learned, add_special_tokens=False)["input_ids"])}
