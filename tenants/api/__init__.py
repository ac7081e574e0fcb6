"""Tenant API: bases in `base` (viewset) and `permissions` (auth-time classes); jobs endpoints."""
