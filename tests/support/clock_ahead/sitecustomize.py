"""Moves the wall clock of every Python process of a test run ahead, to show that no test
depends on today's date (issue 14: a test that fixed its clock at a date the scheduler then
judged by the real clock failed thirteen days later).

Active only with LAINAAMO_TEST_CLOCK_AHEAD_DAYS set and this directory on PYTHONPATH, which
`make test-clock-ahead` does: Python imports `sitecustomize` at start-up, so the test process
and every Python process it starts (servers, agents, the demo) inherit it. Only the wall clock
moves (time.time, datetime.now, CLOCK_REALTIME); monotonic time stays real, as between two
machines whose clocks agree on a date the tests did not expect. Debian's faketime cannot do
this here: with the monotonic clock faked, threading.Event.wait never returns, and without, it
makes time.sleep fail with EINVAL.
"""

import os

_DAYS = os.environ.get("LAINAAMO_TEST_CLOCK_AHEAD_DAYS")
if _DAYS:
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=float(_DAYS)), tick=True).start()
