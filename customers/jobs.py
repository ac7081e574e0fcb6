"""Job kinds of the customers app (imports, exports); see tenants/jobs.py for the base."""
