"""mlstrat: machine-learning predictors inside backtrader backtests."""

__version__ = "0.1.0"
