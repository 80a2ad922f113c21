"""Cold start: `import thingpress_core` against `import pydantic, cryptography.x509`.

A Lambda function or a CLI pays the package's import on every cold start. Each figure is the
median of fresh interpreters timing one import statement; the baseline (the two libraries a
certificate import cannot do without) is timed in the same run. Target: ratio <= 1.3.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from _harness import Result


def _import_ms(statement: str, runs: int) -> float:
    code = f"import time; s = time.perf_counter(); {statement}; print(time.perf_counter() - s)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(samples) * 1000


def run(quick: bool) -> list[Result]:
    runs = 5 if quick else 15
    package = _import_ms("import thingpress_core", runs)
    baseline = _import_ms("import pydantic, cryptography.x509", runs)
    lambda_module = _import_ms("import thingpress_core.integrations.aws_lambda", runs)
    ratio = package / baseline
    return [
        Result(
            "import_time",
            "import thingpress_core",
            package,
            "ms",
            baseline=baseline,
            baseline_name="import pydantic, cryptography.x509",
            target="ratio <= 1.3",
            ok=ratio <= 1.3,
        ),
        Result(
            "import_time",
            "import thingpress_core.integrations.aws_lambda (a Lambda cold start)",
            lambda_module,
            "ms",
            baseline=baseline,
            baseline_name="import pydantic, cryptography.x509",
            note="reported, not judged: the handler module loads pydantic and pydantic-settings",
        ),
    ]
