#!/usr/bin/env python3
"""Issue 12: are devtool's snapshots fast?  `devtool snapshot` against `pg_dump -Fc` by hand, and `devtool restore`
against `pg_restore --clean --single-transaction` by hand, on a database of about 300 MB, in one run.

    python bench/snapshots.py [--runs N] [--rows N] [--json FILE] [--keep] [--devtool PATH]

A throw-away copy of the demo stack (its own compose project under /tmp) gets a table of `--rows` rows with an
index (1.6 million: about 310 MB) next to the demo's users. Then, alternating pair by pair (A B A B ..., one
unmeasured warm-up pair first), each side timed with time.perf_counter() around subprocess.run (stdin /dev/null,
output captured), exactly as a user types it in the project directory:

  snapshot   A: devtool snapshot NAME          B: docker compose exec -T db pg_dump -Fc -U devtool -d devtool > FILE
  restore    A: devtool restore NAME           B: docker compose exec -T db pg_restore --clean --single-transaction
                                                     -U devtool -d devtool < FILE

Before each restore (not measured) the table is changed; after each one the row count and a checksum of the
table are checked against the snapshot's. devtool is this checkout's (`python -m toolkit`, PYTHONPATH set to
it) unless --devtool names a script. Target: both ratios (median devtool / median manual) ≤ 0.30.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BenchError, loadavg, log, machine, median, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.30
TABLE = "bench_rows"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVTOOL_", "COMPOSE_"))}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONPATH=str(REPO), DEVTOOL_SNAPSHOT_KEEP="1000")
    return env


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.env = environment()
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-snap-", dir="/tmp"))
        self.env["XDG_STATE_HOME"] = str(self.tmp / "state")  # devtool's snapshots of this run only
        self.name = f"benchsnap{uuid.uuid4().hex[:6]}"
        self.root = self.tmp / self.name
        self.devtool = [args.devtool] if args.devtool else [sys.executable, "-m", "toolkit"]
        self.results: list[dict] = []

    # ---- commands
    def run(self, cmd: list[str], *, stdin=subprocess.DEVNULL, stdout=None, check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess:
        result = subprocess.run(cmd, cwd=self.root, env=self.env, stdin=stdin,
                                stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')[-2000:]}")
        return result

    def compose(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(["docker", "compose", *args], **kwargs)

    def psql(self, sql: str) -> str:
        return self.compose("exec", "-T", "db", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "devtool",
                            "-d", "devtool", "-c", sql).stdout.decode().strip()

    def state(self) -> str:
        return self.psql(f"SELECT count(*) || ' ' || sum(hashtext(email || payload)) FROM {TABLE}")

    # ---- the timed sides
    def timed(self, fn) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    def devtool_snapshot(self, name: str) -> None:
        self.run([*self.devtool, "snapshot", name])

    def manual_dump(self, file: Path) -> None:
        with open(file, "wb") as handle:
            self.compose("exec", "-T", "db", "pg_dump", "-Fc", "-U", "devtool", "-d", "devtool", stdout=handle)

    def devtool_restore(self, name: str) -> None:
        self.run([*self.devtool, "restore", name])

    def manual_restore(self, file: Path) -> None:
        with open(file, "rb") as handle:
            self.compose("exec", "-T", "db", "pg_restore", "--clean", "--single-transaction", "-U", "devtool",
                         "-d", "devtool", stdin=handle)

    # ---- set-up
    def setup(self) -> None:
        self.root.mkdir()
        shutil.copy(REPO / "docker-compose.yml", self.root / "docker-compose.yml")
        shutil.copytree(REPO / "templates", self.root / "templates", ignore=shutil.ignore_patterns("__pycache__"))
        log(f"stack {self.name} in {self.root}: up, upgrade, {self.args.rows} rows")
        self.run([*self.devtool, "db", "upgrade"])
        self.psql(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, email text NOT NULL, payload text, "
                  f"created timestamptz DEFAULT now()); "
                  f"INSERT INTO {TABLE} (email, payload) SELECT 'user' || g || '@example.com', repeat(md5(g::text), 2) "
                  f"FROM generate_series(1, {self.args.rows}) g; CREATE INDEX ON {TABLE} (email); "
                  f"INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 1000) g")
        self.psql("VACUUM ANALYZE")
        self.psql("CHECKPOINT")
        self.size = int(self.psql("SELECT pg_database_size('devtool')"))
        log(f"database devtool: {self.size / 2**20:.0f} MB")

    def change(self) -> None:
        self.psql(f"DELETE FROM {TABLE} WHERE id % 10 = 0; UPDATE {TABLE} SET payload = 'changed' WHERE id % 7 = 0")

    def check(self, expected: str, side: str) -> None:
        found = self.state()
        if found != expected:
            raise BenchError(f"{side}: after the restore the table is {found!r}, the snapshot had {expected!r}")

    # ---- the pairs
    def pairs(self, case: str, side_a, side_b, *, before=None, after_a=None, after_b=None, cmd_a: str,
              cmd_b: str) -> None:
        a, b, loads = [], [], []
        for i in range(self.args.runs + 1):
            for side, fn, samples, after in (("devtool", side_a, a, after_a), ("manual", side_b, b, after_b)):
                if before:
                    before()
                elapsed = self.timed(lambda: fn(i))
                if after:
                    after(i)
                if i:
                    samples.append(elapsed)
            if i:
                loads.append(loadavg())
                log(f"  {case}: pair {i}/{self.args.runs}: devtool {a[-1] * 1000:6.0f} ms   manual "
                    f"{b[-1] * 1000:6.0f} ms   (load {loads[-1]:.1f})")
        ratio = median(a) / median(b)
        self.results.append({"case": case, "devtool_cmd": cmd_a, "manual_cmd": cmd_b, "devtool_s": a, "manual_s": b,
                             "devtool_median_s": median(a), "manual_median_s": median(b), "ratio": ratio,
                             "pair_ratio_median": median([x / y for x, y in zip(a, b)]), "loadavg_1min": loads,
                             "target": f"≤ {TARGET:.2f}", "passed": ratio <= TARGET})

    def measure(self) -> None:
        dumps = self.tmp / "dumps"
        dumps.mkdir()
        expected = self.state()

        def drop_snapshot(i: int) -> None:  # not measured: every run takes a new one under the same conditions
            self.run([*self.devtool, "snapshot", "delete", f"s{i}"])

        def drop_dump(i: int) -> None:
            (dumps / f"s{i}.dump").unlink()

        log("snapshot: devtool snapshot vs pg_dump -Fc")
        self.pairs("snapshot", lambda i: self.devtool_snapshot(f"s{i}"), lambda i: self.manual_dump(
            dumps / f"s{i}.dump"), after_a=drop_snapshot, after_b=drop_dump, cmd_a="devtool snapshot NAME",
            cmd_b="docker compose exec -T db pg_dump -Fc -U devtool -d devtool > FILE")

        self.devtool_snapshot("base")
        self.manual_dump(dumps / "base.dump")
        log("restore: devtool restore vs pg_restore --clean --single-transaction")
        self.pairs("restore", lambda i: self.devtool_restore("base"),
                   lambda i: self.manual_restore(dumps / "base.dump"), before=self.change,
                   after_a=lambda i: self.check(expected, "devtool"), after_b=lambda i: self.check(expected, "manual"),
                   cmd_a="devtool restore NAME",
                   cmd_b="docker compose exec -T db pg_restore --clean --single-transaction -U devtool -d devtool "
                         "< FILE")

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"--keep: leaving {self.root} (project {self.name}) up")
            return
        if self.root.exists():
            self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def report(bench: Bench, info: dict, elapsed: float) -> str:
    lines = ["# Snapshots: devtool vs pg_dump / pg_restore by hand (issue 12)", "",
             f"Reproduce: `python bench/snapshots.py` (this run: `{' '.join(sys.argv)}`).", "",
             f"Machine: {info['nproc']} CPUs, {info['cpu']}; Docker {info['docker']}, Compose {info['compose']}; "
             f"Python {info['python']}; load average at start {info['loadavg_start']}; {info['date']}; devtool "
             f"{' '.join(bench.devtool)} at commit {info['commit']}. Database: {bench.size / 2**20:.0f} MB "
             f"({bench.args.rows} rows with an index, plus the demo's tables); {bench.args.runs} measured pairs per "
             f"case (+1 warm-up), ABAB; total {elapsed / 60:.1f} min.", "",
             "| Case | devtool | manual | devtool median | manual median | ratio | target | result |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in bench.results:
        lines.append(f"| {r['case']} | `{r['devtool_cmd']}` | `{r['manual_cmd']}` | {r['devtool_median_s'] * 1000:.0f} ms "
                     f"| {r['manual_median_s'] * 1000:.0f} ms | {r['ratio']:.2f} | {r['target']} | "
                     f"{'PASS' if r['passed'] else '**FAIL**'} |")
    lines += ["", "Samples (ms, in run order; devtool / manual):", ""]
    for r in bench.results:
        lines.append(f"- {r['case']}: devtool [{', '.join(f'{x * 1000:.0f}' for x in r['devtool_s'])}]; manual "
                     f"[{', '.join(f'{x * 1000:.0f}' for x in r['manual_s'])}]; median of per-pair ratios "
                     f"{r['pair_ratio_median']:.2f}; load {min(r['loadavg_1min']):.1f}–{max(r['loadavg_1min']):.1f}")
    lines += ["", "Notes: devtool's snapshot is a copy inside the database server (CREATE DATABASE … TEMPLATE, the "
              "connections it needs closed are closed); its restore makes a fresh copy of that copy and swaps it in "
              "by two renames in one transaction. Each devtool snapshot is deleted after it is timed and each dump "
              "file removed (not measured); before each restore the table is changed, after it the row count and a "
              "checksum of the rows are checked."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured pairs per case (default 5)")
    parser.add_argument("--rows", type=int, default=1_600_000, help="rows in the bench table (1.6 million: ~310 MB)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to FILE")
    parser.add_argument("--devtool", help="measure this devtool script instead of this checkout")
    parser.add_argument("--keep", action="store_true", help="leave the stack and temp dir (debugging)")
    args = parser.parse_args()
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the finally below still removes the stack
    info = machine({"resolved_by": "--devtool", "real": " ".join(bench.devtool)})
    started = time.perf_counter()
    try:
        bench.setup()
        wait_for(lambda: bench.state(), timeout=60, what="the bench table")
        bench.measure()
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        bench.cleanup()
    text = report(bench, info, time.perf_counter() - started)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": bench.results}, indent=2))
    return 0 if all(r["passed"] for r in bench.results) else 3


if __name__ == "__main__":
    sys.exit(main())
