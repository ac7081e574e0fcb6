"""The portal's forms: they check the shape of the input; the offers and customers services decide."""

from __future__ import annotations

import re
import secrets
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from customers.models import Consent, Customer
from offers.models import Offer, OptionGroup
from offers.portal.display import money
from offers.portal.selectors import MARKETING_CHANNELS

MAX_QUANTITY = 1000
GROUP_PREFIX = "opt_"
CHANNEL_LABELS = {
    Consent.Channel.EMAIL: _("By email"),
    Consent.Channel.SMS: _("By text message (SMS)"),
    Consent.Channel.SOCIAL: _("On social networks"),
    Consent.Channel.PHONE: _("By phone"),
}


class SignInForm(forms.Form):
    email = forms.EmailField(
        label=_("Email address"), max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True, "inputmode": "email"}),
    )


class LanguageForm(forms.Form):
    language = forms.ChoiceField(label=_("Language"), choices=[("en", "English"), ("ru", "Русский")])


def new_idempotency_key(customer: Customer) -> str:
    """One per rendered claim form: submitting it twice claims once."""
    return f"portal-{customer.pk}-{secrets.token_hex(16)}"


def group_field_name(group: OptionGroup) -> str:
    return f"{GROUP_PREFIX}{group.key}"


class OfferForm(forms.Form):
    """The configurator (one field per option group) and the claim: quantity, voucher, idempotency key.

    Option groups' min/max and the options' requires/excludes are the pricing service's rules;
    the fields here accept any known option so that the service's message is the one shown."""

    quantity = forms.IntegerField(
        label=_("Quantity"), min_value=1, max_value=MAX_QUANTITY, initial=1,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    voucher_code = forms.CharField(
        label=_("Voucher code (optional)"), max_length=64, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}),
    )
    idempotency_key = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, offer: Offer, customer: Customer, is_claim: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer, self.customer, self.is_claim = offer, customer, is_claim
        self.groups: list[OptionGroup] = list(offer.option_groups.all()) if offer.kind == Offer.Kind.CONFIGURABLE else []
        for group in self.groups:
            choices = [(o.key, self._option_label(o.label, o.price)) for o in group.options.all()]
            name = group_field_name(group)
            if group.max_select <= 1:
                if group.min_select == 0:
                    choices = [("", _("None")), *choices]
                self.fields[name] = forms.ChoiceField(label=group.label, choices=choices, required=False, widget=forms.RadioSelect)
            else:
                self.fields[name] = forms.MultipleChoiceField(label=group.label, choices=choices, required=False,
                                                              widget=forms.CheckboxSelectMultiple)
            self.fields[name].group = group  # type: ignore[attr-defined]
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", new_idempotency_key(customer))
            self.initial.update(self.default_configuration_initial())

    def _option_label(self, label: str, price: Any) -> str:
        return f"{label} (+{money(price, self.offer.currency)})" if price else label

    def default_configuration_initial(self) -> dict[str, Any]:
        """Pre-select the cheapest option of each group that needs exactly one, so a price shows at once."""
        initial: dict[str, Any] = {}
        for group in self.groups:
            options = sorted(group.options.all(), key=lambda o: (o.price, o.position, o.pk))
            if group.min_select >= 1 and group.max_select == 1 and options:
                initial[group_field_name(group)] = options[0].key
        return initial

    @property
    def group_fields(self) -> list[forms.BoundField]:
        return [self[group_field_name(g)] for g in self.groups]

    def configuration(self) -> dict[str, list[str]]:
        """Group key -> chosen option keys, as the pricing service reads a configuration."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        result: dict[str, list[str]] = {}
        for group in self.groups:
            value = data.get(group_field_name(group))
            result[group.key] = [value] if isinstance(value, str) and value else [v for v in value or [] if v]
        return result

    def clean_voucher_code(self) -> str:
        return self.cleaned_data["voucher_code"].strip().upper()

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"]
        if self.is_claim and not re.fullmatch(rf"portal-{self.customer.pk}-[0-9a-f]{{32}}", key or ""):
            raise forms.ValidationError(_("This form has expired. Please check your choices and send it again."))
        return key

    def add_configuration_errors(self, errors: dict[str, list[str]]) -> None:
        """The pricing service's errors, keyed by group ("data") or option ("data.5gb"), on the group's field,
        with option keys written as their labels."""
        names = {f"{g.key}.{o.key}": f"{g.label}: {o.label}" for g in self.groups for o in g.options.all()}
        option_labels = {f"{g.key}.{o.key}": o.label for g in self.groups for o in g.options.all()}
        by_key = {g.key: group_field_name(g) for g in self.groups}
        for key, messages in errors.items():
            field = by_key.get(key.split(".", 1)[0])
            for message in messages:
                text = str(message)
                for option_key, label in sorted(names.items(), key=lambda kv: -len(kv[0])):
                    text = text.replace(option_key, f"“{label}”")
                if key in option_labels:  # the group's label is shown with the field's errors already
                    text = f"{option_labels[key]}: {text}"
                self.add_error(field, text)


class PreferencesForm(forms.Form):
    personalization = forms.BooleanField(
        label=_("Personalize my offers using what I bought and looked at"), required=False,
        help_text=_("Off: you see the same popular offers as everyone, and we do not use your history to choose them."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for channel in MARKETING_CHANNELS:
            self.fields[f"marketing_{channel}"] = forms.BooleanField(label=CHANNEL_LABELS[channel], required=False)

    @property
    def marketing_fields(self) -> list[forms.BoundField]:
        return [self[f"marketing_{channel}"] for channel in MARKETING_CHANNELS]

    def marketing(self) -> dict[str, bool]:
        return {channel: bool(self.cleaned_data.get(f"marketing_{channel}")) for channel in MARKETING_CHANNELS}

    @staticmethod
    def initial_for(marketing: dict[str, bool], personalization: bool) -> dict[str, Any]:
        return {"personalization": personalization, **{f"marketing_{c}": v for c, v in marketing.items()}}


class DeleteAccountForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("I understand: my account and my personal data will be deleted, and this cannot be undone."),
        error_messages={"required": _("Tick the box to confirm.")},
    )
