"""ringmta-bench: runs scenarios (sinks, a system under test, the loadgen), accounts for
every message, and writes results/runs/<date>-<scenario>/ (docs/bench.md).

Modules, one job each: scenario (TOML -> resolved dict), procs (children, ports, /proc),
promscrape (reading /metrics), systems (direct / ringmta / postfix set-ups), ledger
(reconciliation), run (one scenario: repetitions, measurements), results (result.json,
machine facts), report (report.md and the terminal table), plots (PNG), progress (TTY line).
"""
