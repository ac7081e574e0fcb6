"""CSV import of customers, orders and events: read a file, map its columns, write through the batch services.
Other apps add kinds of their own with `register_kind` (the offers app: products).

A mapping is a JSON object. Each target field (`TARGETS`, plus `attributes.<key>` for customers
and `properties.<key>` for events) names a source column: its header name, its 0-based index
(files without a header), or a fixed value `{"value": "..."}`. The other keys are file options
(`OPTION_KEYS`). The UCI Online Retail file, for example:

    {"external_id": "InvoiceNo", "customer_external_id": "CustomerID", "ordered_at": "InvoiceDate",
     "line.sku": "StockCode", "line.name": "Description", "line.quantity": "Quantity",
     "line.unit_price": "UnitPrice", "group_by": true, "cancelled_if_prefix": "C",
     "default_currency": "GBP", "integer_ids": true}

Rules:
- Validation and writing belong to the services (`upsert_customers`, `ingest_events`,
  `record_orders`); this module only turns cells into the raw rows they take, and their per-row
  refusals into a line-numbered error report.
- The file is read twice. The first pass decodes all of it and counts records, so a wrong
  encoding or a missing column stops the import before anything is written.
- Each chunk is written in its own transaction (the service's): a failure keeps the chunks
  before it and reports the line where it stopped. The services write a chunk set-based on
  PostgreSQL (COPY into a temporary table, then one INSERT ... ON CONFLICT / UPDATE), with the
  ORM elsewhere (embedded SQLite).
- Events' first/last seen are widened once per customer after the chunks (every SEEN_FLUSH
  customers, and when the import stops), not in every chunk a customer appears in.
- Customer rows are validated by the service's `clean_customer_row` in the reading thread, which
  runs while the writer waits on the database (`_Pacer`); the writer then only merges and writes.
  Events are validated there too, and those of the common shape (a customer_external_id) staged
  as rows for `ingest_staged_events`, which resolves, inserts and gathers first/last seen in the
  database: the writing thread does nothing per event (on PostgreSQL; `ingest_events` elsewhere).
- Re-running the same file changes nothing: customers are upserted by external_id, events are
  deduplicated by event_id, orders by external_id, which is derived from the mapped cells and
  the occurrence index when the file has none (so re-run with the same mapping).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import hashlib
import io
import json
import logging
import queue
import re
import secrets
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import IO, TYPE_CHECKING, Any, Protocol

from django.core.files.storage import default_storage
from django.db import DatabaseError, connection
from django.utils import translation
from django.utils.text import get_valid_filename
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from b2p_platform.exceptions import DomainError
from customers import services
from customers.intake import RowInvalid, clean_event, clean_order
from customers.services import events as event_services
from tenants.models import Tenant

if TYPE_CHECKING:
    from tenants.jobs import JobContext

logger = logging.getLogger(__name__)

KINDS: list[str] = ["customers", "orders", "events"]  # and those other apps register (`register_kind`)
TARGETS: dict[str, tuple[str, ...]] = {
    "customers": (
        "external_id", "email", "phone", "first_name", "last_name", "kind", "company.name", "company.external_id",
        "company.industry", "company.size", "company_role", "tags", "locale", "timezone",
    ),
    "orders": (
        "external_id", "customer_external_id", "email", "ordered_at", "status", "currency", "total",
        "line.sku", "line.name", "line.quantity", "line.unit_price",
    ),
    "events": ("event_id", "type", "customer_external_id", "email", "occurred_at"),
}
# Targets of the form "<prefix><key>": any number of custom attributes or event properties.
EXTRA_PREFIX: dict[str, str] = {"customers": "attributes.", "events": "properties."}
TARGET_LABELS: dict[str, Any] = {
    "external_id": gettext_lazy("External id"),
    "email": gettext_lazy("Email"),
    "phone": gettext_lazy("Phone"),
    "first_name": gettext_lazy("First name"),
    "last_name": gettext_lazy("Last name"),
    "kind": gettext_lazy("Kind (consumer or business_buyer)"),
    "company.name": gettext_lazy("Company name"),
    "company.external_id": gettext_lazy("Company external id"),
    "company.industry": gettext_lazy("Company industry"),
    "company.size": gettext_lazy("Company size"),
    "company_role": gettext_lazy("Role at the company"),
    "tags": gettext_lazy("Tags (comma separated)"),
    "locale": gettext_lazy("Language"),
    "timezone": gettext_lazy("Time zone"),
    "customer_external_id": gettext_lazy("Customer external id"),
    "ordered_at": gettext_lazy("Order date"),
    "status": gettext_lazy("Status"),
    "currency": gettext_lazy("Currency"),
    "total": gettext_lazy("Total"),
    "line.sku": gettext_lazy("Line: product code"),
    "line.name": gettext_lazy("Line: product name"),
    "line.quantity": gettext_lazy("Line: quantity"),
    "line.unit_price": gettext_lazy("Line: unit price"),
    "event_id": gettext_lazy("Event id"),
    "type": gettext_lazy("Event type"),
    "occurred_at": gettext_lazy("Event time"),
}
# Header names (lower-case, letters and digits only) that pre-fill a target in the wizard and in
# `import_csv` without --mapping. The target's own name always matches too.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "external_id": ("id", "customerid", "clientid", "externalid", "userid"),
        "email": ("emailaddress", "mail", "email"),
        "phone": ("phonenumber", "mobile", "tel", "telephone"),
        "first_name": ("firstname", "givenname", "first"),
        "last_name": ("lastname", "surname", "familyname", "last"),
        "company.name": ("company", "companyname", "organization", "organisation"),
        "company.external_id": ("companyid", "companyexternalid"),
        "company.industry": ("industry", "companyindustry"),
        "company.size": ("companysize", "size"),
        "company_role": ("role", "jobtitle", "position"),
        "locale": ("language", "lang"),
    },
    "orders": {
        "external_id": ("invoiceno", "invoice", "orderid", "orderno", "ordernumber", "order"),
        "customer_external_id": ("customerid", "customer", "clientid", "userid"),
        "ordered_at": ("invoicedate", "orderdate", "date", "orderedat", "createdat", "purchasedat"),
        "total": ("amount", "sum", "ordertotal", "total"),
        "line.sku": ("stockcode", "sku", "productid", "productcode", "product"),
        "line.name": ("description", "productname", "itemname", "title"),
        "line.quantity": ("quantity", "qty"),
        "line.unit_price": ("unitprice", "price"),
    },
    "events": {
        "event_id": ("eventid",),
        "type": ("event", "eventtype", "eventname", "action"),
        "customer_external_id": ("customerid", "customer", "clientid", "userid", "externalid"),
        "occurred_at": ("timestamp", "time", "date", "datetime", "occurredat", "createdat"),
    },
}
OPTION_KEYS = frozenset({
    "delimiter", "header", "encoding", "date_format", "date_timezone", "default_currency", "cancelled_if_prefix",
    "group_by", "integer_ids", "clear_blank",
})
DELIMITERS: dict[str, str] = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|", "whitespace": "whitespace", "auto": "auto"}
DEFAULT_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y%m%d",
)
ID_TARGETS = frozenset({"external_id", "customer_external_id", "company.external_id", "event_id"})
DATE_TARGETS = frozenset({"ordered_at", "occurred_at"})
# Rows (orders for orders) per chunk, each written in one transaction. Bigger than the API's
# batches (MAX_BATCH): per-chunk costs (round trips, commits) then weigh less, for a few MB of memory.
CHUNK_ROWS = {"customers": 4000, "orders": 4000, "events": 4000}
SEEN_FLUSH = 200_000  # customers whose first/last seen an events import widens at once (see ingest_events' defer_seen); ~40 MB
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
PREVIEW_ROWS = 5
SAMPLE_ERRORS = 20
_EXTRA_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FLOAT_ID_RE = re.compile(r"^-?\d+\.0+$")


class ImportFileError(DomainError):
    """The file or the mapping cannot be imported at all; nothing was written."""

    code = "import_invalid"


class ImportStopped(DomainError):
    """The import stopped part-way; the chunks before `line` are stored."""

    code = "import_stopped"

    def __init__(self, message: str, *, summary: dict[str, Any], report: bytes | None) -> None:
        super().__init__(message)
        self.summary = summary
        self.report = report


class Progress(Protocol):
    def set_total(self, total: int) -> None: ...

    def advance(self, processed: int = 1, *, errors: int = 0) -> None: ...


Opener = Callable[[], IO[bytes]]


# Kinds from other apps -------------------------------------------------------------------------
# Another app adds a kind (offers adds "products") from its AppConfig.ready(), so this app never
# imports it: the kind names its targets and a writer for a chunk of raw rows; reading, mapping,
# chunks, the error report and the job are this module's, as for the kinds above.


class KindWriter(Protocol):
    def __call__(self, *, tenant: Tenant, rows: list[dict[str, Any]]) -> Written: ...


@dataclass(frozen=True)
class ImportKind:
    name: str
    label: Any  # what the wizard's "The file holds" shows
    targets: tuple[str, ...]
    labels: dict[str, Any]  # target → label in the wizard
    required: dict[str, Any]  # target → why it must be mapped
    # Writes one chunk in its own transaction, validating each row; refusals by index in the chunk.
    write: KindWriter
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unique: str | None = None  # the upsert key: a value may appear once per file
    extra_prefix: str | None = None  # e.g. "attributes.": extra columns become keys of that object
    keep_unmapped: bool = False  # columns not mapped to a target are kept as extras by default
    id_targets: frozenset[str] = frozenset()  # read "123.0" as "123" with integer_ids
    chunk_rows: int = 2000


REGISTERED: dict[str, ImportKind] = {}


def register_kind(kind: ImportKind) -> None:
    """Add (or replace) a kind: the wizard, `import_csv` and the import job then offer it."""
    REGISTERED[kind.name] = kind
    if kind.name not in KINDS:
        KINDS.append(kind.name)  # in place: whoever holds the list sees the kind
    TARGETS[kind.name] = kind.targets
    SYNONYMS[kind.name] = kind.synonyms
    CHUNK_ROWS[kind.name] = kind.chunk_rows
    if kind.extra_prefix:
        EXTRA_PREFIX[kind.name] = kind.extra_prefix


# The mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    """A fixed value for every row, written `{"value": "..."}` in the mapping."""

    value: str


Ref = str | int | Const


@dataclass
class ImportMapping:
    kind: str
    fields: dict[str, Ref]
    delimiter: str = "auto"
    header: bool = True
    encoding: str = "utf-8"
    date_formats: tuple[str, ...] = ()
    date_timezone: str = "UTC"
    default_currency: str = ""
    cancelled_if_prefix: str = ""
    group_by: Ref | None = None
    integer_ids: bool = False
    clear_blank: bool = False

    def as_json(self) -> dict[str, Any]:
        """The mapping as JSON, in the same format `parse_mapping` reads (stored in JobRun.params)."""
        data: dict[str, Any] = {k: _ref_json(v) for k, v in self.fields.items()}
        data.update(delimiter=self.delimiter, header=self.header, encoding=self.encoding)
        if self.date_formats:
            data["date_format"] = list(self.date_formats)
        if self.date_timezone != "UTC":
            data["date_timezone"] = self.date_timezone
        for name in ("default_currency", "cancelled_if_prefix"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.group_by is not None:
            data["group_by"] = _ref_json(self.group_by)
        if self.integer_ids:
            data["integer_ids"] = True
        if self.clear_blank:
            data["clear_blank"] = True
        return data


def _ref_json(ref: Ref) -> Any:
    return {"value": ref.value} if isinstance(ref, Const) else ref


def target_fields(kind: str) -> list[tuple[str, str]]:
    """(target, label) pairs of a kind, for the wizard's selects."""
    labels = REGISTERED[kind].labels if kind in REGISTERED else TARGET_LABELS
    return [(t, str(labels.get(t, t))) for t in TARGETS[kind]]


def parse_mapping(kind: Any, data: Any) -> ImportMapping:
    """Check a mapping (a dict or its JSON text) and return it typed; every problem is listed at once."""
    if kind not in KINDS:
        raise ImportFileError(_("Choose what the file holds: %(kinds)s.") % {"kinds": ", ".join(KINDS)}, field="kind")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ImportFileError(_("The mapping is not valid JSON: %(error)s") % {"error": exc}, field="mapping") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ImportFileError(_("The mapping must be a JSON object of target field: column."), field="mapping")
    problems: list[str] = []
    mapping = ImportMapping(kind=kind, fields={})
    _parse_options(mapping, data, problems)
    prefix = EXTRA_PREFIX.get(kind)
    for target, value in data.items():
        if target in OPTION_KEYS:
            continue
        if target not in TARGETS[kind] and not (prefix and target.startswith(prefix)):
            allowed = ", ".join(TARGETS[kind]) + (f", {prefix}<key>" if prefix else "")
            problems.append(_("Unknown target field %(field)r for %(kind)s; use one of: %(allowed)s.")
                            % {"field": target, "kind": kind, "allowed": allowed})
            continue
        if prefix and target.startswith(prefix) and not _EXTRA_KEY_RE.match(target[len(prefix):]):
            problems.append(_("%(field)r: after %(prefix)s use letters, digits, _ and - only.") % {"field": target, "prefix": prefix})
            continue
        ref = _parse_ref(value)
        if ref is None:
            problems.append(_("%(field)r: give a column name, a 0-based column number or {\"value\": \"...\"}.") % {"field": target})
            continue
        if isinstance(ref, str) and not mapping.header:
            problems.append(_("%(field)r: the file has no header, so name its column by number (0 is the first).") % {"field": target})
            continue
        mapping.fields[target] = ref
    problems += _missing_targets(mapping)
    if problems:
        raise ImportFileError(" ".join(problems), field="mapping")
    return mapping


def parse_options(kind: Any, data: dict[str, Any]) -> ImportMapping:
    """Only the file options of a mapping (delimiter, header, encoding...), with no target fields yet."""
    if kind not in KINDS:
        raise ImportFileError(_("Choose what the file holds: %(kinds)s.") % {"kinds": ", ".join(KINDS)}, field="kind")
    problems: list[str] = []
    mapping = ImportMapping(kind=kind, fields={})
    _parse_options(mapping, {k: v for k, v in data.items() if k in OPTION_KEYS and k != "group_by"}, problems)
    if problems:
        raise ImportFileError(" ".join(problems), field="mapping")
    return mapping


def _parse_ref(value: Any) -> Ref | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, dict) and set(value) == {"value"} and isinstance(value["value"], str | int | float):
        return Const(str(value["value"]))
    return None


def _parse_options(mapping: ImportMapping, data: dict[str, Any], problems: list[str]) -> None:
    delimiter = data.get("delimiter", "auto")
    if not isinstance(delimiter, str) or delimiter not in DELIMITERS:
        problems.append(_("delimiter: use one of \",\", \";\", \"\\t\", \"|\", \"whitespace\" or \"auto\"."))
    else:
        mapping.delimiter = DELIMITERS[delimiter]
    header = data.get("header", True)
    if not isinstance(header, bool):
        problems.append(_("header: use true or false."))
    else:
        mapping.header = header
    encoding = data.get("encoding", "utf-8")
    try:
        mapping.encoding = codecs.lookup(str(encoding)).name
    except LookupError:
        problems.append(_("encoding: unknown encoding %(name)r (try utf-8, cp1251 or latin-1).") % {"name": encoding})
    formats = data.get("date_format") or ()
    if isinstance(formats, str):
        formats = (formats,)
    if not isinstance(formats, list | tuple) or not all(isinstance(f, str) and _is_date_format(f) for f in formats):
        problems.append(_("date_format: give a strptime format such as %(example)s, or a list of them.")
                        % {"example": '"%Y%m%d" or "%d.%m.%Y %H:%M"'})
    else:
        mapping.date_formats = tuple(formats)
    zone = data.get("date_timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(zone))
        mapping.date_timezone = str(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(_("date_timezone: unknown time zone %(name)r.") % {"name": zone})
    currency = data.get("default_currency", "")
    if currency and not (isinstance(currency, str) and re.match(r"^[A-Za-z]{3}$", currency)):
        problems.append(_("default_currency: use a three-letter ISO 4217 code such as EUR."))
    else:
        mapping.default_currency = (currency or "").upper()
    prefix = data.get("cancelled_if_prefix", "")
    if not isinstance(prefix, str):
        problems.append(_("cancelled_if_prefix: give the text that starts cancelled order ids, e.g. \"C\"."))
    else:
        mapping.cancelled_if_prefix = prefix
    group_by = data.get("group_by")
    if group_by is not None and group_by is not False:
        if mapping.kind != "orders":
            problems.append(_("group_by is for orders: rows with the same order id become one order with several lines."))
        elif group_by is True:
            mapping.group_by = data.get("external_id") if isinstance(data.get("external_id"), str | int) else None
            if mapping.group_by is None:
                problems.append(_("group_by: true groups by the external_id column; map external_id to a column."))
        else:
            ref = _parse_ref(group_by)
            if ref is None or isinstance(ref, Const):
                problems.append(_("group_by: name the column that holds the order id, or use true."))
            else:
                mapping.group_by = ref
    for flag in ("integer_ids", "clear_blank"):
        value = data.get(flag, False)
        if not isinstance(value, bool):
            problems.append(_("%(option)s: use true or false.") % {"option": flag})
        else:
            setattr(mapping, flag, value)


def _is_date_format(fmt: str) -> bool:
    if "%" not in fmt:
        return False
    sample = datetime(2001, 2, 3, 4, 5, 6)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError:
        return False
    return True


def _missing_targets(mapping: ImportMapping) -> list[str]:
    mapped = set(mapping.fields)
    if mapping.kind in REGISTERED:
        return [str(why) for target, why in REGISTERED[mapping.kind].required.items() if target not in mapped]
    problems = []
    if mapping.kind == "customers" and "external_id" not in mapped:
        problems.append(_("Map external_id: customers are matched by it, so a re-run updates instead of duplicating."))
    if mapping.kind in ("orders", "events") and not mapped & {"customer_external_id", "email"}:
        problems.append(_("Map customer_external_id or email: each row must name its customer."))
    if mapping.kind == "orders":
        if "ordered_at" not in mapped:
            problems.append(_("Map ordered_at: the date of each order."))
        if "total" not in mapped and "line.unit_price" not in mapped:
            problems.append(_("Map total, or the line fields (line.sku, line.unit_price) to add the total up."))
        if mapped & {"line.name", "line.quantity", "line.unit_price"} and "line.sku" not in mapped:
            problems.append(_("Map line.sku too: every order line needs a product code."))
    if mapping.kind == "events":
        if "type" not in mapped:
            problems.append(_("Map type, or give a fixed one: {\"type\": {\"value\": \"purchase\"}}."))
        if "occurred_at" not in mapped and "event_id" not in mapped:
            problems.append(_("Map occurred_at (or event_id): without either a re-run would store the events again."))
    return problems


def suggest_mapping(kind: str, columns: list[str]) -> dict[str, int]:
    """Target → column index, for columns whose names say what they hold (the wizard's pre-fill)."""

    def norm(name: str) -> str:
        return re.sub(r"[^a-z0-9]", "", name.lower())

    names = [norm(c) for c in columns]
    suggested: dict[str, int] = {}
    taken: set[int] = set()
    for target in TARGETS[kind]:
        for candidate in (norm(target), *SYNONYMS.get(kind, {}).get(target, ())):
            index = next((i for i, n in enumerate(names) if n == candidate and i not in taken), None)
            if index is not None:
                suggested[target] = index
                taken.add(index)
                break
    return suggested


def suggest_extras(kind: str, columns: list[str]) -> dict[str, int]:
    """Columns already named `attributes.<key>` / `properties.<key>` (as the export writes them)."""
    prefix = EXTRA_PREFIX.get(kind)
    if prefix is None:
        return {}
    return {c.strip(): i for i, c in enumerate(columns)
            if c.strip().startswith(prefix) and _EXTRA_KEY_RE.match(c.strip()[len(prefix):])}


def extra_target(kind: str, column: str) -> str | None:
    """`attributes.<key>` / `properties.<key>` for a column kept as is, or None for orders."""
    prefix = EXTRA_PREFIX.get(kind)
    if prefix is None:
        return None
    name = column.strip()
    if name.startswith(prefix) and _EXTRA_KEY_RE.match(name[len(prefix):]):
        return name
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_").lower()[:64]
    return f"{prefix}{key or 'column'}"


# Reading the file ------------------------------------------------------------------------------


def _text(opener: Opener, encoding: str, *, errors: str = "strict") -> io.TextIOWrapper:
    # utf-8-sig reads plain UTF-8 too and drops the byte-order mark spreadsheets put first.
    name = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    return io.TextIOWrapper(opener(), encoding=name, errors=errors, newline="")


def check_encoding(opener: Opener, encoding: str) -> None:
    """Decode the whole file once, in blocks; a wrong encoding is an ImportFileError naming the line."""
    name = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    decoder = codecs.getincrementaldecoder(name)()
    line = 1
    with opener() as raw:
        while True:
            block = raw.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                line += block.count(b"\n", 0, max(exc.start, 0))
                raise ImportFileError(_encoding_message(encoding, line, block[exc.start:exc.start + 40]), field="encoding") from exc
            if not block:
                return
            line += block.count(b"\n")


def _encoding_message(encoding: str, line: int, sample: bytes) -> str:
    # Cyrillic letters in cp1251 are bytes 0xC0-0xFF; Western accents in latin-1 are scattered.
    high = [b for b in sample if b >= 0x80]
    cyrillic = bool(high) and sum(b >= 0xC0 for b in high) / len(high) > 0.6
    suggestion = "cp1251, latin-1" if cyrillic else "latin-1, cp1251"
    return _(
        "The file is not in the %(encoding)s encoding (line %(line)s has bytes it cannot read). "
        "Choose the file's encoding and try again, for example: %(suggestion)s."
    ) % {"encoding": encoding, "line": line, "suggestion": suggestion}


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits the first lines into the same number (>1) of columns, most columns first."""
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_width = ",", 1
    for delimiter in (",", ";", "\t", "|"):
        try:
            widths = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:  # e.g. a field over the size limit: not this delimiter's problem to solve here
            continue
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            best, best_width = delimiter, width
    if best_width == 1:
        widths = {len(line.split()) for line in lines}
        if len(widths) == 1 and widths.pop() > 1:
            return "whitespace"
    return best


def guess_header(first_row: list[str]) -> bool:
    """A first row of nothing but numbers and dates is data, not a header."""
    return not all(re.match(r"^[\d\s.,:/+-]*$", cell) for cell in first_row)


def _records(text: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each non-blank record."""
    if delimiter == "whitespace":
        for number, line in enumerate(text, 1):
            cells = line.split()
            if cells:
                yield number, cells
        return
    reader = csv.reader(text, delimiter=delimiter)
    last = 0
    for cells in reader:
        start, last = last + 1, reader.line_num
        if cells and (cells[0] or any(cells)):
            yield start, cells


@dataclass
class FilePreview:
    delimiter: str
    header: bool
    columns: list[str]
    rows: list[list[str]]
    width: int


def preview_file(opener: Opener, *, encoding: str, delimiter: str = "auto", header: bool | None = None) -> FilePreview:
    """The columns and first rows of a file, with the delimiter and header detected when not given."""
    with _text(opener, encoding, errors="replace") as text:
        sample = text.read(64 * 1024)
    if not sample.strip():
        raise ImportFileError(_("The file is empty."), field="file")
    if delimiter == "auto":
        delimiter = detect_delimiter(sample)
    with _text(opener, encoding, errors="replace") as text:
        try:
            head = [cells for _n, cells in _take(_records(text, delimiter), PREVIEW_ROWS + 1)]
        except csv.Error as exc:
            raise ImportFileError(_("The file cannot be read as CSV: %(error)s") % {"error": exc}, field="file") from exc
    if header is None:
        header = guess_header(head[0])
    width = max(len(r) for r in head)
    if header:
        columns = [c.strip() or f"#{i}" for i, c in enumerate(head[0])]
        rows = head[1:]
    else:
        columns = [f"#{i}" for i in range(width)]
        rows = head[:PREVIEW_ROWS]
    return FilePreview(delimiter=delimiter, header=header, columns=columns, rows=rows, width=width)


def _take(iterator: Iterator[Any], n: int) -> Iterator[Any]:
    for i, item in enumerate(iterator):
        if i >= n:
            return
        yield item


# Binding a mapping to a file --------------------------------------------------------------------


@dataclass
class _Slot:
    target: str
    container: str | None  # None (top level), "company", "attributes", "properties" or "line"
    key: str
    index: int | None
    const: str | None
    is_id: bool
    is_date: bool


@dataclass
class _Bound:
    slots: list[_Slot]
    labels: dict[str, str]  # target → the column it comes from, for error reports
    group_index: int | None
    header: list[str] | None


def _resolve(ref: Ref, header: list[str] | None, width: int, target: str, problems: list[str]) -> int | None:
    if isinstance(ref, int):
        if ref >= width:
            problems.append(_("%(field)s: column %(index)s is not in the file (it has %(width)s columns, numbered from 0).")
                            % {"field": target, "index": ref, "width": width})
            return None
        return ref
    assert isinstance(ref, str) and header is not None
    if ref in header:
        return header.index(ref)
    folded = [h.strip().lower() for h in header]
    if ref.strip().lower() in folded:
        return folded.index(ref.strip().lower())
    problems.append(_("%(field)s: there is no column %(column)r in the file.") % {"field": target, "column": ref})
    return None


def bind(mapping: ImportMapping, header: list[str] | None, width: int) -> _Bound:
    """Resolve the mapping's columns against the file's header; missing columns are an ImportFileError."""
    problems: list[str] = []
    slots: list[_Slot] = []
    labels: dict[str, str] = {}
    id_targets = REGISTERED[mapping.kind].id_targets if mapping.kind in REGISTERED else frozenset()
    for target, ref in mapping.fields.items():
        container, _sep, key = target.partition(".") if "." in target else (None, "", target)
        index = None if isinstance(ref, Const) else _resolve(ref, header, width, target, problems)
        if index is None and not isinstance(ref, Const):
            continue
        if index is None:
            labels[target] = _("fixed value")
        else:
            labels[target] = header[index] if header else f"#{index}"
        slots.append(_Slot(target=target, container=container, key=key, index=index,
                           const=ref.value if isinstance(ref, Const) else None,
                           is_id=target in ID_TARGETS or target in id_targets, is_date=target in DATE_TARGETS))
    group_index = None
    if mapping.group_by is not None:
        assert not isinstance(mapping.group_by, Const)
        group_index = _resolve(mapping.group_by, header, width, "group_by", problems)
    if problems:
        found = ", ".join(repr(h) for h in header) if header else _("%(width)s unnamed columns") % {"width": width}
        raise ImportFileError(" ".join(problems) + " " + _("Columns found: %(columns)s.") % {"columns": found}, field="mapping")
    return _Bound(slots=slots, labels=labels, group_index=group_index, header=header)


_MISSING = object()


class _DateParser:
    """Cells to aware datetimes with the mapping's formats (ISO 8601 and common ones by default)."""

    def __init__(self, formats: tuple[str, ...], zone: str) -> None:
        self.formats = formats
        self.zone: tzinfo = UTC if zone == "UTC" else zoneinfo.ZoneInfo(zone)
        self.cache: dict[str, datetime | None] = {}

    def __call__(self, text: str) -> datetime | None:
        moment = self.cache.get(text, _MISSING)
        if moment is _MISSING:
            moment = self._parse(text)
            if len(self.cache) < 200_000:  # dates repeat a lot (one per invoice, per day); bound the memory
                self.cache[text] = moment
        return moment  # type: ignore[return-value]

    def _parse(self, text: str) -> datetime | None:
        moment = None
        formats = self.formats
        if not formats and self.zone is UTC:
            # The common case first, in one call: a time without offset, read as UTC. Appending
            # the offset is several times cheaper than .replace(tzinfo=...) after parsing.
            try:
                aware = datetime.fromisoformat(text + "+00:00")
            except ValueError:
                pass
            else:
                if aware.tzinfo is not None:  # a bare date ignores the suffix
                    return aware
        if not formats:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                formats = DEFAULT_DATE_FORMATS
            else:
                if moment.tzinfo is None and self.zone is UTC:
                    # Parsing again with the offset is several times cheaper than .replace(tzinfo=...).
                    with contextlib.suppress(ValueError):
                        aware = datetime.fromisoformat(text + "+00:00")
                        if aware.tzinfo is not None:  # a bare date ignores the suffix
                            return aware
        for fmt in formats:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment

    def message(self) -> str:
        if self.formats:
            return _("Not a date in the format %(format)s.") % {"format": " or ".join(self.formats)}
        return _("Not a date: use ISO 8601 (2026-05-01 12:30) or set date_format in the mapping.")


# Running an import ----------------------------------------------------------------------------


@dataclass
class _Item:
    """One row for a service (an order may come from several source rows), or a row refused before it."""

    raw: dict[str, Any] | None
    sources: list[tuple[int, list[str]]]
    errors: dict[str, list[str]] | None = None
    line_rows: list[int] = field(default_factory=list)  # for orders: source row of each line
    cleaned: Any = None  # validated ahead: a customer's services.CleanCustomer, an event's or order's clean_* outcome
    staged: event_services.StagedEvent | None = None  # for events of the common shape: their staging row


@dataclass
class _StagedChunk:
    """The valid items of an events chunk, all staged or refused by clean_event (see _staged_chunk)."""

    events: event_services.StagedEvents
    positions: list[int]  # index among the valid items of each staged event
    rejected: dict[int, dict[str, list[str]]]  # clean_event's refusals, by index among the valid items


class _Chunk(list[_Item]):
    """Items for one service call, with what the reading thread worked out for the writer."""

    valid: list[_Item]  # the items not refused while reading, in order
    rows: int  # source rows covered
    staged: _StagedChunk | None = None


def _staged_chunk(valid: list[_Item]) -> _StagedChunk | None:
    """The chunk as ingest_staged_events takes it, if each of its events has the common shape or was refused."""
    rows: list[event_services.StagedEvent] = []
    positions: list[int] = []
    rejected: dict[int, dict[str, list[str]]] = {}
    for index, item in enumerate(valid):
        if item.staged is not None:
            rows.append(item.staged)
            positions.append(index)
        elif isinstance(item.cleaned, RowInvalid):
            rejected[index] = item.cleaned.errors
        else:
            return None
    return _StagedChunk(event_services.stage_events(rows), positions, rejected)


@dataclass
class _Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: int = 0
    orders_rejected: int = 0
    lines: int = 0
    new_customers: int = 0


@dataclass
class Written:
    """What a service (or a registered kind's writer) did with one chunk."""

    rejected: dict[int, dict[str, list[str]]]
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    new_customers: int = 0
    seen: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)  # events: first/last seen bounds to widen


class _ErrorReport:
    """The rejected rows as CSV: line, field, column, error, then the row's own cells."""

    def __init__(self, header: list[str] | None) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+t", encoding="utf-8", newline="")  # noqa: SIM115
        self.writer = csv.writer(self.file)
        self.writer.writerow(["line", "field", "column", "error", *(header or [])])
        self.count = 0
        self.samples: list[dict[str, Any]] = []

    def add(self, line: int, errors: dict[str, list[str]], cells: list[str], labels: dict[str, str]) -> None:
        fields = [f for f in errors if f != "non_field_errors"]
        columns = sorted({labels[t] for f in fields if (t := _target_of(f)) in labels})
        message = "; ".join(f"{f}: {' '.join(m)}" if f != "non_field_errors" else " ".join(m) for f, m in errors.items())
        self.writer.writerow([line, ", ".join(fields), ", ".join(columns), message, *cells])
        self.count += 1
        if len(self.samples) < SAMPLE_ERRORS:
            self.samples.append({"line": line, "error": message})

    def content(self) -> bytes | None:
        if not self.count:
            return None
        self.file.seek(0)
        return self.file.read().encode("utf-8")


def _target_of(error_field: str) -> str:
    """The mapping target an error of the services is about: lines.3.sku → line.sku."""
    parts = error_field.split(".")
    if parts[0] == "lines" and len(parts) == 3:
        return f"line.{parts[2]}"
    return error_field


class ImportRun:
    """One pass over a file: map rows, hand chunks to the kind's service, collect per-row errors."""

    def __init__(self, *, tenant: Tenant, mapping: ImportMapping, opener: Opener, progress: Progress | None = None,
                 chunk_size: int | None = None) -> None:
        self.tenant = tenant
        self.mapping = mapping
        self.opener = opener
        self.progress = progress
        self.chunk_size = max(1, min(chunk_size or CHUNK_ROWS[mapping.kind], CHUNK_ROWS[mapping.kind]))
        self.dates = _DateParser(mapping.date_formats, mapping.date_timezone)
        self.counts = _Counts()
        self.bound: _Bound
        self.report: _ErrorReport
        self.delimiter = mapping.delimiter
        self.group_last: dict[str, int] = {}
        self._pending_rows = 0
        self._pending_errors = 0
        self._seen: event_services.SeenBounds = {}
        self._pacer = _Pacer() if mapping.kind in ("customers", "events", "orders") else None  # the readers that validate ahead
        self._stage_events = mapping.kind == "events" and connection.vendor == "postgresql"

    # -- pass 1: decode everything, count records, find where each order's rows end
    def prepare(self) -> int:
        check_encoding(self.opener, self.mapping.encoding)
        preview = preview_file(self.opener, encoding=self.mapping.encoding, delimiter=self.mapping.delimiter,
                               header=self.mapping.header)
        self.delimiter = preview.delimiter
        self.bound = bind(self.mapping, preview.columns if self.mapping.header else None, preview.width)
        self.report = _ErrorReport(self.bound.header)
        self.group_last = {}
        total = 0
        gi = self.bound.group_index
        with _text(self.opener, self.mapping.encoding) as text:
            records = self._data_records(text)
            try:
                if gi is None:
                    for _record in records:
                        total += 1
                else:
                    last = self.group_last
                    for total, (_line, cells) in enumerate(records, 1):
                        if gi < len(cells) and (key := cells[gi].strip()):
                            last[key] = total - 1
            except csv.Error as exc:
                raise ImportFileError(_("The file cannot be read as CSV: %(error)s") % {"error": exc}, field="file") from exc
        return total

    def _data_records(self, text: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
        records = _records(text, self.delimiter)
        if self.mapping.header:
            next(records, None)
        return records

    # -- pass 2
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        total = self.prepare()
        if self.progress is not None:
            self.progress.set_total(total)
        items = {"customers": self._customer_items, "orders": self._order_items,
                 "events": self._event_items}.get(self.mapping.kind, self._registered_items)
        with _text(self.opener, self.mapping.encoding) as text, _unsynchronised_commits(), _old_objects_frozen(), \
                contextlib.closing(_prefetched(self._chunks(items(self._data_records(text))), pacer=self._pacer)) as chunks:
            for chunk in chunks:
                try:
                    outcome: Written | Exception = self._call_service(chunk)
                except Exception as exc:
                    outcome = exc
                self._write(chunk, outcome, started)
            self._widen_seen()
        self._advance()
        return self._summary(started)

    def _chunks(self, items: Iterable[_Item]) -> Iterator[_Chunk]:
        # Rows refused here ride along in the chunk, so the report lists every refusal in file order.
        chunk = _Chunk()
        valid = 0
        for item in items:
            chunk.append(item)
            valid += item.errors is None
            if valid >= self.chunk_size or len(chunk) >= 4 * self.chunk_size:
                yield self._finished(chunk)
                chunk, valid = _Chunk(), 0
        if chunk:
            yield self._finished(chunk)

    def _finished(self, chunk: _Chunk) -> _Chunk:
        """What the writer needs of a chunk besides its items, worked out here in the reading thread."""
        chunk.valid = [item for item in chunk if item.errors is None]
        chunk.rows = len(chunk) if self.bound.group_index is None else sum(len(item.sources) for item in chunk)
        if self._stage_events:
            chunk.staged = _staged_chunk(chunk.valid)
        return chunk

    def _summary(self, started: float, stopped_at: int | None = None) -> dict[str, Any]:
        c = self.counts
        seconds = time.monotonic() - started
        summary: dict[str, Any] = {
            "kind": self.mapping.kind, "rows": c.rows, "created": c.created, "updated": c.updated, "unchanged": c.unchanged,
            "duplicates": c.duplicates, "rejected": c.rejected,
            "errors": self.report.samples, "seconds": round(seconds, 2),
            "rows_per_second": round(c.rows / seconds) if seconds > 0 else None,
        }
        if stopped_at is None and self.mapping.kind not in REGISTERED:  # profiles events and orders created for unknown customer ids
            summary["new_customers"] = c.created if self.mapping.kind == "customers" else c.new_customers
        if self.mapping.kind == "orders":
            summary.update(orders_rejected=c.orders_rejected, lines=c.lines)
        if stopped_at is not None:
            summary["stopped_at_line"] = stopped_at
        return summary

    def _write(self, chunk: _Chunk, outcome: Written | Exception, started: float) -> None:
        """Count and report a chunk the service has written, or stop on its failure."""
        if isinstance(outcome, Exception):
            exc = outcome
            # The chunk's transaction rolled back; the chunks before it stay. Say where to resume.
            line = chunk[0].sources[0][0]
            logger.exception("import stopped at line %s for tenant %s", line, self.tenant.pk)
            self._widen_seen(quiet=True)
            self._advance()
            summary = self._summary(started, stopped_at=line)  # no query: the database may be what failed
            message = _("The import stopped at line %(line)s (%(error)s). Rows before it are stored; "
                        "fix the cause and import the file again — rows already stored are not changed twice.") % {
                "line": line, "error": f"{type(exc).__name__}: {exc}"[:300]}
            raise ImportStopped(message, summary=summary, report=self.report.content()) from exc
        c = self.counts
        c.created += outcome.created
        c.updated += outcome.updated
        c.unchanged += outcome.unchanged
        c.duplicates += outcome.duplicates
        c.new_customers += outcome.new_customers
        valid = chunk.valid
        if self.mapping.kind == "orders":
            c.lines += sum(len(item.line_rows) for i, item in enumerate(valid) if i not in outcome.rejected)
        for cid, (low, high) in outcome.seen.items():
            event_services.merge_bounds(self._seen, cid, low, high)
        c.rows += chunk.rows
        self._pending_rows += chunk.rows
        if outcome.rejected or len(valid) < len(chunk):
            by_item = {id(valid[index]): errors for index, errors in outcome.rejected.items()}
            for item in chunk:
                errors = item.errors if item.errors is not None else by_item.get(id(item))
                if errors is not None:
                    self._report(item, errors)
        self._advance()
        if len(self._seen) >= SEEN_FLUSH:
            self._widen_seen()

    def _widen_seen(self, *, quiet: bool = False) -> None:
        """Apply the first/last seen collected from the events written so far (one UPDATE per
        customer rather than per chunk: a file in time order would otherwise move every
        customer's last seen in every chunk they appear in)."""
        if not self._seen:
            return
        try:
            event_services.widen_seen(tenant=self.tenant, bounds=self._seen)
        except Exception:
            if not quiet:
                raise
            # Already stopping on another error; the events are stored and a re-run of the file widens these again.
            logger.warning("first/last seen not widened for %s customers of tenant %s", len(self._seen), self.tenant.pk, exc_info=True)

    def _call_service(self, whole: _Chunk) -> Written:
        """Write the valid items of one chunk through the kind's service (in its own transaction);
        what it did, with its refusals by index among those items."""
        chunk = whole.valid
        if not chunk:
            return Written(rejected={})
        if whole.staged is not None:
            seen: event_services.SeenBounds = {}
            events = event_services.ingest_staged_events(tenant=self.tenant, staged=whole.staged.events, source="import",
                                                         defer_seen=seen)
            rejected = dict(whole.staged.rejected)
            rejected.update((whole.staged.positions[r["index"]], r["errors"]) for r in events.rejected)
            return Written(rejected=rejected, created=events.accepted, duplicates=events.duplicates,
                           new_customers=events.new_customers, seen=seen)
        rows = [item.raw for item in chunk]
        if self.mapping.kind in REGISTERED:
            return REGISTERED[self.mapping.kind].write(tenant=self.tenant, rows=rows)
        if self.mapping.kind == "customers":
            result = services.upsert_customers(tenant=self.tenant, rows=[item.cleaned for item in chunk], source="import",
                                               with_objects=False)
            return Written(rejected=result.errors, created=result.created, updated=result.updated, unchanged=result.unchanged)
        if self.mapping.kind == "events":
            seen = {}
            events = services.ingest_events(tenant=self.tenant, rows=rows, source="import", defer_seen=seen, limit=len(rows),
                                            precleaned=[item.cleaned for item in chunk])
            return Written(rejected={r["index"]: r["errors"] for r in events.rejected}, created=events.accepted,
                           duplicates=events.duplicates, new_customers=events.new_customers, seen=seen)
        orders = services.record_orders(tenant=self.tenant, rows=rows, source="import", with_objects=False, limit=len(rows),
                                        precleaned=[item.cleaned for item in chunk])
        return Written(rejected={r["index"]: r["errors"] for r in orders.rejected}, created=orders.created, updated=orders.updated,
                       unchanged=orders.unchanged, new_customers=orders.new_customers)

    def _report(self, item: _Item, errors: dict[str, list[str]]) -> None:
        self.counts.rejected += len(item.sources)
        self._pending_errors += len(item.sources)
        if self.mapping.kind == "orders":
            self.counts.orders_rejected += 1
        if len(item.sources) == 1:
            line, cells = item.sources[0]
            self.report.add(line, errors, cells, self.bound.labels)
            return
        # An order of several rows: each line's own errors on its row, the order's on every row.
        order_errors = {f: m for f, m in errors.items() if not f.startswith("lines.")}
        per_row: dict[int, dict[str, list[str]]] = {}
        for f, m in errors.items():
            parts = f.split(".")
            if parts[0] == "lines" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(item.line_rows):
                per_row.setdefault(item.line_rows[int(parts[1])], {})[f] = m
        first_bad = item.sources[min(per_row)][0] if per_row else item.sources[0][0]
        for row_index, (line, cells) in enumerate(item.sources):
            row_errors = {**order_errors, **per_row.get(row_index, {})}
            if not row_errors:
                row_errors = {"non_field_errors": [_("Another row of this order is invalid (line %(line)s).") % {"line": first_bad}]}
            self.report.add(line, row_errors, cells, self.bound.labels)

    def _advance(self) -> None:
        if self.progress is not None and (self._pending_rows or self._pending_errors):
            self.progress.advance(self._pending_rows, errors=self._pending_errors)
        self._pending_rows = self._pending_errors = 0

    # -- cells to raw rows
    def _map(self, cells: list[str], *, skip_lines: bool = False) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
        """(row, line, errors): the raw row the service takes, an order line's fields, date errors."""
        raw: dict[str, Any] = {}
        line: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        width = len(cells)
        clear_blank = self.mapping.clear_blank and self.mapping.kind == "customers"
        integer_ids = self.mapping.integer_ids
        for slot in self.bound.slots:
            if slot.const is not None:
                value: Any = slot.const
            else:
                value = cells[slot.index].strip() if slot.index < width else ""  # type: ignore[operator]
            if not value:
                if not clear_blank:
                    continue
            elif "\x00" in value:  # PostgreSQL cannot store it: refuse the row, not the whole chunk
                errors[slot.target] = [_("Contains a NUL character; is this really a text file?")]
                continue
            elif slot.is_date:
                value = self.dates(value)
                if value is None:
                    errors[slot.target] = [self.dates.message()]
                    continue
            elif slot.is_id and integer_ids and _FLOAT_ID_RE.match(value):
                value = value.split(".", 1)[0]
            if slot.container is None:
                raw[slot.key] = value
            elif slot.container == "line":
                if not skip_lines:
                    line[slot.key] = value
            else:
                raw.setdefault(slot.container, {})[slot.key] = value
        return raw, line, errors

    def _customer_items(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        # Not a generator itself: the attribute definitions are read here, in the thread that owns
        # the database connection; the rows are then validated in the reading thread (see
        # _prefetched), while the chunk before them is being written.
        return self._cleaned_customer_items(records, services.attribute_definitions(tenant=self.tenant))

    def _cleaned_customer_items(self, records: Iterable[tuple[int, list[str]]], definitions: dict[str, Any]) -> Iterator[_Item]:
        # The service refuses an id twice in one batch; refusing it twice in one file keeps the
        # outcome independent of where the chunks happen to be cut.
        seen: dict[str, int] = {}
        tenant_id = self.tenant.pk
        assert self._pacer is not None
        pace = self._pacer.pace
        for n, (line, cells) in enumerate(records):
            if not n % 200:
                pace()
            raw, _line, errors = self._map(cells)
            external_id = raw.get("external_id")
            if external_id:
                first = seen.setdefault(external_id, line)
                if first != line:
                    errors["external_id"] = [_("Duplicate of line %(line)s: each customer once per file.") % {"line": first}]
            cleaned = None
            if not errors:
                try:
                    cleaned = services.clean_customer_row(raw, tenant_id=tenant_id, definitions=definitions)
                except RowInvalid as exc:
                    errors = exc.errors
            yield _Item(raw=raw, sources=[(line, cells)], errors=errors or None, cleaned=cleaned)

    def _registered_items(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        # A key repeated in the file is refused here, like customers' ids, so the outcome does not
        # depend on where the chunks happen to be cut.
        kind = REGISTERED[self.mapping.kind]
        unique = kind.unique
        default_currency = self.mapping.default_currency if "currency" in kind.targets else ""
        seen: dict[str, int] = {}
        for line, cells in records:
            raw, _line, errors = self._map(cells)
            if unique and (key := raw.get(unique)):
                first = seen.setdefault(key, line)
                if first != line:
                    errors[unique] = [_("Duplicate of line %(line)s: each %(field)s once per file.") % {"line": first, "field": unique}]
            if default_currency and "currency" not in raw:
                raw["currency"] = default_currency
            yield _Item(raw=raw, sources=[(line, cells)], errors=errors or None)

    def _event_items(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        # Repeated events (same event_id, or same content without one) are the service's duplicates.
        # Each event is validated here, on the reading thread, while the writer waits on the
        # database; the service then only resolves, stages and inserts (`precleaned`).
        assert self._pacer is not None
        pace = self._pacer.pace
        stage = self._stage_events
        reference = now()
        for n, (line, cells) in enumerate(records):
            if not n % 200:
                pace()
                reference = now()
            raw, _line, errors = self._map(cells)
            cleaned: Any = None
            staged = None
            if not errors:
                try:
                    cleaned = clean_event(raw, reference=reference)
                except RowInvalid as exc:
                    cleaned = exc
                else:
                    staged = event_services.staged_event(cleaned) if stage else None
            yield _Item(raw=raw, sources=[(line, cells)], errors=errors or None, cleaned=cleaned, staged=staged)

    def _order_items(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        # Not a generator itself: the tenant's currency is read here; the orders are then validated
        # in the reading thread (see _prefetched) while the chunk before them is being written.
        return self._cleaned_orders(self._raw_order_items(records), self.tenant.currency)

    def _cleaned_orders(self, items: Iterable[_Item], currency: str) -> Iterator[_Item]:
        assert self._pacer is not None
        pace = self._pacer.pace
        for n, item in enumerate(items):
            if not n % 200:
                pace()
            if item.errors is None:
                try:
                    item.cleaned = clean_order(item.raw, default_currency=currency)
                except RowInvalid as exc:
                    item.cleaned = exc
            yield item

    def _raw_order_items(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        if self.bound.group_index is not None:
            yield from self._grouped_orders(records)
            return
        derive = "external_id" not in self.mapping.fields
        basis = sorted((s.target, s.index) for s in self.bound.slots if s.index is not None)
        occurrences: dict[str, int] = {}
        seen: dict[str, int] = {}
        for line, cells in records:
            raw, order_line, errors = self._map(cells)
            if derive:
                # No order id in the file: the same cells give the same id, and the n-th copy of
                # identical rows gets n, so a re-run finds every order it stored before.
                text = "\x1f".join(f"{t}={cells[i].strip() if i < len(cells) else ''}" for t, i in basis)
                digest = hashlib.sha256(text.encode()).hexdigest()[:24]
                occurrences[digest] = n = occurrences.get(digest, 0) + 1
                raw["external_id"] = f"csv-{digest}-{n}"
            elif raw.get("external_id"):
                first = seen.setdefault(raw["external_id"], line)
                if first != line:
                    errors["external_id"] = [_("Duplicate of line %(line)s: group_by merges rows of one order.") % {"line": first}]
            self._order_status(raw)
            raw["lines"] = [order_line] if order_line else []
            if self.mapping.default_currency and "currency" not in raw:
                raw["currency"] = self.mapping.default_currency
            yield _Item(raw=raw, sources=[(line, cells)], errors=errors or None, line_rows=[0] if order_line else [])

    def _order_status(self, raw: dict[str, Any]) -> None:
        prefix = self.mapping.cancelled_if_prefix
        if prefix and str(raw.get("external_id", "")).startswith(prefix):
            raw["status"] = "cancelled"

    def _grouped_orders(self, records: Iterable[tuple[int, list[str]]]) -> Iterator[_Item]:
        """Rows sharing the order id become one order; it is emitted at its last row (found in pass 1),
        so a sorted file holds one order in memory at a time and a shuffled one at most all of them."""
        gi = self.bound.group_index
        assert gi is not None
        last = self.group_last
        open_groups: dict[str, list[tuple[int, list[str]]]] = {}
        for index, (line, cells) in enumerate(records):
            key = cells[gi].strip() if gi < len(cells) else ""
            if not key:
                yield self._order_from_rows([(line, cells)])
                continue
            rows = open_groups.setdefault(key, [])
            rows.append((line, cells))
            if last.get(key, index) <= index:
                del open_groups[key]
                yield self._order_from_rows(rows, key=key)
        for key, rows in open_groups.items():  # only if the file changed between the passes
            yield self._order_from_rows(rows, key=key)

    def _order_from_rows(self, rows: list[tuple[int, list[str]]], key: str | None = None) -> _Item:
        raw, _first_line, errors = self._map(rows[0][1], skip_lines=True)
        if key is not None:
            raw["external_id"] = key.split(".", 1)[0] if self.mapping.integer_ids and _FLOAT_ID_RE.match(key) else key
        lines: list[dict[str, Any]] = []
        line_rows: list[int] = []
        refs = set()
        for row_index, (_line, cells) in enumerate(rows):
            row, order_line, row_errors = self._map(cells)
            refs.add((row.get("customer_external_id"), row.get("email")))
            for f, m in row_errors.items():
                errors.setdefault(f, m)
            if order_line:
                lines.append(order_line)
                line_rows.append(row_index)
        if len(refs) > 1:
            errors["customer_external_id"] = [_("The rows of this order name different customers.")]
        self._order_status(raw)
        raw["lines"] = lines
        if self.mapping.default_currency and "currency" not in raw:
            raw["currency"] = self.mapping.default_currency
        return _Item(raw=raw, sources=rows, errors=errors or None, line_rows=line_rows)


@contextlib.contextmanager
def _unsynchronised_commits() -> Iterator[None]:
    """Chunks commit without waiting for the WAL to reach the disk (synchronous_commit off).

    Each chunk is its own transaction, and waiting for the flush took 20-40 ms per chunk on
    this machine's disk: a third of an import's time. The risk is the one PostgreSQL documents:
    a crash of the database server (not of this process) may lose the last fraction of a second
    of commits, never half a transaction. An import stays idempotent, so running the file again
    restores them; and the job's final status is committed synchronously after the setting is
    reset, which flushes every chunk before it: a job shown as done lost nothing.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # the connection failed: it is discarded, and its settings with it
            logger.warning("could not reset synchronous_commit", exc_info=True)


@contextlib.contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Leave the objects that existed before the import (Django, the app, caches: hundreds of
    thousands) out of the cyclic garbage collector while it runs. An import allocates millions of
    dicts and tuples, which trigger full collections, and each of those walked that whole heap: a
    fifth of an events import's CPU. Objects created meanwhile are collected as usual.

    The youngest generation is also collected every 50,000 allocations instead of every 700: the
    rows of the chunks in flight otherwise survive into the oldest generation, whose collections
    (a dozen per 50,000 customers, 30-90 ms each) then walk them again and again (measured: a
    customers import 2.7 → 2.25 s per 50,000 rows)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _Pacer:
    """Lets the reading thread work while the writing one waits (for the database or for rows).

    Both are Python and take turns on the GIL: a reader running while the writer runs Python
    halves the writer's speed, and the writer, with the database behind it, is what an import
    waits for (measured: a customer chunk's own Python took 47 ms instead of 5). A reader that
    calls pace() between rows instead runs in the writer's queries, which leave it the GIL.
    """

    def __init__(self) -> None:
        self._waiting = threading.Event()
        self._waiting.set()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        self._waiting.set()
        try:
            yield
        finally:
            self._waiting.clear()

    def while_querying(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        """A database execute wrapper for the writing thread."""
        with self.waiting():
            return execute(sql, params, many, context)

    def pace(self) -> None:
        # The timeout only bounds a wait whose wake-up was missed; it never blocks the writer.
        self._waiting.wait(timeout=0.05)

    def release(self) -> None:
        """Let the reader run freely from now on (the import is stopping)."""
        self._waiting.set()


def _prefetched(chunks: Iterator[list[_Item]], depth: int = 2, pacer: _Pacer | None = None) -> Iterator[list[_Item]]:
    """The chunks, read and mapped in a helper thread while this one waits on the database.

    Reading and mapping are pure Python and touch no database, so they overlap with the
    services' queries (psycopg2 lets go of the GIL while it waits). At most `depth` chunks wait
    in the queue; if the consumer stops early, the producer is told to stop too. With a
    `pacer`, a producer that paces itself runs while the consumer waits: on its queries (an
    execute wrapper on this thread's connection) or here for a chunk.
    """
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    language = translation.get_language()

    def produce() -> None:
        with translation.override(language):
            try:
                for chunk in chunks:
                    while not stop.is_set():
                        try:
                            box.put(chunk, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                box.put(done)
            except BaseException as exc:  # handed to the consumer, raised there
                box.put(exc)

    thread = threading.Thread(target=produce, name="csv-import-reader", daemon=True)
    thread.start()
    interval = sys.getswitchinterval()
    paced = contextlib.ExitStack()
    if pacer is not None:
        paced.enter_context(connection.execute_wrapper(pacer.while_querying))
        # A paced producer holds the GIL while the consumer waits on the database; when the query
        # returns, the consumer should have it back at once, not after the default 5 ms.
        sys.setswitchinterval(min(interval, 0.001))
    try:
        while True:
            if pacer is None:
                item = box.get()
            else:
                with pacer.waiting():
                    item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        paced.close()
        sys.setswitchinterval(interval)
        if pacer is not None:
            pacer.release()  # a paced producer notices the stop
        while thread.is_alive():
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


def run_import(*, tenant: Tenant, mapping: ImportMapping, opener: Opener, progress: Progress | None = None,
               chunk_size: int | None = None) -> tuple[dict[str, Any], bytes | None]:
    """Import a file; returns the summary (counts, sample errors) and the error report CSV, if any rows were refused."""
    run = ImportRun(tenant=tenant, mapping=mapping, opener=opener, progress=progress, chunk_size=chunk_size)
    summary = run.run()
    return summary, run.report.content()


def check_import(*, mapping: ImportMapping, opener: Opener) -> FilePreview:
    """Everything that would stop an import before it writes: encoding, CSV shape, mapped columns."""
    check_encoding(opener, mapping.encoding)
    preview = preview_file(opener, encoding=mapping.encoding, delimiter=mapping.delimiter, header=mapping.header)
    bind(mapping, preview.columns if mapping.header else None, preview.width)
    return preview


# Uploaded files ------------------------------------------------------------------------------


def store_upload(*, tenant: Tenant, name: str, content: IO[bytes]) -> str:
    """Keep an uploaded file in the default storage under imports/<tenant id>/; returns its path."""
    from django.core.files import File

    safe = get_valid_filename(name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])[:100] or "upload.csv"
    return default_storage.save(f"imports/{tenant.pk}/{secrets.token_hex(8)}/{safe}", File(content))


def upload_opener(*, tenant: Tenant, path: Any) -> Opener:
    """An opener for a stored upload of this tenant; a path outside imports/<tenant id>/ is refused."""
    if not isinstance(path, str) or ".." in path.split("/") or not path.startswith(f"imports/{tenant.pk}/"):
        raise ImportFileError(_("The uploaded file is missing; upload it again."), field="file")
    if not default_storage.exists(path):
        raise ImportFileError(_("The uploaded file is missing; upload it again."), field="file")
    return lambda: default_storage.open(path, "rb")


def delete_upload(*, tenant: Tenant, path: Any) -> None:
    if isinstance(path, str) and path.startswith(f"imports/{tenant.pk}/") and ".." not in path.split("/"):
        default_storage.delete(path)


def run_import_job(job: JobContext, opener: Opener | None = None) -> dict[str, Any]:
    """The `customers_import` job: params are kind, mapping, file_name and path (a stored upload) or an opener."""
    params = job.params
    mapping = parse_mapping(params.get("kind"), params.get("mapping"))
    path = params.get("path")
    if opener is None:
        opener = upload_opener(tenant=job.tenant, path=path)
    chunk_size = params.get("chunk_size") if isinstance(params.get("chunk_size"), int) else None
    try:
        summary, report = run_import(tenant=job.tenant, mapping=mapping, opener=opener, progress=job, chunk_size=chunk_size)
    except ImportStopped as exc:
        if exc.report:
            job.save_file(f"import-errors-{job.job.pk}.csv", exc.report)
        job.job.result = exc.summary  # JobContext.fail() saves the whole row, so the counts so far survive
        raise
    summary["file"] = params.get("file_name", "")
    summary["error_file"] = bool(report)
    if report:
        job.save_file(f"import-errors-{job.job.pk}.csv", report)
    delete_upload(tenant=job.tenant, path=path)  # personal data: kept no longer than the import needs it
    return summary
