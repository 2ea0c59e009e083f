"""PNG plots for an evaluation: confusion matrix, referable ROC, reliability diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from contract.grades import GRADES, REFERABLE_MIN_GRADE

TICK_LABELS = tuple(f"{grade.number} {grade.class_name}" for grade in GRADES)


def plot_confusion(matrix: list[list[int]], title: str, path: Path) -> None:
    """Counts with row-normalised shading."""
    counts = np.asarray(matrix, np.float64)
    norm = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(GRADES)), TICK_LABELS, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(GRADES)), TICK_LABELS, fontsize=8)
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("true grade")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="row fraction")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_roc(referable: dict[str, Any], title: str, path: Path) -> None:
    """ROC curve of P(referable grade) with the AUROC and its CI."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    roc, auc = referable["roc"], referable["auroc"]
    ax.plot(
        roc["fpr"],
        roc["tpr"],
        lw=2,
        label=f"AUROC {auc['value']:.3f} [{auc['ci95_low']:.3f}, {auc['ci95_high']:.3f}]",
    )
    sens, spec = referable["sensitivity"]["value"], referable["specificity"]["value"]
    ax.plot([1 - spec], [sens], "o", label=f"threshold {referable['threshold']:.2f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reliability(
    reliability: dict[str, list[float]], ece: float, title: str, path: Path
) -> None:
    """Top-label reliability diagram."""
    conf = np.asarray(reliability["confidence"])
    acc = np.asarray(reliability["accuracy"])
    count = np.asarray(reliability["count"])
    ok = count > 0
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    ax.plot(conf[ok], acc[ok], "o-", label=f"model (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_all(metrics: dict[str, Any], split: str, out_dir: Path) -> list[Path]:
    """The three plots for one split; returns their paths."""
    paths = [
        out_dir / f"{split}_confusion.png",
        out_dir / f"{split}_roc.png",
        out_dir / f"{split}_reliability.png",
    ]
    plot_confusion(metrics["confusion_matrix"], f"{split}: confusion (n={metrics['n']})", paths[0])
    plot_roc(
        metrics["referable"], f"{split}: referable DR (grade >= {REFERABLE_MIN_GRADE})", paths[1]
    )
    plot_reliability(metrics["reliability"], metrics["ece"], f"{split}: reliability", paths[2])
    return paths
