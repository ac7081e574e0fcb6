"""Recommendations from implicit feedback: the algorithms (`models`) and how they are measured
and the shipped one chosen (`evaluation`, `manage.py evaluate_recommender`)."""

from offers.recommender.models import (
    ALS,
    EASE,
    Blend,
    ContentBased,
    ItemKNN,
    MostPopular,
    Reason,
    Recommender,
    RP3beta,
    make_model,
)

__all__ = [
    "ALS",
    "EASE",
    "Blend",
    "ContentBased",
    "ItemKNN",
    "MostPopular",
    "RP3beta",
    "Reason",
    "Recommender",
    "make_model",
]
