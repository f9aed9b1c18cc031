import math

import pytest

from harness.slo import percentile, wilson_lower

pytestmark = pytest.mark.unit


def test_wilson_lower_bound_of_30_out_of_30_is_below_one() -> None:
    assert 0.88 < wilson_lower(30, 30) < 0.89  # 30/30 probes prove only ~88.6% at 95% confidence


def test_wilson_lower_bound_grows_with_the_sample() -> None:
    assert wilson_lower(300, 300) > wilson_lower(30, 30)


def test_wilson_lower_bound_of_nothing_is_zero() -> None:
    assert wilson_lower(0, 0) == 0.0


def test_percentile_nearest_rank() -> None:
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0


def test_percentile_of_nothing_is_nan_so_it_fails_any_threshold() -> None:
    assert math.isnan(percentile([], 95)) and not percentile([], 95) < 1e9
