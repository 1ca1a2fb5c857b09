"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012, "1€ Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems"), elementwise over numpy arrays: jitter removed at low speed, little lag at high
speed.

For samples :math:`x_i` at times :math:`t_i` (seconds), :math:`T_i = t_i - t_{i-1}`:

.. math::

    \\alpha(f_c, T) = \\frac{1}{1 + \\tau / T}, \\qquad \\tau = \\frac{1}{2\\pi f_c}

    \\dot x_i = \\frac{x_i - \\hat x_{i-1}}{T_i}, \\qquad
    \\hat{\\dot x}_i = \\alpha(d_c, T_i)\\, \\dot x_i + (1 - \\alpha(d_c, T_i))\\, \\hat{\\dot x}_{i-1}

    f_{c,i} = f_{c,\\min} + \\beta\\, |\\hat{\\dot x}_i|, \\qquad
    \\hat x_i = \\alpha(f_{c,i}, T_i)\\, x_i + (1 - \\alpha(f_{c,i}, T_i))\\, \\hat x_{i-1}

with :math:`\\hat x_0 = x_0` and :math:`\\hat{\\dot x}_0 = 0`: each value is an exponential smoothing whose cutoff
frequency :math:`f_c` (Hz) rises with the smoothed speed; ``min_cutoff`` (:math:`f_{c,\\min}`) sets the smoothing at
rest (lower: less jitter, more lag), ``beta`` (:math:`\\beta`) how fast the cutoff rises with speed (higher: less lag),
``d_cutoff`` (:math:`d_c`) the smoothing of the speed estimate. Every array element is filtered on its own, as the
authors' reference implementation filters each coordinate.

The authors' reference implementation is on PyPI (``OneEuroFilter``); it filters one scalar per object, so the
42×3 joints of a frame would need 126 objects per array. This module is the same recursion on whole arrays.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "smoothing_factor"]


def smoothing_factor(cutoff: float | np.ndarray, period: float) -> float | np.ndarray:
    """:math:`\\alpha = 1 / (1 + \\tau / T)` with :math:`\\tau = 1 / (2\\pi f_c)`: the weight of the new sample in an
    exponential smoothing with cutoff frequency ``cutoff`` (Hz) for samples ``period`` seconds apart."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class OneEuroFilter:
    """The One-Euro filter over arrays of one shape (module docstring).

    Args:
        min_cutoff: the cutoff frequency at rest, Hz (> 0).
        beta: the cutoff's rise per unit of speed (>= 0; the speed is in the values' unit per second).
        d_cutoff: the cutoff frequency of the speed estimate, Hz (> 0).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        for name, value, low in (("min_cutoff", min_cutoff, 0.0), ("d_cutoff", d_cutoff, 0.0)):
            if not (math.isfinite(float(value)) and float(value) > low):
                raise ValueError(f"{name}={value} must be a positive number (Hz)")
        if not (math.isfinite(float(beta)) and float(beta) >= 0.0):
            raise ValueError(f"beta={beta} must be a number >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """The filtered value of sample ``x`` taken at time ``t`` (seconds, increasing)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"sample of shape {x.shape} after samples of shape {self._x.shape}; reset() first")
        period = float(t) - self._t
        if not period > 0.0:
            raise ValueError(f"time t={t} is not after the previous sample's t={self._t}")
        speed = (x - self._x) / period
        a_d = smoothing_factor(self.d_cutoff, period)
        self._dx = self._dx + a_d * (speed - self._dx)
        a = smoothing_factor(self.min_cutoff + self.beta * np.abs(self._dx), period)
        self._x = self._x + a * (x - self._x)  # = a·x + (1 − a)·x̂, exact for a constant signal
        self._t = float(t)
        return self._x.copy()
