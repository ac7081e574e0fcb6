"""The option groups of a configurable offer: the rules they follow, whoever writes them.

Rules: at least one group, each with a key (letters, digits, - and _), a label and at least one
option; keys are unique among the groups of an offer and among the options of a group; a group
asks for between `min_select` and `max_select` options (0 ≤ min ≤ max, max ≥ 1, and min no more
than it has options, or nobody could configure the offer); a price is 0 or more with at most two
decimal places; `requires`/`excludes` name other options as "group.option", never the option
itself, never the same option in both, and never a second option of a group that allows only one.

Every problem is reported at once, by path ("0.options.1.price", relative to the list of groups),
so a form can put each message next to its input and the API answers with the same paths.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from b2p_platform.exceptions import DomainError
from offers.models import Option, OptionGroup

_KEY_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_SELECT = 999  # a PositiveSmallIntegerField; no offer has anywhere near this many options
_PRICE_DIGITS = Option._meta.get_field("price").max_digits  # type: ignore[union-attr]
_KEY_LENGTH = OptionGroup._meta.get_field("key").max_length or 64
_LABEL_LENGTH = OptionGroup._meta.get_field("label").max_length or 120


class OptionGroupsInvalid(DomainError):
    """Option groups break the rules; `errors` map a path ("0.options.1.price") to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(_("Some option groups need attention."), field="option_groups")
        self.errors = errors

    def as_dict(self) -> dict[str, Any]:
        return {"option_groups": self.errors}


class _Errors:
    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = defaultdict(list)
        self.bad_keys = False  # then "no such option" would only echo the key's own error

    def add(self, path: str, message: str) -> None:
        self.by_path[path].append(message)

    def key(self, value: Any, path: str, taken: set[str], duplicate: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.add(path, _("Give a key."))
            value = ""
        elif len(value.strip()) > _KEY_LENGTH or not _KEY_RE.match(value.strip()):
            self.add(path, _("A key is up to %(max)s letters, digits, - or _.") % {"max": _KEY_LENGTH})
        elif value.strip() in taken:
            self.add(path, duplicate)
        else:
            taken.add(value.strip())
            return value.strip()
        self.bad_keys = True
        return str(value).strip()

    def label(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.add(path, _("Give a name."))
            return ""
        if len(value.strip()) > _LABEL_LENGTH:
            self.add(path, _("A name is at most %(max)s characters.") % {"max": _LABEL_LENGTH})
        return value.strip()

    def count(self, value: Any, path: str, minimum: int) -> int | None:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SELECT:
            self.add(path, _("Give a whole number from %(min)s to %(max)s.") % {"min": minimum, "max": MAX_SELECT})
            return None
        return value

    def price(self, value: Any, path: str) -> Decimal:
        try:
            if isinstance(value, bool) or value is None or value == "":
                raise InvalidOperation
            price = Decimal(str(value).strip())
            if not price.is_finite():
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            self.add(path, _("Give a price, e.g. 9.90."))
            return Decimal(0)
        if price < 0:
            self.add(path, _("A price is 0 or more."))
        elif price.as_tuple().exponent < -2:  # type: ignore[operator]
            self.add(path, _("A price has at most two decimal places."))
        elif price.quantize(Decimal("0.01")).adjusted() >= _PRICE_DIGITS - 2:
            self.add(path, _("This price is too large."))
        return price

    def refs(self, value: Any, path: str) -> list[str]:
        if value in (None, ""):
            return []
        if not isinstance(value, list) or not all(isinstance(ref, str) for ref in value):
            self.add(path, _("A list of options as group.option."))
            return []
        return list(dict.fromkeys(value))


def clean_option_groups(groups: Any) -> list[dict[str, Any]]:
    """The groups as the models take them (keys and labels stripped, prices as Decimal), or
    OptionGroupsInvalid with every problem by path; DomainError if there are none at all."""
    if not isinstance(groups, list) or not groups:
        raise DomainError(_("A configurable offer needs option groups."), field="option_groups")
    errors = _Errors()
    cleaned: list[dict[str, Any]] = []
    group_keys: set[str] = set()
    for gi, raw_group in enumerate(groups):
        path = str(gi)
        if not isinstance(raw_group, dict):
            errors.add(path, _("A group is an object with a key, a name and options."))
            errors.bad_keys = True
            continue
        key = errors.key(raw_group.get("key"), f"{path}.key", group_keys, _("Another group has this key."))
        group = {"key": key, "label": errors.label(raw_group.get("label"), f"{path}.label"), "options": []}
        low = errors.count(raw_group.get("min_select", 1), f"{path}.min_select", minimum=0)
        high = errors.count(raw_group.get("max_select", 1), f"{path}.max_select", minimum=1)
        group["min_select"], group["max_select"] = low, high
        raw_options = raw_group.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            errors.add(f"{path}.options", _("A group needs at least one option."))
            raw_options = []
        option_keys: set[str] = set()
        for oi, raw_option in enumerate(raw_options):
            opath = f"{path}.options.{oi}"
            if not isinstance(raw_option, dict):
                errors.add(opath, _("An option is an object with a key, a name and a price."))
                errors.bad_keys = True
                continue
            okey = errors.key(raw_option.get("key"), f"{opath}.key", option_keys, _("Another option of this group has this key."))
            group["options"].append({
                "key": okey, "label": errors.label(raw_option.get("label"), f"{opath}.label"),
                "price": errors.price(raw_option.get("price", 0), f"{opath}.price"),
                "requires": errors.refs(raw_option.get("requires"), f"{opath}.requires"),
                "excludes": errors.refs(raw_option.get("excludes"), f"{opath}.excludes"),
            })
        if low is not None and high is not None:
            if low > high:
                errors.add(f"{path}.min_select", _("This is more than the most a customer may choose."))
            elif raw_options and low > len(raw_options):
                errors.add(f"{path}.min_select", ngettext("The group has only %(count)s option.", "The group has only %(count)s options.",
                                                          len(raw_options)) % {"count": len(raw_options)})
        cleaned.append(group)
    _check_references(cleaned, errors)
    if errors.by_path:
        raise OptionGroupsInvalid(dict(errors.by_path))
    return cleaned


def _check_references(groups: list[dict[str, Any]], errors: _Errors) -> None:
    group_of = {f"{g['key']}.{o['key']}": g for g in groups for o in g["options"]}
    for gi, group in enumerate(groups):
        for oi, option in enumerate(group["options"]):
            path, name = f"{gi}.options.{oi}", f"{group['key']}.{option['key']}"
            for kind in ("requires", "excludes"):
                for ref in option[kind]:
                    if ref == name:
                        errors.add(f"{path}.{kind}", _("An option cannot name itself."))
                    elif ref not in group_of:
                        if not errors.bad_keys:
                            errors.add(f"{path}.{kind}", _("There is no option %(ref)s.") % {"ref": ref})
                    elif kind == "requires" and group_of[ref] is group and group["max_select"] == 1:
                        errors.add(f"{path}.requires", _("%(ref)s is in the same group, where only one option may be chosen.")
                                   % {"ref": ref})
            for ref in set(option["requires"]) & set(option["excludes"]):
                errors.add(f"{path}.excludes", _("%(ref)s cannot be both needed and excluded.") % {"ref": ref})
