"""Steps several browser tests share."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail
from playwright.sync_api import expect


def portal_sign_in(page: Any, live_server: Any, email: str = "anna@example.com") -> None:
    """Sign in to the acme portal the way a customer does: ask for a link, open it from the email."""
    mail.outbox.clear()
    page.goto(f"{live_server.url}/p/acme/")
    expect(page.get_by_test_id("tenant-name")).to_contain_text("Acme Telecom")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+(/p/acme/link/\S+/)", mail.outbox[0].body).group(1)
    page.goto(live_server.url + link)
    page.get_by_test_id("sign-in-button").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Offers for you")
