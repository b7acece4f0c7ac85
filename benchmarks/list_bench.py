#!/usr/bin/env python3
"""How long `cpf list` takes over 10,000 runs (a script, not a test: nothing asserts).

    .venv/bin/python benchmarks/list_bench.py [--runs 10000] [--repeat 7]

Makes one real waiting run, copies its folder to RUNS run folders with fresh ids and
summaries (a third waiting, the rest completed or failed, spread over 30 days), then times
whole `cpf list` processes, from just before `Popen` to exit, and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPF = str(Path(sys.executable).parent / "cpf")
WORKFLOW = HERE.parent / "examples" / "release.yaml"
CASES = {
    "list": ["list"],
    "list --limit 20": ["list", "--limit", "20"],
    "list --status waiting --older-than 2d": ["list", "--status", "waiting", "--older-than", "2d"],
    "list --workflow release --since 1d": ["list", "--workflow", "release", "--since", "1d"],
}


def make_runs(root: Path, count: int, env: dict[str, str]) -> None:
    """One real run, then `count - 1` copies with their own ids, statuses and times."""
    started = subprocess.run(
        [CPF, "run", "-f", str(WORKFLOW), "--input", '{"service": "b"}'],
        env=env,
        capture_output=True,
        check=False,
    )
    template = root / "runs" / json.loads(started.stdout)["run_id"]
    base = datetime.now(UTC)
    for index in range(1, count):
        moment = base - timedelta(minutes=index * 4)
        run_id = f"{moment:%Y%m%dT%H%M%S}{index % 1000:03d}Z-{index:010x}"
        folder = root / "runs" / run_id
        shutil.copytree(template, folder)
        summary = json.loads((folder / "summary.json").read_text())
        stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        summary.update(
            run_id=run_id,
            created_at=stamp,
            updated_at=stamp,
            status=("waiting", "completed", "failed")[index % 3],
        )
        (folder / "summary.json").write_text(json.dumps(summary, sort_keys=True) + "\n")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    began = time.perf_counter()
    done = subprocess.run([CPF, *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - began
    assert done.returncode == 0, done.stdout + done.stderr
    return elapsed, json.loads(done.stdout)["result"]["count"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "state"
        env = {
            **os.environ,
            "CHECKPOINTFLOW_BASE_DIR": str(root),
            "CHECKPOINTFLOW_FSYNC": "0",
            "LLM": "true",
        }
        began = time.perf_counter()
        make_runs(root, options.runs, env)
        print(f"made {options.runs} runs in {time.perf_counter() - began:.1f} s")
        os.sync()  # let the copies reach the disk before timing, not during
        timed(["list"], env)  # warm the page cache, as a second listing would find it
        rows = []
        for name, args in CASES.items():
            samples = [timed(args, env) for _ in range(options.repeat)]
            seconds = statistics.median(sample[0] for sample in samples)
            print(f"cpf {name:<40} median {seconds * 1000:7.0f} ms  ({samples[0][1]} runs shown)")
            rows.append(f"| `cpf {name}` | {seconds * 1000:.0f} | {samples[0][1]} |")
    write_results(options, rows)


def write_results(options: argparse.Namespace, rows: list[str]) -> None:
    """Record the medians beside the other benchmark results."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        "# `cpf list` over many runs",
        "",
        "Written by `benchmarks/list_bench.py` (a script, not a test).",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}",
        f"- load average at the end: {load}",
        f"- runs in the store: {options.runs}; repetitions: {options.repeat} (whole processes)",
        "",
        "| command | median ms | runs shown |",
        "|---|---:|---:|",
        *rows,
        "",
        "Target: 10,000 runs list in under a second.",
        "",
    ]
    (HERE / "LIST_RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
