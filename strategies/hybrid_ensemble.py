"""Trade the LSTM + Transformer hybrid's combined P(up), with a veto by any dissenting member.

The hybrid predictor writes its combined probability as ``proba_up`` and each
member's as ``proba_up_<i>_<name>`` (e.g. ``proba_up_0_lstm``,
``proba_up_1_transformer``). This strategy enters when the combined
confidence clears the threshold, but only if no member disagrees: a long is
vetoed when some member's P(up) is below ``veto``, a short when some
member's P(up) is above 1 − ``veto``. A member turning against an open
position closes it ("member_veto"), as does a flip of the combined signal.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlstrat.errors import ConfigError
from mlstrat.sizing import TieredConfidenceSizer
from mlstrat.strategy import MLStrategy, Pred

MEMBER_LINE = re.compile(r"^proba_up_\d+_\w+$")


class HybridEnsemble(MLStrategy):
    """Ensemble entries gated by unanimous members; exits on a flip or a member veto."""

    params = (
        ("member_lines", None),  # None: every proba_up_<i>_<name> line of the feed
        ("veto", 0.5),
        ("allow_short", True),
        ("long_threshold", 0.60),
        ("short_threshold", 0.60),
    )
    default_sizer = TieredConfidenceSizer
    default_sizer_params = {"method": "tiered", "price_buffer": 0.002}

    def __init__(self) -> None:
        super().__init__()
        self._members: dict[Any, tuple] = {}
        for data in self.datas:
            names = self.p.member_lines or [
                a for a in data.lines.getlinealiases() if MEMBER_LINE.match(a)
            ]
            lines = tuple(getattr(data.lines, n, None) for n in names)
            if len(lines) < 2 or any(line is None for line in lines):
                raise ConfigError(
                    f"hybrid strategy needs at least two member probability lines, found {list(names)}",
                    param="member_lines",
                    fix="join the hybrid predictor's proba_up_<i>_<name> columns or set member_lines",
                )
            self._members[data] = lines

    def member_probas(self, data: Any) -> list[float]:
        return [line[self._ago] for line in self._members[data]]

    def entry_signal(self, data: Any, pred: Pred) -> int:
        side = super().entry_signal(data, pred)
        members = self.member_probas(data)
        if side == 0 or any(math.isnan(p) for p in members):
            return 0
        if side > 0 and min(members) < self.p.veto:
            return 0
        if side < 0 and max(members) > 1.0 - self.p.veto:
            return 0
        return side

    def exit_signal(self, data: Any, pred: Pred, position: Any) -> str | None:
        flip = super().exit_signal(data, pred, position)
        if flip:
            return flip
        members = self.member_probas(data)
        if position.size > 0 and min(members) < self.p.veto:
            return "member_veto"
        if position.size < 0 and max(members) > 1.0 - self.p.veto:
            return "member_veto"
        return None
