"""Run every benchmark, one after another, each in its own process.

Each benchmark configures Django for its own throwaway database, so they cannot share
a process. Arguments after the benchmark names are not taken; run a module directly
(``python -m bench.gitops_commit --help``) to change its sizes.

    python -m bench.run_all                      # all of them (tens of minutes)
    python -m bench.run_all gitops_commit        # just the named ones
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    "gitops_commit",
    "registry_sync",
    "metrics_poll",
    "dashboard_render",
    "audit_throughput",
    "rollout_steps",
    "live_pages",
)


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failures = []
    for name in names:
        print(f"\n=== bench.{name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"=== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failures.append(name)
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
