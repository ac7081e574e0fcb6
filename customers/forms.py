from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from customers.models import AttributeDefinition, Customer


class CustomerFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"placeholder": _("Name, email, phone or id"), "type": "search"}))
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All kinds")), *Customer.Kind.choices])
    tag = forms.CharField(label=_("Tag"), required=False, max_length=50)
    attribute = forms.CharField(label=_("Attribute"), required=False, max_length=120,
                                widget=forms.TextInput(attrs={"placeholder": "plan=postpaid"}))

    def clean_q(self) -> str:
        # Substring search runs on a trigram index, which needs at least three characters.
        q = self.cleaned_data.get("q", "").strip()
        if 0 < len(q) < 3:
            raise forms.ValidationError(_("Type at least 3 characters."))
        return q

    def clean_attribute(self) -> str:
        value = self.cleaned_data.get("attribute", "").strip()
        if value and "=" not in value:
            raise forms.ValidationError(_("Write it as key=value."))
        return value


class AttributeDefinitionForm(forms.Form):
    key = forms.SlugField(label=_("Key"), max_length=64, help_text=_("As sent in the API, e.g. plan"))
    label = forms.CharField(label=_("Label"), max_length=100)
    type = forms.ChoiceField(label=_("Type"), choices=AttributeDefinition.Type.choices)
    choices = forms.CharField(label=_("Choices"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text=_("For the choice type: one value per line."))

    def clean_choices(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("choices", "").splitlines() if line.strip()]


class EraseForm(forms.Form):
    confirm = forms.CharField(label=_("Type ERASE to confirm"), max_length=10)

    def clean_confirm(self) -> Any:
        if self.cleaned_data["confirm"].strip().upper() != "ERASE":
            raise forms.ValidationError(_("Type ERASE to confirm."))
        return "ERASE"
