"""The numbers the paper reports (Lei et al., 2025, arXiv 2508.16861; as published).

Shown in reports for reference only, always labelled as the paper's: they were measured with
7B students and a Gemini teacher, not by this run.
"""

from __future__ import annotations

PAPER = "Lei et al., 2025 (arXiv 2508.16861)"
TABLE1_TASKS = ("SQA", "ARC", "MATH", "ANLI", "Date", "avg")
# method -> student -> accuracy % per TABLE1_TASKS
TABLE1 = {
    "zero-shot": {
        "Mistral-7B": (53.89, 73.68, 10.42, 43.92, 39.64, 44.31),
        "Gemma-7B": (56.33, 68.34, 8.58, 37.92, 40.24, 42.28),
    },
    "single-path SFT (SKD)": {
        "Mistral-7B": (63.76, 74.66, 12.48, 44.90, 48.50, 48.86),
        "Gemma-7B": (56.77, 73.29, 16.86, 45.42, 59.62, 50.39),
    },
    "distilling step-by-step": {
        "Mistral-7B": (64.19, 75.32, 11.54, 44.42, 49.63, 49.02),
        "Gemma-7B": (56.77, 72.92, 16.04, 44.23, 60.91, 50.17),
    },
    "answer augmentation": {
        "Mistral-7B": (66.38, 76.77, 14.78, 45.01, 49.12, 50.41),
        "Gemma-7B": (57.21, 73.92, 18.92, 42.72, 64.14, 51.38),
    },
    "RevThink": {
        "Mistral-7B": (70.97, 78.50, 15.28, 48.58, 70.40, 56.75),
        "Gemma-7B": (64.19, 75.09, 19.96, 47.36, 66.27, 54.57),
    },
    "QR-Distill": {
        "Mistral-7B": (69.87, 80.25, 16.92, 55.75, 73.37, 59.23),
        "Gemma-7B": (67.29, 78.05, 23.32, 51.50, 79.29, 59.89),
    },
}
TABLE2_TASKS = ("ARC", "ANLI", "Date")
TABLE2 = {
    "without quality filtering": {
        "Mistral-7B": (77.98, 53.04, 66.86),
        "Gemma-7B": (68.00, 31.10, 69.23),
    },
    "without routing": {"Mistral-7B": (78.07, 59.00, 72.78), "Gemma-7B": (75.19, 30.17, 78.10)},
    "without peer teaching": {
        "Mistral-7B": (75.38, 59.16, 72.19),
        "Gemma-7B": (77.88, 46.33, 76.33),
    },
    "full QR-Distill": {"Mistral-7B": (80.25, 55.75, 73.37), "Gemma-7B": (78.05, 51.50, 79.29)},
}

# Table 3: training time per epoch (minutes:seconds), the students trained jointly by QR-Distill
# against each trained separately (the source of benchmarks/joint_vs_separate.py's 0.69).
TABLE3 = {"joint (QR-Distill)": "11:34", "separate": "16:42"}
TABLE2_TASK_NAMES = ("arc_challenge", "anli", "date_understanding")
# Table 4: smaller students. The paper gives each student's accuracy before and after QR-Distill
# without naming the method of the first row here; it is shown as the paper's own comparison.
TABLE4_TASKS = ("ANLI", "ARC", "Date")
TABLE4 = {
    "the paper's comparison row": {
        "TinyLlama-1.1B": (2.33, 23.50, 15.38),
        "Qwen2.5-3B": (14.26, 73.50, 63.31),
    },
    "QR-Distill": {"TinyLlama-1.1B": (21.25, 32.42, 20.71), "Qwen2.5-3B": (30.83, 81.48, 74.56)},
}
# Sample efficiency on Date: accuracy % with 30 % and with all of the training data.
SAMPLE_EFFICIENCY_SHARES = ("30 %", "100 %")
SAMPLE_EFFICIENCY = {
    "SFT": {"Mistral-7B": (52.66, 66.27), "Gemma-7B": (51.48, 69.82)},
    "QR-Distill": {"Mistral-7B": (56.80, 73.37), "Gemma-7B": (67.45, 79.29)},
}

# This project's task and method names -> the paper's column and row names.
TASK_LABELS = {
    "strategyqa": "SQA",
    "arc_challenge": "ARC",
    "math": "MATH",
    "anli": "ANLI",
    "date_understanding": "Date",
    "gsm8k": "GSM8K",
    "commonsense_qa": "CSQA",
}
METHOD_LABELS = {
    "zero_shot": "zero-shot",
    "sft_single": "single-path SFT (SKD)",
    "step_by_step": "distilling step-by-step",
    "answer_aug": "answer augmentation",
    "revthink": "RevThink",
    "qr_distill": "QR-Distill",
    "no_filter": "without quality filtering",
    "no_routing": "without routing (every path to every student)",
    "random_routing": "without routing (random routing)",
    "no_peer": "without peer teaching",
}
ABLATIONS = ("no_filter", "no_routing", "random_routing", "no_peer")
FULL_METHOD = "qr_distill"


def is_ablation(method: str) -> bool:
    return method in ABLATIONS or method.startswith("frozen_")


def method_label(method: str) -> str:
    if method.startswith("frozen_"):
        return f"one student frozen ({method.removeprefix('frozen_')})"
    return METHOD_LABELS.get(method, "")
