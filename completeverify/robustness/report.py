"""Files of a certify run: curve CSVs and matplotlib figures (risk-coverage, accuracy-radius)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CertifyReport = Any  # certify.CertifyReport (not imported: certify uses write_text from here)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file atomically (readers never see half of it)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def write_curves(report: CertifyReport, prefix: str) -> list[str]:
    """PREFIX_risk_coverage.csv, PREFIX_accuracy_radius.csv, PREFIX_summary.csv; their paths."""
    rc = ["radius,coverage,risk"] + [f"{r!r},{c!r},{k!r}" for r, c, k in report.risk_coverage()]
    ar = ["radius,certified_accuracy"] + [f"{r!r},{a!r}" for r, a in report.accuracy_vs_radius()]
    sm = ["eps,clean,pgd,certified,undecided"] + [
        f"{d['eps']!r},{d['clean']!r},{d['pgd']!r},{d['certified']!r},{d['undecided']!r}"
        for d in report.summary_rows()
    ]
    paths = []
    for suffix, lines in (("risk_coverage", rc), ("accuracy_radius", ar), ("summary", sm)):
        path = f"{prefix}_{suffix}.csv"
        write_text(path, "\n".join(lines) + "\n")
        paths.append(path)
    return paths


def plot(report: CertifyReport, prefix: str, title: str = "") -> list[str]:
    """PREFIX_risk_coverage.png and PREFIX_accuracy_radius.png; their paths (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = report.norm.replace("l", "L").replace("Linf", "L-inf")
    out = []
    rc = report.risk_coverage()
    fig, ax = plt.subplots(figsize=(5, 4))
    pts = sorted((c, k, r) for r, c, k in rc)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
    for c, k, r in pts:
        if r in report.eps or r == 0:
            ax.annotate(f"r={r:g}", (c, k), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("coverage (share answered: certified at radius r)")
    ax.set_ylabel("risk (error among answered)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title} risk-coverage ({norm}), AURC {report.aurc():.4f}".strip(), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = f"{prefix}_risk_coverage.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)
    fig, ax = plt.subplots(figsize=(5, 4))
    ar = report.accuracy_vs_radius()
    # proven at r means proven on (previous r, r]: the value at each r holds to its left
    ax.step([r for r, _ in ar], [a for _, a in ar], where="pre", label="certified accuracy")
    pgd = report.pgd_accuracy
    if report.eps:
        ax.plot(report.eps, [pgd[e] for e in report.eps], "s--", label="PGD accuracy")
        cert = report.certified_accuracy
        ax.plot(report.eps, [cert[e] for e in report.eps], "o", label="certified at eps")
    ax.set_xlabel(f"radius ({norm})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(f"{title} certified accuracy vs radius".strip(), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = f"{prefix}_accuracy_radius.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)
    return out
