"""build_report() on a small synthetic run directory with realistic artifacts."""

import json
import struct

import pytest

from qrdistill.evaluation.metrics import paired_comparisons, summarize
from qrdistill.reporting import ReportConfig, build_report
from qrdistill.utils.io import write_json, write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARC_SMOLLM = ("qr_distill", "smollm", "arc_challenge")
NO_PEER_ARC_SMOLLM = ("no_peer", "smollm", "arc_challenge")


def prediction(method, student, qid, correct, task="arc_challenge"):
    return {
        "method": method,
        "student": student,
        "task": task,
        "question_id": qid,
        "correct": correct,
    }


def outcomes(method, student, pattern, task="arc_challenge"):
    return [prediction(method, student, f"q{i}", c == "1", task) for i, c in enumerate(pattern)]


def make_run(root):
    """A run with two students, 8 ARC and 4 Date questions, baselines, one ablation and an ensemble."""
    predictions = (
        outcomes("zero_shot", "smollm", "10000000")
        + outcomes("zero_shot", "gemma", "11000000")
        + outcomes("zero_shot", "smollm", "1000", "date_understanding")
        + outcomes("zero_shot", "gemma", "0000", "date_understanding")
        + outcomes("qr_distill", "smollm", "11111100")
        + outcomes("qr_distill", "gemma", "11110000")
        + outcomes("qr_distill", "smollm", "1110", "date_understanding")
        + outcomes("qr_distill", "gemma", "1100", "date_understanding")
        + outcomes("no_peer", "smollm", "11100000")
        + outcomes("no_peer", "gemma", "11111111")
        + outcomes("qr_distill", "ensemble:vote", "11111000")
    )
    # qr_distill/smollm's ARC answers under lm-eval's letter convention: two of its six right
    # answers lack the "best answer is X" statement.
    for row, letter in zip(
        [r for r in predictions if (r["method"], r["student"], r["task"]) == ARC_SMOLLM],
        "11110000",
    ):
        row["lm_eval"] = {"letter_match": letter == "1"}
    # ... and no_peer/smollm's: 3 of 8, so the paired table has a letter-match difference.
    for row, letter in zip(
        [r for r in predictions if (r["method"], r["student"], r["task"]) == NO_PEER_ARC_SMOLLM],
        "11100000",
    ):
        row["lm_eval"] = {"letter_match": letter == "1"}
    write_json(root / "evaluate" / "summary.json", summarize(predictions))
    write_json(root / "evaluate" / "paired.json", paired_comparisons(predictions))
    write_json(
        root / "filter" / "funnel.json",
        {
            "threshold": 0.5,
            "answer_check": True,
            "judge_enabled": True,
            "on_unparseable": "reject",
            "per_style": {
                "vanilla": {
                    "generated": 40,
                    "answer_correct": 30,
                    "judge_kept": 24,
                    "judge_unparseable": 1,
                },
                "program": {
                    "generated": 40,
                    "answer_correct": 18,
                    "judge_kept": 9,
                    "judge_unparseable": 0,
                },
            },
            "total": {
                "generated": 80,
                "answer_correct": 48,
                "judge_kept": 33,
                "judge_unparseable": 1,
            },
        },
    )
    routing = []
    for epoch, (vanilla_smollm, program_smollm) in enumerate([(0.5, 0.5), (0.875, 0.25)]):
        for style, rate_smollm in (("vanilla", vanilla_smollm), ("program", program_smollm)):
            for student, rate in (("smollm", rate_smollm), ("gemma", 1 - rate_smollm)):
                # band: what routing.jsonl records for a no-preference router at 24 paths, rate 0.5
                band = (0.3, 0.7)
                routing.append(
                    {
                        "epoch": epoch,
                        "style": style,
                        "student": student,
                        "count": int(rate * 24),
                        "total": 24,
                        "rate": rate,
                        "mean_prob": rate - 0.05,
                        "partial": False,
                        "band_low": band[0],
                        "band_high": band[1],
                        "outside_band": not band[0] <= rate <= band[1],
                        "unrouted_share": 0.0,
                        "all_share": 0.0,
                    }
                )
    write_jsonl(root / "train" / "qr_distill" / "routing.jsonl", routing)
    # A method that sends every path to every student: its routing log has nothing to show.
    write_jsonl(
        root / "train" / "no_peer" / "routing.jsonl",
        [{**r, "rate": 1.0, "count": 24, "mean_prob": 1.0} for r in routing],
    )
    metrics = [
        {
            "step": step,
            "epoch": step / 10,
            "objective": 3.0 - 0.1 * step,
            "loss/smollm": 2.5 - 0.1 * step,
            "loss/gemma": 2.8 - 0.05 * step if step % 2 else None,
            "lr/router": 1e-3,
        }
        for step in range(1, 11)
    ]
    write_jsonl(root / "train" / "qr_distill" / "metrics.jsonl", metrics)
    write_jsonl(
        root / "train" / "no_peer" / "metrics.jsonl",
        [{"step": s, "loss_smollm": 2.0 / s, "loss_gemma": 1.5 / s} for s in (1, 2, 3)],
    )
    (root / "config.yaml").write_text(
        "run_dir: runs/demo\nreport:\n  title: Demo run\n", encoding="utf-8"
    )


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height, len(data)


def table_row(markdown, first_cell):
    """The cells of the markdown table row that starts with `first_cell`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starts with {first_cell!r}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    make_run(root)
    html_path = build_report(root)
    return root, html_path, (root / "report" / "report.md").read_text(encoding="utf-8")


def test_accuracy_tables_hold_the_exact_accuracies(report):
    _, _, md = report
    assert "# Demo run" in md  # the title comes from the run's report config
    table1 = md.split("the shape of the paper's Table 1")[1].split(
        "the shape of the paper's Table 2"
    )[0]
    header = table_row(table1, "method")
    assert header == [
        "method",
        "paper row",
        "smollm · ARC",
        "smollm · Date",
        "smollm · avg",
        "gemma · ARC",
        "gemma · Date",
        "gemma · avg",
    ]
    # zero_shot: smollm ARC 1/8, Date 1/4, avg (12.5 + 25) / 2; gemma ARC 2/8, Date 0/4.
    assert table_row(table1, "zero_shot") == [
        "zero_shot",
        "zero-shot",
        "12.50",
        "25.00",
        "18.75",
        "25.00",
        "0.00",
        "12.50",
    ]
    assert table_row(table1, "qr_distill") == [
        "qr_distill",
        "QR-Distill",
        "75.00",
        "75.00",
        "75.00",
        "50.00",
        "50.00",
        "50.00",
    ]
    assert "no_peer" not in table1
    # Table 2: the ablation (no Date results: no average) and the full method for comparison.
    table2 = md.split("the shape of the paper's Table 2")[1].split("ensembles across")[0]
    assert table_row(table2, "no_peer") == [
        "no_peer",
        "without peer teaching",
        "37.50",
        "–",
        "–",
        "100.00",
        "–",
        "–",
    ]
    assert table_row(table2, "qr_distill")[2] == "75.00"
    ensembles = md.split("ensembles across each method's students")[1].split("Every result")[0]
    assert table_row(ensembles, "qr_distill")[2] == "62.50"
    # The detail table: n, correct and the Wilson interval of qr_distill/smollm on ARC (6 of 8),
    # and beside it the accuracy under lm-eval's letter convention (4 of 8).
    details = md.split("Every result")[1]
    assert table_row(details, "method")[-1] == "lm-eval conventions, accuracy %"
    assert (
        "| qr_distill | smollm | ARC | 8 | 6 | 75.00 | [40.93, 92.85] | letter-match 50.00 |" in md
    )
    assert "| zero_shot | smollm | ARC | 8 | 1 | 12.50 | [2.24, 47.09] | – |" in md


def test_paired_table_compares_each_method_with_qr_distill(report):
    _, _, md = report
    paired = md.split("Paired comparison with QR-Distill")[1].split("\n#")[0]
    # no_peer gemma 11111111 vs qr_distill gemma 11110000: +4 of 8, all four discordant
    # questions favour no_peer, exact McNemar p = 2 / 2^4.
    row = table_row(paired, "no_peer")
    assert row[:4] == ["no_peer", "smollm", "ARC", "8"]  # smollm first, in prediction order
    gemma = [line for line in paired.splitlines() if line.startswith("| no_peer | gemma")][0]
    cells = [c.strip() for c in gemma.strip().strip("|").split("|")]
    assert cells[3:5] == ["8", "+50.0"] and cells[6:8] == ["4 / 0", "0.125"]
    # Holm over the table's 6 rows: p = 0.0625 first (x 6 = 0.375), then 0.125 (x 5 = 0.625).
    body = [line for line in paired.splitlines() if line.startswith("| ")][1:]  # no header
    holm = {
        tuple(c.strip() for c in line.split("|")[1:4]): line.split("|")[-3].strip() for line in body
    }
    assert len(holm) == 6
    assert (holm[("zero_shot", "smollm", "ARC")], cells[8]) == ("0.375", "0.625")
    # Beside it, the difference under lm-eval's letter convention: 3 of 8 against 4 of 8.
    assert row[-1].startswith("letter-match -12.5 [")
    assert cells[-1] == "–"  # gemma has no lm-eval score on either side


def test_paper_reference_is_labelled_as_the_papers(report):
    _, _, md = report
    assert "reported in Lei et al., 2025 (arXiv 2508.16861), not measured by this run" in md
    assert table_row(md, "QR-Distill")[1:7] == [
        "69.87",
        "80.25",
        "16.92",
        "55.75",
        "73.37",
        "59.23",
    ]
    assert table_row(md, "without peer teaching")[1:] == [
        "75.38",
        "59.16",
        "72.19",
        "77.88",
        "46.33",
        "76.33",
    ]


def test_funnel_and_routing_numbers(report):
    _, _, md = report
    assert table_row(md, "vanilla")[:4] == ["vanilla", "40", "30 (75%)", "24 (60%)"]
    assert table_row(md, "program")[:4] == ["program", "40", "18 (45%)", "9 (22%)"]
    assert table_row(md, "total")[:4] == ["total", "80", "48 (60%)", "33 (41%)"]
    assert "Filter settings: threshold = 0.5" in md
    routing = md.split("## Routing")[1].split("## Training")[0]
    assert "Method qr_distill" in routing and "Method no_peer" not in routing
    assert "epoch 1" in routing
    assert table_row(routing, "style") == ["style", "smollm", "gemma"]
    assert table_row(routing, "vanilla") == [
        "vanilla",
        "88%* (21/24), p 0.82, band 30–70%",
        "12%* (3/24), p 0.07, band 30–70%",
    ]
    assert table_row(routing, "program") == [
        "program",
        "25%* (6/24), p 0.20, band 30–70%",
        "75%* (18/24), p 0.70, band 30–70%",
    ]
    assert "4 of 4 (style, student) cells leave the no-preference band" in routing


def test_training_curves_plot_every_loss_key(report):
    _, _, md = report
    training = md.split("## Training curves")[1]
    assert "10 logged steps; curves: loss/smollm, loss/gemma." in training
    assert "3 logged steps; curves: loss_smollm, loss_gemma." in training


def test_pngs_are_real_images_and_the_html_embeds_them(report):
    root, html_path, md = report
    pngs = sorted(p.name for p in (root / "report").glob("*.png"))
    assert pngs == [
        "accuracy.png",
        "funnel.png",
        "routing_qr_distill.png",
        "training_no_peer.png",
        "training_qr_distill.png",
    ]
    for name in pngs:
        width, height, size = png_size(root / "report" / name)
        assert width >= 400 and height >= 300 and size > 10_000
        assert f"]({name})" in md
    html = html_path.read_text(encoding="utf-8")
    assert html_path == root / "report" / "report.html"
    assert html.count('src="data:image/png;base64,') == len(pngs)
    assert "<td>88%* (21/24), p 0.82, band 30–70%</td>" in html
    assert "<title>Demo run</title>" in html


def test_config_and_versions(report):
    _, _, md = report
    assert "run_dir: runs/demo" in md
    for package in ("python", "torch", "transformers", "peft", "accelerate"):
        assert table_row(md, package)[0] == package


def test_an_empty_run_says_not_run(tmp_path):
    html_path = build_report(
        tmp_path, tmp_path / "out", cfg=ReportConfig(include_paper_reference=False)
    )
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Not run: evaluation (evaluate/summary.json not found)." in md
    assert "Not run: quality filtering (filter/funnel.json not found)." in md
    assert "Not run: training with routing" in md and "Not run: training (" in md
    assert "Not run: the pipeline (config.yaml not found)." in md
    assert "Not run: generation (generate/usage.json not found)." in md
    assert "Table 1" not in md and list((tmp_path / "out").glob("*.png")) == []
    assert html_path.read_text(encoding="utf-8").count("Not run:") == 6


def test_a_partial_run_reports_what_exists(tmp_path):
    write_json(
        tmp_path / "filter" / "funnel.json",
        {"vanilla": {"generated": 3, "answer_correct": 2, "judge_kept": 1}},
    )  # the bare form
    (tmp_path / "train" / "qr_distill").mkdir(parents=True)  # training started, nothing logged yet
    build_report(tmp_path)
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert table_row(md, "vanilla")[:4] == ["vanilla", "3", "2 (67%)", "1 (33%)"]
    assert "Not run: evaluation" in md and "Not run: training (" in md
    assert (
        json.loads((tmp_path / "filter" / "funnel.json").read_text())["vanilla"]["generated"] == 3
    )


def test_a_damaged_artifact_is_named_not_fatal(tmp_path):
    (tmp_path / "train" / "qr_distill").mkdir(parents=True)
    (tmp_path / "train" / "qr_distill" / "metrics.jsonl").write_text(
        '{"step": 1, "loss/a": 2.0}\n{"step": 2, "lo'
    )
    build_report(tmp_path)
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "_Could not read metrics.jsonl: " in md and "metrics.jsonl:2: not valid JSON" in md
    assert "Not run: training (" in md


def test_a_damaged_summary_is_not_reported_as_not_run(tmp_path):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "summary.json").write_text('[{"method": ')
    build_report(tmp_path)
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "_Could not read summary.json: " in md and "Not run: evaluation" not in md


def test_routing_verdict_names_the_null_band_when_the_log_has_one():
    from qrdistill.reporting.tables import routing_verdict

    row = {"style": "program", "student": "a", "rate": 0.9, "band_low": 0.3, "band_high": 0.7}
    row["total"] = 8
    found = routing_verdict([{**row, "null_band": 0.1, "outside_band": True}])
    assert "paired at random" in found and "both halves" in found and "one seed" in found
    quiet = routing_verdict([{**row, "rate": 0.5, "null_band": 0.12, "outside_band": False}])
    assert "no evidence that any style suits" in quiet
    # ... and says what it cannot conclude, with the smallest effect that would have shown.
    assert "not evidence that the styles suit every student equally" in quiet
    assert "8–8 paths a style" in quiet and "more than 0.12" in quiet
    assert "by chance alone" in routing_verdict([{**row, "outside_band": True}])  # an older log
    # A router whose gates never left 1/2 (nor its shadow's): the margin was the bar, not a
    # band of 0.00, and the shares are exploration and random draws.
    still = routing_verdict(
        [{**row, "rate": 0.5, "mean_prob": 0.5, "null_band": 0.0, "outside_band": False}]
    )
    assert "passed the margin" in still and "every gate stayed at 1/2" in still
    assert "more than 0.00" not in still
    moved = routing_verdict(
        [{**row, "rate": 0.5, "mean_prob": 0.6, "null_band": 0.0, "outside_band": False}]
    )
    assert "more than 0.00 (the null band)" in moved
