"""Run every ``benchmarks/bench_*.py``, print one table and write the results as JSON.

Usage: ``python benchmarks/run.py [--quick] [--only NAME ...] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import Result  # noqa: E402


def _load(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 100000:
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (smoke run)")
    parser.add_argument("--only", nargs="*", default=[], help="benchmark module names (area)")
    parser.add_argument("--json", default=".bench/results.json", help="where to write JSON")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("THINGPRESS_BENCH_QUICK") == "1"

    results: list[Result] = []
    failures: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem.removeprefix("bench_")
        if args.only and area not in args.only:
            continue
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            results.extend(_load(path).run(quick))
        except Exception as exc:  # one broken benchmark must not hide the others
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
        print(f"  {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)

    header = ("benchmark", "figure", "value", "unit", "baseline", "ratio", "target", "ok")
    rows = [
        (
            r.benchmark,
            r.name,
            _fmt(r.value),
            r.unit,
            f"{_fmt(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "-",
            _fmt(r.ratio),
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.ok],
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    for r in results:
        if r.note:
            print(f"note [{r.benchmark}/{r.name}]: {r.note}")
    for failure in failures:
        print(f"FAILED {failure}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "quick": quick,
                "results": [r.as_dict() for r in results],
                "failures": failures,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
