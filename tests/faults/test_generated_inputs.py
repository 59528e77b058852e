"""Bad inputs, generated (issue 10): hundreds of malformed configs, `--set` overrides, data files
and server answers, drawn from fixed seeds. Every one ends in a one-line error with exit status 2,
a retry, or (for an input that is still valid, or a bad record skipped under skip_bad_lines) a
normal result; never a traceback. Server answers come from RawStubServer, a STUB (no real server
gives malformed answers on demand)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import yaml
from fault_tools import assert_one_line_error
from figures import record
from raw_stub import RawStubServer, Reply
from test_pipeline import tiny_config

from qrdistill.errors import BackendError
from qrdistill.llm import openai
from qrdistill.llm.openai import OpenAIBackend
from qrdistill.llm.request import make_request
from served_model import openai_backend

N_CONFIGS, N_OVERRIDES, N_DATA, N_ANSWERS = 120, 40, 100, 100
FIGURES: dict[str, dict] = {}

JUNK = [
    "",
    "~",
    "null",
    "-1",
    "0",
    "1e309",
    "nan",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- x",
    "'",
    '"',
    "\t",
    "[/bold]",
    "\\x00",
    "yes",
    "[1, 2]",
    "{a: 1}",
    "9" * 40,
    "über",
    "!!python/object:os.system",
]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "delete", "insert", "truncate", "duplicate", "invalid_utf8"])
        at = rng.randrange(max(1, len(data)))
        if op == "flip" and data:
            data[at] = rng.randrange(256)
        elif op == "delete":
            del data[at : at + rng.randint(1, 20)]
        elif op == "insert":
            data[at:at] = rng.choice(JUNK).encode()
        elif op == "truncate":
            del data[at:]
        elif op == "duplicate":
            data[at:at] = data[at : at + rng.randint(1, 40)]
        else:
            data[at:at] = rng.choice([b"\xff", b"\xc3", b"\xe9t\xe9", b"\x80\x80", b"\x00"])
    return bytes(data)


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))
    yield path


def mutate_structure(rng: random.Random, config: dict) -> dict:
    config = json.loads(json.dumps(config))
    path = rng.choice([p for p in leaves(config) if p])
    parent = config
    for part in path[:-1]:
        parent = parent[part]
    op = rng.choice(["wrong_value", "unknown_key", "delete", "wrong_container"])
    if op == "wrong_value":
        parent[path[-1]] = rng.choice(
            [
                -5,
                0,
                10**12,
                1.5,
                -0.1,
                "",
                "two",
                None,
                True,
                [],
                {},
                ["x"],
                {"k": "v"},
                "../../etc",
                "a" * 300,
            ]
        )
    elif op == "unknown_key" and isinstance(parent, dict):
        parent[rng.choice(["lr", "epoch", "studentz", "kind ", "Backend", "x.y"])] = 1
    elif op == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice([[parent[path[-1]]], {"value": parent[path[-1]]}])
    return config


@pytest.fixture
def base_config(tmp_path, tiny_students):
    return tiny_config(tmp_path, tiny_students)


def test_generated_configs_end_in_one_line_errors(cli, tmp_path, base_config):
    rng = random.Random(101)
    original = yaml.safe_load(base_config.read_text())
    text = base_config.read_bytes()
    kinds = Counter()
    for i in range(N_CONFIGS):
        path = tmp_path / f"config-{i}.yaml"
        if i % 2:
            path.write_bytes(mutate_bytes(rng, text))
            kinds["byte mutations"] += 1
        else:
            path.write_text(yaml.safe_dump(mutate_structure(rng, original)))
            kinds["structure mutations"] += 1
        # `--method` names no method, so even a config that is still valid ends in an error before
        # any work: what is checked is that loading never ends in a traceback.
        line = assert_one_line_error(*cli("train", path, "--method", "no_such_method"))
        kinds[
            "config rejected" if "--method no_such_method" not in line else "config still valid"
        ] += 1
    for i in range(N_OVERRIDES):
        key = rng.choice(
            [
                "train.epochs",
                "train.students.0.lr",
                "train.students.7.lr",
                "generate.backend",
                "",
                "train..x",
                "methods",
                "data.source.kind",
                "run_dir",
                "evaluate",
                "x",
            ]
        )
        value = rng.choice(JUNK)
        override = rng.choice([f"{key}={value}", f"{key}{value}", f"={value}"])
        line = assert_one_line_error(
            *cli("train", base_config, "--set", override, "--method", "no_such_method")
        )
        kinds[
            "override rejected" if "--method no_such_method" not in line else "override still valid"
        ] += 1
    assert (
        kinds["config rejected"] >= N_CONFIGS // 2
        and kinds["override rejected"] >= N_OVERRIDES // 3
    )
    FIGURES["configs"] = {
        "tried": N_CONFIGS,
        "overrides_tried": N_OVERRIDES,
        **dict(sorted(kinds.items())),
    }


def data_file(rng: random.Random, suffix: str) -> bytes:
    rows = [
        {"question": f"Is {n} an even number?", "answer": "yes" if n % 2 == 0 else "no"}
        for n in range(12)
    ]
    if suffix == ".jsonl":
        lines = [json.dumps(r).encode() for r in rows]
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(lines))
            lines[at] = rng.choice(
                [
                    lambda: mutate_bytes(rng, lines[at]),
                    lambda: json.dumps({"question": rows[at]["question"]}).encode(),  # no answer
                    lambda: json.dumps(
                        {**rows[at], "answer": rng.choice([None, [], {}, 3, "maybe", ""])}
                    ).encode(),
                    lambda: json.dumps(rng.choice([[1], 3, "text", None])).encode(),
                    lambda: b"\xef\xbb\xbf" + lines[at],  # a byte-order mark
                    lambda: lines[at][: rng.randrange(1, len(lines[at]))],
                ]
            )()
        return b"\n".join(lines) + rng.choice([b"\n", b"", b"\r\n"])
    text = "question,answer\n" + "".join(f'"{r["question"]}",{r["answer"]}\n' for r in rows)
    return mutate_bytes(rng, text.encode())


def test_generated_data_files_end_in_one_line_errors_or_are_skipped(cli, tmp_path, base_config):
    rng = random.Random(202)
    outcomes = Counter()
    for i in range(N_DATA):
        suffix = ".jsonl" if i % 3 else ".csv"
        data = tmp_path / f"data-{i}{suffix}"
        data.write_bytes(data_file(rng, suffix))
        skip = rng.random() < 0.5
        out = tmp_path / f"prepared-{i}"
        code, lines = cli(
            "data",
            "prepare",
            "--config",
            base_config,
            "--out",
            out,
            "--set",
            "data.source={kind: local, path: %s}" % data,
            "--set",
            f"data.skip_bad_lines={str(skip).lower()}",
            "--set",
            "data.train_size=2",
            "--set",
            "data.test_size=2",
        )
        if code == 0:
            assert [
                len((out / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "test")
            ] == [2, 2]
            outcomes["loaded (valid, or bad records skipped)"] += 1
        else:
            assert_one_line_error(code, lines)
            outcomes["one-line error"] += 1
    assert outcomes["one-line error"] >= N_DATA // 4
    FIGURES["data_files"] = {"tried": N_DATA, **dict(sorted(outcomes.items()))}


def random_reply(rng: random.Random) -> Reply:
    good = Reply.completion("The answer is \\boxed{5}.").body
    status = rng.choice(
        [200] * 8 + [201, 301, 400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]
    )
    headers = {}
    if rng.random() < 0.3:
        headers["Retry-After"] = rng.choice(
            ["0", "1", "600", "-5", "soon", "Wed, 21 Oct 2099 07:28:00 GMT", "1e9", ""]
        )
    content_type = rng.choice(
        ["application/json"] * 5
        + ["text/plain", "text/html", None, "application/json; charset=utf-8"]
    )
    payload = json.loads(good)
    shape = rng.randrange(9)
    if shape == 0:
        body = mutate_bytes(rng, good)
    elif shape == 1:
        body = good[: rng.randrange(len(good))]
    elif shape == 2:
        payload["choices"] = rng.choice([[], None, {}, "x", [None], [{"message": None}], [{}]])
        body = json.dumps(payload).encode()
    elif shape == 3:
        payload["choices"][0]["message"]["content"] = rng.choice(
            [None, "", " \n", 5, ["a"], {"text": "a"}]
        )
        body = json.dumps(payload).encode()
    elif shape == 4:
        payload["usage"] = rng.choice(
            [None, "x", {"prompt_tokens": "3"}, {"completion_tokens": -2}, []]
        )
        body = json.dumps(payload).encode()
    elif shape == 5:
        body = json.dumps(
            {"error": rng.choice([{"message": "overloaded"}, "bad", {"code": 1}, 7])}
        ).encode()
    elif shape == 6:
        body = rng.choice(
            [
                b"",
                b"null",
                b"[]",
                b"42",
                b"<html>busy</html>",
                bytes(rng.randrange(256) for _ in range(30)),
            ]
        )
    else:
        body = good
    return Reply(body, status=status, content_type=content_type, headers=headers)


def test_stub_generated_server_answers_end_in_a_retry_or_a_one_line_error(monkeypatch):
    monkeypatch.setattr(openai, "pause", lambda seconds: None)
    rng = random.Random(303)
    stub = RawStubServer([])
    outcomes = Counter()
    try:
        backend = OpenAIBackend(openai_backend(stub.base_url, max_retries=1, backoff_max_s=1))
        for i in range(N_ANSWERS):
            reply = random_reply(rng)
            stub.script, stub.posts = [reply], 0  # then the default: a good answer
            try:
                generation = backend.complete(
                    make_request(backend.cfg, f"question {i}", 0, f"request {i}")
                )
            except BackendError as err:
                message = str(err)
                assert "\n" not in message and message.startswith(f"request {i}: ")
                assert stub.base_url.rstrip("/") in message
                assert stub.posts == 1 and reply.status not in openai.RETRYABLE_STATUS | {200}
                outcomes["refused at once (non-retryable status), one-line error"] += 1
                continue
            assert (
                generation.text.strip()
                and generation.prompt_tokens >= 0
                and generation.completion_tokens >= 0
            )
            if stub.posts == 2:
                assert generation.text == "The answer is \\boxed{5}."
                outcomes["retried, then the good answer"] += 1
            else:
                assert reply.status == 200 or 200 <= reply.status < 300
                outcomes["accepted as a usable completion"] += 1
    finally:
        stub.close()
    assert outcomes["retried, then the good answer"] >= N_ANSWERS // 3
    FIGURES["server_answers"] = {"tried": N_ANSWERS, **dict(sorted(outcomes.items()))}
    if {"configs", "data_files"} <= FIGURES.keys():
        record(
            "bad_inputs",
            {
                "tried": sum(f["tried"] + f.get("overrides_tried", 0) for f in FIGURES.values()),
                **dict(sorted(FIGURES.items())),
            },
        )
