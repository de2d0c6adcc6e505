"""Evaluation of a classifier: metrics, the confusion matrix, and the review threshold.

Everything here works on plain label lists and probabilities, so the same report comes out of
``wangge train`` (on the hold-out split), ``wangge evaluate`` (on any labelled file) and the
benchmarks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

logger = logging.getLogger(__name__)

# Fonts that cover Chinese, in order of preference; the PNG falls back to numbered labels.
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
)


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of predictions against gold labels."""

    n: int
    accuracy: float
    macro_f1: float
    micro_f1: float
    weighted_f1: float
    labels: list[str]
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]  # rows: gold label, columns: predicted label

    def summary(self) -> dict[str, float]:
        """The flat headline figures, as stored in a model's ``meta.json``."""
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "micro_f1": round(self.micro_f1, 4),
            "weighted_f1": round(self.weighted_f1, 4),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        """Per-class table and confusion matrix as Markdown (readable in a terminal too)."""
        lines = [
            f"messages: {self.n}  accuracy: {self.accuracy:.4f}  macro-F1: {self.macro_f1:.4f}  "
            f"micro-F1: {self.micro_f1:.4f}  weighted-F1: {self.weighted_f1:.4f}",
            "",
            "| category | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        for label in self.labels:
            m = self.per_class[label]
            lines.append(
                f"| {label} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | {m.support} |"
            )
        lines += [
            "",
            "Confusion matrix (rows: gold, columns: predicted):",
            "",
            "| gold \\ predicted | " + " | ".join(self.labels) + " |",
            "|---|" + "---:|" * len(self.labels),
        ]
        for label, row in zip(self.labels, self.confusion, strict=False):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        return "\n".join(lines) + "\n"


def evaluate_predictions(
    gold: Sequence[str], predicted: Sequence[str], *, labels: Sequence[str] | None = None
) -> EvaluationReport:
    """Compare predicted with gold labels; ``labels`` fixes the row/column order."""
    order = sorted(set(gold) | set(predicted)) if labels is None else list(labels)
    extra = sorted((set(gold) | set(predicted)) - set(order))
    order += extra
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=order, zero_division=0
    )
    present = [i for i, label in enumerate(order) if support[i] > 0]
    return EvaluationReport(
        n=len(gold),
        accuracy=float(accuracy_score(gold, predicted)),
        # Macro-F1 over the categories that occur in the gold labels, as is usual.
        macro_f1=float(np.mean([f1[i] for i in present])) if present else 0.0,
        micro_f1=float(f1_score(gold, predicted, average="micro", labels=order, zero_division=0)),
        weighted_f1=float(
            f1_score(gold, predicted, average="weighted", labels=order, zero_division=0)
        ),
        labels=order,
        per_class={
            label: ClassMetrics(
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, label in enumerate(order)
        },
        confusion=confusion_matrix(gold, predicted, labels=order).tolist(),
    )


def wilson_lower_bound(right: np.ndarray, total: np.ndarray, z: float) -> np.ndarray:
    """Wilson score lower bound of the accuracy ``right / total``, ``z`` standard errors below
    (``z = 0``: the accuracy itself)."""
    right = np.asarray(right, dtype=float)
    total = np.maximum(np.asarray(total, dtype=float), 1.0)
    p = right / total
    if z == 0:
        return p
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * np.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return (centre - spread) / (1 + z2 / total)


def choose_review_threshold(
    confidences: Sequence[float],
    correct: Sequence[bool],
    *,
    target_accuracy: float = 0.95,
    z: float = 0.0,
) -> tuple[float, float]:
    """The lowest confidence above which predictions are right at least ``target_accuracy``
    (with ``z > 0``: at the Wilson lower bound ``z`` standard errors below their accuracy).

    Predictions at or above the threshold are trusted; those below go to a person. Returns the
    threshold and the share of messages it lets through unreviewed (coverage). If even the
    most confident predictions miss the target, every message goes to review (threshold 1.0).
    """
    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return 1.0, 0.0
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    running = wilson_lower_bound(np.cumsum(ok[order]), np.arange(1, conf.size + 1), z)
    # A threshold lets through every prediction at or above it, so a cut can only fall where
    # the confidence changes: predictions with equal confidence pass or fail together.
    cut_allowed = np.append(sorted_conf[:-1] > sorted_conf[1:], True)
    meets = np.nonzero((running >= target_accuracy - 1e-12) & cut_allowed)[0]
    if meets.size == 0:
        return 1.0, 0.0
    last = int(meets[-1])  # largest prefix (most coverage) that still meets the target
    threshold = float(sorted_conf[last])
    coverage = float(np.mean(conf >= threshold))
    return threshold, round(coverage, 4)


def _cjk_font() -> str | None:
    """Name of an installed font with Chinese glyphs, or None.

    Matplotlib caches its font list on first use, so a font installed after that (e.g. by
    ``apt-get install fonts-noto-cjk``) is looked for among the system's font files too.
    """
    from matplotlib import font_manager

    def known() -> str | None:
        available = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in _CJK_FONTS if name in available), None)

    found = known()
    if found is None:
        for path in font_manager.findSystemFonts():
            if any(hint in path.lower() for hint in ("cjk", "wqy", "sourcehan", "simhei", "yahei")):
                font_manager.fontManager.addfont(path)
        found = known()
    return found


def save_confusion_png(report: EvaluationReport, path: str | Path) -> Path:
    """Draw the confusion matrix, normalised by row, with counts in the cells.

    Category names need a font with Chinese glyphs (e.g. Debian's ``fonts-noto-cjk``); without
    one the axes show numbers and the figure lists which number is which category.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = _cjk_font()
    names = report.labels if font else [str(i) for i in range(len(report.labels))]
    counts = np.asarray(report.confusion, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.0 + 0.7 * len(names)
    with plt.rc_context({"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"]}):
        fig, ax = plt.subplots(figsize=(size + 1, size))
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        for (i, j), value in np.ndenumerate(counts):
            ax.text(
                j,
                i,
                str(int(value)),
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=8,
            )
        title = f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}"
        if not font:
            logger.warning("no Chinese font found: the confusion matrix PNG uses numbered labels")
            title += "\n(no CJK font installed: numbers follow the category order of report.md)"
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path
