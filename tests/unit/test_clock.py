"""fraudctl.clock: the wall-clock spelling of tags and status times."""

from __future__ import annotations

import re

from fraudctl.clock import utc_seconds


def test_utc_seconds_is_iso_utc_to_the_second():
    assert utc_seconds(0) == "1970-01-01T00:00:00+00:00"
    assert utc_seconds(1_796_605_323.9) == "2026-12-07T01:02:03+00:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", utc_seconds())
