"""Market data in: read candle files, check them against the Bars contract, resample.

Bars are a pandas DataFrame indexed by `timestamp` (datetime64[ns, UTC], strictly
increasing) with float64 columns open, high, low, close, volume and attrs `symbol`,
`timeframe`, `calendar` and `quality` (anomaly counts and the policies applied). How a
file is read and cleaned is set by the data options (`DataOptions`, see docs/data.md).
"""

from mlstrat.data.options import DataOptions
from mlstrat.data.readers import FORMATS, detect_format, file_sha256, load_bars
from mlstrat.data.resample import (
    Gap,
    align_closed,
    closed_higher_timeframe,
    gap_report,
    resample,
)
from mlstrat.data.timeframe import Calendar, infer_calendar, infer_timeframe, normalize_timeframe
from mlstrat.data.validate import OHLCV, validate_bars

__all__ = [
    "FORMATS",
    "OHLCV",
    "Calendar",
    "DataOptions",
    "Gap",
    "align_closed",
    "closed_higher_timeframe",
    "detect_format",
    "file_sha256",
    "gap_report",
    "infer_calendar",
    "infer_timeframe",
    "load_bars",
    "normalize_timeframe",
    "resample",
    "validate_bars",
]
