"""Benchmark: the audited-writes-per-second ceiling, next to the same writes unaudited.

    .venv/bin/python -m bench.audit_throughput [--threads 1,4,16] [--seconds 3]
                                               [--database-url URL]

Every audited transaction opens with the audit chain lock (``audited_atomic``: the one
lock order that rules deadlocks out, docs/reliability.md), so audited writes run one at
a time however many threads send them. This measures what that costs. For each thread
count it runs, for ``--seconds`` each:

- baseline: ``transaction.atomic()``, lock one row of the thread's own (``FOR NO KEY
  UPDATE``) and update it: writers never contend, so this scales with the database;
- audited: the same in ``audited_atomic()`` plus one ``audit_record`` (chain head read,
  hash, INSERT), as every release transition does.

and prints transactions per second for both and their ratio. The audited figure at the
highest thread count is the ceiling (goal, issue 18: know it; ample for deploy traffic,
which is a few audited writes per release). The database is a throwaway PostgreSQL
database on 127.0.0.1:5432, created and dropped here (``--database-url`` for one you
give, which must be disposable).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.support import drop_postgres, setup_django, temporary_postgres


def _run(*, threads: int, seconds: float, audited: bool, rows: list[int]) -> int:
    """Transactions committed by ``threads`` threads in ``seconds``."""
    from django.db import connection, transaction

    from apps.audit.services import audit_record, audited_atomic
    from apps.registry.models import RegisteredModel

    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(n: int) -> None:
        pk = rows[n]
        try:
            start.wait()
            while not stop.is_set():
                with audited_atomic() if audited else transaction.atomic():
                    row = RegisteredModel.objects.select_for_update(no_key=True).get(pk=pk)
                    row.description = f"write {counts[n]}"
                    row.save(update_fields=["description"])
                    if audited:
                        audit_record(
                            system_actor="bench",
                            action="bench.write",
                            target_type="registered_model",
                            target_id=pk,
                            after={"n": counts[n]},
                        )
                counts[n] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(seconds)  # the measuring window itself, not a wait for a condition
    stop.set()
    for worker in workers:
        worker.join()
    return sum(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,4,16", help="comma-separated thread counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--database-url", help="a disposable PostgreSQL database")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.threads.split(",")]

    url = args.database_url or temporary_postgres("slipway_bench_audit")
    if url is None or not url.startswith("postgres"):
        print("needs PostgreSQL (the audit chain lock is a PostgreSQL advisory lock)")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="slipway-bench-audit-") as tmp:
            setup_django(Path(tmp), url)
            from django.db import connection

            from apps.registry.models import RegisteredModel

            rows = [
                RegisteredModel.objects.create(name=f"bench-{n}").pk for n in range(max(counts))
            ]
            connection.close()
            print(f"PostgreSQL {connection.pg_version // 10000}; {args.seconds:g} s per figure")
            print(f"{'threads':>7} {'baseline tx/s':>14} {'audited tx/s':>13} {'ratio':>6}")
            ceiling = 0.0
            for threads in counts:
                plain = _run(threads=threads, seconds=args.seconds, audited=False, rows=rows)
                audited = _run(threads=threads, seconds=args.seconds, audited=True, rows=rows)
                plain_rate, audited_rate = plain / args.seconds, audited / args.seconds
                ceiling = max(ceiling, audited_rate)
                print(
                    f"{threads:>7} {plain_rate:>14.0f} {audited_rate:>13.0f} "
                    f"{audited_rate / plain_rate:>6.2f}"
                )
            from apps.audit.selectors import audit_chain_verify

            checked, broken = audit_chain_verify()
            print(f"ceiling: {ceiling:.0f} audited writes/s; chain of {checked} rows ", end="")
            print("intact" if broken is None else f"BROKEN: {broken}")
            return 0 if broken is None else 1
    finally:
        if not args.database_url:
            drop_postgres(url)


if __name__ == "__main__":
    sys.exit(main())
