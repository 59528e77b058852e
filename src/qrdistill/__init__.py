"""QR-Distill: quality-filtered routing with cooperative distillation."""

__version__ = "0.1.0"
