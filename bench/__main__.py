"""Run the benchmarks: every bench/bench_*.py, or those named, each in its own process (a
benchmark sets Django up against its own database, once per process).

    python -m bench                        # all of them
    python -m bench seed pages             # bench_seed.py, then bench_pages.py
    python -m bench pages -- --requests 50 # arguments after -- go to each named benchmark
    python -m bench --json results.jsonl   # also collect every benchmark's figures as JSON lines
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The page benchmark reuses the tenant the seed benchmark leaves behind.
FIRST = ("seed", "pages")


def available() -> list[str]:
    names = [p.stem.removeprefix("bench_") for p in sorted(HERE.glob("bench_*.py"))]
    return sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        argv, passthrough = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", metavar="NAME", help=f"some of: {', '.join(names)} (default: all)")
    parser.add_argument("--json", metavar="FILE", help="write every benchmark's figures to FILE as JSON lines")
    args = parser.parse_args(argv)
    chosen = [n.removeprefix("bench_").removesuffix(".py") for n in args.benchmarks] or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")

    results = Path(tempfile.mkstemp(prefix="bench-", suffix=".jsonl")[1])
    env = {**os.environ, "BENCH_RESULT_FILE": str(results), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    failures = []
    for name in chosen:
        print(f"\n### bench_{name} {' '.join(passthrough)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.bench_{name}", *passthrough], cwd=ROOT, env=env)
        print(f"### bench_{name}: {'ok' if code == 0 else f'exit {code}'} in {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failures.append(name)
    if args.json:
        lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        Path(args.json).write_text("".join(json.dumps(line) + "\n" for line in lines))
        print(f"figures of {len(lines)} benchmark(s) written to {args.json}")
    results.unlink(missing_ok=True)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
