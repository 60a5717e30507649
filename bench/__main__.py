"""`python -m bench` (`make bench`): every benchmark, side by side with its baseline, written
to docs/benchmarks.md. `--only agi,api` runs some; `--quick` shortens every run (a smoke
run: its figures are not the ones to publish)."""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from bench.common import REPO, raise_nofile

SECTIONS = ("audio", "amd", "agi", "asterisk", "sip", "api", "db", "campaign", "stats")


def _run_section(name: str, quick: bool):
    if name == "agi":
        from bench import agi_bench
        if quick:
            return agi_bench.run(duration=1.0, warmup=0.5, repeat=1, hold_sessions=500)
        return agi_bench.run()
    if name == "asterisk":
        from bench import asterisk_bench
        return asterisk_bench.run(calls=20 if quick else 150)
    if name == "sip":
        from bench import sip_bench
        return sip_bench.run(calls=100 if quick else 1000, rate=100)
    if name == "api":
        from bench import api_bench
        return api_bench.run(seconds=1.0 if quick else 5.0, repeat=1 if quick else 2)
    if name == "db":
        from bench import db_bench
        return db_bench.run(seconds=1.0 if quick else 3.0)
    if name == "campaign":
        from bench import campaign_bench
        return campaign_bench.run(calls=500 if quick else 2000)
    if name == "amd":
        from bench import amd_bench
        return amd_bench.run(calls=300, seconds=3.0 if quick else 10.0)
    if name == "audio":
        from bench import audio_bench
        return audio_bench.run(rounds=3 if quick else 7, hits=50 if quick else 200)
    if name == "stats":
        from bench import stats_bench
        return stats_bench.run(sizes=(10_000,) if quick else (10_000, 100_000),
                               repeat=3 if quick else 7)
    raise ValueError(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    raise_nofile()

    from bench import machine, report

    t0 = time.perf_counter()
    meter = machine.LoadMeter()
    results: dict = {"machine": machine.describe(), "sections": {}, "failed": {}}
    for name in [s for s in SECTIONS if s in wanted]:
        print(f"[bench] {name}", flush=True)
        try:
            results["sections"][name] = _run_section(name, args.quick)
        except Exception:
            results["failed"][name] = traceback.format_exc()
            print(results["failed"][name], file=sys.stderr, flush=True)
    results["seconds"] = time.perf_counter() - t0
    results["load"] = meter.read()
    text = report.Report(results).render()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"[bench] wrote {args.out} in {results['seconds']:.0f} s", flush=True)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
