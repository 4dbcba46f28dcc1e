"""Causal features, named feature sets, forward targets and the Parquet feature feed.

from mlstrat.features import build_feature_feed, feature_columns
feed = build_feature_feed(bars, "xgb", targets=("direction:1", "three_class:4:0.003"))
X = feed[feature_columns(feed)]

Features are computed on all the history given; to start a run later without a cold
warm-up, build on every bar up to the run's end and `cut_after_warmup(feed, start)`.
"""

from mlstrat.features.catalogue import SkippedFeaturesWarning
from mlstrat.features.feed_io import (
    build_feature_feed,
    build_feature_feeds,
    cut_after_warmup,
    feature_columns,
    read_feature_feed,
    read_metadata,
    source_sha256,
    target_columns,
    write_feature_feed,
)
from mlstrat.features.labels import (
    concurrency,
    ewm_volatility,
    jump_labels,
    net_forward_returns,
    triple_barrier_labels,
    uniqueness_weights,
)
from mlstrat.features.sets import (
    KNOWN_VERSIONS,
    FeatureSet,
    buildable_sets,
    get_feature_set,
    list_feature_sets,
    register_feature_set,
    warmup_info,
)
from mlstrat.features.targets import (
    Target,
    direction,
    forward_return,
    forward_volatility,
    parse_target,
    parse_targets,
    three_class,
)

__all__ = [
    "KNOWN_VERSIONS",
    "FeatureSet",
    "SkippedFeaturesWarning",
    "Target",
    "build_feature_feed",
    "build_feature_feeds",
    "buildable_sets",
    "concurrency",
    "cut_after_warmup",
    "direction",
    "ewm_volatility",
    "feature_columns",
    "forward_return",
    "forward_volatility",
    "get_feature_set",
    "jump_labels",
    "list_feature_sets",
    "net_forward_returns",
    "parse_target",
    "parse_targets",
    "read_feature_feed",
    "read_metadata",
    "register_feature_set",
    "source_sha256",
    "target_columns",
    "three_class",
    "triple_barrier_labels",
    "uniqueness_weights",
    "warmup_info",
    "write_feature_feed",
]
