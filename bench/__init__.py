"""`lainaamo bench`: benchmarks that print their figures beside a baseline measured in the
same run, so that a result is a ratio (or a target met or missed) that survives a noisy
machine. Benchmarks are not tests: `make test` runs only their smoke versions
(tests/integration/test_bench_smoke.py), which keep them working on tiny sizes.

Each benchmark is a module here with:

- `DESCRIPTION` (one line, for `lainaamo bench --help`),
- `add_arguments(parser)` — its own options (sizes, the database URL …),
- `run(args, report)` — measures, and tells `report` (bench.report.Report) what it found.

Shared options, added to every benchmark: `--smoke` (tiny sizes, no targets judged),
`--json FILE` (the figures as JSON, for docs/benchmarks.md) and `--database URL` (a PostgreSQL
server on which a throw-away database is created and dropped; `sqlite` for a file).
"""

from __future__ import annotations

# name -> module under bench/. Every `lainaamo` command builds the parser, which imports these
# modules: at the top they import only the standard library and bench.*; the server's and the
# agent's modules are imported inside run().
BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest",
    "api": "bench.api",
    "support": "bench.support",
    "fleet": "bench.fleet",
    "commands": "bench.commands",
    "tablet": "bench.tablet",
}
