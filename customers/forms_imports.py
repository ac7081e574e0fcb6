"""Forms of the CSV import wizard: upload (step 1) and column mapping (step 2)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from customers import imports

KIND_CHOICES = [("customers", _("Customers")), ("orders", _("Orders")), ("events", _("Events"))]


def kind_choices() -> list[tuple[str, Any]]:
    """The built-in kinds, then those other apps registered (products)."""
    return [*KIND_CHOICES, *((name, kind.label) for name, kind in imports.REGISTERED.items())]


ENCODING_CHOICES = [
    ("utf-8", "UTF-8"),
    ("cp1251", _("Windows-1251 (Cyrillic)")),
    ("koi8-r", "KOI8-R"),
    ("latin-1", _("Latin-1 (ISO 8859-1)")),
    ("cp1252", _("Windows-1252 (Western European)")),
    ("utf-16", "UTF-16"),
]
DELIMITER_CHOICES = [
    (",", _("Comma")),
    (";", _("Semicolon")),
    ("tab", _("Tab")),
    ("|", _("Vertical bar")),
    ("whitespace", _("Spaces")),
]


def delimiter_choice(delimiter: str) -> str:
    """The form's value for a delimiter (a tab does not survive an HTML option value)."""
    return "tab" if delimiter == "\t" else delimiter


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("The file holds"), choices=kind_choices)
    file = forms.FileField(label=_("CSV file"), help_text=_("Up to 200 MB; separated by commas, semicolons, tabs or spaces."))
    encoding = forms.ChoiceField(label=_("Encoding"), choices=ENCODING_CHOICES, initial="utf-8")

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        if upload.size and upload.size > imports.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than %(mb)s MB.") % {"mb": imports.MAX_UPLOAD_BYTES // (1024 * 1024)},
                                        code="too_large")
        if not upload.size:
            raise forms.ValidationError(_("The file is empty."), code="empty")
        return upload


class ImportOptionsForm(forms.Form):
    """How to read the file; changing these re-reads the preview."""

    delimiter = forms.ChoiceField(label=_("Columns are separated by"), choices=DELIMITER_CHOICES)
    header = forms.BooleanField(label=_("The first row holds column names"), required=False)
    encoding = forms.ChoiceField(label=_("Encoding"), choices=ENCODING_CHOICES)


class ImportMappingForm(forms.Form):
    """One select per target field, pre-filled by matching the file's column names, and the import options."""

    date_format = forms.CharField(
        label=_("Date format"), required=False, max_length=64,
        help_text=format_lazy(_("Empty: ISO 8601 and common formats. For example {example}."), example="%d.%m.%Y %H:%M, %Y%m%d"),
    )
    integer_ids = forms.BooleanField(label=_("Read ids such as 123.0 as 123"), required=False)

    def __init__(self, *args: Any, kind: str, columns: list[str], header: bool, suggested: dict[str, int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.columns = columns
        self.header = header
        self.mapping: imports.ImportMapping | None = None
        column_choices = [(str(i), name) for i, name in enumerate(columns)]
        suggested = suggested or {}
        self.targets: dict[str, str] = {}  # form field name → mapping target
        for target, label in imports.target_fields(kind):
            name = _field_name(target)
            self.fields[name] = forms.ChoiceField(
                label=label, required=False, choices=[("", _("— not imported —")), *column_choices],
                initial=str(suggested[target]) if target in suggested else "",
            )
            self.targets[name] = target
        if kind in imports.EXTRA_PREFIX:
            label = _("Also keep these columns as event properties") if kind == "events" else _("Also keep these columns as attributes")
            # Pre-checked: columns named attributes.<key> / properties.<key> (as the export writes
            # them) and, for events and products, every column not mapped above.
            used = set(suggested.values())
            named = set(imports.suggest_extras(kind, columns).values())
            keep_unmapped = kind == "events" or (kind in imports.REGISTERED and imports.REGISTERED[kind].keep_unmapped)
            initial = [i for i in range(len(columns)) if i in named or (keep_unmapped and i not in used)]
            self.fields["extra_columns"] = forms.MultipleChoiceField(
                label=label, required=False, choices=column_choices, widget=forms.CheckboxSelectMultiple,
                initial=[str(i) for i in initial],
            )
        if kind == "orders":
            self.fields["group_by"] = forms.BooleanField(
                label=_("Rows with the same order id are one order with several lines"), required=False)
            self.fields["cancelled_if_prefix"] = forms.CharField(
                label=_("Order ids starting with this are cancelled"), required=False, max_length=10,
                help_text=_("For example C, as in the UCI Online Retail data."))
        if "currency" in imports.TARGETS[kind]:
            self.fields["default_currency"] = forms.CharField(
                label=_("Currency when the file has none"), required=False, max_length=3,
                help_text=_("Empty: the workspace's currency."))

    def target_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.targets]

    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.targets and name != "extra_columns"]

    def _ref(self, index: int) -> str | int:
        # Names read better in the job's params; an index stays unambiguous when names repeat.
        name = self.columns[index]
        return name if self.header and self.columns.count(name) == 1 else index

    def build_mapping(self, options: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "delimiter": options["delimiter"], "header": options["header"], "encoding": options["encoding"],
        }
        for name, target in self.targets.items():
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                data[target] = self._ref(int(value))
        for value in self.cleaned_data.get("extra_columns") or []:
            target = imports.extra_target(self.kind, self.columns[int(value)])
            if target and target not in data:
                data[target] = self._ref(int(value))
        if self.cleaned_data.get("date_format"):
            data["date_format"] = self.cleaned_data["date_format"]
        if self.cleaned_data.get("integer_ids"):
            data["integer_ids"] = True
        if self.kind == "orders" and self.cleaned_data.get("group_by"):
            data["group_by"] = True
        for name in ("cancelled_if_prefix", "default_currency"):
            if self.cleaned_data.get(name):
                data[name] = self.cleaned_data[name].strip()
        return data


def _field_name(target: str) -> str:
    return "map_" + target.replace(".", "__")
