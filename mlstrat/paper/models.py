"""The finished run a paper session trades: its configuration, fold models and feed layout.

Paper trading and its reconciliation use the fold models a ``mlstrat run`` trained, from
its run directory. A bar is predicted by the latest fold whose test period has begun by
the bar: the fold the walk-forward backtest used for it, trained only on bars before its
test period started. After the last fold's test period the last fold keeps predicting
(rerun the walk-forward on newer data to add folds). Predictions go through the
walk-forward's own functions (`predict_rows`, the fold's thresholds, `prediction_frame`),
so a row predicted alone equals the row predicted in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstrat.cache import content_hash
from mlstrat.config import PredictorConfig, RunConfig, load_config
from mlstrat.errors import ConfigError
from mlstrat.fileio import load_json
from mlstrat.walkforward.thresholds import Thresholds

#: Sections of a configuration that decide what the fold models are.
MODEL_SECTIONS = ("features", "predictors", "walkforward", "seed")
_RUN_FIX = "run `mlstrat run CONFIG --out DIR` first and pass --run DIR"


@dataclass(frozen=True)
class FoldModel:
    """One fold of a walk-forward run: its number, test start, model directory, thresholds."""

    number: int
    test_start: pd.Timestamp
    path: Path
    thresholds: Thresholds | None


class FoldModels:
    """The fold models of one predictor and symbol (``RUN/models/PRED/SYM``), chosen per bar."""

    def __init__(self, wf_dir: Path, columns: list[str]) -> None:
        self.wf_dir = wf_dir
        self.columns = columns
        folds = []
        for path in sorted((wf_dir / "folds").iterdir()) if (wf_dir / "folds").is_dir() else []:
            if not (path.is_dir() and path.name.isdigit() and (path / "fold.json").is_file()):
                continue
            info = load_json(path / "fold.json", fix=_RUN_FIX)
            thresholds = info.get("thresholds")
            folds.append(
                FoldModel(
                    number=int(info["fold"]),
                    test_start=pd.Timestamp(info["periods"]["test_start"]),
                    path=path,
                    thresholds=None if thresholds is None else Thresholds(**thresholds),
                )
            )
        if not folds:
            raise ConfigError("the run holds no fold models", file=wf_dir, fix=_RUN_FIX)
        self.folds = sorted(folds, key=lambda f: f.test_start)
        self._starts = pd.DatetimeIndex([f.test_start for f in self.folds])
        self._loaded: dict[int, Any] = {}

    def fold_at(self, stamps: pd.DatetimeIndex) -> np.ndarray:
        """Position in `folds` of the fold predicting each timestamp (-1: before the first)."""
        return self._starts.searchsorted(stamps, side="right") - 1

    def model(self, fold: FoldModel) -> Any:
        """The fold's predictor, loaded (and verified against its manifest) once."""
        from mlstrat.predictors.registry import load_predictor

        if fold.number not in self._loaded:
            self._loaded = {fold.number: load_predictor(fold.path)}  # one fold at a time
        return self._loaded[fold.number]

    def predict(self, features: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
        """Prediction-feed rows (`columns`, ``timestamp`` first) for positions `rows` of the
        feature frame, each by its fold; rows before the first fold are NaN."""
        from mlstrat.walkforward.runner import prediction_frame
        from mlstrat.walkforward.training import predict_rows, thresholded_signal

        rows = np.asarray(rows, dtype=int)
        if not len(rows):
            return pd.DataFrame(columns=["timestamp", *self.columns])
        which = self.fold_at(features.index[rows])
        parts = []
        breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(which) != 0)) + 1
        for chosen, k in zip(np.split(rows, breaks), np.split(which, breaks), strict=True):
            index = features.index[chosen]
            if k[0] < 0:
                parts.append(pd.DataFrame({"timestamp": index}))
                continue
            fold = self.folds[int(k[0])]
            model = self.model(fold)
            X = features[list(model.feature_names)]
            pred = predict_rows(model, X, chosen)  # a contiguous run, as the walk-forward
            signal = thresholded_signal(pred, fold.thresholds)
            parts.append(prediction_frame(pred, signal, index, fold.number, fold.thresholds))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        out = out.reindex(columns=["timestamp", *self.columns])
        out["timestamp"] = features.index[rows]
        return out


@dataclass
class PaperRun:
    """What a paper session needs from the run: fold models, the feed's columns, features."""

    config: RunConfig
    run_dir: Path
    predictor: PredictorConfig
    symbol: str
    timeframe: str
    signal: FoldModels
    volatility: FoldModels | None
    columns: list[str]  # the backtest feed's lines after OHLCV (predictions, features, targets)
    prediction_columns: list[str]  # the prediction feed's columns, without timestamp

    @classmethod
    def open(
        cls,
        config: RunConfig,
        run_dir: str | Path | None = None,
        *,
        predictor: str | None = None,
        symbol: str | None = None,
    ) -> PaperRun:
        """The finished run of `config` in `run_dir` (default ``reports/<name>``)."""
        from mlstrat.features import read_metadata
        from mlstrat.run import REPORTS_DIR, feed_columns, prediction_frame

        run_dir = Path(run_dir) if run_dir is not None else REPORTS_DIR / config.name
        _check_run(config, run_dir)
        pred = _pick_predictor(config, predictor)
        symbol = _pick_symbol(config, symbol)
        wf_dir = run_dir / "models" / pred.name / symbol
        vol = config.volatility_predictor
        vol_dir = None if vol is None else run_dir / "models" / vol.name / symbol
        frame = prediction_frame(config, pred, wf_dir, vol_dir)
        features_path = run_dir / "features" / f"{symbol}.parquet"
        columns = feed_columns(config, pred, features_path, frame)
        signal_columns = [c for c in pd.read_parquet(wf_dir / "predictions.parquet").columns]
        vol_models = None
        if vol_dir is not None:
            vol_columns = list(pd.read_parquet(vol_dir / "predictions.parquet").columns)
            vol_models = FoldModels(vol_dir, [c for c in vol_columns if c != "timestamp"])
        return cls(
            config=config,
            run_dir=run_dir,
            predictor=pred,
            symbol=symbol,
            timeframe=str(read_metadata(features_path).get("timeframe")),
            signal=FoldModels(wf_dir, [c for c in signal_columns if c != "timestamp"]),
            volatility=vol_models,
            columns=columns,
            prediction_columns=[c for c in frame.columns if c != "timestamp"],
        )

    @property
    def data_file(self) -> Any:
        """The configuration's data file of the traded symbol (its data options)."""
        return next(f for f in self.config.data.files if f.symbol == self.symbol)

    def features(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The run's feature set and targets computed on `bars` (causal: row t uses bars <= t)."""
        from mlstrat.features import build_feature_feed, get_feature_set

        cfg = self.config
        fs = get_feature_set(cfg.features.set, cfg.features.version)
        return build_feature_feed(bars, fs, targets=cfg.features.targets)

    def predictions(self, features: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
        """The prediction feed the strategy trades at positions `rows` (with the volatility
        predictor's per-bar forecast when sizing uses one), as the backtest stage builds it."""
        from mlstrat.run import attach_volatility

        frame = self.signal.predict(features, rows)
        if self.volatility is not None:
            vol = self.volatility.predict(features, rows)
            frame = attach_volatility(self.config, frame, vol, file=self.volatility.wf_dir)
        return frame[["timestamp", *self.prediction_columns]]

    def describe(self) -> dict[str, Any]:
        """What a journal records about the run (checked again when the journal is reopened)."""
        return {
            "config_hash": content_hash(self.config.to_dict()),
            "run_dir": str(self.run_dir.resolve()),
            "predictor": self.predictor.name,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "columns": self.columns,
        }


def _check_run(config: RunConfig, run_dir: Path) -> None:
    """`run_dir` is a finished run whose models `config` would have trained."""
    info_path = run_dir / "run.json"
    if not info_path.is_file() or not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            "not a run directory (no run.json / config.yaml)", file=run_dir, fix=_RUN_FIX
        )
    info = load_json(info_path, fix=_RUN_FIX)
    if info.get("status") != "complete":
        raise ConfigError(
            f"the run is not complete (status {info.get('status')!r})",
            file=run_dir,
            fix=f"finish it: mlstrat run CONFIG --out {run_dir}",
        )
    ran = load_config(run_dir / "config.yaml").to_dict()
    mine = config.to_dict()
    for section in MODEL_SECTIONS:
        if ran.get(section) != mine.get(section):
            raise ConfigError(
                f"the run's models were trained with another '{section}' section than the "
                "configuration's",
                file=run_dir / "config.yaml",
                column=section,
                fix=f"use the configuration of that run, or {_RUN_FIX}",
            )


def _pick_predictor(config: RunConfig, name: str | None) -> PredictorConfig:
    signal = config.signal_predictors
    names = [p.name for p in signal]
    if name is None:
        if len(signal) != 1:
            raise ConfigError(
                f"the configuration has {len(signal)} signal predictors ({', '.join(names)})",
                fix="choose one with --predictor NAME",
            )
        return signal[0]
    if name not in names:
        raise ConfigError(
            f"no signal predictor named {name!r}", fix=f"use one of {', '.join(names)}"
        )
    return next(p for p in signal if p.name == name)


def _pick_symbol(config: RunConfig, symbol: str | None) -> str:
    symbols = config.data.symbols
    if symbol is None:
        if len(symbols) != 1:
            raise ConfigError(
                f"the configuration trades {len(symbols)} symbols ({', '.join(symbols)}); a "
                "paper session trades one",
                fix="choose one with --symbol SYM",
            )
        symbol = symbols[0]
    if symbol not in symbols:
        raise ConfigError(f"no data file for symbol {symbol!r}", fix=f"use one of {symbols}")
    data_file = next(f for f in config.data.files if f.symbol == symbol)
    if data_file.minute_path is not None:
        raise ConfigError(
            f"{symbol}: minute_path features need minute bars, which paper sources do not give",
            column="minute_path",
            fix="paper-trade a configuration without minute_path",
        )
    return symbol
