"""The Russian catalogue is complete, well-formed and compiled.

No database and no gettext binaries needed: the .po and .mo are read with polib, and the
templates are scanned with plain regular expressions. A string added to a template without a
Russian translation fails here; the fix is `makemessages -l ru ... --no-location --no-obsolete`,
translate, `compilemessages -l ru`."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import trim_whitespace

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "locale" / "ru" / "LC_MESSAGES"
PO_PATH = LOCALE_DIR / "django.po"
MO_PATH = LOCALE_DIR / "django.mo"
TEMPLATES_DIR = ROOT / "templates"
# Emails are rendered from .txt templates and translated the same way as the pages.
TEMPLATE_PATTERNS = ("*.html", "*.txt")
NPLURALS = 4

# printf-style placeholders: %(name)s, %s, %d, ... ("%%" is a literal percent sign, not one).
PLACEHOLDER_RE = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr]")
TRANSLATE_TAG_RE = re.compile(r"{%\s*(?:translate|trans)\s+(.+?)\s*%}")
BLOCK_RE = re.compile(
    r"{%\s*(?:blocktranslate|blocktrans)\b(?P<options>.*?)%}(?P<body>.*?){%\s*(?:endblocktranslate|endblocktrans)\s*%}",
    re.DOTALL,
)
PLURAL_TAG_RE = re.compile(r"{%\s*plural\s*%}")
BLOCK_VAR_RE = re.compile(r"{{\s*(\w+)\s*}}")


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER_RE.findall(text.replace("%%", "")))


@pytest.fixture(scope="module")
def po() -> polib.POFile:
    assert PO_PATH.exists(), f"{PO_PATH} is missing: run makemessages -l ru"
    return polib.pofile(str(PO_PATH))


@pytest.fixture(scope="module")
def entries(po: polib.POFile) -> list[polib.POEntry]:
    return [e for e in po if not e.obsolete]


def _label(entry: polib.POEntry) -> str:
    return f"{entry.msgctxt}|{entry.msgid}" if entry.msgctxt else entry.msgid


def _translations(entry: polib.POEntry) -> list[str]:
    if entry.msgid_plural:
        return [entry.msgstr_plural.get(i, "") for i in range(NPLURALS)]
    return [entry.msgstr]


def _catalogue(entries: list[polib.POEntry]) -> set[tuple[str | None, str, tuple[str, ...]]]:
    pairs = set()
    for e in entries:
        if e.msgid == "" or "fuzzy" in e.flags:
            continue
        forms = tuple(_translations(e))
        if all(forms):
            pairs.add((e.msgctxt, e.msgid, forms))
    return pairs


def test_header_is_russian_utf8_with_four_plural_forms(po: polib.POFile) -> None:
    assert po.metadata.get("Language") == "ru"
    assert "charset=UTF-8" in po.metadata.get("Content-Type", "")
    assert po.metadata.get("Plural-Forms", "").startswith(f"nplurals={NPLURALS};")
    assert not po.metadata_is_fuzzy


def test_catalogue_is_not_empty(entries: list[polib.POEntry]) -> None:
    assert len(entries) > 50


def test_every_entry_is_translated(entries: list[polib.POEntry]) -> None:
    missing = [_label(e) for e in entries if not all(s.strip() for s in _translations(e))]
    assert missing == [], f"untranslated entries in {PO_PATH.name}: {missing}"


def test_no_entry_is_fuzzy(entries: list[polib.POEntry]) -> None:
    fuzzy = [_label(e) for e in entries if "fuzzy" in e.flags]
    assert fuzzy == [], f"fuzzy entries (check the translation, then drop the flag): {fuzzy}"


def test_placeholders_survive_translation(entries: list[polib.POEntry]) -> None:
    broken = []
    for e in entries:
        for source in filter(None, (e.msgid, e.msgid_plural)):
            wanted = _placeholders(source)
            for translation in _translations(e):
                lost = wanted - _placeholders(translation)
                # A plural form may leave out the bare count (e.g. "один ключ" for n=1).
                if e.msgid_plural:
                    lost = {p for p in lost if p.startswith("%(")}
                if lost:
                    broken.append((_label(e), translation, sorted(lost)))
    assert broken == [], f"placeholders lost in translation: {broken}"


def test_no_unknown_placeholders_in_translations(entries: list[polib.POEntry]) -> None:
    extra = []
    for e in entries:
        allowed = _placeholders(e.msgid) | _placeholders(e.msgid_plural or "")
        for translation in _translations(e):
            unknown = _placeholders(translation) - allowed
            if unknown:
                extra.append((_label(e), translation, sorted(unknown)))
    assert extra == [], f"placeholders that the source does not have: {extra}"


def test_compiled_mo_matches_po(entries: list[polib.POEntry]) -> None:
    assert MO_PATH.exists(), f"{MO_PATH} is missing: run compilemessages -l ru"
    mo_entries = [e for e in polib.mofile(str(MO_PATH)) if e.msgid != ""]
    assert _catalogue(mo_entries) == _catalogue(entries), (
        f"{MO_PATH.name} is out of date with {PO_PATH.name}: run compilemessages -l ru"
    )


def _template_files() -> list[Path]:
    return sorted(p for pattern in TEMPLATE_PATTERNS for p in TEMPLATES_DIR.rglob(pattern))


def _translate_literals(source: str) -> list[tuple[str | None, str]]:
    """(context, msgid) of every {% translate "..." %} / {% trans '...' %} with a literal."""
    found = []
    for match in TRANSLATE_TAG_RE.finditer(source):
        bits = list(smart_split(match.group(1)))
        if not bits or bits[0][:1] not in "\"'":
            continue  # {% translate some_variable %}: nothing to check statically
        msgid = unescape_string_literal(bits[0].split("|", 1)[0])
        context = None
        if "context" in bits[1:]:
            at = bits.index("context", 1)
            if at + 1 < len(bits) and bits[at + 1][:1] in "\"'":
                context = unescape_string_literal(bits[at + 1])
        # Django's Variable escapes "%" before the lookup, exactly as makemessages does.
        found.append((context, msgid.replace("%", "%%")))
    return found


def _blocktranslate_msgids(source: str) -> list[tuple[str | None, str]]:
    """(context, singular msgid) of every {% blocktranslate %}...{% endblocktranslate %}."""
    found = []
    for match in BLOCK_RE.finditer(source):
        options = list(smart_split(match.group("options")))
        body = PLURAL_TAG_RE.split(match.group("body"))[0]
        if "{%" in body:
            continue  # other tags inside are a template error Django reports on its own
        msgid = BLOCK_VAR_RE.sub(r"%(\1)s", body.replace("%", "%%"))
        if "trimmed" in options:
            msgid = trim_whitespace(msgid)
        context = None
        if "context" in options:
            at = options.index("context")
            if at + 1 < len(options) and options[at + 1][:1] in "\"'":
                context = unescape_string_literal(options[at + 1])
        found.append((context, msgid))
    return found


def test_template_scanner_finds_strings() -> None:
    sample = (
        """{% translate "Sign in" %} {% trans 'Jobs' %} {% translate "A" context "menu" as a %} """
        """{% translate name %} {% blocktranslate with n=x %}Hi {{ n }}, 5%{% endblocktranslate %}"""
    )
    assert _translate_literals(sample) == [(None, "Sign in"), (None, "Jobs"), ("menu", "A")]
    assert _blocktranslate_msgids(sample) == [(None, "Hi %(n)s, 5%%")]
    assert _template_files(), f"no templates found under {TEMPLATES_DIR}"


def test_every_template_string_is_in_the_catalogue(entries: list[polib.POEntry]) -> None:
    known = {(e.msgctxt, e.msgid) for e in entries}
    missing = []
    for path in _template_files():
        source = path.read_text(encoding="utf-8")
        for key in _translate_literals(source) + _blocktranslate_msgids(source):
            if key not in known:
                missing.append((str(path.relative_to(ROOT)), key[0], key[1]))
    assert missing == [], (
        "template strings missing from locale/ru/LC_MESSAGES/django.po "
        f"(run makemessages -l ru, translate, compilemessages): {missing}"
    )
