"""Per-tenant recommendation training: a tenant's orders, claims and product events → the shipped
blend → each customer's best offers, ranked, scored and explained, as Recommendation rows.

Rules:
- Implicit feedback from `evaluation.load_tenant`: an order line or a claim weighs 1, an
  add-to-cart 0.5, an offer click 0.4, a product view 0.25 (the strongest signal per pair).
- The model is the shipped `Blend` with its default parameters (no tuning in the job, see
  `train_recommendations`); products nobody has touched yet get a content-based score from their
  category and attributes.
- An offer scores as its product (percent/amount off, fixed price), as the mean of its products
  the customer has not bought yet (bundle), or as itself when it has no product (configurable:
  claims of and clicks on the offer are items of the model, so its score is their popularity
  among similar customers). Products already bought and offers already claimed are left out.
- Only active offers inside their validity window whose total cap and budget are not used up
  are ranked (`pricing.active_offers`). Eligibility, per-customer caps and diversity are rules
  of the serving layer, applied after.
- People whose latest personalization consent entry is a withdrawal are not used to train, and
  all get the same non-personal ranking (popularity among everyone), reason "not_personalized".
  Customers without any interaction get the popularity ranking of their own kind (consumer or
  business buyer), reason "popular_with_kind".
- A run replaces the tenant's rows in one transaction: one DELETE, then one COPY (PostgreSQL)
  or bulk inserts in batches, so readers see the old list or the new one, never a mix. Rows of
  customers or offers deleted while the job was scoring are left out.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Consent, Customer, OrderLine
from customers.services.consent import customers_who_withdrew
from offers.models import Offer, Product, Recommendation
from offers.recommender import evaluation
from offers.recommender.models import BATCH_USERS, Blend, standardize_rows, top_k
from offers.services import pricing
from tenants.models import Tenant

Progress = Callable[[int], None]

MODEL_NAME = Blend.name
MAX_TOP_N = 100
BOUGHT = evaluation.TENANT_WEIGHTS["order"]  # a pair this strong was bought (or the offer claimed)
WRITE_BATCH = 5000  # rows per bulk_create where COPY is not available
STAGE = "recommendation_stage"  # temporary table, only when rows must be filtered on the way in
ADVISORY_LOCK = 0x5EC0  # pg_advisory_xact_lock(ADVISORY_LOCK, tenant id): one writer per tenant

# Reason codes stored in Recommendation.reason["code"]; `reason_text` renders them.
BOUGHT_CODE = "bought"  # {"product": name}: the offer's product goes with something they bought
VIEWED_CODE = "viewed"  # {"product": name}: they looked at it (or at something it goes with)
SIMILAR_TO_CODE = "similar_to"  # {"product": name}: a new product like one in their history
POPULAR_CODE = "popular"  # popular overall: no personal link, or no data about their kind
POPULAR_WITH_KIND_CODE = "popular_with_kind"  # {"kind": "consumer" | "business_buyer"}: no history yet
NOT_PERSONALIZED_CODE = "not_personalized"  # they withdrew consent to personalization
CODES = (BOUGHT_CODE, VIEWED_CODE, SIMILAR_TO_CODE, POPULAR_CODE, POPULAR_WITH_KIND_CODE, NOT_PERSONALIZED_CODE)

COLUMNS = ("customer_id", "offer_id", "score", "rank", "reason", "tenant_id", "model", "created_at")  # COPY order


def reason_text(reason: dict[str, Any]) -> str:
    """A stored reason as a sentence in the active language."""
    if not isinstance(reason, dict):
        return _("Recommended for you")
    code, product = reason.get("code"), str(reason.get("product") or "").strip()
    if code == BOUGHT_CODE:
        return _("Because you bought %(product)s") % {"product": product} if product else _("Because of what you bought before")
    if code == VIEWED_CODE:
        return _("Because you looked at %(product)s") % {"product": product} if product else _("You looked at this recently")
    if code == SIMILAR_TO_CODE:
        return _("New, and similar to %(product)s") % {"product": product} if product else _("Similar to what you chose before")
    if code == POPULAR_WITH_KIND_CODE:
        if reason.get("kind") == Customer.Kind.BUSINESS_BUYER:
            return _("Popular with business buyers like you")
        return _("Popular with customers like you")
    if code == NOT_PERSONALIZED_CODE:
        return _("Popular right now — you asked us not to personalize your offers")
    if code == POPULAR_CODE:
        return _("Popular with our customers")
    return _("Recommended for you")


# Reads ------------------------------------------------------------------------------------------


def personalization_opt_outs(*, tenant: Tenant) -> set[int]:
    """Customers whose latest personalization consent entry (any channel) is a withdrawal: the
    whole-tenant form of `customers.services.consent.opted_out_of_personalization`."""
    return set(customers_who_withdrew(tenant=tenant, purposes=[Consent.Purpose.PERSONALIZATION]))


def recommendable_customers(*, tenant: Tenant) -> QuerySet[Customer]:
    return Customer.objects.for_tenant(tenant).filter(erased_at__isnull=True)


def count_customers(*, tenant: Tenant) -> int:
    """How many customers a training run writes recommendations for (the job's progress total)."""
    return recommendable_customers(tenant=tenant).count()


def rankable_offers(*, tenant: Tenant, now: datetime | None = None) -> list[Offer]:
    """The offers serving considers (active, inside their validity window), less those whose total
    cap or budget is used up: no customer could claim them."""
    return [
        offer for offer in pricing.active_offers(tenant=tenant, now=now)
        if not (offer.total_cap is not None and offer.claims_count >= offer.total_cap)
        and not (offer.budget is not None and offer.spent >= offer.budget)
    ]


# Training -------------------------------------------------------------------------------------


def train_recommendations(*, tenant: Tenant, progress: Progress | None = None, top_n: int = 20, tune: bool = False) -> dict[str, Any]:
    """Fit the shipped blend on the tenant's interactions and replace its Recommendation rows with
    each customer's top `top_n` offers. Without `tune` (the job's default) the blend keeps its
    default parameters (Blend.DEFAULT_*): EASE l2=300 emphasis=0.5 + ALS 64 factors, reg 30,
    alpha 4, 15 iterations, equal weights; tuning multiplies the fit time by the grid size."""
    if not 1 <= top_n <= MAX_TOP_N:
        raise ValueError(f"top_n must be between 1 and {MAX_TOP_N}")
    started = time.perf_counter()
    advance = progress or (lambda _n: None)
    opted_out = personalization_opt_outs(tenant=tenant)
    dataset = evaluation.load_tenant(tenant, exclude_customers=opted_out)
    offers = rankable_offers(tenant=tenant)
    products = {p.sku: p for p in Product.objects.for_tenant(tenant)}
    space = _ItemSpace.build(tenant=tenant, dataset=dataset, products=products, offers=offers)
    matrix = sp.csr_matrix((dataset.interactions.data, dataset.interactions.indices, dataset.interactions.indptr),
                           shape=(len(dataset.users), len(space.labels)))
    offer_map = _OfferMap.build(offers, space)

    load_seconds = time.perf_counter() - started
    blend: Blend | None = None
    if matrix.nnz and offer_map.offer_ids.size:
        blend = evaluation.fit_shipped(matrix, tune=tune, item_features=space.features)
    fit_seconds = time.perf_counter() - started - load_seconds

    customer_ids, kinds = _customers(tenant)
    row_of_user = {int(label): row for row, label in enumerate(dataset.users)}
    is_opted_out = np.fromiter((pk in opted_out for pk in customer_ids.tolist()), dtype=bool, count=len(customer_ids))
    training_row = np.fromiter((row_of_user.get(pk, -1) for pk in customer_ids.tolist()), dtype=np.int64, count=len(customer_ids))
    personal = (training_row >= 0) & ~is_opted_out & (blend is not None)
    cold = ~personal & ~is_opted_out
    reasons = _ReasonCodes(space)
    with _RowWriter(tenant) as writer:
        if blend is not None:
            explainer = _Explainer(blend, space)
            who_all = np.flatnonzero(personal)
            for start in range(0, len(who_all), BATCH_USERS):
                who = who_all[start:start + BATCH_USERS]
                _write_personal(writer, blend, explainer, reasons, matrix, offer_map, customer_ids[who], training_row[who], top_n)
                advance(len(who))
        # Everyone else gets one of a few shared lists: the same rows, customer by customer.
        groups = _shared_lists(matrix, offer_map, reasons, row_of_user, customer_ids, kinds, is_opted_out, cold, top_n)
        for members, ranking, reason in groups:
            for start in range(0, len(members), BATCH_USERS):
                batch = customer_ids[members[start:start + BATCH_USERS]].tolist()
                writer.add((pk, offer_id, score, rank, reason) for pk in batch for rank, (offer_id, score) in enumerate(ranking, start=1))
                advance(len(batch))
        write_started = time.perf_counter()
        written, replaced = writer.replace()
        write_seconds = time.perf_counter() - write_started
    return {
        "model": MODEL_NAME,
        "params": blend.params() if blend is not None else {},
        "customers": len(customer_ids),
        "products": len(products),
        "items": len(space.labels),
        "offers": int(offer_map.offer_ids.size),
        "interactions": int(matrix.nnz),
        "training_customers": int(matrix.shape[0]),
        "load_seconds": round(load_seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        "score_seconds": round(write_started - started - load_seconds - fit_seconds, 3),
        "write_seconds": round(write_seconds, 3),
        "rows": written,
        "replaced_rows": replaced,
        "personalized": int(personal.sum()),
        "cold_start": int(cold.sum()),
        "not_personalized": int(is_opted_out.sum()),
        "new_products": int(space.is_product[blend.cold_items].sum()) if blend is not None else 0,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _shared_lists(matrix: sp.csr_matrix, offer_map: _OfferMap, reasons: _ReasonCodes, row_of_user: dict[int, int],
                  customer_ids: np.ndarray, kinds: np.ndarray, is_opted_out: np.ndarray, cold: np.ndarray,
                  top_n: int) -> list[tuple[np.ndarray, list[tuple[int, float]], str]]:
    """(customers, ranking, reason) of the non-personal lists: popularity among everyone for those
    who opted out, popularity among their own kind for customers without history."""
    global_popularity = np.asarray(matrix.sum(axis=0)).ravel()
    groups = [(np.flatnonzero(is_opted_out), offer_map.rank_by_popularity(global_popularity, top_n), reasons.plain(NOT_PERSONALIZED_CODE))]
    kind_of = dict(zip(customer_ids.tolist(), kinds.tolist(), strict=True))
    for kind in Customer.Kind.values:
        of_kind = [row for pk, row in row_of_user.items() if kind_of.get(pk) == kind]
        popularity = np.asarray(matrix[of_kind].sum(axis=0)).ravel() if of_kind else np.zeros(matrix.shape[1])
        members = np.flatnonzero(cold & (kinds == kind))
        if popularity.any():
            groups.append((members, offer_map.rank_by_popularity(popularity, top_n), reasons.kind(kind)))
        else:  # nobody of this kind did anything yet: what everyone likes
            groups.append((members, offer_map.rank_by_popularity(global_popularity, top_n), reasons.plain(POPULAR_CODE)))
    return groups


def _customers(tenant: Tenant) -> tuple[np.ndarray, np.ndarray]:
    """Ids (ascending) and kinds of the customers to write recommendations for."""
    ids: list[int] = []
    kinds: list[str] = []
    for pk, kind in recommendable_customers(tenant=tenant).order_by("pk").values_list("pk", "kind").iterator(chunk_size=20000):
        ids.append(pk)
        kinds.append(kind)
    return np.array(ids, dtype=np.int64), np.array(kinds, dtype=object)


def _write_personal(writer: _RowWriter, blend: Blend, explainer: _Explainer, reasons: _ReasonCodes, matrix: sp.csr_matrix,
                    offer_map: _OfferMap, customer_ids: np.ndarray, rows: np.ndarray, top_n: int) -> None:
    history = matrix[rows]
    scores = blend.score(rows)
    bought = np.zeros(scores.shape, dtype=bool)
    strong = history.data >= BOUGHT
    bought[np.repeat(np.arange(len(rows)), np.diff(history.indptr))[strong], history.indices[strong]] = True
    offer_scores, reason_items = offer_map.score(scores, bought)
    chosen, values = top_k(offer_scores, top_n)
    items = np.where(chosen >= 0, np.take_along_axis(reason_items, np.maximum(chosen, 0), axis=1), -1)
    codes, anchors = explainer.explain(history, items)
    out = []
    for b, pk in enumerate(customer_ids.tolist()):
        for j, (offer, score) in enumerate(zip(chosen[b].tolist(), values[b].tolist(), strict=True)):
            if offer < 0:
                break
            out.append((pk, int(offer_map.offer_ids[offer]), score, j + 1, reasons.get(int(codes[b, j]), int(anchors[b, j]))))
    writer.add(out)


# The item space and the offers on it -------------------------------------------------------


@dataclass
class _ItemSpace:
    """The model's columns: the SKUs and "offer:<id>" items of the data, then catalogue products
    and ranked offers nobody has touched yet, with names (for reasons) and content features."""

    labels: list[str]
    index: dict[str, int]
    names: list[str]
    is_product: np.ndarray
    features: sp.csr_matrix | None

    @classmethod
    def build(cls, *, tenant: Tenant, dataset: evaluation.Dataset, products: dict[str, Product], offers: Sequence[Offer]) -> _ItemSpace:
        labels = list(dataset.items)
        index = {label: i for i, label in enumerate(labels)}
        # An offer is an item of its own only when no product stands for it (configurable offers).
        own_items = [f"offer:{o.pk}" for o in offers if o.product_id is None and o.kind == Offer.Kind.CONFIGURABLE]
        for label in [*products, *own_items]:
            if label not in index:
                index[label] = len(labels)
                labels.append(label)
        is_offer = np.array([label.startswith("offer:") for label in labels], dtype=bool)
        offer_names = {f"offer:{pk}": name for pk, name in Offer.objects.for_tenant(tenant).filter(
            pk__in=[int(label[6:]) for label in labels if label.startswith("offer:") and label[6:].isdigit()]).values_list("pk", "name")}
        unknown = [label for label, offer in zip(labels, is_offer, strict=True) if not offer and label not in products]
        line_names = dict(OrderLine.objects.for_tenant(tenant).filter(product_sku__in=unknown).exclude(product_name="")
                          .values_list("product_sku").annotate(name=Max("product_name")).order_by()) if unknown else {}
        names = [products[label].name if label in products else offer_names.get(label) or line_names.get(label) or label
                 for label in labels]
        return cls(labels, index, names, ~is_offer, _content_features(labels, products))


def _content_features(labels: Sequence[str], products: dict[str, Product]) -> sp.csr_matrix | None:
    """One column per category and per attribute value ("colour=black"; a list gives one per
    element), for catalogue products; other items have none."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for row, label in enumerate(labels):
        product = products.get(label)
        if product is None:
            continue
        tokens = {f"category={product.category.strip().lower()}"} if product.category.strip() else set()
        attributes = product.attributes if isinstance(product.attributes, dict) else {}
        for key, value in attributes.items():
            for element in value if isinstance(value, list) else [value]:
                if isinstance(element, str | int | float | bool) and str(element).strip():
                    tokens.add(f"{key}={str(element).strip().lower()}")
        for token in sorted(tokens):
            rows.append(row)
            cols.append(vocabulary.setdefault(token, len(vocabulary)))
    if not vocabulary:
        return None
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(labels), len(vocabulary)))


@dataclass
class _OfferMap:
    """Offers as columns over items: an offer's score is the mean score of its items the customer
    has not bought (one item for every kind but bundles)."""

    offer_ids: np.ndarray
    priorities: np.ndarray
    membership: sp.csc_matrix  # items × offers, 1 where the item belongs to the offer
    single_item: np.ndarray  # the offer's item, or -1 for a bundle of several
    bundles: list[tuple[int, np.ndarray]]  # (offer column, its items)

    @classmethod
    def build(cls, offers: Sequence[Offer], space: _ItemSpace) -> _OfferMap:
        ids, priorities, rows, cols, single, bundles = [], [], [], [], [], []
        for offer in offers:
            if offer.kind == Offer.Kind.BUNDLE and offer.items.all():
                items = sorted({space.index[item.product.sku] for item in offer.items.all()})
            elif offer.product_id is not None:
                items = [space.index[offer.product.sku]]
            elif offer.kind == Offer.Kind.CONFIGURABLE:
                items = [space.index[f"offer:{offer.pk}"]]
            else:
                continue  # a product offer without its product: nothing to score
            column = len(ids)
            ids.append(offer.pk)
            priorities.append(offer.priority)
            rows += items
            cols += [column] * len(items)
            single.append(items[0] if len(items) == 1 else -1)
            if len(items) > 1:
                bundles.append((column, np.array(items, dtype=np.int64)))
        membership = sp.csc_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(space.labels), len(ids)))
        return cls(np.array(ids, dtype=np.int64), np.array(priorities, dtype=np.int64), membership,
                   np.array(single, dtype=np.int64), bundles)

    def score(self, scores: np.ndarray, bought: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Offer scores (users × offers, -inf where nothing is left to buy) and the item each
        offer's reason is about (a bundle's best item not bought yet)."""
        available = np.ones(scores.shape, dtype=np.float32) if bought is None else (~bought).astype(np.float32)
        total = np.asarray(self.membership.T @ (scores * available).T).T
        count = np.asarray(self.membership.T @ available.T).T
        with np.errstate(divide="ignore", invalid="ignore"):
            offer_scores = np.where(count > 0, total / np.maximum(count, 1), -np.inf).astype(np.float32)
        reason_items = np.broadcast_to(self.single_item, offer_scores.shape).copy()
        for column, items in self.bundles:
            candidates = np.where(available[:, items] > 0, scores[:, items], -np.inf)
            reason_items[:, column] = items[np.argmax(candidates, axis=1)]
        return offer_scores, reason_items

    def rank_by_popularity(self, popularity: np.ndarray, top_n: int) -> list[tuple[int, float]]:
        """(offer id, score) best first for a non-personal list: standardised popularity (the
        scale of a personal score), ties broken by the offer's priority, then age."""
        if not self.offer_ids.size:
            return []
        scores, _items = self.score(standardize_rows(popularity[None, :].astype(np.float32)))
        order = np.lexsort((self.offer_ids, -self.priorities, -scores[0]))[:top_n]
        return [(int(self.offer_ids[i]), float(scores[0, i])) for i in order if np.isfinite(scores[0, i])]


# Reasons --------------------------------------------------------------------------------------


class _Explainer:
    """Why each recommended item, for a batch at once: the item itself if they looked at it; for
    a new product the history product most like it (content); otherwise the history product
    contributing most to its score through the blend's item-to-item part (Blend.explain's rule,
    vectorised); "popular" when no link is positive. Only products are named as anchors."""

    def __init__(self, blend: Blend, space: _ItemSpace) -> None:
        self.space = space
        self.links = blend.item_links()
        self.cold = np.asarray(blend.cold_items, dtype=bool)
        self.content_links: np.ndarray | None = None
        self.cold_position = np.full(len(space.labels), -1, dtype=np.int64)
        if blend.content is not None and self.cold.any():
            features = blend.content.item_features
            self.content_links = np.asarray((features @ features[self.cold].T).toarray(), dtype=np.float32)
            self.cold_position[self.cold] = np.arange(int(self.cold.sum()))

    def explain(self, history: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A code (index into CODES) and an anchor item (-1: none) per recommended item (rows of
        `items`; -1 padding gets POPULAR)."""
        products = history.multiply(self.space.is_product[None, :].astype(np.float32)).tocsr()
        products.eliminate_zeros()
        valid = items >= 0
        item = np.maximum(items, 0)
        is_cold = valid & self.cold[item]
        none = np.full(items.shape, -1, dtype=np.int64), np.zeros(items.shape, np.float32), np.zeros(items.shape, np.float32)
        link_anchor, link_weight, link_value = (
            _strongest_links(products, np.where(valid & ~is_cold, items, -1), self.links) if self.links is not None else none
        )
        content_anchor, _weight, content_value = (
            _strongest_links(products, np.where(is_cold, self.cold_position[item], -1), self.content_links)
            if self.content_links is not None else none
        )
        own = np.asarray(history[np.repeat(np.arange(items.shape[0]), items.shape[1]), item.ravel()]).reshape(items.shape)
        looked_at = valid & (own > 0) & (own < BOUGHT)
        similar = is_cold & (content_anchor >= 0) & (content_value > 0)
        linked = valid & ~is_cold & (link_anchor >= 0) & (link_value > 0)
        codes = np.select(
            [looked_at, similar, linked & (link_weight >= BOUGHT), linked],
            [CODES.index(VIEWED_CODE), CODES.index(SIMILAR_TO_CODE), CODES.index(BOUGHT_CODE), CODES.index(VIEWED_CODE)],
            CODES.index(POPULAR_CODE),
        )
        anchors = np.select([looked_at, similar, linked], [items, content_anchor, link_anchor], -1)
        return codes, anchors


def _coo(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return rows, matrix.indices, matrix.data


def _strongest_links(history: sp.csr_matrix, targets: np.ndarray, links: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each (row, target column of `links`): the history item h maximising weight(h) ·
    links[h, target], its weight and that product; -1 / 0 where the row has no history or the
    target is -1. One pass over the history entries, not a loop over users."""
    anchor = np.full(targets.shape, -1, dtype=np.int64)
    weight = np.zeros(targets.shape, dtype=np.float32)
    value = np.zeros(targets.shape, dtype=np.float32)
    rows, cols, data = _coo(history)
    if not len(rows) or not targets.size:
        return anchor, weight, value
    wanted = targets[rows]  # entries × targets
    contribution = np.where(wanted >= 0, data[:, None] * links[cols[:, None], np.maximum(wanted, 0)], -np.inf)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    best = np.maximum.reduceat(contribution, starts, axis=0)
    segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(rows)]))
    position = np.where(contribution >= best[segment], np.arange(len(rows))[:, None], len(rows))
    first = np.minimum.reduceat(position, starts, axis=0)
    found = (first < len(rows)) & np.isfinite(best)
    users = rows[starts]
    picked = np.minimum(first, len(rows) - 1)
    anchor[users] = np.where(found, cols[picked], -1)
    weight[users] = np.where(found, data[picked], 0.0)
    value[users] = np.where(found, best, 0.0)
    return anchor, weight, value


class _ReasonCodes:
    """Reason JSON documents, built once per (code, anchor)."""

    def __init__(self, space: _ItemSpace) -> None:
        self.space = space
        self.cache: dict[tuple[str, int], str] = {}

    def get(self, code: int, anchor: int) -> str:
        key = (CODES[code], anchor)
        if key not in self.cache:
            document: dict[str, Any] = {"code": CODES[code]}
            if anchor >= 0:
                label = self.space.labels[anchor]
                document["product"] = self.space.names[anchor]
                document["offer" if label.startswith("offer:") else "sku"] = label.removeprefix("offer:")
            self.cache[key] = json.dumps(document, ensure_ascii=False)
        return self.cache[key]

    def plain(self, code: str) -> str:
        return self.get(CODES.index(code), -1)

    def kind(self, kind: str) -> str:
        return json.dumps({"code": POPULAR_WITH_KIND_CODE, "kind": kind})


# Writing --------------------------------------------------------------------------------------


class _RowWriter:
    """Collects (customer, offer, score, rank, reason JSON) rows (spilled to a temporary file on
    PostgreSQL), then swaps them in for the tenant's old rows in one transaction."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.created_at = timezone.now()
        self.count = 0
        self.copy = connection.vendor == "postgresql"
        # Closed by __exit__: the writer is used as a context manager.
        self.file: Any = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024, mode="w+", newline="", encoding="utf-8")  # noqa: SIM115
        self.rows: list[tuple[int, int, float, int, str]] = []
        self.customers: set[int] = set()
        self.offers: set[int] = set()
        # Millions of rows: one CSV line per row by string formatting (csv.writer, row by row,
        # took as long as scoring), with the few distinct reasons quoted once.
        self.quoted: dict[str, str] = {}
        self.line_end = f",{tenant.pk},{MODEL_NAME},{self.created_at.isoformat()}\n"

    def add(self, rows: Iterable[tuple[int, int, float, int, str]]) -> None:
        batch = list(rows)
        self.count += len(batch)
        self.customers.update(row[0] for row in batch)
        self.offers.update(row[1] for row in batch)
        if not self.copy:
            self.rows += batch
            return
        quoted, end = self.quoted, self.line_end
        for reason in {row[4] for row in batch} - quoted.keys():
            quoted[reason] = '"' + reason.replace('"', '""') + '"'
        self.file.write("".join([f"{pk},{offer},{score!r},{rank},{quoted[reason]}{end}" for pk, offer, score, rank, reason in batch]))

    def replace(self) -> tuple[int, int]:
        """(rows written, rows replaced)."""
        with transaction.atomic():
            if self.copy:
                with connection.cursor() as cursor:
                    # Two runs for one tenant at once would each delete only the rows they can see and
                    # then collide on the unique constraint: the second waits here until the first commits.
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_LOCK, self.tenant.pk])
            # One statement per tenant (no cascades or signals: Django deletes in one query).
            replaced, _counts = Recommendation.objects.for_tenant(self.tenant).delete()
            # Scoring a big tenant takes minutes, in which a customer may be deleted or erased, or an
            # offer deleted: their rows are left out (a foreign key error at commit would lose the run).
            gone_customers = self.customers - set(recommendable_customers(tenant=self.tenant).values_list("pk", flat=True))
            gone_offers = self.offers - set(Offer.objects.for_tenant(self.tenant).values_list("pk", flat=True))
            if self.copy:
                return self._copy(sorted(gone_customers), sorted(gone_offers)), replaced
            rows = [row for row in self.rows if row[0] not in gone_customers and row[1] not in gone_offers]
            for start in range(0, len(rows), WRITE_BATCH):
                Recommendation.objects.bulk_create([
                    Recommendation(tenant=self.tenant, customer_id=pk, offer_id=offer, score=score, rank=rank,
                                   reason=json.loads(reason), model=MODEL_NAME, created_at=self.created_at)
                    for pk, offer, score, rank, reason in rows[start:start + WRITE_BATCH]
                ])
            return len(rows), replaced

    def _copy(self, gone_customers: list[int], gone_offers: list[int]) -> int:
        table, columns = Recommendation._meta.db_table, ", ".join(COLUMNS)
        self.file.seek(0)
        with connection.cursor() as cursor:
            if not gone_customers and not gone_offers:
                cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", self.file)
                return self.count
            # Rare: through a temporary table, filtered by the (few) ids that went. Dropped explicitly
            # as well: inside an outer transaction (tests) ON COMMIT comes too late.
            cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
            cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} (customer_id bigint, offer_id bigint, score double precision, rank integer, "
                           "reason jsonb, tenant_id bigint, model text, created_at timestamptz) ON COMMIT DROP")
            cursor.cursor.copy_expert(f"COPY {STAGE} ({columns}) FROM STDIN WITH (FORMAT csv)", self.file)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGE} "  # noqa: S608  (constant names)
                "WHERE customer_id <> ALL(%s) AND offer_id <> ALL(%s)", [gone_customers, gone_offers],
            )
            written = cursor.rowcount
            cursor.execute(f"DROP TABLE {STAGE}")
            return written

    def __enter__(self) -> _RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
