"""A YAML experiment driven from Python: run it, change one strategy parameter, replay it.

    python examples/run_config.py                       # configs/demo.yaml, a few minutes
    python examples/run_config.py --set data.start=2025-06-01 --set walkforward.test=1mo

The second run reuses the cached features and walk-forward models (only the
backtest and the report are recomputed); the replay backtests the saved
predictions again and checks that trades.csv comes out byte-identical.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from mlstrat import load_config, replay, run_experiment

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def main(out, config=DEMO, overrides=None):
    overrides = dict(overrides or {})
    cfg = load_config(config, overrides)  # validated: a typo is a ConfigError naming the key
    print(
        f"{cfg.name}: {', '.join(cfg.data.symbols)}, predictors {[p.name for p in cfg.predictors]}"
    )

    first = run_experiment(cfg, out)
    hold = cfg.strategy.params.get("max_hold_bars", 48)
    second = run_experiment(
        config, out, overrides={**overrides, "strategy.params.max_hold_bars": hold // 2}
    )
    for record in second.stages:
        print(f"  {record.stage:<12} {record.item:<22} {record.status}")
    for name in second.results:
        before, after = len(first.results[name].trades), len(second.results[name].trades)
        print(f"{name}: {before} trades with max_hold_bars={hold}, {after} with {hold // 2}")

    check = replay(out, mode="backtest")
    print(f"replay identical: {check.identical}; report: {second.main_report}")
    return second


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEMO)
    parser.add_argument("--out", default="reports/run_config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = parser.parse_args()
    pairs = dict(item.split("=", 1) for item in a.set)
    main(a.out, a.config, {k: yaml.safe_load(v) for k, v in pairs.items()})
