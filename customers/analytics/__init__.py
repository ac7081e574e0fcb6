"""Pure pandas/scikit-learn customer analytics (features, RFM, clusters, churn); no Django, no database: jobs load frames and store results."""

from customers.analytics.churn import (
    CHURN_FEATURE_COLUMNS,
    ORDER_TIME_COLUMNS,
    RECENCY_RULE,
    ChurnModel,
    churn_features,
    churn_training_frame,
    recency_rule_probability,
    train_churn_model,
)
from customers.analytics.clusters import DESCRIPTION_WORDS, ClusterResult, cluster_customers, describe_profile
from customers.analytics.features import EVENT_COLUMNS, FEATURE_COLUMNS, ORDER_COLUMNS, customer_features
from customers.analytics.rfm import RFM_COLUMNS, RFM_GROUPS, quintile_score, rfm_group_for, score_rfm

__all__ = [
    "CHURN_FEATURE_COLUMNS",
    "DESCRIPTION_WORDS",
    "EVENT_COLUMNS",
    "FEATURE_COLUMNS",
    "ORDER_COLUMNS",
    "ORDER_TIME_COLUMNS",
    "RECENCY_RULE",
    "RFM_COLUMNS",
    "RFM_GROUPS",
    "ChurnModel",
    "ClusterResult",
    "churn_features",
    "churn_training_frame",
    "cluster_customers",
    "customer_features",
    "describe_profile",
    "quintile_score",
    "recency_rule_probability",
    "rfm_group_for",
    "score_rfm",
    "train_churn_model",
]
