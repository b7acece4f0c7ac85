#!/usr/bin/env python3
"""Benchmark harness for `cpf`: one run, interleaved repetitions, medians and ratios.

    .venv/bin/python benchmarks/run.py            # default run, a few minutes
    .venv/bin/python benchmarks/run.py --quick    # fewer repetitions, to check the harness
    .venv/bin/python benchmarks/run.py --compare old=/path/to/cpf
    .venv/bin/python benchmarks/run.py --scale    # growth curves instead (see scale.py)

Every measurement is one child process timed from just before `Popen` to its reaping; peak
RSS comes from a separate pass under `/usr/bin/time -f %M`. Cases are visited round-robin, in a
shuffled order each round, so background noise lands on every case alike. Each case has
its own fresh state root. This is a script, not a test: nothing here asserts on time.
The report goes to benchmarks/RESULTS.md (see --output). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKFLOWS = HERE / "workflows"
TEMPLATE = WORKFLOWS / "template.yaml"
LOOP = WORKFLOWS / "loop.yaml"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
OURS = REPO / ".venv" / "bin" / "cpf"
REFERENCE = Path("/tmp/ref/bin/cpf")
REFERENCE_NAME = "1.0.4"
REFERENCE_INSTALL = (
    "python3 -m venv /tmp/ref && "
    "/tmp/ref/bin/pip install --ignore-requires-python checkpointflow==1.0.4"
)
TEMPLATE_INPUT = '{"name":"bench"}'
AGAIN = '{"again":true}'
STEPS = 200
ITEMS = 1000  # foreach items, each a `true` cli step
CONCURRENCY = 8  # the concurrent foreach
BRANCHES = 8  # parallel branches
SLEEP = 0.2  # seconds of `sleep` per branch in the overlap cases
HEAVY_EVERY = 2  # the long foreach/parallel cases are measured in every 2nd round
EXIT_OK = 0
EXIT_WAITING = 40
MIB = 1024.0  # RSS readings are in KiB

# Targets for the project's own `cpf` (the first tool).
TARGET_VERSION_X_FLOOR2 = 1.4
TARGET_RUN_X_FLOOR2 = 2.2
TARGET_STEP_MS = 1.0
TARGET_RSS_MIB = 25.0
TARGET_FLAT = 1.2

# (total ms, self ms by top-level package, [(module, self ms, cumulative ms)])
ImportCosts = tuple[float, dict[str, float], list[tuple[str, float, float]]]


# --------------------------------------------------------------------------- measurement


@dataclass
class Outcome:
    seconds: float
    cpu_seconds: float
    returncode: int
    stdout: bytes
    stderr: bytes


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> Outcome:
    """Run one child and time it, from just before the spawn to just after the reap.

    Also keeps the child's CPU time (user + sys, its own children included), which
    other processes on the machine disturb far less than wall time.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Outcome(seconds, cpu, proc.returncode, out.read(), err.read())


class HarnessError(RuntimeError):
    pass


def checked(
    argv: list[str], env: dict[str, str], cwd: Path, expect: set[int], parse: bool = True
) -> Outcome:
    outcome = spawn(argv, env, cwd)
    problem = None
    if outcome.returncode not in expect:
        problem = f"exit {outcome.returncode}, expected {sorted(expect)}"
    elif parse:
        try:
            json.loads(outcome.stdout)
        except ValueError:
            problem = "stdout is not one JSON document"
    if problem:
        raise HarnessError(
            f"{shlex.join(argv)}: {problem}\n"
            f"stdout: {outcome.stdout[-800:].decode(errors='replace')}\n"
            f"stderr: {outcome.stderr[-800:].decode(errors='replace')}"
        )
    return outcome


def envelope(outcome: Outcome) -> dict[str, object]:
    return json.loads(outcome.stdout)


@dataclass
class Case:
    key: str
    label: str
    tool: str | None
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    expect: set[int]
    parse: bool = True
    before: Callable[[], None] | None = None
    every: int = 1  # measured in rounds 0, every, 2*every, ... (1: every round)
    samples: list[Outcome] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # the case measured just before each sample
    rounds: list[int] = field(default_factory=list)  # the round of each sample

    def measure(self) -> Outcome:
        if self.before:
            self.before()
        return checked(self.argv, self.env, self.cwd, self.expect, self.parse)

    def seconds(self) -> list[float]:
        return [s.seconds for s in self.samples]

    def cpu(self) -> list[float]:
        return [s.cpu_seconds for s in self.samples]

    def by_round(self) -> dict[int, float]:
        return {r: s.seconds for r, s in zip(self.rounds, self.samples, strict=True)}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


GNU_TIME = Path("/usr/bin/time")
RSS_HELPER = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def rss_method() -> str:
    if GNU_TIME.exists():
        return "`/usr/bin/time -f %M` around the command"
    return (
        "a minimal `python -I -S` parent that posix_spawns the command and reads wait4 "
        "(readings under ~8 MiB are that parent's own)"
    )


def peak_rss(case: Case) -> int:
    """Peak RSS (KiB) of one run of the case, measured from a small parent process.

    Timing children are spawned by this harness, and a vforked child's ru_maxrss starts at
    the parent's RSS, which would put a ~20 MiB floor under every number.
    """
    if case.before:
        case.before()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        if GNU_TIME.exists():
            argv = [str(GNU_TIME), "-o", report.name, "-f", "%M", *case.argv]
        else:
            program = shutil.which(case.argv[0]) or case.argv[0]
            argv = [sys.executable, "-I", "-S", "-c", RSS_HELPER, report.name, program]
            argv += case.argv[1:]
        checked(argv, case.env, case.cwd, case.expect, case.parse)
        text = Path(report.name).read_text().split()
    if not text:
        raise HarnessError(f"no RSS reading for {shlex.join(case.argv)}")
    return int(text[-1])


# --------------------------------------------------------------------------- tools and state


@dataclass
class Tool:
    name: str
    cpf: str
    fsync_knob: bool
    version: str = ""
    composable: bool = False  # runs foreach and parallel steps (probed before measuring)


def run_id_of(outcome: Outcome) -> str:
    run_id = envelope(outcome).get("run_id")
    if not isinstance(run_id, str):
        raise HarnessError(f"no run_id in {outcome.stdout[:400]!r}")
    return run_id


def start_waiting_run(tool: Tool, env: dict[str, str], cwd: Path) -> str:
    started = checked([tool.cpf, "run", "-f", str(LOOP), "--input", "{}"], env, cwd, {EXIT_WAITING})
    return run_id_of(started)


def resume_again(tool: Tool, run_id: str) -> list[str]:
    return [tool.cpf, "resume", "--run-id", run_id, "--event", "go", "--input", AGAIN]


def fresh_id(like: str, taken: set[str]) -> str:
    """A new run id with the same shape (and length) as `like`."""
    head, dash, tail = like.rpartition("-")
    if not dash:
        head, tail = "", like
    hexdigits = set(string.hexdigits)
    while True:
        if tail and set(tail) <= hexdigits:
            suffix = os.urandom(len(tail)).hex()[: len(tail)]
        else:
            suffix = tail + os.urandom(4).hex()
        candidate = f"{head}{dash}{suffix}"
        if candidate not in taken and candidate != like:
            taken.add(candidate)
            return candidate


def clone_runs(root: Path, run_id: str, count: int) -> str:
    """Copy one run `count` times under new ids. Knows two layouts; returns how it did it."""
    runs = root / "runs"
    source = runs / run_id
    database = root / "runs.db"
    taken: set[str] = set()
    new_ids = [fresh_id(run_id, taken) for _ in range(count)]
    if (source / "state.json").is_file():
        old = run_id.encode()
        mentions = {}
        for path in source.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if old in data:
                    mentions[path.relative_to(source)] = data
        for new in new_ids:
            target = runs / new
            shutil.copytree(source, target, symlinks=True)
            for relative, data in mentions.items():
                (target / relative).write_bytes(data.replace(old, new.encode()))
        return "copied the run folder, run id rewritten in " + (
            ", ".join(sorted(str(p) for p in mentions)) or "no file"
        )
    if database.is_file():
        connection = sqlite3.connect(database)
        try:
            with connection:
                tables = [
                    name
                    for (name,) in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                    )
                ]
                for table in tables:
                    columns = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
                    names = [column[1] for column in columns]
                    if "run_id" not in names:
                        continue
                    keys = [
                        names.index(column[1])
                        for column in columns
                        if column[5] and column[1] != "run_id"
                    ]
                    rows = connection.execute(
                        f'SELECT * FROM "{table}" WHERE run_id = ?', (run_id,)
                    ).fetchall()
                    marks = ", ".join("?" * len(names))
                    for new in new_ids:
                        for row in rows:
                            values = [
                                value.replace(run_id, new) if isinstance(value, str) else value
                                for value in row
                            ]
                            for index in keys:
                                values[index] = uuid.uuid4().hex
                            connection.execute(f'INSERT INTO "{table}" VALUES ({marks})', values)
        finally:
            connection.close()
        if source.is_dir():
            for new in new_ids:
                shutil.copytree(source, runs / new, symlinks=True)
        return "copied the run's rows in runs.db (and its runs/<id> folder)"
    raise HarnessError(f"unknown store layout under {root}; cannot clone runs")


def restore(snapshot: Path, root: Path) -> Callable[[], None]:
    def put_back() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(snapshot, root, symlinks=True)

    return put_back


def empty(root: Path) -> Callable[[], None]:
    def clear() -> None:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()

    return clear


def workflow_head(name: str) -> list[str]:
    return [
        "schema_version: checkpointflow/v1",
        "workflow:",
        f"  id: {name}",
        "  inputs: {type: object}",
        "  steps:",
    ]


END_STEP = ["    - id: done", "      kind: end", ""]


def write_steps_workflow(path: Path, steps: int, command: str = "true") -> None:
    lines = workflow_head(f"bench_steps_{steps}")
    for index in range(steps):
        lines += [f"    - id: s{index}", "      kind: cli", f"      command: {json.dumps(command)}"]
    path.write_text("\n".join(lines + END_STEP))


def write_foreach_workflow(path: Path, concurrency: int) -> None:
    """One foreach over `${inputs.items}` whose body is one `true` cli step."""
    lines = workflow_head(f"bench_foreach_c{concurrency}")
    lines += [
        "    - id: each",
        "      kind: foreach",
        "      items: ${inputs.items}",
        f"      concurrency: {concurrency}",
        "      body:",
        "        - id: t",
        "          kind: cli",
        '          command: "true"',
    ]
    path.write_text("\n".join(lines + END_STEP))


def write_parallel_workflow(path: Path, branches: int, command: str) -> None:
    """One parallel step of `branches` inline branches, each one cli step."""
    lines = workflow_head(f"bench_parallel_{branches}")
    lines += ["    - id: all", "      kind: parallel", "      branches:"]
    for index in range(branches):
        lines += [
            f"        - id: b{index}",
            "          steps:",
            f"            - {{id: s, kind: cli, command: {json.dumps(command)}}}",
        ]
    path.write_text("\n".join(lines + END_STEP))


def items_input(count: int) -> str:
    return json.dumps({"items": list(range(count))}, separators=(",", ":"))


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Prepared:
    resume: dict[int, tuple[Path, Path, str]] = field(default_factory=dict)  # cycles ->
    status: dict[int, tuple[Path, str]] = field(default_factory=dict)  # runs -> (root, id)
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, tools: list[Tool], work: Path) -> None:
        self.args = args
        self.tools = tools
        self.work = work
        self.base_env = base_environment(args, work)
        self.cases: list[Case] = []
        self.prepared: dict[str, Prepared] = {tool.name: Prepared() for tool in tools}
        self.notes: list[str] = []
        self.counter = 0
        self.cold_rss: dict[str, list[int]] = {}
        self.imports: list[tuple[str, ImportCosts | None]] = []

    def root(self, name: str) -> Path:
        self.counter += 1
        path = self.work / "roots" / f"{self.counter:03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        path.mkdir(parents=True)
        return path

    def env(self, root: Path, **extra: str) -> dict[str, str]:
        return {**self.base_env, "CHECKPOINTFLOW_BASE_DIR": str(root), **extra}

    # ---- preparation (untimed)

    def prepare_resume(self, tool: Tool, cycles: int) -> None:
        root = self.root(f"resume-{cycles}-{tool.name}")
        env = self.env(root)
        run_id = start_waiting_run(tool, env, self.work)
        for _ in range(cycles):
            checked(resume_again(tool, run_id), env, self.work, {EXIT_WAITING})
        snapshot = self.work / "snapshots" / root.name
        shutil.copytree(root, snapshot, symlinks=True)
        self.prepared[tool.name].resume[cycles] = (root, snapshot, run_id)

    def prepare_status(self, tool: Tool, runs: int) -> None:
        root = self.root(f"status-{runs}-{tool.name}")
        env = self.env(root)
        run_id = start_waiting_run(tool, env, self.work)
        if runs > 1:
            how = clone_runs(root, run_id, runs - 1)
            # The copies must be real runs to the tool: ask it about one.
            probe = next(p.name for p in sorted((root / "runs").iterdir()) if p.name != run_id)
            answer = checked(
                [tool.cpf, "status", "--run-id", probe], env, self.work, {EXIT_WAITING}
            )
            if run_id_of(answer) != probe:
                raise HarnessError(f"{tool.name}: cloned run {probe} not recognised")
            self.prepared[tool.name].notes.append(
                f"{tool.name}: {runs} runs in the store by starting 1 and cloning it "
                f"{runs - 1} times ({how}); `status` on a clone answers as expected."
            )
        self.prepared[tool.name].status[runs] = (root, run_id)

    def probe_composable(self, tool: Tool) -> None:
        """Does the tool run foreach and parallel steps? One small run decides (untimed)."""
        path = self.work / "probe_composable.yaml"
        if not path.exists():
            lines = workflow_head("bench_probe")
            lines += [
                "    - id: each",
                "      kind: foreach",
                "      items: ${inputs.items}",
                "      concurrency: 2",
                "      body:",
                '        - {id: t, kind: cli, command: "true"}',
                "    - id: all",
                "      kind: parallel",
                "      branches:",
                '        - steps: [{id: s, kind: cli, command: "true"}]',
                '        - steps: [{id: s, kind: cli, command: "true"}]',
            ]
            path.write_text("\n".join(lines + END_STEP))
        env = self.env(self.root(f"probe-{tool.name}"))
        outcome = spawn(
            [tool.cpf, "run", "-f", str(path), "--input", items_input(2)], env, self.work
        )
        try:
            answer = envelope(outcome)
        except ValueError:
            answer = {}
        tool.composable = outcome.returncode == EXIT_OK and answer.get("status") == "completed"
        if not tool.composable:
            error = answer.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            self.notes.append(
                f"{tool.name}: foreach/parallel cases skipped: a 2-item foreach plus a 2-branch "
                f"parallel did not run (exit {outcome.returncode}"
                f"{', ' + str(code) if code else ''}), so this tool does not support them."
            )
            say(f"{tool.name}: no foreach/parallel support, skipping those cases")

    def prepare(self) -> None:
        for tool in self.tools:
            self.probe_composable(tool)
        jobs: list[Callable[[], None]] = []  # longest first: the long resume histories
        for cycles in sorted({self.args.few_cycles, self.args.cycles}, reverse=True):
            for tool in self.tools:
                jobs.append(lambda t=tool, c=cycles: self.prepare_resume(t, c))
        for runs in (self.args.store_runs, 1):
            for tool in self.tools:
                jobs.append(lambda t=tool, n=runs: self.prepare_status(t, n))
        workers = max(1, min(len(jobs), os.cpu_count() or 1))
        say(f"preparing resume and status stores ({len(jobs)} jobs, {workers} at a time)...")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
        say(f"prepared in {time.monotonic() - started:.0f} s")

    # ---- cases

    def add(self, key: str, label: str, tool: Tool | None, argv: list[str], **kw: object) -> None:
        kw.setdefault("env", self.base_env)
        kw.setdefault("cwd", self.work)
        kw.setdefault("expect", {EXIT_OK})
        self.cases.append(Case(key, label, tool.name if tool else None, argv, **kw))  # type: ignore[arg-type]

    def build_cases(self) -> None:
        python = str(PROJECT_PYTHON)
        self.add("floor", "`python -c pass` (floor)", None, [python, "-c", "pass"], parse=False)
        self.add(
            "floor2",
            "`python -c 'import click'` (floor2)",
            None,
            [python, "-c", "import click"],
            parse=False,
        )
        self.add("sh", "`/bin/sh -c true` spawn", None, ["/bin/sh", "-c", "true"], parse=False)
        steps_1 = self.work / "steps_1.yaml"
        steps_n = self.work / f"steps_{STEPS}.yaml"
        write_steps_workflow(steps_1, 1)
        write_steps_workflow(steps_n, STEPS)
        foreach_1 = self.work / "foreach_c1.yaml"
        foreach_n = self.work / f"foreach_c{CONCURRENCY}.yaml"
        write_foreach_workflow(foreach_1, 1)
        write_foreach_workflow(foreach_n, CONCURRENCY)
        parallel_true = self.work / "parallel_true.yaml"
        parallel_sleep = self.work / "parallel_sleep.yaml"
        sequential_sleep = self.work / "sequential_sleep.yaml"
        write_parallel_workflow(parallel_true, BRANCHES, "true")
        write_parallel_workflow(parallel_sleep, BRANCHES, f"sleep {SLEEP:g}")
        write_steps_workflow(sequential_sleep, BRANCHES, f"sleep {SLEEP:g}")
        items = items_input(ITEMS)
        for tool in self.tools:
            cpf = tool.cpf
            self.add("version", "`cpf --version`", tool, [cpf, "--version"], parse=False)
            run_template = [cpf, "run", "-f", str(TEMPLATE), "--input", TEMPLATE_INPUT]
            root = self.root(f"run-{tool.name}")
            self.add("run", "`cpf run` template", tool, run_template, env=self.env(root))
            root = self.root(f"run-cold-{tool.name}")
            self.add(
                "run_cold",
                "`cpf run` template, empty state root",
                tool,
                run_template,
                env=self.env(root),
                before=empty(root),
            )
            variants = [("", {})]
            if tool.fsync_knob:
                variants.append((" fsync off", {"CHECKPOINTFLOW_FSYNC": "0"}))
            for suffix, extra in variants:
                tag = suffix.strip().replace(" ", "_")
                for steps, path in ((1, steps_1), (STEPS, steps_n)):
                    root = self.root(f"steps{steps}{tag}-{tool.name}")
                    self.add(
                        f"steps{steps}{'_' + tag if tag else ''}",
                        f"`cpf run` {steps}-step{suffix}",
                        tool,
                        [cpf, "run", "-f", str(path), "--input", "{}"],
                        env=self.env(root, **extra),
                    )
            if tool.composable:
                sleep = f"`sleep {SLEEP:g}`"
                composed = [
                    (
                        "foreach_c1",
                        f"`cpf run` foreach of {ITEMS:,} `true` steps, sequential †",
                        foreach_1,
                        items,
                        HEAVY_EVERY,
                    ),
                    (
                        "foreach_cn",
                        f"`cpf run` foreach of {ITEMS:,} `true` steps, concurrency {CONCURRENCY} †",
                        foreach_n,
                        items,
                        HEAVY_EVERY,
                    ),
                    (
                        "parallel_true",
                        f"`cpf run` parallel of {BRANCHES} `true` branches",
                        parallel_true,
                        "{}",
                        1,
                    ),
                    (
                        "sequential_sleep",
                        f"`cpf run` {BRANCHES} {sleep} steps, sequential †",
                        sequential_sleep,
                        "{}",
                        HEAVY_EVERY,
                    ),
                    (
                        "parallel_sleep",
                        f"`cpf run` parallel of {BRANCHES} {sleep} branches †",
                        parallel_sleep,
                        "{}",
                        HEAVY_EVERY,
                    ),
                ]
                for key, label, path, given, every in composed:
                    root = self.root(f"{key}-{tool.name}")
                    self.add(
                        key,
                        label,
                        tool,
                        [cpf, "run", "-f", str(path), "--input", given],
                        env=self.env(root),
                        every=every,
                    )
            prepared = self.prepared[tool.name]
            for cycles, (root, snapshot, run_id) in sorted(prepared.resume.items()):
                self.add(
                    f"resume{cycles}",
                    f"`cpf resume` after {cycles} cycles",
                    tool,
                    resume_again(tool, run_id),
                    env=self.env(root),
                    expect={EXIT_WAITING},
                    before=restore(snapshot, root),
                )
            for runs, (root, run_id) in sorted(prepared.status.items()):
                self.add(
                    f"status{runs}",
                    f"`cpf status`, {runs} run{'s' if runs > 1 else ''} in store",
                    tool,
                    [cpf, "status", "--run-id", run_id],
                    env=self.env(root),
                    expect={EXIT_WAITING},
                )

    def measure(self, reps: int) -> None:
        say(f"warm-up: every case once ({len(self.cases)} cases)")
        for case in self.cases:
            case.measure()
        rng = random.Random(self.args.seed)
        started = time.monotonic()
        for round_index in range(reps):
            order = [case for case in self.cases if round_index % case.every == 0]
            rng.shuffle(order)
            previous = "(round start)"
            for case in order:
                case.samples.append(case.measure())
                case.after.append(previous)
                case.rounds.append(round_index)
                previous = f"{case.key}/{case.tool or '-'}"
            spent = time.monotonic() - started
            left = spent / (round_index + 1) * (reps - round_index - 1)
            say(f"round {round_index + 1}/{reps} done, {spent:.0f} s so far, ~{left:.0f} s left")

    def measure_memory(self, reps: int) -> None:
        say(f"peak memory: {reps} interleaved round(s) via {rss_method()}")
        rng = random.Random(self.args.seed + 1)
        for round_index in range(reps):
            order = [case for case in self.cases if round_index % case.every == 0]
            rng.shuffle(order)
            for case in order:
                case.rss_kib.append(peak_rss(case))
        # The first run in an empty state root also builds the caches: measure that too.
        for tool in self.tools:
            long = self.case(f"steps{STEPS}", tool.name)
            if long is None:
                continue
            root = self.root(f"steps{STEPS}-cold-{tool.name}")
            cold = Case(
                "cold",
                "cold",
                tool.name,
                long.argv,
                self.env(root),
                self.work,
                long.expect,
                before=empty(root),
            )
            self.cold_rss[tool.name] = [peak_rss(cold) for _ in range(reps)]

    # ---- lookups

    def case(self, key: str, tool: str | None) -> Case | None:
        for case in self.cases:
            if case.key == key and case.tool == tool:
                return case
        return None

    def med(self, key: str, tool: str | None) -> float | None:
        case = self.case(key, tool)
        return median(case.seconds()) if case and case.samples else None


def base_environment(args: argparse.Namespace, work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CHECKPOINTFLOW_") and k not in ("LLM", "PYTHONPYCACHEPREFIX")
    }
    env["LLM"] = "true"
    if not args.no_pyc:
        # Bytecode caches in a scratch folder: real installs have .pyc files, and this keeps
        # the repository free of __pycache__ even when PYTHONDONTWRITEBYTECODE was set.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- derived numbers


@dataclass
class PerStep:
    ms: float
    p10: float
    p90: float
    cpu_ms: float


def per_step(bench: Bench, tool: str, tag: str) -> PerStep | None:
    long = bench.case(f"steps{STEPS}{tag}", tool)
    short = bench.case(f"steps1{tag}", tool)
    spawn_case = bench.case("sh", None)
    if not (long and short and spawn_case and long.samples):
        return None

    def formula(a: float, b: float, c: float) -> float:
        return ((a - b) / (STEPS - 1) - c) * 1000

    value = formula(median(long.seconds()), median(short.seconds()), median(spawn_case.seconds()))
    cpu = formula(median(long.cpu()), median(short.cpu()), median(spawn_case.cpu()))
    # Spread: the same formula on the samples of each round (they ran within seconds).
    paired = [
        formula(a, b, c)
        for a, b, c in zip(long.seconds(), short.seconds(), spawn_case.seconds(), strict=True)
    ]
    return PerStep(value, quantile(paired, 0.1), quantile(paired, 0.9), cpu)


def importtime(tool: Tool, bench: Bench, code: list[str], runs: int = 5) -> ImportCosts | None:
    """Import costs: (total ms, self ms by top-level package, top modules by self ms)."""
    first = Path(tool.cpf).read_bytes()[:200].split(b"\n", 1)[0]
    if not first.startswith(b"#!") or b"python" not in first:
        return None
    python = first[2:].decode().strip().split()[0]
    root = bench.root(f"importtime-{tool.name}")
    env = bench.env(root)
    best: dict[str, tuple[float, float]] = {}
    spawn([python, *code], env, bench.work)  # the first run in a fresh root fills its caches
    for _ in range(runs):
        outcome = spawn([python, "-X", "importtime", *code], env, bench.work)
        if outcome.returncode not in (EXIT_OK, EXIT_WAITING):
            return None
        for line in outcome.stderr.decode(errors="replace").splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
            if match:
                own, total, name = int(match[1]), int(match[2]), match[4]
                previous = best.get(name)
                if previous is None or own < previous[0]:
                    best[name] = (own / 1000, total / 1000)
    by_package: dict[str, float] = {}
    for name, (own, _) in best.items():
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + own
    top = sorted(((n, o, c) for n, (o, c) in best.items()), key=lambda x: -x[1])[:10]
    return sum(o for o, _ in best.values()), by_package, top


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def machine() -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    project_python = subprocess.run(
        [str(PROJECT_PYTHON), "-VV"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        f"nproc: {len(os.sched_getaffinity(0))} (os.cpu_count {os.cpu_count()})",
        f"CPU: {cpu}",
        f"memory: {memory}",
        f"python (project venv): {project_python}",
        f"kernel: {platform.system()} {platform.release()} ({platform.machine()})",
    ]


def filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, kind = mount, f"{parts[2]} ({parts[0]} on {mount})"
    return kind


def git_revision() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
        return result.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def load() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def ordinal(n: int) -> str:
    return {1: "", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def paired(cases: list[Case], formula: Callable[..., float]) -> list[float]:
    """The formula over the samples of the rounds in which every one of the cases ran."""
    rounds = [case.by_round() for case in cases]
    common = sorted(set.intersection(*(set(r) for r in rounds)))
    return [formula(*(r[index] for r in rounds)) for index in common]


def composed_section(bench: Bench, steps: dict[tuple[str, str], PerStep | None]) -> list[str]:
    """The foreach and parallel cases: per-iteration cost, speed-up, overlap of branches."""
    out: list[str] = []
    w = out.append
    w("### Foreach and parallel")
    w("")
    w(
        f"Per iteration (total) = `cpf run` of one foreach over {ITEMS:,} items / {ITEMS:,}: "
        "the whole run, start-up included. Per iteration (net) = (that run - run of 1 step) "
        f"/ {ITEMS - 1} - one bare `/bin/sh -c true` spawn, the formula of the per-step "
        "overhead above, so the two compare directly; with concurrency the spawns overlap and "
        "the net figure is wall time per iteration, not cost. Speed-up = sequential / "
        f"concurrent. Overlap: {BRANCHES} cli steps of `sleep {SLEEP:g}` one after another "
        f"vs as the {BRANCHES} branches of one parallel step; if the branches run at once the "
        f"parallel run saves {BRANCHES - 1} x {SLEEP * 1000:.0f} ms = "
        f"{(BRANCHES - 1) * SLEEP * 1000:.0f} ms. p10/p90 apply each formula to the samples "
        "of one round; CPU applies it to the medians of user+sys time."
    )
    w("")
    sh = bench.case("sh", None)
    composable = [t for t in bench.tools if t.composable]
    skipped = [t for t in bench.tools if not t.composable]
    lines: list[str] = []
    if composable and sh:
        w("| tool | measure | value | p10 | p90 | CPU |")
        w("|---|---|---:|---:|---:|---:|")

    def row(
        name: str, label: str, value: float, spread: list[float], cpu: float | None, d: int
    ) -> None:
        w(
            f"| {name} | {label} | {fmt(value, d)} | {fmt(quantile(spread, 0.1), d)} "
            f"| {fmt(quantile(spread, 0.9), d)} | {fmt(cpu, d)} |"
        )

    for tool in composable:
        name = tool.name
        get = {key: bench.case(key, name) for key in COMPOSED_KEYS}
        one = bench.case("steps1", name)
        cases = {key: case for key, case in get.items() if case and case.samples}
        if sh is None or one is None or len(cases) != len(COMPOSED_KEYS):
            continue

        def total(a: float) -> float:
            return a / ITEMS * 1000

        def net(a: float, b: float, c: float) -> float:
            return ((a - b) / (ITEMS - 1) - c) * 1000

        nets: dict[str, float] = {}
        for key, what in (
            ("foreach_c1", "sequential"),
            ("foreach_cn", f"concurrency {CONCURRENCY}"),
        ):
            case = cases[key]
            row(
                name,
                f"foreach {what}: per iteration, total (ms/iteration)",
                total(median(case.seconds())),
                [total(x) for x in case.seconds()],
                total(median(case.cpu())),
                3,
            )
            nets[key] = net(median(case.seconds()), median(one.seconds()), median(sh.seconds()))
            row(
                name,
                f"foreach {what}: per iteration, net (ms/iteration)",
                nets[key],
                paired([case, one, sh], net),
                net(median(case.cpu()), median(one.cpu()), median(sh.cpu())),
                3,
            )
        seq, con = cases["foreach_c1"], cases["foreach_cn"]
        speedup = median(seq.seconds()) / median(con.seconds())
        row(
            name,
            f"foreach speed-up, sequential / concurrency {CONCURRENCY}",
            speedup,
            paired([seq, con], lambda a, b: a / b),
            median(seq.cpu()) / median(con.cpu()),
            2,
        )
        par = cases["parallel_true"]
        row(
            name,
            f"parallel of {BRANCHES} `true` branches - 1-step run (ms)",
            (median(par.seconds()) - median(one.seconds())) * 1000,
            paired([par, one], lambda a, b: (a - b) * 1000),
            (median(par.cpu()) - median(one.cpu())) * 1000,
            1,
        )
        slow, fast = cases["sequential_sleep"], cases["parallel_sleep"]
        row(
            name,
            f"{BRANCHES} `sleep {SLEEP:g}` steps, sequential (ms)",
            median(slow.seconds()) * 1000,
            [x * 1000 for x in slow.seconds()],
            median(slow.cpu()) * 1000,
            1,
        )
        row(
            name,
            f"{BRANCHES} `sleep {SLEEP:g}` branches, parallel (ms)",
            median(fast.seconds()) * 1000,
            [x * 1000 for x in fast.seconds()],
            median(fast.cpu()) * 1000,
            1,
        )
        overlap = median(slow.seconds()) / median(fast.seconds())
        row(
            name,
            "sleeps, sequential / parallel",
            overlap,
            paired([slow, fast], lambda a, b: a / b),
            None,
            2,
        )
        saved = (median(slow.seconds()) - median(fast.seconds())) * 1000
        ideal = (BRANCHES - 1) * SLEEP * 1000
        row(
            name,
            f"time saved by the parallel step (ms; ideal {ideal:.0f})",
            saved,
            paired([slow, fast], lambda a, b: (a - b) * 1000),
            None,
            1,
        )
        plain = steps.get((name, ""))
        text = (
            f"- `{name}`: a foreach iteration costs {fmt(nets['foreach_c1'], 3)} ms net "
            f"({fmt(total(median(seq.seconds())), 3)} ms of total run time per item), "
        )
        if plain:
            text += (
                f"against {fmt(plain.ms, 3)} ms per plain step in the {STEPS}-step run "
                f"({fmt(ratio(nets['foreach_c1'], plain.ms), 2)}x)"
            )
        else:
            text += "no per-step figure to compare with"
        lines.append(text + ".")
        cores = len(os.sched_getaffinity(0))
        verdict = (
            "concurrency **did not reduce** wall time"
            if speedup < 1.1
            else "concurrency cuts wall time"
        )
        lines.append(
            f"- `{name}`: concurrency {CONCURRENCY} runs the {ITEMS:,} items in "
            f"{fmt(median(con.seconds()) * 1000)} ms against {fmt(median(seq.seconds()) * 1000)} "
            f"ms sequentially: {fmt(speedup, 2)}x on {cores} cores, {verdict}."
        )
        overlapped = saved >= 0.75 * ideal
        lines.append(
            f"- `{name}`: {BRANCHES} branches of `sleep {SLEEP:g}` take "
            f"{fmt(median(fast.seconds()) * 1000)} ms, {BRANCHES} such steps in a row "
            f"{fmt(median(slow.seconds()) * 1000)} ms ({fmt(overlap, 2)}x): "
            + (
                "the branches do run at the same time."
                if overlapped
                else f"**the branches did not overlap** (saved {fmt(saved)} of {ideal:.0f} ms)."
            )
        )
    if composable and sh:
        w("")
    out += lines
    for tool in skipped:
        out.append(
            f"- `{tool.name}`: not measured; it does not run foreach/parallel steps (see Notes)."
        )
    w("")
    return out


COMPOSED_KEYS = ("foreach_c1", "foreach_cn", "parallel_true", "sequential_sleep", "parallel_sleep")


def report(bench: Bench, meta: dict[str, str]) -> str:
    tools = bench.tools
    ours = tools[0].name
    reference = next((t.name for t in tools if t.name == REFERENCE_NAME), None)
    floor = bench.med("floor", None)
    floor2 = bench.med("floor2", None)
    out: list[str] = []
    w = out.append

    w(README)
    w("## Latest results")
    w("")
    if bench.args.quick:
        w("**Quick run** (`--quick`): few repetitions, numbers are rough.")
        w("")
    w(f"- date: {meta['date']}")
    for line in machine():
        w(f"- {line}")
    w(f"- state roots on: {filesystem_of(bench.work)}")
    w(f"- command: `{meta['command']}`")
    w(f"- project revision: {meta['revision']}")
    for tool in tools:
        w(f"- tool `{tool.name}`: `{tool.cpf}` ({tool.version})")
    w(
        f"- repetitions: {bench.args.reps} rounds after 1 warm-up round, round-robin over "
        f"{len(bench.cases)} cases; total time {meta['duration']}"
    )
    w(
        f"- load average at start / end: {meta['load_start']} / {meta['load_end']} "
        "(the end value includes this benchmark)"
    )
    # At the start nothing of ours runs yet; at the end the benchmark itself adds about 1.
    busiest = float(meta["load_start"].split()[0]) if meta["load_start"][0].isdigit() else 0.0
    cores = len(os.sched_getaffinity(0))
    if busiest >= 0.5 * cores:
        w(
            f"- **the machine was busy** (1-minute load {busiest:.2f} on {cores} cores at start, "
            "from processes outside this benchmark): wall times are inflated and noisy; "
            "the ratios (same rounds) and the CPU columns are the steadier numbers"
        )
    pyc = "disabled (`--no-pyc`)" if bench.args.no_pyc else "on, in a scratch PYTHONPYCACHEPREFIX"
    w(f"- bytecode cache for the children: {pyc}")
    w("")

    w("### Timings")
    w("")
    w(
        "Median and p10/p90 wall time in ms; ratios are of medians. CPU: median user+sys "
        "time of the child and its children. Max RSS: median of "
        f"{bench.args.memory_reps} separate run(s) per case, measured with {rss_method()}."
    )
    w("")
    heavy = [case for case in bench.cases if case.every > 1]
    if heavy:
        w(
            f"† measured only in every {ordinal(HEAVY_EVERY)} round to keep the run short "
            f"({len(heavy[0].samples)} sample{'s' if len(heavy[0].samples) > 1 else ''}), "
            "still interleaved with the other cases; "
            "max RSS from 1 run."
        )
        w("")
    head = "| case | tool | median | p10 | p90 | x floor | x floor2 |"
    rule = "|---|---|---:|---:|---:|---:|---:|"
    if reference and reference != ours:
        head += f" x {reference} |"
        rule += "---:|"
    w(head + " CPU ms | max RSS MiB |")
    w(rule + "---:|---:|")
    for case in bench.cases:
        values = case.seconds()
        med = median(values)
        cells = [
            case.label,
            case.tool or "-",
            fmt(med * 1000),
            fmt(quantile(values, 0.1) * 1000),
            fmt(quantile(values, 0.9) * 1000),
            fmt(ratio(med, floor), 2),
            fmt(ratio(med, floor2), 2),
        ]
        if reference and reference != ours:
            if case.tool is None:
                cells.append("-")
            else:
                other = bench.med(case.key, reference)
                cells.append(fmt(ratio(med, other), 2) if case.tool != reference else "1.00")
        cells.append(fmt(median(case.cpu()) * 1000))
        cells.append(fmt(median(case.rss_kib) / MIB) if case.rss_kib else "n/a")
        w("| " + " | ".join(cells) + " |")
    w("")

    w("### Derived")
    w("")
    w(
        f"Per-step overhead = (run of {STEPS} `true` steps - run of 1 step) / {STEPS - 1} - one "
        "bare `/bin/sh -c true` spawn from Python "
        f"({fmt(bench.med('sh', None) and bench.med('sh', None) * 1000, 2)} ms). "
        "p10/p90 apply the formula to each round's samples."
    )
    w("")
    w(
        "The CPU column applies the same formula to user+sys CPU time (the child's and its "
        "children's, from wait4); it ignores waiting on fsync but hardly moves when other "
        "processes compete for the cores."
    )
    w("")
    w("| tool | measure | value | p10 | p90 | CPU |")
    w("|---|---|---:|---:|---:|---:|")
    steps: dict[tuple[str, str], PerStep | None] = {}
    for tool in tools:
        for tag, what in (("", "fsync on"), ("_fsync_off", "fsync off")):
            result = per_step(bench, tool.name, tag)
            steps[(tool.name, tag)] = result
            if result:
                w(
                    f"| {tool.name} | per-step overhead, {what} (ms/step) | {fmt(result.ms, 3)} "
                    f"| {fmt(result.p10, 3)} | {fmt(result.p90, 3)} | {fmt(result.cpu_ms, 3)} |"
                )
    resume_ratio: dict[str, float | None] = {}
    status_ratio: dict[str, float | None] = {}
    few, many, store = bench.args.few_cycles, bench.args.cycles, bench.args.store_runs
    for tool in tools:
        name = tool.name
        a, b = bench.med(f"resume{few}", name), bench.med(f"resume{many}", name)
        resume_ratio[name] = ratio(b, a)
        if a is not None and b is not None:
            w(f"| {name} | resume after {few} cycles (ms) | {fmt(a * 1000)} | | | |")
            w(f"| {name} | resume after {many} cycles (ms) | {fmt(b * 1000)} | | | |")
            w(f"| {name} | resume ratio {many}/{few} | {fmt(resume_ratio[name], 2)}x | | | |")
        a, b = bench.med("status1", name), bench.med(f"status{store}", name)
        status_ratio[name] = ratio(b, a)
        if a is not None and b is not None:
            w(f"| {name} | status, 1 run in store (ms) | {fmt(a * 1000)} | | | |")
            w(f"| {name} | status, {store} runs in store (ms) | {fmt(b * 1000)} | | | |")
            w(f"| {name} | status ratio {store}/1 | {fmt(status_ratio[name], 2)}x | | | |")
    peak: dict[str, tuple[float, float] | None] = {}
    for tool in tools:
        case = bench.case(f"steps{STEPS}", tool.name)
        if case and case.rss_kib:
            rss = [kib / MIB for kib in case.rss_kib]
            peak[tool.name] = (median(rss), max(rss))
            w(
                f"| {tool.name} | peak RSS of `cpf run` {STEPS}-step (MiB), median / max "
                f"| {fmt(median(rss))} / {fmt(max(rss))} | | | |"
            )
        cold = bench.cold_rss.get(tool.name)
        if cold:
            w(
                f"| {tool.name} | same, first run in an empty state root (MiB), median / max "
                f"| {fmt(median(cold) / MIB)} / {fmt(max(cold) / MIB)} | | | |"
            )
    w("")

    out.extend(composed_section(bench, steps))

    w("### Targets")
    w("")
    w(
        f"Targets are for the project's `cpf` (`{ours}`); other tools are shown against the same "
        "bar for comparison. Resume and status are flat when the large case is at most "
        f"{TARGET_FLAT:.1f}x the small one. Peak memory is judged on the largest sample."
    )
    w("")
    w("| target | " + " | ".join(t.name for t in tools) + " |")
    w("|---|" + "---|" * len(tools))

    def verdict(value: float | None, limit: float, text: str) -> str:
        if value is None:
            return "n/a"
        return f"{text} — {'**met**' if value <= limit else '**not met**'}"

    rows: list[tuple[str, list[str]]] = []
    cells = []
    for tool in tools:
        r = ratio(bench.med("version", tool.name), floor2)
        cells.append(verdict(r, TARGET_VERSION_X_FLOOR2, f"{fmt(r, 2)}x"))
    rows.append((f"`--version` ≤ {TARGET_VERSION_X_FLOOR2}x floor2", cells))
    cells = []
    for tool in tools:
        r = ratio(bench.med("run", tool.name), floor2)
        cells.append(verdict(r, TARGET_RUN_X_FLOOR2, f"{fmt(r, 2)}x"))
    rows.append((f"`run` of the template ≤ {TARGET_RUN_X_FLOOR2}x floor2", cells))
    cells = []
    for tool in tools:
        s = steps.get((tool.name, ""))
        text = verdict(s and s.ms, TARGET_STEP_MS, f"{fmt(s and s.ms, 3)} ms")
        if s:
            text += f" (CPU-time estimate: {fmt(s.cpu_ms, 3)} ms)"
        cells.append(text)
    rows.append((f"per-step overhead ≤ {TARGET_STEP_MS:g} ms (fsync on)", cells))
    cells = []
    for tool in tools:
        p = peak.get(tool.name)
        text = verdict(p and p[1], TARGET_RSS_MIB, f"{fmt(p and p[1])} MiB")
        cold = bench.cold_rss.get(tool.name)
        if cold:
            text += f" (first run, empty state root: {fmt(max(cold) / MIB)} MiB)"
        cells.append(text)
    rows.append((f"peak memory ≤ {TARGET_RSS_MIB:g} MiB ({STEPS}-step run)", cells))
    cells = [
        verdict(resume_ratio.get(t.name), TARGET_FLAT, f"{fmt(resume_ratio.get(t.name), 2)}x")
        for t in tools
    ]
    rows.append((f"resume flat ({many} vs {few} cycles)", cells))
    cells = [
        verdict(status_ratio.get(t.name), TARGET_FLAT, f"{fmt(status_ratio.get(t.name), 2)}x")
        for t in tools
    ]
    rows.append((f"status flat ({store} vs 1 runs)", cells))
    for label, values in rows:
        w(f"| {label} | " + " | ".join(values) + " |")
    w("")

    w("### Durability")
    w("")
    w(
        "Cost of fsync per step = per-step overhead with fsync on (default) minus with "
        "`CHECKPOINTFLOW_FSYNC=0`, on the filesystem named above."
    )
    w("")
    w(
        "Is the opt-out worth offering? Yes, as an opt-out only: with fsync on, a step's "
        "completion is on disk before the next step starts, which is what lets `cpf recover` "
        "promise that no finished step runs twice after a power cut. Without it a power cut "
        "(not a process crash: the page cache survives those) can lose the last steps' "
        "records, and they would run again. The saving is one fdatasync per step plus two "
        "fsyncs per checkpoint, small next to spawning the step's process on local disks and "
        "large on network or slow disks, so long runs of tiny steps on such disks, or "
        "throw-away runs in CI, may set `CHECKPOINTFLOW_FSYNC=0`."
    )
    w("")
    any_fsync = False
    for tool in tools:
        on, off = steps.get((tool.name, "")), steps.get((tool.name, "_fsync_off"))
        if on and off:
            any_fsync = True
            w(
                f"- `{tool.name}`: {fmt(on.ms, 3)} ms/step on, {fmt(off.ms, 3)} ms/step off: "
                f"fsync costs **{fmt(on.ms - off.ms, 3)} ms/step** of wall time "
                f"({fmt(on.cpu_ms - off.cpu_ms, 3)} ms/step of CPU)"
            )
            long_on, long_off = (
                bench.med(f"steps{STEPS}", tool.name),
                bench.med(f"steps{STEPS}_fsync_off", tool.name),
            )
            if long_on and long_off:
                w(
                    f"  ({STEPS}-step run: {fmt(long_on * 1000)} ms on, "
                    f"{fmt(long_off * 1000)} ms off)"
                )
        elif on:
            w(f"- `{tool.name}`: no fsync switch measured ({fmt(on.ms, 3)} ms/step as shipped)")
    if not any_fsync:
        w("- no tool with an fsync switch was measured")
    w("")

    w("### Where the time goes: imports")
    w("")
    w(
        "`python -X importtime`, best of 5, with warm bytecode: self time summed by top-level "
        "package, then the costliest single modules (self / cumulative ms)."
    )
    w("")
    for title, analysis in bench.imports:
        w(f"**{title}**")
        w("")
        if analysis is None:
            w("- not a Python entry point, or the command failed")
            w("")
            continue
        total, by_package, top = analysis
        packages = sorted(by_package.items(), key=lambda item: -item[1])[:8]
        w(
            f"- total import time {fmt(total)} ms; by package: "
            + ", ".join(f"{name} {fmt(ms)}" for name, ms in packages)
        )
        w("- top modules: " + ", ".join(f"{n} {fmt(o)}/{fmt(c)}" for n, o, c in top[:8]))
        w("")

    notes = list(bench.notes)
    for tool in tools:
        notes += bench.prepared[tool.name].notes
    notes.append(
        f"Resume cases restore the prepared store from a snapshot before every timed resume "
        f"(untimed), so each timed resume is exactly the cycle after {few} or {many}."
    )
    notes.append(
        "The template run reuses one state root per tool (warm caches, runs accumulate); "
        "the 'empty state root' row clears it before every sample."
    )
    w("### Notes")
    w("")
    for note in notes:
        w(f"- {note}")
    w("")
    return "\n".join(out)


def analyse_imports(bench: Bench) -> None:
    run = ["-m", "checkpointflow", "run", "-f", str(TEMPLATE), "--input", TEMPLATE_INPUT]
    for tool in bench.tools:
        bench.imports.append((f"{tool.name}: `cpf run` template", importtime(tool, bench, run)))
    bench.imports.append(
        (
            f"{bench.tools[0].name}: `import checkpointflow.cli` (startup)",
            importtime(bench.tools[0], bench, ["-c", "import checkpointflow.cli"]),
        )
    )


README = """# Benchmarks

`benchmarks/run.py` measures `cpf` as a user meets it: one process per command, wall time
from spawn to exit, peak RSS from `wait4`. It is a script, not a test; nothing asserts on time.

```
.venv/bin/python benchmarks/run.py            # default, a few minutes on 2 cores
.venv/bin/python benchmarks/run.py --quick    # fewer repetitions
.venv/bin/python benchmarks/run.py --compare old=/path/to/other/cpf
```

By default it compares the project's `.venv/bin/cpf` (`ours`) with the published
checkpointflow 1.0.4 at `/tmp/ref/bin/cpf` when that exists. To install it:
`python3 -m venv /tmp/ref && /tmp/ref/bin/pip install --ignore-requires-python checkpointflow==1.0.4`.

What it measures, all in one run with repetitions interleaved round-robin (shuffled per round):

- floors: `python -c pass` and `python -c "import click"` (floor2, the base of relative
  targets) with the project's venv Python, and one bare `/bin/sh -c true` spawn;
- `cpf --version`;
- `cpf run` of `workflows/template.yaml` (the 1.0.4 `cpf init` template) with
  `--input '{"name":"bench"}'`, with warm caches and with an empty state root;
- per-step overhead from a 200-step and a 1-step workflow of `true` cli steps, with fsync on
  and off (`CHECKPOINTFLOW_FSYNC=0`);
- `cpf resume` after 10 and after 300 wait/resume cycles of `workflows/loop.yaml`;
- `cpf status` with 1 run and with 2,000 runs in the store;
- a foreach over 1,000 items whose body is one `true` cli step, sequential (concurrency 1)
  and with concurrency 8: per-iteration cost next to the per-step overhead, and the speed-up;
- a parallel step of 8 inline branches of `true` (its overhead), and 8 branches of
  `sleep 0.2` against 8 such steps in a row (whether the branches really overlap);
  these run only for tools that support foreach/parallel (1.0.4 does not), probed first;
- peak memory of the 200-step run.

Each case has its own temporary state root; children get `LLM=true`. This file is rewritten
by every run; "Latest results" below is the latest one.

`--scale` measures growth curves instead (`benchmarks/scale.py`): a sequential foreach over
100 to 50,000 items, 100 to 5,000 distinct steps, and `status`, `resume`, `inspect`, `logs`
and `verify` on runs with 2,000 to 20,000 events, next to 1.10.0 (`/tmp/up110/bin/cpf`)
when installed: marginal cost per item, step and event, and peak memory. It rewrites only
its own section, "Growth curves"; the default run keeps that section as it was.
"""


def raw(bench: Bench) -> dict[str, object]:
    return {
        f"{case.key}/{case.tool or '-'}": {
            "label": case.label,
            "argv": case.argv,
            "seconds": case.seconds(),
            "after": case.after,
            "rounds": case.rounds,
            "rss_kib": case.rss_kib,
        }
        for case in bench.cases
    } | {f"cold_rss_kib/{name}": values for name, values in bench.cold_rss.items()}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another cpf executable to measure side by side (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--reps", type=int, help="rounds to measure (default 20, quick 4)")
    parser.add_argument("--memory-reps", type=int, help="peak-memory rounds (default 3, quick 1)")
    parser.add_argument("--cycles", type=int, default=300, help="the long resume history")
    parser.add_argument("--few-cycles", type=int, default=10, help="the short resume history")
    parser.add_argument("--store-runs", type=int, default=2000, help="runs in the big store")
    parser.add_argument("--seed", type=int, default=20240601, help="shuffle seed")
    parser.add_argument(
        "--no-pyc",
        action="store_true",
        help="leave bytecode settings as inherited (PYTHONDONTWRITEBYTECODE stays in force)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write every sample to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="measure growth curves (foreach items, steps, history) instead; see scale.py",
    )
    parser.add_argument(
        "--scale-sizes",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        help="foreach sizes for --scale (default 100,1000,5000,20000,50000)",
    )
    parser.add_argument("--scale-reps", type=int, default=1, help="repetitions per --scale point")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 4 if args.quick else 20
    if args.memory_reps is None:
        args.memory_reps = 1 if args.quick else 3
    if (
        args.reps < 1
        or args.memory_reps < 1
        or args.cycles < 1
        or args.few_cycles < 1
        or args.store_runs < 2
    ):
        parser.error(
            "--reps, --memory-reps, --cycles, --few-cycles must be ≥ 1 and --store-runs ≥ 2"
        )
    return args


def find_tools(args: argparse.Namespace, notes: list[str]) -> list[Tool]:
    tools = [Tool("ours", str(OURS), fsync_knob=True)]
    if REFERENCE.exists():
        tools.append(Tool(REFERENCE_NAME, str(REFERENCE), fsync_knob=False))
    else:
        notes.append(
            f"{REFERENCE} is missing, so the comparison with 1.0.4 was skipped. "
            f"Install it with: `{REFERENCE_INSTALL}`"
        )
    for spec in args.compare:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            raise SystemExit(f"--compare wants NAME=PATH, got {spec!r}")
        tools = [t for t in tools if t.name != name]
        tools.append(Tool(name, str(Path(path).expanduser()), fsync_knob=True))
    return tools


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.scale:
        import scale

        command = [os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__), *argv]
        meta = [*machine(), f"command: `{shlex.join(command)}`"]
        meta += [f"project revision: {git_revision()}", f"load average at start: {load()}"]
        return scale.main(args, str(OURS), args.compare, README, meta)
    notes: list[str] = []
    tools = find_tools(args, notes)
    started = time.monotonic()
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(
            [os.path.relpath(sys.executable, Path.cwd()), os.path.relpath(__file__), *argv]
        ),
        "revision": git_revision(),
        "load_start": load(),
    }
    work = Path(tempfile.mkdtemp(prefix="cpf-bench-"))
    try:
        bench = Bench(args, tools, work)
        bench.notes.extend(notes)
        for tool in tools:
            outcome = spawn([tool.cpf, "--version"], bench.base_env, work)
            if outcome.returncode != 0:
                raise HarnessError(f"{tool.cpf} --version failed: {outcome.stderr[-400:]!r}")
            tool.version = outcome.stdout.decode().strip()
        say("tools: " + ", ".join(f"{t.name}={t.cpf} ({t.version})" for t in tools))
        bench.prepare()
        bench.build_cases()
        bench.measure(args.reps)
        bench.measure_memory(args.memory_reps)
        analyse_imports(bench)
        meta["duration"] = f"{time.monotonic() - started:.0f} s"
        meta["load_end"] = load()
        text = report(bench, meta)
        import scale  # its section of the file (growth curves) stays as it was

        old = args.output.read_text() if args.output.exists() else ""
        kept = scale.kept_section(old)
        args.output.write_text(text.rstrip("\n") + "\n\n" + kept if kept else text)
        if args.json:
            args.json.write_text(json.dumps(raw(bench), indent=1) + "\n")
            say(f"wrote {args.json}")
        summary = text.split("## Latest results", 1)[1]
        print("## Latest results" + summary)
        say(f"wrote {args.output}")
    except HarnessError as error:
        say(f"failed: {error}")
        return 1
    finally:
        if args.keep:
            say(f"scratch kept at {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
