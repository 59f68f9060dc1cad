"""What one more forward pass costs on this runtime, learned from the passes the server runs.

:func:`batcher.plan_passes` splits a batch by length when the padded slots it saves are
worth more than the fixed cost of another pass. That fixed cost is the runtime's, not a
constant: on fp32 a pass of 16 short rows costs about twice a pass of 8, while bf16 on AMX
runs 16 rows in little more than the time of 8 (the in-process ceiling of 2026-12-02
measured 280 sentences/s at batch 8 and 488 at batch 16), so splitting 16 rows into two
passes of 8 there loses. A constant that suits one runtime misplans the other.

So the cost is measured where it matters, in the predictor itself, on the passes it runs:
every pass gives (padded token slots = rows x width, seconds), and an exponentially
weighted least-squares line ``seconds = fixed + per_slot x slots`` is kept over them. The
planner's overhead is ``fixed / per_slot`` in token slots. The fit minimises *relative*
error (each pass weighted by 1/seconds squared): the cost of large passes grows faster
than linearly (attention), and in plain least squares those few points set the line and
push the intercept down (torch fp32 on one thread, 1-32 rows x 16-64 tokens: plain -10 ms,
an overhead of 0 slots; relative 5.6 ms, 27 slots, against 41 from the passes up to 512
slots alone; bf16: 83 plain, 208 relative, 247 small passes only). It also makes a pass
slowed by other work on the machine count little. Until enough passes of varied
size are seen (or when the fit is degenerate: a flat or falling line) the configured
``--pass-overhead-tokens`` prior holds. Pure arithmetic; the batcher feeds it.
"""

from __future__ import annotations

import math
import threading


class PassCostModel:
    """``seconds ~ fixed + per_slot x slots`` over recent passes; overhead in token slots."""

    def __init__(
        self,
        prior_overhead_tokens: int,
        min_passes: int = 32,
        halflife_passes: float = 512.0,
        max_overhead_tokens: int = 8192,
    ) -> None:
        self.prior = prior_overhead_tokens
        self.min_passes = min_passes
        self.max_overhead = max_overhead_tokens
        self._decay = 0.5 ** (1.0 / halflife_passes)
        self._lock = threading.Lock()  # observed in the inference thread, read anywhere
        self._n = 0
        self._w = self._sx = self._sy = self._sxx = self._sxy = 0.0

    def observe(self, rows: int, width: int, seconds: float) -> None:
        """One forward pass of ``rows`` rows padded to ``width`` that took ``seconds``."""
        if rows <= 0 or width <= 0 or not math.isfinite(seconds) or seconds <= 0:
            return
        x = float(rows * width)
        d = self._decay
        w = 1.0 / (seconds * seconds)  # relative error (module docstring)
        with self._lock:
            self._n += 1
            self._w = self._w * d + w
            self._sx = self._sx * d + w * x
            self._sy = self._sy * d + w * seconds
            self._sxx = self._sxx * d + w * x * x
            self._sxy = self._sxy * d + w * x * seconds

    def fit(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per token slot), or None while there is no usable fit."""
        with self._lock:
            n, w, sx, sy, sxx, sxy = self._n, self._w, self._sx, self._sy, self._sxx, self._sxy
        if n < self.min_passes:
            return None
        mean_x, mean_y = sx / w, sy / w
        var_x = sxx / w - mean_x * mean_x
        # Passes of nearly one size say nothing about the slope.
        if var_x <= (0.1 * mean_x) ** 2:
            return None
        slope = (sxy / w - mean_x * mean_y) / var_x
        if slope <= 0:
            return None
        return mean_y - slope * mean_x, slope

    def overhead_tokens(self) -> int:
        """The fixed cost of a pass in token slots (the prior until the fit is usable)."""
        fitted = self.fit()
        if fitted is None:
            return self.prior
        fixed, slope = fitted
        return round(min(self.max_overhead, max(0.0, fixed / slope)))

    def describe(self) -> str:
        """One line for the log: the fit and the overhead the planner uses."""
        fitted = self.fit()
        if fitted is None:
            return f"no usable fit after {self.passes} passes; overhead {self.prior} token slots"
        fixed, slope = fitted
        return (
            f"{fixed * 1000:.2f} ms + {slope * 1e6:.3f} us per token slot over "
            f"{self.passes} passes; overhead {self.overhead_tokens()} token slots"
        )

    @property
    def passes(self) -> int:
        return self._n
