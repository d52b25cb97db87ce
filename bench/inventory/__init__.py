"""Inventory-engine benchmark: the shard actors against a PostgreSQL row lock and Redis Lua.

Usage::

    python -m bench.inventory                          # full run (3 hot-SKU rounds), ~6 min
    python -m bench.inventory --quick                  # about a minute (the smoke test's call)
    python -m bench.inventory --seconds 20 --concurrency 64 256 1024 --json /tmp/inv.json

Options:

``--seconds S``        measured seconds of every throughput phase (default 10; 2 with --quick)
``--warmup W``         unmeasured seconds before each (default 2; 0.5 with --quick)
``--concurrency C ..`` client concurrencies of the hot-SKU comparison (default 64 256, the
                       concurrencies of issue 12's targets); the scaling phase uses the first
``--clients N``        InventoryClient instances the engine's load is spread over, like N
                       Serve replicas in one process (default 1)
``--runs N``           hot-SKU rounds, each on a fresh engine (default 3; 1 with --quick)
``--idle-seconds S``   idle window before each round's phases (default 5; 2 with --quick)
``--quick``            short phases and 20,000 SKUs instead of 100,000 for memory and recovery
``--no-analyze``       do not refresh PostgreSQL's planner statistics (ANALYZE) before the
                       engine phases; see "Statistics" below
``--json PATH``        where to write every figure (default bench/results/inventory-<time>.json)

Where it runs. Embedded PostgreSQL and Redis (``matchday.embedded.start_servers``) in a fresh
temporary directory, on Unix sockets, unless MATCHDAY_DATABASE_URL / MATCHDAY_REDIS_URL are
set; a private Ray (``num_cpus=2``, no dashboard, loopback only, ``RAY_AUTH_MODE=disabled``).
Everything is stopped and the temporary directory removed at the end, even on error, Ctrl-C,
SIGTERM, or a phase that makes no progress within its time limit: every wait is bounded
(``bench.watch``), says every few seconds what it still waits for, and past its limit ends the
run with "STALLED: <phase>: no progress within N s while waiting for <what>", exit status 1,
the figures gathered so far still printed and written. Point
the URLs at a scratch database only, never at one a running engine uses: the benchmark's
shard actors claim shard epochs 0-4 and would fence that engine's shards off. On external
servers the benchmark deletes the rows and keys it created when it ends.

One database serves every configuration, and a shard loads every SKU recorded with its
shard id, whatever the Ray namespace. So SKU names are unique per configuration, and when a
configuration's engine is stopped its SKUs are retired (recorded with shard -1): the next
configuration's shards start out holding none of them. After each hot-SKU engine phase the
outbox relay is given time to drain before the baselines run.

Statistics. The database is brand new, and autovacuum looks at it only once per
``autovacuum_naptime`` (60 s). Without statistics PostgreSQL plans the shard's per-batch
journal lookup (``request_id = ANY(...)``) as a sequential scan of the whole journal, so the
engine would slow down as its journal grows. A database that has run a while has been
analyzed, so the benchmark runs ANALYZE on the engine's tables (and on ``bench_stock``)
before each phase; ``--no-analyze`` shows the cold-statistics behaviour instead.

Catch-up between phases. Before each round's idle window and before each hot-SKU phase,
the benchmark settles the embedded servers (``BenchBase.settle``): a CHECKPOINT, a VACUUM of
the tables the phases wrote, until no autovacuum worker and no Redis save or AOF rewrite
runs. Otherwise a round's idle window measured PostgreSQL catching up on the round before
(0.09-0.16 cores in rounds 2 and 3, none in round 1) and subtracted it from that round's
phases. The phases' figures leave this upkeep out; its CPU seconds are printed as
"settled in", and kept in the JSON (``hot_sku.settle``).

Load generator. The same shape for every system: C worker coroutines in this process's one
asyncio loop, each looping "send one reserve of 1 unit, await its acknowledgement". After
``--warmup`` seconds, reserves acknowledged during the next ``--seconds`` seconds count:

``reserves/s``  acknowledged reserves completed in the window / window seconds
``p50/p99/max`` latency of those reserves, submit to acknowledgement, in milliseconds
                (nearest-rank percentiles; p99.9 is in the JSON)
``errors``      reserves answered with an error in the window (none are expected)
``cores used``  CPU seconds per second during the window, per role of the benchmark's
                own processes (``matchday.ops.cpu_roles``): ``load generator`` (this
                process: the load generator, plus the engine's client library and Ray's
                client side for the engine), ``shards``, ``postgres`` (absent when
                MATCHDAY_DATABASE_URL is set), ``redis``, ``ray:publisher`` (the outbox
                relay), ``ray:gcs``, ``ray:raylet``, ``ray:dashboard`` (its agent),
                ``ray:other``; then ``foreign`` (everything else on the machine), ``machine``
                (all busy CPU; at most 2.0 on the reference machine) and ``steal``.
``CPU us/op``   CPU microseconds per acknowledged reserve in the window, per role and for
                ``ray`` and ``server total`` (every role but the load generator), gross and
                net of the idle burn: each round first primes its fresh engine (512 reserves,
                unmeasured), then samples every role over an idle window (``--idle-seconds``)
                and subtracts that rate from each window (``bench.costs``). The row lock and
                Redis Lua run while the engine stands by, so their gross figures include its
                idle burn; compare net figures.

Figures, in the order printed:

1. Hot SKU, durable acks. Every reserve targets ONE SKU whose stock never runs out, at each
   concurrency in ``--concurrency``:

   ``engine``     the shard actors on Ray as deployed: ``start_inventory`` with 2 ring shards
                  and 1 dedicated shard; the SKU is pinned to the dedicated shard
                  (``actors.pinning.pin_sku``) and driven through ``InventoryClient`` from
                  ``connect_client``. Every reserve has a unique request id, cart and
                  customer; an acknowledgement means the reservation, its journal row, the
                  counters and the outbox row are committed (fsync on, synchronous_commit on).
   ``row lock``   the conventional design: a psycopg AsyncConnectionPool with as many
                  connections as the concurrency (at most 64) running ``UPDATE bench_stock SET
                  stock = stock - $1 WHERE sku = $2 AND stock >= $1`` in autocommit, one
                  transaction per reserve, against the same PostgreSQL.
   ``Redis Lua``  a check-and-decrement Lua script (EVALSHA via redis-py's register_script)
                  through redis.asyncio against the same Redis. Its acks are NOT durable in
                  the same sense: the embedded Redis appends with ``appendfsync everysec``.

   Ratios: ``engine/row-lock`` and ``engine/Redis-Lua``, of reserves/s at the same concurrency
   in the same round; with ``--runs N`` the median of the rounds' ratios [min-max]. Issue 12's
   targets (``bench.targets``) are printed as pass/short lines: >= 5x the row lock at 256
   callers and >= 4x at 64, p99 below the row lock's, server CPU per durable reserve <= 30 us.
   ``batching``: the engine's mutations per actor call
   (client side) and per PostgreSQL transaction (shard side). ``durability``: after each
   engine phase, PostgreSQL's ``inventory.reserved`` of the hot SKU, its held reservation
   rows and its journal rows must each equal the number of acknowledged reserves (warm-up
   included). The row-lock and Redis stock counters are checked the same way.

2. Scaling: reserves spread uniformly at random over 10,000 SKUs (created with
   ``create_skus`` and the matching Router, so each is recorded with its shard) with 1, 2
   and 4 ring shards (dedicated 0), each configuration a fresh engine in its own Ray
   namespace. ``speedup`` is reserves/s relative to 1 shard. On 2 cores more than 2 shards
   cannot add CPU; the figure shows what sharding costs or buys on this machine. Its CPU
   per reserve is gross (no idle window before these configurations).

3. Memory per 100k SKUs: RSS of the shard actor process (pid from ``stats``) after it
   adopted N SKUs (100,000; 20,000 with --quick), minus its RSS right before, holding none;
   scaled to 100,000 SKUs. Also the RSS of a fresh process holding them (after the restart
   of figure 4 ii) minus the fresh process holding none.

4. Recovery of a shard holding N SKUs and N/10 held reservations (target < 2 s):
   (i)  in-process: ``await ShardCore(0, Router(1), InventoryRepository(pool)).start()``
        (claim the epoch, load the SKUs, reservations and customer totals, build ledgers
        and timers), with the engine's shard stopped; min and median of the attempts.
   (ii) on Ray: ``ray.kill(handle, no_restart=False)``, then the time until a reserve
        through the client succeeds again (probes sent every 10 ms once the old process
        is gone; the clock starts just before the kill). Includes Ray's restart of the
        worker process, imports, the shard's recovery and the first group commit.

``notes`` (printed last) flag what the figures themselves reveal: a phase whose load
generator used a whole core (its figure is bounded by the load generator, not the system
under test), a phase that kept every core busy, foreign load or hypervisor steal, row-lock
p99 far above p50, Redis acks that are not fsynced one by one, and whether statistics were
refreshed.

A JSON of every figure, the settings and the machine goes to ``--json`` or
bench/results/inventory-<timestamp>.json.

Layout. ``config`` (targets, sizes, ``Config``), ``report`` (progress lines, tables, the
final report and its notes), ``cpu`` (``CpuMeter``), ``load`` (the load generator),
``harness`` (the engine's lifecycle and SQL helpers every phase uses), ``environment``
(phase 0: the machine and servers), ``baselines`` (the row lock and Redis Lua), ``engine_runs``
(phases 1 and 2), ``recovery`` (phases 3 and 4), ``runner`` (``Bench``, all phases in order)
and ``cli`` (arguments, servers, Ray, signals: ``main``).
"""

from __future__ import annotations

from bench.inventory.cli import main, parse_args, run_until_done
from bench.inventory.config import Config
from bench.inventory.report import notes, report
from bench.inventory.runner import Bench

__all__ = ["Bench", "Config", "main", "notes", "parse_args", "report", "run_until_done"]
