"""Forms of the lead-capture feature: the dashboard editor and the public sign-up form."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core import signing
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from customers.leads import FieldSpec
from customers.models import Consent, LeadForm

HONEYPOT_FIELD = "website"
FORM_TOKEN_MAX_AGE = 24 * 60 * 60
_SIGNING_SALT = "customers.leads.public-form"

# max_length per profile field, as the customer model stores them.
_TEXT_LIMITS = {"first_name": 100, "last_name": 100, "company": 200, "company_role": 64, "phone": 40}
_FIELD_MESSAGES = {
    "email": _("Enter a valid email address."),
    "phone": _("Enter a phone number of digits, optionally starting with +."),
}
_AUTOCOMPLETE = {"email": "email", "first_name": "given-name", "last_name": "family-name", "phone": "tel",
                 "company": "organization", "company_role": "organization-title"}


class LeadFormForm(forms.Form):
    """Create or edit a lead form. Email is always asked and required, so it is not offered here."""

    name = forms.CharField(label=_("Name"), max_length=100)
    slug = forms.SlugField(
        label=_("Slug"), max_length=64,
        help_text=_("Part of the public address. Changing it breaks pages that embed the old address."),
    )
    shown_fields = forms.MultipleChoiceField(
        label=_("Fields to ask for"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("The email address is always asked and required."),
    )
    required_fields = forms.MultipleChoiceField(label=_("Required fields"), required=False, widget=forms.CheckboxSelectMultiple)
    consent_text = forms.CharField(
        label=_("Consent text"), widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Shown beside the checkbox the person must tick."),
    )
    consent_version = forms.CharField(
        label=_("Consent text version"), max_length=64, initial="1",
        help_text=_("Recorded with every consent. Give a changed text a new version."),
    )
    consent_purposes = forms.MultipleChoiceField(
        label=_("Purposes granted on confirmation (email channel)"), choices=Consent.Purpose.choices,
        widget=forms.CheckboxSelectMultiple, initial=[Consent.Purpose.MARKETING],
    )
    success_message = forms.CharField(
        label=_("Message after sign-up"), max_length=300, required=False,
        help_text=_("Empty: “Check your inbox and confirm your address.”"),
    )
    is_active = forms.BooleanField(label=_("Active (accepts sign-ups)"), required=False, initial=True)

    def __init__(self, *args: Any, field_choices: list[tuple[str, str | Promise]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shown_fields"].choices = field_choices
        self.fields["required_fields"].choices = field_choices

    @staticmethod
    def initial_for(lead_form: LeadForm) -> dict[str, Any]:
        specs = [f for f in lead_form.fields or [] if isinstance(f, dict) and f.get("key") != "email"]
        return {
            "name": lead_form.name, "slug": lead_form.slug,
            "shown_fields": [f["key"] for f in specs], "required_fields": [f["key"] for f in specs if f.get("required")],
            "consent_text": lead_form.consent_text, "consent_version": lead_form.consent_version,
            "consent_purposes": lead_form.consent_purposes, "success_message": lead_form.success_message,
            "is_active": lead_form.is_active,
        }


def form_token(lead_form: LeadForm) -> str:
    """A signed, timestamped token naming the form: the POST must come from a page we rendered.
    It stands in for the CSRF cookie, which a cross-site iframe does not get (see PublicLeadFormView)."""
    return signing.TimestampSigner(salt=_SIGNING_SALT).sign(f"{lead_form.tenant_id}:{lead_form.pk}")


def field_name(key: str) -> str:
    """Form field name of a field key: "attributes.plan" -> "attr_plan" (no dots in ids)."""
    return "attr_" + key.split(".", 1)[1] if key.startswith("attributes.") else key


def _form_field(spec: FieldSpec) -> forms.Field:
    common: dict[str, Any] = {"label": spec.label, "required": spec.required}
    attrs = {"autocomplete": _AUTOCOMPLETE[spec.key]} if spec.key in _AUTOCOMPLETE else {}
    if spec.type == "email":
        return forms.EmailField(max_length=254, widget=forms.EmailInput(attrs=attrs), **common)
    if spec.type == "tel":
        return forms.CharField(max_length=_TEXT_LIMITS["phone"], widget=forms.TextInput(attrs={**attrs, "type": "tel"}), **common)
    if spec.type == "number":
        return forms.FloatField(**common)
    if spec.type == "date":
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if spec.type == "boolean":
        return forms.TypedChoiceField(
            choices=[("", "—"), ("yes", _("Yes")), ("no", _("No"))], coerce=lambda v: v == "yes", empty_value=None, **common
        )
    if spec.type == "choice":
        return forms.ChoiceField(choices=[("", "—"), *[(c, c) for c in spec.choices]], **common)
    return forms.CharField(max_length=_TEXT_LIMITS.get(spec.key, 500), widget=forms.TextInput(attrs=attrs), **common)


class PublicLeadForm(forms.Form):
    """The public sign-up form: the configured fields, the consent checkbox, a honeypot and a form token."""

    consent = forms.BooleanField(
        label=_("I agree"), required=True, error_messages={"required": _("Please tick the box to agree.")}
    )
    # A field people never see or fill; bots that fill every input give themselves away.
    website = forms.CharField(
        label=_("Leave this field empty"), required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )
    form_token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, lead_form: LeadForm, specs: list[FieldSpec], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lead_form = lead_form
        self.specs = specs
        answers = {field_name(spec.key): _form_field(spec) for spec in specs}
        self.fields = {**answers, **self.fields}
        self.fields["form_token"].initial = form_token(lead_form)

    def is_spam(self) -> bool:
        """The honeypot was filled. Read from the raw data: a bot's answer need not be valid."""
        return bool(self.is_bound and str(self.data.get(HONEYPOT_FIELD, "")).strip())

    def answer_fields(self) -> list[forms.BoundField]:
        return [self[field_name(spec.key)] for spec in self.specs]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        expected = f"{self.lead_form.tenant_id}:{self.lead_form.pk}"
        try:
            value = signing.TimestampSigner(salt=_SIGNING_SALT).unsign(self.data.get("form_token", ""), max_age=FORM_TOKEN_MAX_AGE)
        except signing.BadSignature:
            value = None
        if value != expected:
            raise forms.ValidationError(_("This form has expired. Please check your answers and send it again."))
        return cleaned

    def values(self) -> dict[str, Any]:
        """Valid answers keyed by field key, as JSON-friendly values."""
        result: dict[str, Any] = {}
        for spec in self.specs:
            value = self.cleaned_data.get(field_name(spec.key))
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            result[spec.key] = value
        return result

    def add_answer_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the service's field errors (worded in English by the shared intake rules) in the page's language."""
        for key, messages in errors.items():
            name = field_name(key)
            if name not in self.fields:
                self.add_error(None, _("Please check your answers."))
            elif "This field is required." in messages:
                self.add_error(name, _("This field is required."))
            else:
                self.add_error(name, _FIELD_MESSAGES.get(key) or _("Please check this value."))

    def refresh_token(self) -> None:
        """A re-shown form carries a fresh token, so an expired one does not fail twice."""
        if self.is_bound:
            self.data = self.data.copy()
            self.data["form_token"] = form_token(self.lead_form)
