"""Stop a run that a test kills at a known fold, however fast or loaded the machine is.

`held_env(tmp, after)` gives environment variables under which every Python process (the
run and its loky workers) wraps `XGBoostPredictor.fit` on start-up (a sitecustomize): the
first `after` fits run, counted as files in a directory shared by the processes; every later
fit waits until the test kills the run. With one worker the folds run in order, so the run
is killed inside fold `after`'s fit with exactly `after` folds finished, instead of wherever
a polling loop happened to notice them.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = """\
import os

if os.environ.get("MLSTRAT_TEST_HOLD"):
    import time
    from pathlib import Path

    from mlstrat.predictors.xgb import XGBoostPredictor

    _fit = XGBoostPredictor.fit
    _done = Path(os.environ["MLSTRAT_TEST_HOLD"])
    _after = int(os.environ["MLSTRAT_TEST_HOLD_AFTER"])

    def _held_fit(self, *args, **kwargs):
        if len(list(_done.iterdir())) >= _after:
            time.sleep(600)  # until the test kills the run; never outlive it for long
            os._exit(1)
        fitted = _fit(self, *args, **kwargs)
        (_done / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        return fitted

    XGBoostPredictor.fit = _held_fit
"""


def held_env(tmp: Path, after: int) -> dict[str, str]:
    """os.environ plus what makes every XGBoost fit after the first `after` wait (see above)."""
    hook, done = tmp / "held-fits-hook", tmp / "held-fits-done"
    hook.mkdir(parents=True, exist_ok=True)
    done.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), str(REPO)]),
        "MLSTRAT_TEST_HOLD": str(done),
        "MLSTRAT_TEST_HOLD_AFTER": str(after),
    }


def released(env: dict[str, str]) -> dict[str, str]:
    """`env` without the hold: fits run freely again."""
    return {k: v for k, v in env.items() if not k.startswith("MLSTRAT_TEST_HOLD")}
