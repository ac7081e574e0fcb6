"""Recommendation algorithms on implicit feedback (plain Python classes, not Django models).

Every model is fitted on a user × item `scipy.sparse.csr_matrix` of non-negative interaction
weights (1 for a MovieLens rating or a basket item; for a tenant, an order line weighs more than
an add-to-cart, which weighs more than a view) and answers for row indices of that matrix:

    model = EASE(l2=300).fit(interactions)
    items, scores = model.recommend([0, 5], k=10)        # best first, seen items left out

`recommend(..., history=X)` scores rows of another matrix with the same items instead (fold-in):
a customer whose history grew since training, or one the model has never seen.

The shipped model is `Blend` (evaluation.py measures it against every other model here and
explains how its weights are chosen): per-user standardised scores of EASE, ALS, RP3beta and
popularity, added with weights chosen on validation splits; customers with no history get the
most popular items, and products with no interactions yet get a content-based score when item
features are given (`ContentBased`). `Blend.explain` gives each recommendation a `Reason`.

Size limits: EASE (and so Blend) inverts a dense item × item matrix: O(items²) memory and
O(items³) time — about 4 s for 5,000 items and 1,000,000 interactions on 2 cores; 20,000 items
(3.2 GB in float64) is the practical ceiling; past it use RP3beta or ALS alone.
ItemKNN and RP3beta build their item × item matrix densely too (float32) before keeping the top
neighbours, so the same ceiling applies to them at 4 bytes per entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp

BATCH_USERS = 2048  # users scored at once: a dense BATCH_USERS × items float32 block

UserRows = Sequence[int] | np.ndarray


def as_csr(interactions: Any) -> sp.csr_matrix:
    """A clean float32 CSR copy: duplicates summed, explicit zeros dropped, indices sorted."""
    matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if matrix.nnz and matrix.data.min() < 0:
        raise ValueError("interaction weights must be non-negative")
    return matrix


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest finite scores per row, best first (-1 pads)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0), dtype=np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    items = np.where(np.isfinite(values), items, -1)
    return items.astype(np.int64), values.astype(np.float32)


def keep_top_k_per_column(dense: np.ndarray, k: int) -> sp.csc_matrix:
    """Sparsify an item × item similarity: the k largest positive entries of each column."""
    n = dense.shape[0]
    k = min(k, n)
    rows = np.argpartition(-dense, k - 1, axis=0)[:k, :]
    values = np.take_along_axis(dense, rows, axis=0)
    cols = np.broadcast_to(np.arange(dense.shape[1]), rows.shape)
    keep = values > 0
    return sp.csc_matrix((values[keep], (rows[keep], cols[keep])), shape=dense.shape, dtype=np.float32)


def standardize_rows(scores: np.ndarray) -> np.ndarray:
    """Per-user z-scores over items, so that models on different scales can be added."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return ((scores - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


class Recommender:
    """Common interface: `fit(user × item csr)`, then `score` / `recommend` for row indices."""

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        self.interactions: sp.csr_matrix | None = None
        self.fit_seconds = 0.0

    @property
    def n_items(self) -> int:
        return self._trained().shape[1]

    def params(self) -> dict[str, Any]:
        """Hyper-parameters, as given to the constructor."""
        return {}

    def fit(self, interactions: Any) -> Recommender:
        started = time.perf_counter()
        self.interactions = as_csr(interactions)
        self._fit(self.interactions)
        self.fit_seconds = time.perf_counter() - started
        return self

    def _fit(self, interactions: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        """Dense scores for the rows of `history`; `user_rows` are their training rows, or
        None when the history comes from outside the training matrix."""
        raise NotImplementedError

    def _trained(self) -> sp.csr_matrix:
        if self.interactions is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.interactions

    def _history(self, rows: np.ndarray, history: sp.csr_matrix | None) -> sp.csr_matrix:
        source = self._trained() if history is None else history
        if source.shape[1] != self.n_items:
            raise ValueError(f"history has {source.shape[1]} items, the model {self.n_items}")
        return source[rows]

    def score(self, user_rows: UserRows, history: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense float32 scores, one row per user (no masking)."""
        rows = np.asarray(user_rows, dtype=np.int64)
        history = None if history is None else as_csr(history)
        return np.asarray(self._score(self._history(rows, history), rows if history is None else None), dtype=np.float32)

    def recommend(
        self, user_rows: UserRows, k: int = 10, exclude_seen: bool = True,
        history: sp.csr_matrix | None = None, exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and their scores per user, best first; -1 pads a row when fewer
        than k items are left. exclude_seen leaves out the items in each user's history (the
        training rows unless `history` is given); `exclude` (same shape) leaves out more."""
        rows = np.asarray(user_rows, dtype=np.int64)
        history = None if history is None else as_csr(history)
        exclude = None if exclude is None else as_csr(exclude)
        items_out, scores_out = [], []
        for start in range(0, len(rows), BATCH_USERS):
            batch = rows[start:start + BATCH_USERS]
            batch_history = self._history(batch, history)
            scores = np.asarray(self._score(batch_history, batch if history is None else None), dtype=np.float32)
            if exclude_seen:
                mask_items(scores, batch_history)
            if exclude is not None:
                mask_items(scores, exclude[batch])
            items, values = top_k(scores, k)
            items_out.append(items)
            scores_out.append(values)
        if not items_out:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
        return np.vstack(items_out), np.vstack(scores_out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{key}={value!r}' for key, value in self.params().items())})"


def mask_items(scores: np.ndarray, rows: sp.csr_matrix) -> None:
    """Set the scores of the items present in `rows` (one row per score row) to -inf."""
    coo = rows.tocoo()
    scores[coo.row, coo.col] = -np.inf


class MostPopular(Recommender):
    """The same ranking for everyone: total interaction weight per item."""

    name = "most_popular"

    def _fit(self, interactions: sp.csr_matrix) -> None:
        self.popularity = np.asarray(interactions.sum(axis=0), dtype=np.float32).ravel()

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.popularity, (history.shape[0], self.popularity.size)).copy()


class ItemKNN(Recommender):
    """Item-based nearest neighbours: cosine similarity shrunk towards 0 for rare co-occurrences
    (sim = x·y / (|x||y| + shrink)), keeping the top `neighbours` per item."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        super().__init__()
        self.neighbours, self.shrink = int(neighbours), float(shrink)

    def params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shrink": self.shrink}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        co = (interactions.T @ interactions).toarray()
        norms = np.sqrt(np.diag(co))
        co /= np.outer(norms, norms) + self.shrink + 1e-9
        np.fill_diagonal(co, 0.0)
        self.similarity = keep_top_k_per_column(co, self.neighbours)

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        return (history @ self.similarity).toarray()


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): an item × item regression with a zero
    diagonal, in closed form: P = (XᵀX + Λ)⁻¹, B = -P / diag(P), B_ii = 0.

    Λ = l2 + emphasis · diag(XᵀX): emphasis > 0 regularises popular items more, the dropout
    form of Steck's EDLAE (2020). `l2` grows with the data: tune it on a validation split."""

    name = "ease"

    def __init__(self, l2: float = 300.0, emphasis: float = 0.0) -> None:
        super().__init__()
        self.l2, self.emphasis = float(l2), float(emphasis)

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "emphasis": self.emphasis} if self.emphasis else {"l2": self.l2}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        self.weights = ease_weights(gram(interactions), self.l2, self.emphasis)

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        return np.asarray(history @ self.weights)


def gram(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense float64 item × item matrix."""
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def ease_weights(gram_matrix: np.ndarray, l2: float, emphasis: float = 0.0) -> np.ndarray:
    g = gram_matrix.copy()
    g[np.diag_indices_from(g)] += l2 + emphasis * np.diag(gram_matrix)
    p = spd_inverse(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor (LAPACK
    potrf + potri): half the work of a general inverse. Overwrites `matrix`."""
    factor, info = scipy.linalg.lapack.dpotrf(matrix, lower=True, overwrite_a=True)
    if info:
        raise np.linalg.LinAlgError(f"matrix is not positive definite (potrf info {info})")
    inverse, info = scipy.linalg.lapack.dpotri(factor, lower=True, overwrite_c=True)
    if info:
        raise np.linalg.LinAlgError(f"cannot invert (potri info {info})")
    lower = np.tril(inverse)
    return lower + np.tril(inverse, -1).T


class RP3beta(Recommender):
    """Three-step random walk user → item → user → item (Paudel et al. 2017): transition
    probabilities raised to `alpha`, divided by item popularity^`beta`, top-k per item."""

    name = "rp3beta"

    def __init__(self, alpha: float = 0.8, beta: float = 0.4, neighbours: int = 200) -> None:
        super().__init__()
        self.alpha, self.beta, self.neighbours = float(alpha), float(beta), int(neighbours)

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "neighbours": self.neighbours}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        user_degree = np.asarray(interactions.sum(axis=1)).ravel()
        item_degree = np.asarray(interactions.sum(axis=0)).ravel()
        user_to_item = sp.diags(1.0 / np.maximum(user_degree, 1e-9)) @ interactions
        item_to_user = sp.diags(1.0 / np.maximum(item_degree, 1e-9)) @ interactions.T.tocsr()
        if self.alpha != 1.0:
            user_to_item, item_to_user = user_to_item.power(self.alpha), item_to_user.power(self.alpha)
        walk = (item_to_user @ user_to_item).toarray().astype(np.float32)
        walk *= (1.0 / np.power(np.maximum(item_degree, 1e-9), self.beta)).astype(np.float32)[None, :]
        np.fill_diagonal(walk, 0.0)
        self.similarity = keep_top_k_per_column(walk, self.neighbours)

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        return (history @ self.similarity).toarray()


class ALS(Recommender):
    """Matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008), trained by the
    `implicit` package (conjugate-gradient ALS on the CPU). Confidence = 1 + alpha · weight."""

    name = "als"

    def __init__(self, factors: int = 32, regularization: float = 10.0, alpha: float = 2.0, iterations: int = 15,
                 seed: int = 0, threads: int = 0) -> None:
        super().__init__()
        self.factors, self.regularization, self.alpha = int(factors), float(regularization), float(alpha)
        self.iterations, self.seed, self.threads = int(iterations), seed, threads

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha, "iterations": self.iterations}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit runs its own threads: a multi-threaded BLAS underneath only oversubscribes
        # the cores (and implicit warns about it when the model is created).
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha, iterations=self.iterations,
                random_state=self.seed, num_threads=self.threads,
            )
            model.fit(interactions, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        users = self.user_factors[user_rows] if user_rows is not None else self.fold_in(history)
        return users @ self.item_factors.T

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """User factors for histories the model was not trained on: the exact ALS user step,
        x = (YᵀY + Yᵀ(C - I)Y + λI)⁻¹ YᵀC p."""
        y = self.item_factors.astype(np.float64)
        base = y.T @ y + self.regularization * np.eye(y.shape[1])
        out = np.zeros((history.shape[0], y.shape[1]), dtype=np.float32)
        for row in range(history.shape[0]):
            span = slice(history.indptr[row], history.indptr[row + 1])
            items, weights = history.indices[span], history.data[span].astype(np.float64)
            if len(items):
                yi = y[items]
                confidence = 1.0 + self.alpha * weights
                out[row] = np.linalg.solve(base + (yi.T * (confidence - 1.0)) @ yi, yi.T @ confidence)
        return out


class ContentBased(Recommender):
    """Cosine between each item's features and the user's profile (the history-weighted sum of
    the features of the items they interacted with). Works for items nobody has touched yet."""

    name = "content"

    def __init__(self, item_features: Any) -> None:
        super().__init__()
        features = sp.csr_matrix(item_features, dtype=np.float32)
        norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
        self.item_features = sp.diags(1.0 / np.maximum(norms, 1e-9)).astype(np.float32) @ features

    def _fit(self, interactions: sp.csr_matrix) -> None:
        if self.item_features.shape[0] != interactions.shape[1]:
            raise ValueError(f"{self.item_features.shape[0]} rows of item features for {interactions.shape[1]} items")

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        profiles = history @ self.item_features
        norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
        profiles = sp.diags(1.0 / np.maximum(norms, 1e-9)).astype(np.float32) @ profiles
        return (profiles @ self.item_features.T).toarray()


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended: `kind` is "similar" (to `anchor`, an item in the user's
    history), "content" (features like `anchor`'s) or "popular"."""

    kind: str
    anchor: int | None = None

    def text(self, labels: Sequence[str] | None = None) -> str:
        anchor = labels[self.anchor] if labels is not None and self.anchor is not None else f"item {self.anchor}"
        if self.kind == "similar":
            return f"Customers who chose {anchor} also chose this"
        if self.kind == "content":
            return f"Similar to {anchor}, which you chose"
        return "Popular with our customers"


class Blend(Recommender):
    """The shipped model: a weighted sum of per-user standardised scores of EASE, ALS, RP3beta
    and popularity (components tuned and mix chosen on validation splits: evaluation.compare
    and evaluation.fit_shipped).

    Cold start: a user with an empty history gets the most popular items; with `item_features`,
    items without any interaction (new products) get `content_weight` × their standardised
    content-based score instead of a collaborative score, which for them is meaningless (and
    go last for a user whose history shares none of their features)."""

    name = "blend"
    COMPONENTS: ClassVar[tuple[str, ...]] = ("ease", "als", "rp3beta", "most_popular")
    # Defaults: equal weights of EASE and ALS, with parameters typical of what the tuned
    # comparison picks on MovieLens 100k (evaluation.compare). Use `fit_shipped` to tune them.
    DEFAULT_WEIGHTS: ClassVar[dict[str, float]] = {"ease": 1.0, "als": 1.0}
    DEFAULT_EASE: ClassVar[dict[str, Any]] = {"l2": 300.0, "emphasis": 0.5}
    DEFAULT_ALS: ClassVar[dict[str, Any]] = {"factors": 64, "regularization": 30.0, "alpha": 4.0}

    def __init__(self, weights: dict[str, float] | None = None, ease: dict[str, Any] | None = None,
                 als: dict[str, Any] | None = None, rp3beta: dict[str, Any] | None = None,
                 item_features: Any = None, content_weight: float = 1.0) -> None:
        super().__init__()
        self.weights = dict(weights) if weights is not None else dict(self.DEFAULT_WEIGHTS)
        unknown = set(self.weights) - set(self.COMPONENTS)
        if unknown:
            raise ValueError(f"unknown blend components: {', '.join(sorted(unknown))}")
        self.component_params = {"ease": dict(ease or self.DEFAULT_EASE), "als": dict(als or self.DEFAULT_ALS),
                                 "rp3beta": dict(rp3beta or {})}
        self.item_features, self.content_weight = item_features, float(content_weight)

    def params(self) -> dict[str, Any]:
        used = {name: w for name, w in self.weights.items() if w}
        return {"weights": used, **{name: p for name, p in self.component_params.items() if used.get(name)}}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        self.models: dict[str, Recommender] = {}
        for name, weight in self.weights.items():
            if weight:
                self.models[name] = make_model(name, self.component_params.get(name, {})).fit(interactions)
        self.popular = MostPopular().fit(interactions)
        self.cold_items = np.asarray(interactions.getnnz(axis=0) == 0)
        self.content = ContentBased(self.item_features).fit(interactions) if self.item_features is not None else None

    def _score(self, history: sp.csr_matrix, user_rows: np.ndarray | None) -> np.ndarray:
        total = np.zeros((history.shape[0], self.n_items), dtype=np.float32)
        for name, model in self.models.items():
            total += self.weights[name] * standardize_rows(model._score(history, user_rows))
        if self.content is not None and self.cold_items.any():
            raw = self.content._score(history, user_rows)
            content = self.content_weight * standardize_rows(raw)[:, self.cold_items]
            # A new product sharing no feature with the history has nothing for it, yet its z-score
            # of 0 similarity can beat most collaborative scores when few items match the profile:
            # it goes last instead (at the lowest score of the items with interactions).
            if (~self.cold_items).any():
                floor = total[:, ~self.cold_items].min(axis=1, keepdims=True)
                content = np.where(raw[:, self.cold_items] > 0, content, np.minimum(content, floor))
            total[:, self.cold_items] = content
        cold_users = history.getnnz(axis=1) == 0
        if cold_users.any():
            total[cold_users] = standardize_rows(self.popular.popularity[None, :])
        return total

    def explain(self, user_rows: UserRows, items: np.ndarray, history: sp.csr_matrix | None = None) -> list[list[Reason]]:
        """A reason per recommended item (rows of `items` as returned by recommend, -1 skipped):
        the history item that contributes most to its score through the item-to-item part of
        the blend (EASE's weights, else RP3beta's walk, else ALS's factor similarity); content
        for a new product; "popular" for a customer without history or without any link."""
        rows = np.asarray(user_rows, dtype=np.int64)
        hist = self._history(rows, None if history is None else as_csr(history))
        out: list[list[Reason]] = []
        for row, row_items in enumerate(np.asarray(items)):
            span = slice(hist.indptr[row], hist.indptr[row + 1])
            seen, seen_weight = hist.indices[span], hist.data[span]
            out.append([self._reason(int(item), seen, seen_weight) for item in row_items if item >= 0])
        return out

    def _reason(self, item: int, seen: np.ndarray, seen_weight: np.ndarray) -> Reason:
        if len(seen) == 0:
            return Reason("popular")
        if self.cold_items[item] and self.content is not None:
            similarity = (self.content.item_features[seen] @ self.content.item_features[item].T).toarray().ravel()
            return Reason("content", int(seen[int(np.argmax(similarity))]))
        link = self._item_links(seen, item)
        if link is not None:
            contribution = seen_weight * link
            best = int(np.argmax(contribution))
            if contribution[best] > 0:
                return Reason("similar", int(seen[best]))
        return Reason("popular")

    def item_links(self) -> np.ndarray | None:
        """`_item_links` for every pair at once: a dense item × item matrix whose [h, i] says how
        strongly history item h points to item i (for explaining many users in one pass)."""
        ease, rp3, als = self.models.get("ease"), self.models.get("rp3beta"), self.models.get("als")
        if isinstance(ease, EASE):
            return ease.weights
        if isinstance(rp3, RP3beta):
            return rp3.similarity.toarray()
        if isinstance(als, ALS):
            factors = als.item_factors / np.maximum(np.linalg.norm(als.item_factors, axis=1, keepdims=True), 1e-9)
            return factors @ factors.T
        return None

    def _item_links(self, seen: np.ndarray, item: int) -> np.ndarray | None:
        """How strongly each item in `seen` points to `item` in the blend's item-to-item part."""
        ease, rp3, als = self.models.get("ease"), self.models.get("rp3beta"), self.models.get("als")
        if isinstance(ease, EASE):
            return ease.weights[seen, item]
        if isinstance(rp3, RP3beta):
            return rp3.similarity[:, item].toarray().ravel()[seen]
        if isinstance(als, ALS):
            factors = als.item_factors / np.maximum(np.linalg.norm(als.item_factors, axis=1, keepdims=True), 1e-9)
            return factors[seen] @ factors[item]
        return None


MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (MostPopular, ItemKNN, EASE, RP3beta, ALS, Blend)
}


def make_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """A model by its `name` with hyper-parameters."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    return cls(**(params or {}))
