"""Realistic, deterministic synthetic customers for the demo tenant and the benchmarks.

The shape of the data follows the models the metrics app fits later:
- customers sign up over the last two years (more of them recently); each has a purchase rate
  drawn from a Gamma distribution (Poisson purchases: an NBD population), a dropout time, and a
  Gamma-distributed spend level that tilts what they buy and how many;
- order and browsing times follow weekly and yearly seasonality (weekends, Black Friday, a
  December peak) and a daily rhythm; ~3% of orders are cancelled and ~2% refunded;
- events are correlated with orders (product views and add-to-cart before each order, offer
  clicks before some) on top of browsing proportional to a customer's activity;
- the consent ledger grants email marketing and personalization at sign-up; ~8% withdraw email
  marketing and ~5% personalization later.

Everything is drawn with numpy's seeded Generator, vectorised, in chunks of CHUNK_CUSTOMERS
customers with one random stream per chunk, so the same seed and size give the same rows (the
timestamps are relative to `now`). PostgreSQL receives the rows with COPY; SQLite (the embedded
mode) with bulk_create.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

import numpy as np
from django.db import connection, models, transaction
from django.utils import timezone

from customers.models import Company, Consent, Customer, Event, Order, OrderLine
from tenants.models import Tenant

# Customers generated from one random stream. Part of the determinism contract: changing it
# changes the data a seed produces.
CHUNK_CUSTOMERS = 25_000
COPY_ROWS = 100_000
SQLITE_BATCH = 500
WINDOW_DAYS = 730
DAY = 86_400
SOURCE = "import"

# --- vocabularies ---------------------------------------------------------------------------

# (Cyrillic, Latin transliteration for e-mail addresses)
RU_MALE = [
    ("Александр", "aleksandr"), ("Дмитрий", "dmitry"), ("Максим", "maksim"), ("Сергей", "sergey"),
    ("Андрей", "andrey"), ("Алексей", "aleksey"), ("Иван", "ivan"), ("Михаил", "mikhail"),
    ("Никита", "nikita"), ("Егор", "egor"), ("Павел", "pavel"), ("Артём", "artem"),
]
RU_FEMALE = [
    ("Анна", "anna"), ("Мария", "maria"), ("Елена", "elena"), ("Ольга", "olga"), ("Наталья", "natalya"),
    ("Екатерина", "ekaterina"), ("Татьяна", "tatyana"), ("Ирина", "irina"), ("Светлана", "svetlana"),
    ("Юлия", "yulia"), ("Дарья", "darya"), ("Ксения", "ksenia"),
]
# Russian surnames have a feminine form: Иванов / Иванова.
RU_LAST = [
    ("Иванов", "ivanov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"), ("Попов", "popov"),
    ("Васильев", "vasiliev"), ("Петров", "petrov"), ("Соколов", "sokolov"), ("Михайлов", "mikhailov"),
    ("Новиков", "novikov"), ("Фёдоров", "fedorov"), ("Морозов", "morozov"), ("Волков", "volkov"),
    ("Лебедев", "lebedev"), ("Козлов", "kozlov"), ("Орлов", "orlov"), ("Зайцев", "zaitsev"),
]
EN_MALE = ["James", "John", "Robert", "Michael", "William", "David", "Thomas", "Daniel", "Oliver", "Harry", "George", "Jack"]
EN_FEMALE = ["Mary", "Emma", "Olivia", "Sophie", "Emily", "Charlotte", "Amelia", "Grace", "Lucy", "Hannah", "Jessica", "Chloe"]
EN_LAST = [
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
    "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall",
]
# (city, time zone, weight)
RU_CITIES = [
    ("Москва", "Europe/Moscow", 40), ("Санкт-Петербург", "Europe/Moscow", 20), ("Казань", "Europe/Moscow", 10),
    ("Екатеринбург", "Asia/Yekaterinburg", 15), ("Новосибирск", "Asia/Novosibirsk", 15),
]
EN_CITIES = [
    ("London", "Europe/London", 40), ("Manchester", "Europe/London", 15), ("Birmingham", "Europe/London", 15),
    ("Dublin", "Europe/Dublin", 15), ("Berlin", "Europe/Berlin", 15),
]
CONSUMER_DOMAINS = ["mail.example", "inbox.example", "post.example", "pochta.example"]
ACQUISITION_CHANNELS = ["organic", "paid_search", "social", "referral", "retail_store"]

RU_COMPANY_STEMS = [("Север", "sever"), ("Юг", "yug"), ("Техно", "tekhno"), ("Мега", "mega"), ("Альфа", "alfa"),
                    ("Вектор", "vektor"), ("Гранит", "granit"), ("Импульс", "impuls"), ("Орион", "orion"), ("Волга", "volga")]
RU_COMPANY_ENDS = [("связь", "svyaz"), ("сервис", "servis"), ("трейд", "treid"), ("монтаж", "montazh"),
                   ("ремонт", "remont"), ("комплект", "komplekt"), ("электро", "elektro")]
EN_COMPANY_FIRST = ["North", "Bright", "Blue", "Prime", "Metro", "Swift", "Union", "Harbor"]
EN_COMPANY_SECOND = ["Telecom", "Repairs", "Electronics", "Networks", "Logistics", "Supplies", "Mobile", "Systems"]
EN_COMPANY_FORMS = ["Ltd", "LLC", "GmbH", "& Co"]
INDUSTRIES = [
    "Phone repair", "Retail", "Construction", "Logistics", "Manufacturing", "IT services",
    "Healthcare", "Hospitality", "Education", "Telecom reseller",
]
COMPANY_SIZES = [(Company.Size.MICRO, 35), (Company.Size.SMALL, 35), (Company.Size.MEDIUM, 18),
                 (Company.Size.LARGE, 9), (Company.Size.ENTERPRISE, 3)]
COMPANY_ROLES = [("purchasing_manager", 45), ("owner", 20), ("repairer", 25), ("other", 10)]


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str  # tariff, device, accessory, spare_part, service
    price_cents: int


# The demo tenant sells telecom tariffs, devices and spare parts. There is no Product model yet:
# order lines carry the SKU, name and price.
CATALOGUE = [
    Product("TAR-S", "Tariff S: 5 GB + 200 min", "tariff", 990),
    Product("TAR-M", "Tariff M: 20 GB + 600 min", "tariff", 1990),
    Product("TAR-L", "Tariff L: unlimited data", "tariff", 3490),
    Product("TAR-FAM", "Family plan, 4 SIM cards", "tariff", 4990),
    Product("TAR-BIZ", "Business tariff, per line", "tariff", 2490),
    Product("TAR-IOT", "IoT data SIM", "tariff", 490),
    Product("ADD-ROAM", "EU roaming pack 10 GB", "tariff", 1290),
    Product("ADD-DATA", "Extra 10 GB", "tariff", 790),
    Product("HOME-500", "Home internet 500 Mbit/s", "tariff", 2990),
    Product("DEV-PH-M", "Smartphone M 64 GB", "device", 14900),
    Product("DEV-PH-A15", "Smartphone A15 128 GB", "device", 24900),
    Product("DEV-PH-XP", "Smartphone X Pro 256 GB", "device", 109900),
    Product("DEV-RTR-5G", "5G home router", "device", 19900),
    Product("DEV-RTR-W6", "Wi-Fi 6 mesh router", "device", 12900),
    Product("DEV-TAB", "Tablet 10.5\" LTE", "device", 32900),
    Product("DEV-WATCH", "Smartwatch LTE", "device", 27900),
    Product("DEV-HOTSPOT", "Mobile hotspot 4G", "device", 7900),
    Product("ACC-CASE", "Phone case", "accessory", 1990),
    Product("ACC-GLASS", "Screen protector glass", "accessory", 1290),
    Product("ACC-CHG", "USB-C fast charger 30 W", "accessory", 2490),
    Product("ACC-CBL", "USB-C cable 2 m", "accessory", 990),
    Product("ACC-BUDS", "Wireless earbuds", "accessory", 7900),
    Product("ACC-PB", "Power bank 10000 mAh", "accessory", 3490),
    Product("SP-SCR-A15", "Display module for A15", "spare_part", 8900),
    Product("SP-SCR-XP", "OLED display for X Pro", "spare_part", 18900),
    Product("SP-BAT-A15", "Battery for A15", "spare_part", 2900),
    Product("SP-BAT-XP", "Battery for X Pro", "spare_part", 4500),
    Product("SP-CAM-XP", "Rear camera module for X Pro", "spare_part", 11900),
    Product("SP-USB", "USB-C charging port board", "spare_part", 1450),
    Product("SP-SPK", "Loudspeaker module", "spare_part", 1190),
    Product("SP-FLEX", "Button flex cable set", "spare_part", 690),
    Product("SP-ADH", "Adhesive strips, pack of 10", "spare_part", 450),
    Product("SP-ANT", "5G antenna module", "spare_part", 3900),
    Product("SP-TOOLS", "Repair tool kit", "spare_part", 4900),
    Product("SRV-SCREEN", "Screen replacement service", "service", 6900),
    Product("SRV-INSTALL", "Router installation", "service", 3900),
    Product("SRV-CARE", "Device insurance, 12 months", "service", 9900),
]
CATEGORIES = ["tariff", "device", "accessory", "spare_part", "service"]
# Buyer groups: what each kind of customer tends to buy (category shares).
GROUP_CATEGORY_SHARES = {
    "consumer": [0.38, 0.14, 0.30, 0.04, 0.14],
    "business": [0.30, 0.20, 0.15, 0.25, 0.10],
    "repairer": [0.05, 0.05, 0.15, 0.70, 0.05],
}
GROUPS = list(GROUP_CATEGORY_SHARES)
# Spend tiers tilt the choice towards cheaper or dearer products: weight ∝ price ** tilt.
TIER_TILTS = [-0.6, 0.0, 0.5]
PAGE_PATHS = ["/", "/tariffs", "/tariffs/unlimited", "/devices", "/devices/smartphones", "/parts",
              "/parts/displays", "/support", "/coverage", "/account", "/business", "/offers"]
OFFERS = ["spring-bundle", "black-friday", "december-gifts", "family-upgrade", "parts-wholesale", "roaming-summer"]
EVENT_TYPES = ["page_view", "product_view", "add_to_cart", "offer_view", "offer_click", "signup"]
BROWSE_TYPE_SHARES = [0.55, 0.27, 0.03, 0.13, 0.02]  # page_view .. offer_click: abandoned carts included
WEEKDAY_WEIGHTS = np.array([0.95, 0.95, 1.0, 1.0, 1.1, 1.2, 0.9])  # Monday first
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 11, 12, 12, 11, 10, 10, 11, 13, 14, 13, 10, 7, 4], dtype=float)
VIP_REVENUE_CENTS = 150_000


# --- columns and writers -------------------------------------------------------------------

@dataclass(frozen=True)
class Lookup:
    """A text column given as indexes into a small table of strings (cheap at 10M rows)."""

    values: np.ndarray  # object array of str
    index: np.ndarray


Piece = str | np.ndarray | Lookup


@dataclass(frozen=True)
class Col:
    name: str  # the model field's attname
    kind: str  # int, fk (-1 is NULL), text, json, ts (epoch seconds), money (cents), qty
    data: Any  # an int array, or for text/json a sequence of pieces that concatenate to the value
    quote: bool = False  # text that may hold commas or quotes


def _lookup(values: Sequence[str], index: np.ndarray) -> Lookup:
    return Lookup(np.array(values, dtype=object), index)


def _resolve(piece: Piece, lo: int, hi: int) -> list[Any] | str:
    if isinstance(piece, str):
        return piece
    if isinstance(piece, Lookup):
        return piece.values[piece.index[lo:hi]].tolist()
    return piece[lo:hi].tolist()


def _concat(pieces: Sequence[Piece], lo: int, hi: int) -> list[str]:
    parts = [_resolve(p, lo, hi) for p in pieces]
    if len(parts) == 1 and not isinstance(parts[0], str):
        return parts[0]
    n = hi - lo
    return list(map("".join, zip(*(itertools.repeat(p, n) if isinstance(p, str) else p for p in parts), strict=True)))


class _Formats:
    """Strings that many rows share: timestamps are a day part plus a time-of-day part."""

    def __init__(self, first_day: int, days: int) -> None:
        self.first_day = first_day
        dates = np.datetime_as_string(np.arange(first_day, first_day + days).astype("datetime64[D]"))
        self.days = np.array([f"{d} " for d in dates], dtype=object)
        self.times = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)], dtype=object)
        self.cents = np.array([f".{c:02d}" for c in range(100)], dtype=object)


def _escape(piece: Piece) -> Piece:
    if isinstance(piece, str):
        return piece.replace('"', '""')
    if isinstance(piece, Lookup):
        return Lookup(np.array([v.replace('"', '""') for v in piece.values], dtype=object), piece.index)
    return np.array([v.replace('"', '""') for v in piece], dtype=object)


def _csv_pieces(col: Col, formats: _Formats) -> list[Piece]:
    if col.kind in ("int", "qty"):
        return [np.asarray(col.data).astype(str).astype(object)]
    if col.kind == "fk":
        values = np.asarray(col.data).astype(str).astype(object)
        values[np.asarray(col.data) < 0] = ""  # unquoted empty field: NULL
        return [values]
    if col.kind == "ts":
        seconds = np.asarray(col.data, dtype=np.int64)
        return [Lookup(formats.days, seconds // DAY - formats.first_day), Lookup(formats.times, seconds % DAY)]
    if col.kind == "money":
        cents = np.asarray(col.data, dtype=np.int64)
        return [(cents // 100).astype(str).astype(object), Lookup(formats.cents, cents % 100)]
    if col.quote or col.kind == "json":
        return ['"', *(_escape(p) for p in col.data), '"']
    return list(col.data)


def _csv(pieces_by_col: list[list[Piece]], lo: int, hi: int) -> str:
    flat: list[Piece] = []
    for i, pieces in enumerate(pieces_by_col):
        if i:
            flat.append(",")
        flat.extend(pieces)
    merged: list[Piece] = []  # adjacent constants joined once, not once per row
    for piece in flat:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return "\n".join(_concat(merged, lo, hi)) + "\n"


def _python_values(col: Col, n: int) -> list[Any]:
    data = col.data
    if col.kind == "int":
        return np.asarray(data).tolist()
    if col.kind == "fk":
        return [None if v < 0 else v for v in np.asarray(data).tolist()]
    if col.kind == "ts":
        return [datetime.fromtimestamp(v, UTC) for v in np.asarray(data).tolist()]
    if col.kind == "money":
        return [Decimal(v).scaleb(-2) for v in np.asarray(data).tolist()]
    if col.kind == "qty":
        return [Decimal(v) for v in np.asarray(data).tolist()]
    texts = _concat(data, 0, n)
    return [json.loads(t) for t in texts] if col.kind == "json" else texts


class _Writer:
    def __init__(self, tenant: Tenant, formats: _Formats) -> None:
        self.tenant = tenant
        self.formats = formats
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # time spent writing, per table
        self.totals_cents = 0  # sum of order totals written, for determinism checks

    def insert(self, model: type[models.Model], cols: list[Col], n: int, *, with_ids: bool = False) -> np.ndarray | None:
        raise NotImplementedError

    def _count(self, model: type[models.Model], n: int, started: float) -> None:
        key = model._meta.model_name or ""
        self.counts[key] = self.counts.get(key, 0) + n
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started


class _PostgresWriter(_Writer):
    """COPY ... FROM STDIN (CSV built in memory, COPY_ROWS rows at a time)."""

    def insert(self, model: type[models.Model], cols: list[Col], n: int, *, with_ids: bool = False) -> np.ndarray | None:
        if n == 0:
            return np.zeros(0, dtype=np.int64) if with_ids else None
        started = time.perf_counter()
        ids = None
        with connection.cursor() as cursor:
            if with_ids:
                # Ids come from the table's own sequence, so rows inserted later by the app don't collide.
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [model._meta.db_table, n]
                )
                ids = np.sort(np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64, count=n))
                cols = [Col("id", "int", ids), *cols]
            all_cols = [Col("tenant_id", "int", np.full(n, self.tenant.pk)), *cols]
            columns = [model._meta.get_field(c.name).column if c.name != "id" else "id" for c in all_cols]
            text_columns = [column for column, c in zip(columns, all_cols, strict=True) if c.kind in ("text", "json")]
            qn = connection.ops.quote_name
            sql = f"COPY {qn(model._meta.db_table)} ({', '.join(map(qn, columns))}) FROM STDIN WITH (FORMAT csv"
            if text_columns:  # an unquoted empty field is '' here, not NULL
                sql += f", FORCE_NOT_NULL ({', '.join(map(qn, text_columns))})"
            sql += ")"
            pieces = [_csv_pieces(c, self.formats) for c in all_cols]
            for lo in range(0, n, COPY_ROWS):
                _copy(cursor, sql, _csv(pieces, lo, min(n, lo + COPY_ROWS)))
        self._count(model, n, started)
        return ids


def _copy(cursor: Any, sql: str, text: str) -> None:
    raw = cursor.cursor
    if hasattr(raw, "copy_expert"):  # psycopg2
        raw.copy_expert(sql, io.StringIO(text))
    else:  # psycopg 3
        with raw.copy(sql) as copy:
            copy.write(text)


class _OrmWriter(_Writer):
    """bulk_create: the embedded SQLite mode, where sizes are small."""

    def insert(self, model: type[models.Model], cols: list[Col], n: int, *, with_ids: bool = False) -> np.ndarray | None:
        started = time.perf_counter()
        values = {c.name: _python_values(c, n) for c in cols}
        objs = [model(tenant=self.tenant, **{name: column[i] for name, column in values.items()}) for i in range(n)]
        model.objects.for_tenant(self.tenant).bulk_create(objs, batch_size=SQLITE_BATCH)  # type: ignore[attr-defined]
        self._count(model, n, started)
        if with_ids:
            return np.array([o.pk for o in objs], dtype=np.int64)
        return None


# --- time ------------------------------------------------------------------------------------

class _Calendar:
    """Seasonal sampling of timestamps: weekly and yearly weights per day, an hour-of-day rhythm."""

    def __init__(self, now: int) -> None:
        self.now = now
        # Everything is drawn relative to `start`, so only the timestamps depend on `now`.
        self.start = now - WINDOW_DAYS * DAY
        self.first_day = self.start // DAY  # the seasonal weights are per calendar day from here
        days = np.arange(self.first_day, now // DAY + 1)
        dates = days.astype("datetime64[D]")
        day_of_year = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
        yearly = (
            1.0
            + 0.12 * np.cos(2 * np.pi * (day_of_year - 15) / 365)  # winter busier than summer
            + 0.9 * np.exp(-(((day_of_year - 352) / 9.0) ** 2))  # December gifts
            + 0.7 * np.exp(-(((day_of_year - 331) / 2.5) ** 2))  # Black Friday week
        )
        weights = WEEKDAY_WEIGHTS[weekday] * yearly
        self.cumulative = np.concatenate([[0.0], np.cumsum(weights)])
        self.day_grid = np.arange(len(self.cumulative), dtype=float)
        self.hour_cdf = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """One timestamp per (lo, hi) pair, seasonal within the interval."""
        grid_start = self.first_day * DAY
        a = np.interp((lo - grid_start) / DAY, self.day_grid, self.cumulative)
        b = np.interp((hi - grid_start) / DAY, self.day_grid, self.cumulative)
        u = a + rng.random(len(lo)) * (b - a)
        day = np.floor(np.interp(u, self.cumulative, self.day_grid)).astype(np.int64)
        hour = np.searchsorted(self.hour_cdf, rng.random(len(lo)))
        seconds = grid_start + day * DAY + np.minimum(hour, 23) * 3600 + rng.integers(0, 3600, len(lo))
        return np.clip(seconds, lo, hi).astype(np.int64)


# --- generation ---------------------------------------------------------------------------------

def _weights(pairs: Sequence[tuple[Any, float]]) -> np.ndarray:
    w = np.array([p[1] for p in pairs], dtype=float)
    return w / w.sum()


def _product_weights() -> np.ndarray:
    """[group, tier, product] → probability."""
    prices = np.array([p.price_cents for p in CATALOGUE], dtype=float) / 100
    category = np.array([CATEGORIES.index(p.category) for p in CATALOGUE])
    popularity = prices ** -0.5  # cheaper products sell more often
    table = np.zeros((len(GROUPS), len(TIER_TILTS), len(CATALOGUE)))
    for g, group in enumerate(GROUPS):
        for t, tilt in enumerate(TIER_TILTS):
            w = popularity * prices ** tilt
            for c in range(len(CATEGORIES)):
                in_category = category == c
                w[in_category] *= GROUP_CATEGORY_SHARES[group][c] / w[in_category].sum()
            table[g, t] = w / w.sum()
    return table


PRODUCT_WEIGHTS = _product_weights()
PRODUCT_PRICES = np.array([p.price_cents for p in CATALOGUE], dtype=np.int64)
PRODUCT_CATEGORY = np.array([CATEGORIES.index(p.category) for p in CATALOGUE])


def _choose_products(rng: np.random.Generator, group_tier: np.ndarray) -> np.ndarray:
    """One product per row, drawn from the row's (group, tier) distribution."""
    products = np.zeros(len(group_tier), dtype=np.int64)
    cumulative = np.cumsum(PRODUCT_WEIGHTS.reshape(-1, len(CATALOGUE)), axis=1)
    u = rng.random(len(group_tier))
    for key in range(cumulative.shape[0]):
        rows = group_tier == key
        if rows.any():
            products[rows] = np.minimum(np.searchsorted(cumulative[key], u[rows]), len(CATALOGUE) - 1)
    return products


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _rank_within(owner: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """0, 1, 2… within each owner's consecutive run of rows."""
    return np.arange(len(owner)) - np.repeat(_starts(counts), counts)


@dataclass
class _Chunk:
    number: int
    lo: int
    hi: int
    rng: np.random.Generator

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class _Plan:
    calendar: _Calendar
    total: int
    seed: int
    events_per_customer: float
    currency: str


class _Generator:
    """One chunk of customers: draws everything from the chunk's own random stream, then writes."""

    def __init__(self, plan: _Plan, writer: _Writer) -> None:
        self.plan = plan
        self.calendar = plan.calendar
        self.total = plan.total
        self.events_per_customer = plan.events_per_customer
        self.currency = plan.currency
        self.writer = writer

    def run_chunk(self, chunk_no: int, lo: int, hi: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([self.plan.seed, chunk_no]))
        chunk = _Chunk(chunk_no, lo, hi, rng)
        people = self._people(chunk)
        company_ids = self._companies(chunk, people)
        orders = self._orders(chunk, people)
        events = self._events(chunk, people, orders)
        people["last_seen"] = np.maximum(people["first_seen"], people["last_activity"])
        customer_ids = self._write_customers(chunk, people, orders, company_ids)
        order_ids = self._write_orders(chunk, orders, customer_ids)
        self._write_lines(orders, order_ids)
        self._write_events(chunk, events, customer_ids, people)
        self._write_consents(chunk, people, customer_ids)

    # people ----------------------------------------------------------------------------------
    def _people(self, chunk: _Chunk) -> dict[str, np.ndarray]:
        rng, m = chunk.rng, chunk.size
        index = np.arange(chunk.lo, chunk.hi)
        is_business = rng.random(m) < 0.2
        is_ru = rng.random(m) < 0.45
        is_female = rng.random(m) < 0.5
        # Sign-ups spread over the window in index order, growing over time (density 1 + t).
        u = (index + rng.random(m)) / self.total
        t = np.sqrt(1 + 3 * u) - 1  # inverse of the CDF (t + t²/2) / 1.5
        window = self.calendar.now - self.calendar.start
        first_seen = (self.calendar.start + t * (window - DAY)).astype(np.int64)
        # Activity: dropout after an exponential lifetime; purchase rate Gamma (NBD across people).
        dropout = first_seen + (rng.exponential(420, m) * DAY).astype(np.int64)
        active_until = np.minimum(dropout, self.calendar.now)
        rate = rng.gamma(0.8, 1.0, m) * np.where(is_business, 5.0, 2.0)  # orders a year
        spend = rng.gamma(2.0, 0.5, m)  # spend level, mean 1
        role = np.where(is_business, rng.choice(len(COMPANY_ROLES), m, p=_weights(COMPANY_ROLES)), -1)
        group = np.where(~is_business, 0, np.where(role == 2, 2, 1))
        tier = np.digitize(spend, [0.6, 1.5])
        return {
            "index": index, "is_business": is_business, "is_ru": is_ru, "is_female": is_female,
            "first_seen": first_seen, "active_until": active_until, "rate": rate, "spend": spend,
            "role": role, "group": group, "tier": tier, "group_tier": group * len(TIER_TILTS) + tier,
            "last_activity": first_seen.copy(),
            "via_form": rng.random(m) < 0.6,  # signed up on the site (a signup event, a form consent)
        }

    def _companies(self, chunk: _Chunk, people: dict[str, np.ndarray]) -> np.ndarray:
        """Companies for this chunk's business buyers; returns each person's company id (-1: none)."""
        rng = chunk.rng
        buyers = np.flatnonzero(people["is_business"])
        n = max(1, int(np.ceil(len(buyers) / 4)))
        is_ru = rng.random(n) < 0.45
        names, domains = [], []
        first_number = chunk.number * 10_000 + 1  # a chunk has ~CHUNK_CUSTOMERS / 20 companies
        a, b, c = rng.integers(0, 1000, n), rng.integers(0, 1000, n), rng.integers(0, 1000, n)
        for i in range(n):
            if is_ru[i]:
                stem, end = RU_COMPANY_STEMS[a[i] % len(RU_COMPANY_STEMS)], RU_COMPANY_ENDS[b[i] % len(RU_COMPANY_ENDS)]
                names.append(f"ООО «{stem[0]}{end[0]}»")
                slug = f"{stem[1]}{end[1]}"
            else:
                first, second = EN_COMPANY_FIRST[a[i] % len(EN_COMPANY_FIRST)], EN_COMPANY_SECOND[b[i] % len(EN_COMPANY_SECOND)]
                names.append(f"{first} {second} {EN_COMPANY_FORMS[c[i] % len(EN_COMPANY_FORMS)]}")
                slug = f"{first}{second}".lower()
            domains.append(f"{slug}{first_number + i}.example")
        external = np.array([f"co{first_number + i:07d}" for i in range(n)], dtype=object)
        industry = rng.integers(0, len(INDUSTRIES), n)
        size = rng.choice(len(COMPANY_SIZES), n, p=_weights(COMPANY_SIZES))
        created = (self.calendar.start - rng.integers(0, 3 * 365, n) * DAY).astype(np.int64)
        cols = [
            Col("external_id", "text", (external,)),
            Col("name", "text", (np.array(names, dtype=object),), quote=True),
            Col("industry", "text", (_lookup(INDUSTRIES, industry),)),
            Col("size", "text", (_lookup([s[0].value for s in COMPANY_SIZES], size),)),
            Col("created_at", "ts", created),
            Col("updated_at", "ts", created),
        ]
        ids = self.writer.insert(Company, cols, n, with_ids=True)
        assert ids is not None
        # A few large companies employ many buyers: Zipf-like assignment.
        popularity = 1.0 / np.arange(1, n + 1) ** 0.8
        assigned = rng.choice(n, len(buyers), p=popularity / popularity.sum())
        company_of = np.full(chunk.size, -1, dtype=np.int64)
        company_of[buyers] = ids[assigned]
        people["company_domain"] = np.full(chunk.size, "", dtype=object)
        people["company_domain"][buyers] = np.array(domains, dtype=object)[assigned]
        people["company_size"] = np.full(chunk.size, -1)
        people["company_size"][buyers] = size[assigned]
        return company_of

    # orders ----------------------------------------------------------------------------------
    def _orders(self, chunk: _Chunk, people: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = chunk.rng
        years_active = (people["active_until"] - people["first_seen"]) / (365 * DAY)
        count = rng.poisson(people["rate"] * years_active)
        owner = np.repeat(np.arange(chunk.size), count)
        at = self.calendar.sample(rng, people["first_seen"][owner], people["active_until"][owner])
        # Orders of one customer in time order, numbered 1, 2, 3…
        order = np.lexsort((at, owner))
        owner, at = owner[order], at[order]
        number = _rank_within(owner, count) + 1
        n = len(owner)
        status_draw = rng.random(n)
        recent = at > self.calendar.now - 3 * DAY
        status = np.where(recent, np.where(rng.random(n) < 0.5, 0, 1), np.where(rng.random(n) < 0.93, 2, 1))
        status = np.where(status_draw < 0.03, 3, np.where(status_draw < 0.05, 4, status))
        # Lines: business orders are bigger; quantities grow with the spend level for businesses.
        line_count = np.minimum(1 + rng.poisson(np.where(people["is_business"][owner], 1.0, 0.3)), 6)
        line_order = np.repeat(np.arange(n), line_count)
        line_owner = owner[line_order]
        product = _choose_products(rng, people["group_tier"][line_owner])
        category = PRODUCT_CATEGORY[product]
        spend = people["spend"][line_owner]
        bulk_mean = np.select([category == 3, category == 2, category == 0], [4.0 * spend, 3.0 * spend, 2.0 * spend], 0.5 * spend)
        business_qty = 1 + rng.poisson(bulk_mean)
        consumer_qty = 1 + np.searchsorted([0.88, 0.97], rng.random(len(line_order)))
        quantity = np.where(people["is_business"][line_owner], business_qty, consumer_qty).astype(np.int64)
        line_cents = quantity * PRODUCT_PRICES[product]
        total = np.bincount(line_order, weights=line_cents, minlength=n).astype(np.int64)
        counts_revenue = status <= 2
        revenue = np.bincount(owner[counts_revenue], weights=total[counts_revenue], minlength=chunk.size)
        people["revenue"] = revenue
        np.maximum.at(people["last_activity"], owner, at)
        self.writer.totals_cents += int(total.sum())
        return {
            "owner": owner, "at": at, "number": number, "status": status, "total": total,
            "line_order": line_order, "product": product, "quantity": quantity, "first_product": product[_starts(line_count)],
        }

    # events ----------------------------------------------------------------------------------
    def _events(self, chunk: _Chunk, people: dict[str, np.ndarray], orders: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng, m = chunk.rng, chunk.size
        first_seen, now = people["first_seen"], self.calendar.now
        owner_o, at_o, sku_o = orders["owner"], orders["at"], orders["first_product"]
        n_orders = len(owner_o)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # owner, type, detail, time

        # The funnel before each order: product views and an add-to-cart of what was bought,
        # and for some orders an offer seen and clicked first.
        views = 1 + rng.poisson(0.8, n_orders)
        view_order = np.repeat(np.arange(n_orders), views)
        view_at = at_o[view_order] - (rng.exponential(3 * 3600, len(view_order)) + 600).astype(np.int64)
        parts.append((owner_o[view_order], np.full(len(view_order), 1), sku_o[view_order], view_at))
        cart_at = at_o - (rng.exponential(1200, n_orders) + 60).astype(np.int64)
        parts.append((owner_o, np.full(n_orders, 2), sku_o, cart_at))
        from_offer = np.flatnonzero(rng.random(n_orders) < 0.25)
        offer = rng.integers(0, len(OFFERS), len(from_offer))
        click_at = at_o[from_offer] - (rng.exponential(900, len(from_offer)) + 120).astype(np.int64)
        seen_at = click_at - (rng.exponential(DAY, len(from_offer)) + 60).astype(np.int64)
        parts.append((owner_o[from_offer], np.full(len(from_offer), 3), offer, seen_at))
        parts.append((owner_o[from_offer], np.full(len(from_offer), 4), offer, click_at))
        signed_up = np.flatnonzero(people["via_form"])
        parts.append((signed_up, np.full(len(signed_up), 5), np.zeros(len(signed_up), dtype=np.int64), first_seen[signed_up]))

        # Browsing: proportional to activity (more for buyers), topped up to the target mean.
        funnel = np.bincount(np.concatenate([p[0] for p in parts]), minlength=m)
        activity = rng.gamma(2.0, 0.5, m) * (1 + np.bincount(owner_o, minlength=m))
        target = self.events_per_customer * activity / activity.mean()
        browse = rng.poisson(np.maximum(target - funnel, 0))
        owner_b = np.repeat(np.arange(m), browse)
        browse_until = np.minimum(people["active_until"] + 60 * DAY, now)
        at_b = self.calendar.sample(rng, first_seen[owner_b], browse_until[owner_b])
        type_b = rng.choice(len(BROWSE_TYPE_SHARES), len(owner_b), p=BROWSE_TYPE_SHARES)
        detail_b = np.select(
            [type_b == 0, (type_b == 1) | (type_b == 2)],
            [rng.integers(0, len(PAGE_PATHS), len(owner_b)), _choose_products(rng, people["group_tier"][owner_b])],
            rng.integers(0, len(OFFERS), len(owner_b)),
        )
        parts.append((owner_b, type_b, detail_b, at_b))

        owner = np.concatenate([p[0] for p in parts]).astype(np.int64)
        kind = np.concatenate([p[1] for p in parts]).astype(np.int64)
        detail = np.concatenate([p[2] for p in parts]).astype(np.int64)
        at = np.clip(np.concatenate([p[3] for p in parts]), first_seen[owner], now).astype(np.int64)
        # Number each customer's events in time order (the event id), then write the chunk in time
        # order, as events arrive in production: the BRIN index on occurred_at stays useful, and a
        # customer's events are spread over the table as they would be (writing them per customer
        # measured ~15% faster on the earlier seven-index table, but flatters per-customer reads).
        by_customer = np.lexsort((at, owner))
        owner, kind, detail, at = owner[by_customer], kind[by_customer], detail[by_customer], at[by_customer]
        number = _rank_within(owner, np.bincount(owner, minlength=m)) + 1
        np.maximum.at(people["last_activity"], owner, at)
        by_time = np.argsort(at, kind="stable")
        owner, kind, detail, at, number = owner[by_time], kind[by_time], detail[by_time], at[by_time], number[by_time]
        return {"owner": owner, "kind": kind, "detail": detail, "at": at, "number": number}

    # writing ---------------------------------------------------------------------------------
    def _write_customers(self, chunk: _Chunk, people: dict[str, np.ndarray], orders: dict[str, np.ndarray],
                         company_of: np.ndarray) -> np.ndarray:
        rng, m = chunk.rng, chunk.size
        is_ru, is_female, is_business = people["is_ru"], people["is_female"], people["is_business"]
        first_names = [[n for n, _ in RU_MALE], [n for n, _ in RU_FEMALE], EN_MALE, EN_FEMALE]
        first_latin = [[t for _, t in RU_MALE], [t for _, t in RU_FEMALE], [n.lower() for n in EN_MALE], [n.lower() for n in EN_FEMALE]]
        name_group = np.where(is_ru, 0, 2) + is_female
        first_pick = rng.integers(0, 12, m)
        last_pick = rng.integers(0, 1 << 30, m)
        pattern = rng.integers(0, 3, m)
        consumer_domain = rng.integers(0, len(CONSUMER_DOMAINS), m)
        has_phone = rng.random(m) < 0.75
        phone_digits = rng.integers(0, 10**9, m)
        city_pick = rng.random(m)
        channel = rng.integers(0, len(ACQUISITION_CHANNELS), m)
        prepaid = rng.random(m) < np.where(is_business, 0.15, 0.45)
        marketing_withdrawn = rng.random(m) < 0.08
        newsletter = (rng.random(m) < 0.55) & ~marketing_withdrawn
        wholesale = is_business & ((people["company_size"] >= 2) | (rng.random(m) < 0.3))
        people["marketing_withdrawn"] = marketing_withdrawn
        people["personalization_withdrawn"] = rng.random(m) < 0.05

        ru_city_cdf = np.cumsum(_weights([(c, w) for c, _, w in RU_CITIES]))
        en_city_cdf = np.cumsum(_weights([(c, w) for c, _, w in EN_CITIES]))
        city = np.where(is_ru, np.searchsorted(ru_city_cdf, city_pick), len(RU_CITIES) + np.searchsorted(en_city_cdf, city_pick))
        cities = RU_CITIES + EN_CITIES
        vip = people["revenue"] >= VIP_REVENUE_CENTS

        first, last, email, phone, search, external = [], [], [], [], [], []
        for i in range(m):
            g = int(name_group[i])
            fn, fl = first_names[g][first_pick[i] % 12], first_latin[g][first_pick[i] % 12]
            if is_ru[i]:
                ln_ru, ll = RU_LAST[last_pick[i] % len(RU_LAST)]
                ln = ln_ru + ("а" if is_female[i] else "")
                ll = ll + ("a" if is_female[i] else "")
            else:
                ln = EN_LAST[last_pick[i] % len(EN_LAST)]
                ll = ln.lower()
            number = people["index"][i] + 1
            # The number makes every address unique; the separator shapes can't collide.
            local = (f"{fl}.{ll}{number}", f"{fl[0]}.{ll}{number}", f"{fl}_{ll}{number}")[pattern[i]]
            domain = people["company_domain"][i] if is_business[i] else CONSUMER_DOMAINS[consumer_domain[i]]
            address = f"{local}@{domain}"
            if not has_phone[i]:
                tel = ""
            elif is_ru[i]:
                d = f"{phone_digits[i]:09d}"
                tel = f"+7 9{d[:2]} {d[2:5]}-{d[5:7]}-{d[7:]}"
            else:
                d = f"{phone_digits[i]:09d}"
                tel = f"+44 7{d[:3]} {d[3:]}"
            ext = f"c{number:06d}"
            first.append(fn)
            last.append(ln)
            email.append(address)
            phone.append(tel)
            external.append(ext)
            search.append(" ".join(p for p in (fn, ln, address, tel, ext) if p).lower())

        tags = [json.dumps([t for t, on in (("vip", v), ("newsletter", n), ("wholesale", w)) if on])
                for v in (False, True) for n in (False, True) for w in (False, True)]
        tag_code = vip * 4 + newsletter * 2 + wholesale
        attributes = [json.dumps({"plan": plan, "city": c[0], "channel": ch}, ensure_ascii=False)
                      for plan in ("postpaid", "prepaid") for c in cities for ch in ACQUISITION_CHANNELS]
        attribute_code = (prepaid * len(cities) + city) * len(ACQUISITION_CHANNELS) + channel
        role_names = [r for r, _ in COMPANY_ROLES]
        cols = [
            Col("kind", "text", (_lookup(["consumer", "business_buyer"], is_business.astype(np.int64)),)),
            Col("external_id", "text", (np.array(external, dtype=object),)),
            Col("email", "text", (np.array(email, dtype=object),)),
            Col("phone", "text", (np.array(phone, dtype=object),)),
            Col("first_name", "text", (np.array(first, dtype=object),)),
            Col("last_name", "text", (np.array(last, dtype=object),)),
            Col("locale", "text", (_lookup(["en", "ru"], is_ru.astype(np.int64)),)),
            Col("timezone", "text", (_lookup([c[1] for c in cities], city),)),
            Col("company_id", "fk", company_of),
            Col("company_role", "text", (_lookup(["", *role_names], people["role"] + 1),)),
            Col("tags", "json", (_lookup(tags, tag_code),)),
            Col("attributes", "json", (_lookup(attributes, attribute_code),)),
            Col("search_text", "text", (np.array(search, dtype=object),)),
            Col("first_seen_at", "ts", people["first_seen"]),
            Col("last_seen_at", "ts", people["last_seen"]),
            Col("created_at", "ts", people["first_seen"]),
            Col("updated_at", "ts", people["last_seen"]),
        ]
        ids = self.writer.insert(Customer, cols, m, with_ids=True)
        assert ids is not None
        people["external"] = np.array(external, dtype=object)
        return ids

    def _write_orders(self, chunk: _Chunk, orders: dict[str, np.ndarray], customer_ids: np.ndarray) -> np.ndarray:
        owner, n = orders["owner"], len(orders["owner"])
        index = np.arange(chunk.lo, chunk.hi)[owner] + 1
        external = np.array([f"ORD-{c:06d}-{k:03d}" for c, k in zip(index.tolist(), orders["number"].tolist(), strict=True)],
                            dtype=object)
        updated = np.minimum(orders["at"] + np.where(orders["status"] >= 2, 2 * DAY, 0), self.calendar.now)
        cols = [
            Col("customer_id", "int", customer_ids[owner]),
            Col("external_id", "text", (external,)),
            Col("status", "text", (_lookup([s.value for s in Order.Status], orders["status"]),)),
            Col("currency", "text", (self.currency,)),
            Col("total", "money", orders["total"]),
            Col("ordered_at", "ts", orders["at"]),
            Col("source", "text", (SOURCE,)),
            Col("created_at", "ts", orders["at"]),
            Col("updated_at", "ts", updated),
        ]
        ids = self.writer.insert(Order, cols, n, with_ids=True)
        assert ids is not None
        return ids

    def _write_lines(self, orders: dict[str, np.ndarray], order_ids: np.ndarray) -> None:
        product = orders["product"]
        cols = [
            Col("order_id", "int", order_ids[orders["line_order"]]),
            Col("product_sku", "text", (_lookup([p.sku for p in CATALOGUE], product),)),
            Col("product_name", "text", (_lookup([p.name for p in CATALOGUE], product),), quote=True),
            Col("quantity", "qty", orders["quantity"]),
            Col("unit_price", "money", PRODUCT_PRICES[product]),
        ]
        self.writer.insert(OrderLine, cols, len(product))

    def _write_events(self, chunk: _Chunk, events: dict[str, np.ndarray], customer_ids: np.ndarray,
                      people: dict[str, np.ndarray]) -> None:
        kind, detail, n = events["kind"], events["detail"], len(events["kind"])
        # Properties are one of a few hundred JSON documents: (type, detail) → a lookup.
        products = [json.dumps({"sku": p.sku, "name": p.name, "price": p.price_cents / 100}) for p in CATALOGUE]
        documents = {
            0: [json.dumps({"path": p}) for p in PAGE_PATHS],
            1: products,
            2: products,
            3: [json.dumps({"offer": o}) for o in OFFERS],
            4: [json.dumps({"offer": o}) for o in OFFERS],
            5: [json.dumps({"channel": "web"})],
        }
        offsets = np.cumsum([0] + [len(documents[k]) for k in range(len(EVENT_TYPES))])
        all_documents = [d for k in range(len(EVENT_TYPES)) for d in documents[k]]
        numbers = np.array([f"{k:04d}" for k in range(int(events["number"].max(initial=0)) + 1)], dtype=object)
        cols = [
            Col("customer_id", "int", customer_ids[events["owner"]]),
            Col("type", "text", (_lookup(EVENT_TYPES, kind),)),
            Col("event_id", "text", ("seed-", Lookup(people["external"], events["owner"]), "-", Lookup(numbers, events["number"]))),
            Col("properties", "json", (_lookup(all_documents, offsets[kind] + detail),)),
            Col("source", "text", (SOURCE,)),
            Col("occurred_at", "ts", events["at"]),
            Col("received_at", "ts", events["at"]),
        ]
        self.writer.insert(Event, cols, n)

    def _write_consents(self, chunk: _Chunk, people: dict[str, np.ndarray], customer_ids: np.ndarray) -> None:
        rng, m = chunk.rng, chunk.size
        first_seen, now = people["first_seen"], self.calendar.now
        customer: list[np.ndarray] = []
        channel: list[np.ndarray] = []
        status: list[np.ndarray] = []
        source: list[np.ndarray] = []
        at: list[np.ndarray] = []
        everyone = np.arange(m)
        granted_source = np.where(people["via_form"], 0, 1)  # form, import
        for ch, withdrawn in ((0, people["marketing_withdrawn"]), (1, people["personalization_withdrawn"])):
            customer.append(everyone)
            channel.append(np.full(m, ch))
            status.append(np.zeros(m, dtype=np.int64))
            source.append(granted_source)
            at.append(first_seen)
            who = np.flatnonzero(withdrawn)
            customer.append(who)
            channel.append(np.full(len(who), ch))
            status.append(np.ones(len(who), dtype=np.int64))
            source.append(np.full(len(who), 2))  # withdrawn in the customer's preferences
            at.append(first_seen[who] + (rng.random(len(who)) * (now - first_seen[who])).astype(np.int64))
        who_all = np.concatenate(customer)
        kinds = np.concatenate(channel)
        sources = np.concatenate(source)
        cols = [
            Col("customer_id", "int", customer_ids[who_all]),
            Col("channel", "text", (_lookup([Consent.Channel.EMAIL.value, Consent.Channel.ALL.value], kinds),)),
            Col("purpose", "text", (_lookup([Consent.Purpose.MARKETING.value, Consent.Purpose.PERSONALIZATION.value], kinds),)),
            Col("status", "text", (_lookup([Consent.Status.GRANTED.value, Consent.Status.WITHDRAWN.value], np.concatenate(status)),)),
            Col("source", "text", (_lookup([Consent.Source.FORM.value, Consent.Source.IMPORT.value, Consent.Source.PORTAL.value], sources),)),
            Col("source_detail", "text", (_lookup(["signup-form", "crm-import", "preferences"], sources),)),
            Col("text_version", "text", ("2024-1",)),
            Col("occurred_at", "ts", np.concatenate(at)),
        ]
        self.writer.insert(Consent, cols, len(who_all))


# --- public entry points -------------------------------------------------------------------------

def _now_seconds(now: datetime | None) -> int:
    moment = now or timezone.now()
    return int(moment.timestamp()) // 60 * 60


def has_customers(*, tenant: Tenant) -> bool:
    return Customer.objects.for_tenant(tenant).exists()


def seed_customers(
    *,
    tenant: Tenant,
    customers: int,
    seed: int,
    events_per_customer: float = 10,
    now: datetime | None = None,
    workers: int = 1,
    stdout: TextIO | None = None,
) -> dict[str, Any]:
    """Seed a tenant with synthetic customers, companies, orders, events and consents.

    Does nothing (skipped=True) when the tenant already has customers. With one worker the seed
    is one transaction. With more (PostgreSQL, outside a transaction) chunks are written in
    parallel, one transaction each: a server backend is the bottleneck, and one is one core. An
    interrupted parallel seed leaves whole chunks behind; seed again after deleting them.
    """
    started = time.perf_counter()
    if has_customers(tenant=tenant):
        return {"skipped": True, "customers": Customer.objects.for_tenant(tenant).count(), "seconds": 0.0}
    calendar = _Calendar(_now_seconds(now))
    plan = _Plan(calendar=calendar, total=customers, seed=seed, events_per_customer=events_per_customer,
                 currency=tenant.currency)
    formats = _Formats(calendar.first_day - 4 * 365, WINDOW_DAYS + 4 * 365 + 2)
    chunks = [(number, lo, min(customers, lo + CHUNK_CUSTOMERS)) for number, lo in enumerate(range(0, customers, CHUNK_CUSTOMERS))]
    progress = _Progress(customers, started, stdout if customers > CHUNK_CUSTOMERS else None)
    parallel = workers > 1 and len(chunks) > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    if parallel:
        writers = _run_parallel(tenant, plan, formats, chunks, workers, progress)
    else:
        writers = [_run_serial(tenant, plan, formats, chunks, progress)]
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for writer in writers:
        for key, value in writer.counts.items():
            counts[key] = counts.get(key, 0) + value
        for key, value in writer.seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value
    return {
        "skipped": False,
        "customers": counts.get("customer", 0),
        "companies": counts.get("company", 0),
        "orders": counts.get("order", 0),
        "order_lines": counts.get("orderline", 0),
        "events": counts.get("event", 0),
        "consents": counts.get("consent", 0),
        "orders_total": Decimal(sum(w.totals_cents for w in writers)).scaleb(-2),
        "write_seconds": {k: round(v, 2) for k, v in seconds.items()},  # summed over workers
        "workers": workers if parallel else 1,
        "seconds": round(time.perf_counter() - started, 2),
    }


class _Progress:
    def __init__(self, total: int, started: float, stdout: TextIO | None) -> None:
        self.total, self.started, self.stdout = total, started, stdout
        self.done = 0
        self.events = 0
        self.lock = threading.Lock()

    def chunk_done(self, customers: int, events: int) -> None:
        with self.lock:
            self.done += customers
            self.events += events
            if self.stdout is not None:
                self.stdout.write(f"  {self.done:,}/{self.total:,} customers, {self.events:,} events, "
                                  f"{time.perf_counter() - self.started:.0f} s\n")
                self.stdout.flush()


def _new_writer(tenant: Tenant, formats: _Formats) -> _Writer:
    return _PostgresWriter(tenant, formats) if connection.vendor == "postgresql" else _OrmWriter(tenant, formats)


def _prepare_transaction() -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # A crash loses the seed anyway: don't wait for the WAL flush at commit.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # Check foreign keys at the end of each COPY, not at commit: deferred, millions of
        # pending trigger events would pile up in memory.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _run_chunk(plan: _Plan, writer: _Writer, chunk: tuple[int, int, int], progress: _Progress) -> None:
    events_before = writer.counts.get("event", 0)
    _Generator(plan, writer).run_chunk(*chunk)
    progress.chunk_done(chunk[2] - chunk[1], writer.counts.get("event", 0) - events_before)


def _run_serial(tenant: Tenant, plan: _Plan, formats: _Formats, chunks: list[tuple[int, int, int]],
                progress: _Progress) -> _Writer:
    writer = _new_writer(tenant, formats)
    with transaction.atomic():
        _prepare_transaction()
        for chunk in chunks:
            _run_chunk(plan, writer, chunk, progress)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return writer


def _run_parallel(tenant: Tenant, plan: _Plan, formats: _Formats, chunks: list[tuple[int, int, int]], workers: int,
                  progress: _Progress) -> list[_Writer]:
    """Threads, each with its own connection (Django's are per thread), taking chunks in turn.
    Generating a chunk holds the GIL briefly; waiting for COPY does not."""
    pending = list(reversed(chunks))
    lock = threading.Lock()
    failed: list[BaseException] = []
    writers: list[_Writer] = []

    def work() -> None:
        writer = _new_writer(tenant, formats)
        with lock:
            writers.append(writer)
        try:
            while True:
                with lock:
                    if failed or not pending:
                        return
                    chunk = pending.pop()
                with transaction.atomic():
                    _prepare_transaction()
                    _run_chunk(plan, writer, chunk, progress)
        except BaseException as error:
            with lock:
                failed.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, name=f"seed-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]
    return writers


@transaction.atomic
def delete_customer_data(*, tenant: Tenant) -> int:
    """Delete every customer and company of the tenant and what depends on them, in SQL.
    Rows of other tenants are never touched; returns the number of customers deleted."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        deleted = _purge(cursor, Customer, tenant.pk)
        _purge(cursor, Company, tenant.pk)
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return deleted


def _is_tenant_owned(model: type[models.Model]) -> bool:
    return any(f.name == "tenant" for f in model._meta.concrete_fields)


def _dependants(model: type[models.Model]) -> list[Any]:
    return [
        r for r in model._meta.get_fields(include_hidden=True)
        if r.auto_created and not r.concrete and (r.one_to_many or r.one_to_one) and r.related_model is not model
    ]


def _purge(cursor: Any, model: type[models.Model], tenant_id: int, subquery: tuple[str, list[Any]] | None = None) -> int:
    """Delete the tenant's rows of `model` (those matching `subquery`, or all of them), after
    their dependants: Django's on_delete done in SQL, because the ORM would load every row first.
    Dependants reached by a non-null CASCADE from "all of the tenant's rows" are themselves all of
    the tenant's rows, which keeps the big deletes on the tenant_id index."""
    # SQL text below is built from model metadata only (quoted identifiers); values are parameters.
    qn = connection.ops.quote_name
    table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)  # type: ignore[union-attr]
    conditions, params = [], []
    if _is_tenant_owned(model):
        conditions.append("tenant_id = %s")
        params.append(tenant_id)
    if subquery is not None:
        conditions.append(subquery[0])
        params.extend(subquery[1])
    condition = " AND ".join(conditions)
    for relation in _dependants(model):
        related, field = relation.related_model, relation.field
        on_delete = field.remote_field.on_delete
        selected = (f"{qn(field.column)} IN (SELECT {pk} FROM {table} WHERE {condition})", params)  # noqa: S608
        if on_delete is models.CASCADE:
            whole = subquery is None and not field.null and _is_tenant_owned(related)
            _purge(cursor, related, tenant_id, None if whole else selected)
        elif on_delete is models.SET_NULL:
            sql = f"UPDATE {qn(related._meta.db_table)} SET {qn(field.column)} = NULL WHERE {selected[0]}"  # noqa: S608
            cursor.execute(sql, selected[1])
    if subquery is None and not _dependants(model) and _only_tenant_in(cursor, model, tenant_id):
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
        count = cursor.fetchone()[0]
        cursor.execute(f"TRUNCATE {table}")
        return count
    cursor.execute(f"DELETE FROM {table} WHERE {condition}", params)  # noqa: S608
    return cursor.rowcount


def _only_tenant_in(cursor: Any, model: type[models.Model], tenant_id: int) -> bool:
    """True when TRUNCATE may replace DELETE: PostgreSQL and no other tenant's rows in the table
    (two index range scans, not a scan of the tenant's millions of rows)."""
    if connection.vendor != "postgresql" or not _is_tenant_owned(model):
        return False
    table = connection.ops.quote_name(model._meta.db_table)
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE tenant_id < %s) OR EXISTS (SELECT 1 FROM {table} WHERE tenant_id > %s)",  # noqa: S608
        [tenant_id, tenant_id],
    )
    return not cursor.fetchone()[0]


def summarize(counts: dict[str, Any]) -> str:
    keys = ("customers", "companies", "orders", "order_lines", "events", "consents")
    return ", ".join(f"{counts.get(k, 0):,} {k.replace('_', ' ')}" for k in keys)

