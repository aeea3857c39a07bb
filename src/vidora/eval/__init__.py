"""Evaluation: run any generator over Shapes World splits, judge every video, report.

from vidora.eval import evaluate
metrics = evaluate(my_generator, splits=["eval-composition"], n=50, out_dir="eval-out")
"""

from vidora.eval.harness import EVAL_SPLITS, Generator, Sample, evaluate, split_clips, split_metrics
from vidora.eval.report import SheetEntry, contact_sheet, metrics_table, save_contact_sheet

__all__ = [
    "EVAL_SPLITS",
    "Generator",
    "Sample",
    "SheetEntry",
    "contact_sheet",
    "evaluate",
    "metrics_table",
    "save_contact_sheet",
    "split_clips",
    "split_metrics",
]
