"""A small run of the forecast backtest (evals/forecast/backtest.py has the full one and its figures)."""

from __future__ import annotations

from evals.forecast.backtest import run


def test_the_forecast_is_30_percent_better_than_both_readings_of_the_naive_baseline() -> None:
    result = run(accounts=150, seeds=(7,), dates=3)
    for horizon in ("4w", "13w"):
        r = result[horizon]
        naive = min(r["wape_naive_past_due_this_week"], r["wape_naive_past_due_dropped"])
        assert r["wape_lumo"] <= naive * 0.7, (horizon, r)
