"""Offers' services: the catalogue and offers (`catalogue`), eligibility and prices (`pricing`),
claims, vouchers and the request workflow (`claims`)."""
