"""ringmta-bench command line: run, compare, capacity (docs/bench.md).

Exit codes: 0 every run passed, 1 a run failed its expectations (a lost or corrupted
message, a threshold, a process that died), 2 bad usage or a bad scenario (the key and the
reason on stderr), 130 interrupted (SIGINT/SIGTERM; every child stopped first).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from . import procs
from .scenario import ScenarioError, load_scenario
from .systems import ROOT


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"ringmta-bench: {message}", file=sys.stderr)
        sys.exit(2)


def default_out_dir(name: str) -> Path:
    base = ROOT / "results" / "runs"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    d = base / f"{stamp}-{name}"
    i = 2
    while d.exists():
        d = base / f"{stamp}-{name}-{i}"
        i += 1
    return d


def cmd_run(argv: list[str]) -> int:
    p = _Parser(prog="ringmta-bench run",
                description="Run a scenario: each system side by side, every message accounted for.")
    p.add_argument("scenario", help="scenario TOML file (harness/scenarios/*.toml)")
    p.add_argument("--system", action="append", default=[], metavar="NAME",
                   help="run only this system of the scenario (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a scenario key by dotted path, e.g. load.rate=2000 (repeatable)")
    p.add_argument("--repeat", type=int, metavar="N", help="repetitions (overrides repeat)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="run folder (default results/runs/<UTC date-time>-<scenario>)")
    p.add_argument("--quiet", action="store_true", help="no progress line, only the table")
    a = p.parse_args(argv)
    overrides = list(a.overrides)
    if a.repeat is not None:
        overrides.append(f"repeat={a.repeat}")
    try:
        sc = load_scenario(a.scenario, overrides)
    except ScenarioError as e:
        print(f"ringmta-bench: scenario {a.scenario}: {e}", file=sys.stderr)
        return 2
    out = a.out or default_out_dir(sc["name"])
    from .report import table
    from .run import run_scenario
    procs.install_signal_handlers()
    try:
        result = run_scenario(sc, a.system or None, out, quiet=a.quiet)
    except ScenarioError as e:
        print(f"ringmta-bench: scenario {a.scenario}: {e}", file=sys.stderr)
        return 2
    except procs.Interrupted as e:
        print(f"\nringmta-bench: interrupted ({e}); every process of the run was stopped; "
              f"partial files in {out}", file=sys.stderr)
        return 130
    print(table(result))
    print()
    if result["failures"]:
        print("FAILED:")
        for f in result["failures"]:
            print(f"  {f}")
    print(f"report: {out / 'report.md'}")
    return 0 if result["ok"] else 1


def _delegate(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(f"ringmta_bench.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"ringmta_bench.{module}":
            print(f"ringmta-bench {module}: not available yet", file=sys.stderr)
            return 2
        raise
    return mod.main(argv)


USAGE = """usage: ringmta-bench run SCENARIO.toml [--system NAME ...] [--set KEY=VALUE ...] [--repeat N] [--out DIR] [--quiet]
       ringmta-bench compare BASE NEW [...]
       ringmta-bench capacity SCENARIO.toml --slo-p99 5ms [...]
Exit codes: 0 ok, 1 failed expectations (loss, thresholds), 2 bad usage or configuration.
See docs/bench.md."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return cmd_run(rest)
    if cmd in ("compare", "capacity"):
        return _delegate(cmd, rest)
    print(f"ringmta-bench: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2
