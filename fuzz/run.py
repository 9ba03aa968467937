"""Long fuzz run: ``python fuzz/run.py --cases 100000`` prints one summary line.

Every generated cfg, weights file, array set, array file and image must end in a located
``DarkweightsError`` (or succeed), within ``--time-limit`` seconds, without a ``MemoryError``
under an address-space cap of ``--as-mb`` above the starting size, and without the process's
peak RSS during the case (reset before each one) passing ``--rss-mb``. Failing cases are written to
``--log`` with their seed, so any one of them can be replayed: ``python fuzz/run.py --replay SEED``.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).resolve().parents[1])]

from fuzz.cases import GENERATORS, WEIGHTS, run_case  # noqa: E402


def vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0): each case's peak is its own, not the generator's
    (which builds its hostile file in memory first) nor an earlier case's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """VmHWM (ru_maxrss would include the parent's memory carried over across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0, help="first case seed (case i uses seed + i)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="CPU seconds per case")
    ap.add_argument("--as-mb", type=int, default=1024, help="address space allowed beyond the start")
    ap.add_argument("--rss-mb", type=int, default=400, help="peak resident memory allowed")
    ap.add_argument("--families", default=",".join(GENERATORS), help="comma-separated generator names")
    ap.add_argument("--log", default="fuzz-failures.log")
    ap.add_argument("--replay", type=int, help="run the case of this seed only, print its outcome")
    ap.add_argument("--kinds", action="store_true", help="list the error kinds seen on stderr")
    args = ap.parse_args()

    families = [f for f in args.families.split(",") if f]
    weights = [WEIGHTS[f] for f in families]
    # warm the caches (seed models, seed images) before the memory cap and the RSS baseline
    with tempfile.TemporaryDirectory(prefix="dw-fuzz-") as tmp:
        for f in families:
            GENERATORS[f](random.Random(0), Path(tmp))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm_size() + (args.as_mb << 20)
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    Path(args.log).write_text("")
    stop: list = []
    signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))  # `kill -USR1 PID`: finish now, print the summary
    counts: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    by_family: collections.Counter = collections.Counter()
    failures = []
    growth: collections.Counter = collections.Counter()  # family -> the largest RSS growth of one case, MB
    start = time.perf_counter()
    seeds = [args.replay] if args.replay is not None else range(args.seed, args.seed + args.cases)
    with tempfile.TemporaryDirectory(prefix="dw-fuzz-") as tmp:
        for n, seed in enumerate(seeds):
            if stop:
                break
            rng = random.Random(seed)
            family = rng.choices(families, weights)[0]
            try:
                case = GENERATORS[family](rng, Path(tmp))
            except Exception as exc:
                counts["generator bug"] += 1
                failures.append(f"seed {seed} [{family}] generator bug: {exc!r}\n")
                with open(args.log, "a") as log:
                    log.write(failures[-1] + "\n")
                continue
            reset_peak()
            before = rss_mb()
            out = run_case(case, args.time_limit)
            status = out.status
            peak = peak_rss_mb()
            growth[case.family] = max(growth[case.family], peak - before)
            if status == "ok" or status == "error":
                if peak > args.rss_mb:
                    status = "overalloc"
                    out = out._replace(detail=f"{case.label}: peak RSS {peak:.0f} MB (+{peak - before:.0f} MB)")
            counts[status] += 1
            by_family[case.family] += 1
            if status == "error":
                kinds[out.kind] += 1
            if status not in ("ok", "error"):
                failures.append(f"seed {seed} [{family}] {status}: {out.kind}\n{out.detail}\n")
                with open(args.log, "a") as log:  # as they happen: a long run can be watched
                    log.write(failures[-1] + "\n")
            if args.replay is not None:
                print(status, out.kind, out.detail, sep="\n")
            if n and n % 5000 == 0:
                print(f"... {n} cases, {dict(counts)}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    total = sum(counts.values())
    print(
        f"fuzz: {total} cases ({', '.join(f'{k} {v}' for k, v in sorted(by_family.items()))}) in {elapsed:.0f} s; "
        f"{counts['ok']} valid, {counts['error']} rejected with {len(kinds)} distinct error kinds; "
        f"{counts['unexpected']} unexpected, {counts['hang']} hangs, {counts['overalloc']} over-allocations; "
        f"largest RSS growth of one case {max(growth.values(), default=0):.0f} MB "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(growth.items()))})"
        + (f"; {counts['generator bug']} generator bugs" if counts["generator bug"] else "")
        + (f"; failures in {args.log}" if failures else "")
    )
    if args.kinds:
        for k, v in kinds.most_common():
            print(f"{v:7d}  {k}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
