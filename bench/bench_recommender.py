"""Recommender training speed on 1,000,000 synthetic interactions, and the model comparison on
the real data sets when ../shared/datasets holds them (no database needed).

    python -m bench recommender                           # or: python bench/bench_recommender.py
    python bench/bench_recommender.py --skip-real         # speed only (about a minute)
    python bench/bench_recommender.py --interactions 200000 --seeds 0

Speed: a power-law data set (50,000 users × 5,000 items by default: a few items and customers
account for most interactions, with 50 taste groups underneath). Each model is fitted once; the
target is the shipped blend under 30 s; most-popular is the baseline measured in the same run.
Quality: `evaluate_recommender`'s comparison (every candidate tuned on validation, 3 seeds) on
MovieLens 100k and Groceries, printed beside the targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from offers.recommender import evaluation
from offers.recommender.models import ALS, EASE, Blend, ItemKNN, MostPopular, Recommender, RP3beta

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FIT_TARGET_SECONDS = 30.0
TARGETS = {"ml-100k": {"precision": 0.375, "ndcg": 0.45}}


def synthetic(users: int, items: int, interactions: int, seed: int = 0, groups: int = 50) -> sp.csr_matrix:
    """About `interactions` distinct (user, item) pairs: Zipf-like item popularity, log-normal
    user activity, and each user drawing 70 % of their items from their taste group."""
    surplus = 1.15
    for _ in range(6):
        matrix = _draw(users, items, interactions, surplus, seed, groups)
        if matrix.nnz >= interactions:
            break
        surplus *= interactions / max(matrix.nnz, 1) * 1.05  # repeated pairs collapse: draw more
    if matrix.nnz > interactions:  # trim the surplus at random to the exact size asked for
        rng = np.random.default_rng(seed + 1)
        coo = matrix.tocoo()
        keep = rng.choice(coo.nnz, size=interactions, replace=False)
        matrix = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=(users, items))
    return matrix


def _draw(users: int, items: int, interactions: int, surplus: float, seed: int, groups: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity = popularity[rng.permutation(items)]
    group_of_item = rng.integers(groups, size=items)
    activity = rng.lognormal(0.0, 1.0, size=users)
    degree = np.maximum(1, np.round(activity / activity.sum() * interactions * surplus)).astype(np.int64)
    degree = np.minimum(degree, items // 2)
    group_of_user = rng.integers(groups, size=users)
    rows = np.repeat(np.arange(users), degree)
    from_group = rng.random(rows.size) < 0.7
    cols = np.empty(rows.size, dtype=np.int64)
    cols[~from_group] = rng.choice(items, size=int((~from_group).sum()), p=popularity / popularity.sum())
    by_group = [np.flatnonzero(group_of_item == g) for g in range(groups)]
    for group, members in enumerate(by_group):
        mask = from_group & (group_of_user[rows] == group)
        if mask.any() and len(members):
            cols[mask] = rng.choice(members, size=int(mask.sum()), p=popularity[members] / popularity[members].sum())
    matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(users, items))
    matrix.data[:] = 1.0  # repeated draws of a pair are one interaction
    return matrix


def speed(matrix: sp.csr_matrix, score_users: int) -> dict[str, Any]:
    models: list[tuple[str, Recommender]] = [
        ("most_popular (baseline)", MostPopular()),
        ("item_knn", ItemKNN()),
        ("rp3beta", RP3beta()),
        ("ease", EASE(l2=3000.0)),
        ("als", ALS()),
        ("blend widest (4 parts, k=128)", Blend(
            weights={"ease": 1.0, "als": 1.0, "rp3beta": 0.25, "most_popular": 0.1},
            als={"factors": 128, "regularization": 30.0, "alpha": 4.0})),
        ("blend (shipped)", Blend()),
    ]
    figures: dict[str, Any] = {}
    for label, model in models:
        model.fit(matrix)
        figures[f"fit_s {label}"] = round(model.fit_seconds, 2)
        print(f"  fitted {label} in {model.fit_seconds:.2f} s", flush=True)
    shipped = models[-1][1]
    users = np.arange(min(score_users, matrix.shape[0]))
    started = time.perf_counter()
    shipped.recommend(users, k=10)
    seconds = time.perf_counter() - started
    figures["recommend_top10_users_per_s (blend)"] = round(len(users) / seconds)
    figures["fit_target_s"] = FIT_TARGET_SECONDS
    figures["fit_target_met"] = max(figures["fit_s blend (shipped)"], figures["fit_s blend widest (4 parts, k=128)"]) < FIT_TARGET_SECONDS
    return figures


def quality(name: str, dataset: evaluation.Dataset, seeds: list[int], folds: int, blend_folds: int) -> dict[str, Any]:
    print(f"\n{dataset.describe()}: tuning and measuring every model ({len(seeds)} seeds) …", flush=True)
    report = evaluation.compare(dataset, seeds=seeds, folds=folds, blend_folds=blend_folds)
    print(evaluation.format_report(report), flush=True)
    labels = evaluation.METRIC_LABELS
    means = {label: {m: report.mean(label, m) for m in report.metrics} for label in report.results}
    shipped = means.pop(report.shipped)
    checks: dict[str, bool] = {}
    targets = TARGETS.get(name)
    if targets:
        for metric, target in targets.items():
            checks[f"{labels[metric]}@10 ≥ {target}"] = shipped[metric] >= target
            checks[f"{labels[metric]}@10 ahead of every candidate"] = all(shipped[metric] > c[metric] for c in means.values())
    else:
        metric = report.metrics[0]
        best = max(means, key=lambda label: means[label][metric])
        checks[f"{labels[metric]}@10 ≥ best candidate ({best})"] = shipped[metric] >= means[best][metric]
    for check, met in checks.items():
        print(f"  target {check}: {'met' if met else 'NOT MET'}")
    figures: dict[str, Any] = {}
    for label, values in [(f"{report.shipped} (shipped)", shipped), *means.items()]:
        figures[f"{name} {label}"] = " ".join(f"{labels[m]}@10={v:.4f}" for m, v in values.items())
    figures.update({f"{name} target {check}": met for check, met in checks.items()})
    figures[f"{name} seconds"] = round(report.seconds, 1)
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--score-users", type=int, default=10_000, help="users to recommend for, timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(evaluation.SEEDS), help="split seeds for the real data")
    parser.add_argument("--folds", type=int, default=evaluation.VALIDATION_FOLDS, help="tuning validation splits per seed")
    parser.add_argument("--blend-folds", type=int, default=evaluation.BLEND_FOLDS, help="validation splits for the blend's mix")
    parser.add_argument("--skip-real", action="store_true", help="only the speed benchmark")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with common.timed() as made:
        matrix = synthetic(args.users, args.items, args.interactions, args.seed)
    counts = np.diff(matrix.indptr)
    print(f"synthetic: {matrix.shape[0]:,} users × {matrix.shape[1]:,} items, {matrix.nnz:,} interactions "
          f"(made in {made['seconds']:.1f} s; median user {int(np.median(counts))}, max {counts.max()})", flush=True)
    figures: dict[str, Any] = {"users": matrix.shape[0], "items": matrix.shape[1], "interactions": int(matrix.nnz)}
    figures.update(speed(matrix, args.score_users))

    if not args.skip_real:
        for name, loader, path in (("ml-100k", evaluation.load_ratings, DATASETS / "ml-100k" / "u.data"),
                                   ("groceries", evaluation.load_baskets, DATASETS / "groceries" / "groceries.csv")):
            if path.exists():
                figures.update(quality(name, loader(path), args.seeds, args.folds, args.blend_folds))
            else:
                print(f"\n{path} is absent: {name} comparison skipped")
    common.emit("recommender", figures, as_json=args.json)
    return figures


if __name__ == "__main__":
    main()
