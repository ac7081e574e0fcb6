"""The customer portal at /p/<tenant_slug>/: passwordless sign-in by an emailed single-use link,
"for you" offers with their reasons, the configurator with a live price, claims, the customer's
requests, consent preferences, data download and account deletion.

Every page reads and writes through the offers and customers services; this package only adds
the sign-in links (services), the customer-facing reads (selectors) and the wording (display)."""
