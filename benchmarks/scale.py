"""Growth curves for `cpf` (`run.py --scale`): does one more item, step or event cost the
same however many came before?

    .venv/bin/python benchmarks/run.py --scale                       # 100 .. 50,000 items
    .venv/bin/python benchmarks/run.py --scale --scale-sizes 1000,10000   # while developing

Three cases, each measured at several sizes for our `cpf` and, side by side in the same
run, for the published 1.10.0 (`/tmp/up110/bin/cpf`, or `--compare NAME=PATH`):

- a sequential foreach over N items whose body is one `true` cli step (`cpf run`);
- a workflow of N distinct `true` cli steps in a row (`cpf run`);
- a run whose history holds N events (a foreach over N items, then a wait), and the
  commands that read it: `status`, `resume`, `inspect`, `logs`, `verify` (those the tool has).

Each measurement is one whole process under `/usr/bin/time` (wall, user+sys CPU and peak
RSS from one run). The marginal cost at size N is the slope between N and the next smaller
size: (T(N) - T(previous)) / (N - previous), so start-up and the final checkpoint cancel
out. The machine is shared: CPU time is the steadier figure; wall time shows fsync and
waiting. A script, not a test: nothing asserts. The section it writes replaces the
"## Growth curves" section of RESULTS.md and leaves the rest of the file as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HEADING = "## Growth curves"
UPSTREAM = Path("/tmp/up110/bin/cpf")
UPSTREAM_NAME = "1.10.0"
FOREACH_SIZES = (100, 1000, 5000, 20000, 50000)
STEP_SIZES = (100, 1000, 5000)
HISTORY_SIZES = (2000, 10000, 20000)
HISTORY_COMMANDS = ("status", "resume", "inspect", "logs", "verify")
TARGET_FLAT = 1.2  # marginal cost at the largest size / at 1,000 (or the smallest)
GNU_TIME = Path("/usr/bin/time")


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + sys seconds, the process and its children
    rss_mib: float


@dataclass
class Curve:
    """One case for one tool: a sample per size (the median of the repetitions)."""

    case: str
    tool: str
    points: dict[int, Sample] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)

    def marginal(self, size: int, measure: Callable[[Sample], float]) -> float | None:
        sizes = sorted(self.points)
        index = sizes.index(size)
        if index == 0:
            return None
        before = sizes[index - 1]
        delta = measure(self.points[size]) - measure(self.points[before])
        return delta / (size - before) * 1000  # ms per unit


def timed(argv: list[str], env: dict[str, str], cwd: Path, expect: set[int]) -> Sample:
    """One process under /usr/bin/time: wall, CPU and peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        command = [str(GNU_TIME), "-o", report.name, "-f", "%e %U %S %M", *argv]
        started = time.perf_counter()
        done = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, check=False
        )
        wall = time.perf_counter() - started
        if done.returncode not in expect:
            raise RuntimeError(
                f"{' '.join(argv[:4])}...: exit {done.returncode}\n"
                f"{done.stdout[-600:].decode(errors='replace')}"
                f"{done.stderr[-600:].decode(errors='replace')}"
            )
        _, user, system, rss = Path(report.name).read_text().split()[-4:]
    return Sample(wall, float(user) + float(system), int(rss) / 1024)


def median_sample(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mib for s in samples),
    )


def head(name: str) -> list[str]:
    return [
        "schema_version: checkpointflow/v1",
        "workflow:",
        f"  id: {name}",
        "  inputs: {type: object}",
        "  steps:",
    ]


def foreach_workflow(path: Path, then_wait: bool = False) -> None:
    """A foreach over `${inputs.items}` of one `true` step (no `concurrency`: 1.10.0 has
    none, and ours defaults to one at a time); with `then_wait`, a wait that loops."""
    lines = head("scale_foreach")
    lines += [
        "    - id: each",
        "      kind: foreach",
        "      items: ${inputs.items}",
        "      body:",
        "        - id: t",
        "          kind: cli",
        '          command: "true"',
    ]
    if then_wait:
        lines += [
            "    - id: wait",
            "      kind: await_event",
            "      audience: user",
            "      event_name: go",
            "      input_schema: {type: object}",
            "      transitions:",
            "        - when: ${event.again == true}",
            "          next: wait",
            "        - when: ${event.again != true}",
            "          next: done",
        ]
    lines += ["    - id: done", "      kind: end", ""]
    path.write_text("\n".join(lines))


def steps_workflow(path: Path, count: int) -> None:
    lines = head(f"scale_steps_{count}")
    for index in range(count):
        lines += [f"    - id: s{index}", "      kind: cli", '      command: "true"']
    lines += ["    - id: done", "      kind: end", ""]
    path.write_text("\n".join(lines))


def items(count: int, folder: Path) -> str:
    """`--input @file` with {"items": [0, ..., count-1]}."""
    path = folder / f"items-{count}.json"
    if not path.exists():
        path.write_text(json.dumps({"items": list(range(count))}, separators=(",", ":")))
    return f"@{path}"


def folder_size(root: Path) -> tuple[int, int]:
    """Bytes and entries (files and folders) under the runs of a state root."""
    total, entries = 0, 0
    for path in (root / "runs").rglob("*") if (root / "runs").exists() else ():
        entries += 1
        if path.is_file():
            total += path.stat().st_size
    return total, entries


class Scale:
    def __init__(self, tools: list[tuple[str, str]], work: Path, env: dict[str, str]) -> None:
        self.tools = tools  # (name, cpf)
        self.work = work
        self.env = env
        self.curves: list[Curve] = []
        self.counter = 0

    def root(self, name: str) -> Path:
        self.counter += 1
        path = self.work / "roots" / f"{self.counter:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def run_env(self, root: Path) -> dict[str, str]:
        return {**self.env, "CHECKPOINTFLOW_BASE_DIR": str(root)}

    def runs(self, workflow: Path, sizes: tuple[int, ...], reps: int, case: str) -> None:
        """`cpf run` at each size, each tool, `reps` times. Tools alternate at each size,
        and every repetition walks the sizes the other way round, so a change of load on
        the machine lands on small and large sizes alike."""
        samples: dict[tuple[str, int], list[Sample]] = {}
        disk: dict[tuple[str, int], str] = {}
        for rep in range(reps):
            for size in sizes if rep % 2 == 0 else tuple(reversed(sizes)):
                for name, cpf in self.tools:
                    root = self.root(f"{case}-{size}-{name}")
                    flow = workflow if case == "foreach" else self.work / f"steps-{size}.yaml"
                    data = items(size, self.work) if case == "foreach" else "{}"
                    argv = [cpf, "run", "-f", str(flow), "--input", data]
                    say(f"{case} {size:,} {name} (repetition {rep + 1})")
                    sample = timed(argv, self.run_env(root), self.work, {0})
                    samples.setdefault((name, size), []).append(sample)
                    size_bytes, entries = folder_size(root)
                    disk[(name, size)] = f"{size_bytes / 1e6:.1f} MB in {entries:,} entries"
                    shutil.rmtree(root, ignore_errors=True)
        for (name, size), taken in samples.items():
            curve = self.curve(case, name)
            curve.points[size] = median_sample(taken)
            curve.notes[size] = disk[(name, size)]

    def curve(self, case: str, tool: str) -> Curve:
        for curve in self.curves:
            if (curve.case, curve.tool) == (case, tool):
                return curve
        self.curves.append(Curve(case, tool))
        return self.curves[-1]

    def history(self, sizes: tuple[int, ...], reps: int) -> None:
        """A waiting run whose log holds about `size` events, and the readers of it."""
        workflow = self.work / "history.yaml"
        foreach_workflow(workflow, then_wait=True)
        for size in sizes:
            for name, cpf in self.tools:
                root = self.root(f"history-{size}-{name}")
                env = self.run_env(root)
                say(f"history {size:,} {name}: building")
                started = subprocess.run(
                    [cpf, "run", "-f", str(workflow), "--input", items(size, self.work)],
                    env=env,
                    cwd=self.work,
                    capture_output=True,
                    check=False,
                )
                run_id = json.loads(started.stdout)["run_id"]
                snapshot = self.work / "snapshots" / root.name
                shutil.copytree(root, snapshot)
                for command in HISTORY_COMMANDS:
                    argv = self.reader(cpf, command, run_id)
                    if argv is None:
                        continue
                    samples = []
                    for _ in range(reps):
                        if command == "resume":
                            shutil.rmtree(root)
                            shutil.copytree(snapshot, root)
                        samples.append(timed(argv, env, self.work, {0, 40}))
                    self.curve(f"history {command}", name).points[size] = median_sample(samples)
                shutil.rmtree(root, ignore_errors=True)
                shutil.rmtree(snapshot, ignore_errors=True)

    def reader(self, cpf: str, command: str, run_id: str) -> list[str] | None:
        """The command line of one reader, or None when the tool has no such command."""
        if command == "resume":
            return [cpf, "resume", "--run-id", run_id, "--event", "go", "--input", '{"again":true}']
        probe = subprocess.run([cpf, command, "--help"], capture_output=True, check=False)
        if probe.returncode != 0:
            return None
        return [cpf, command, "--run-id", run_id]


def say(message: str) -> None:
    print(f"[scale] {message}", flush=True, file=sys.stderr)


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(scale: Scale, meta: list[str]) -> str:
    out: list[str] = [HEADING, ""]
    w = out.append
    w(
        "Written by `benchmarks/run.py --scale` (see `benchmarks/scale.py`). One process per "
        "measurement under `/usr/bin/time`; the median of the repetitions, peak RSS the "
        "largest. Marginal cost at N = (T(N) - T(previous size)) / (N - previous size): "
        "start-up and the final checkpoint cancel out. Flat means the marginal cost at the "
        f"largest size is at most {TARGET_FLAT}x the one at 1,000 (or the smallest size)."
    )
    w("")
    out.extend(f"- {line}" for line in meta)
    w("")
    for case, unit, title in (
        ("foreach", "item", "Sequential foreach of `true` steps (`cpf run`)"),
        ("steps", "step", "Distinct `true` steps in a row (`cpf run`)"),
    ):
        curves = [c for c in scale.curves if c.case == case]
        if curves:
            out.extend(_run_table(curves, unit, title))
    readers = [c for c in scale.curves if c.case.startswith("history ")]
    if readers:
        out.extend(_history_table(readers))
    out.extend(_verdicts(scale))
    return "\n".join(out) + "\n"


def _run_table(curves: list[Curve], unit: str, title: str) -> list[str]:
    out = [f"### {title}", ""]
    out.append(
        f"| tool | {unit}s | total s | CPU s | ms/{unit} (total) | marginal ms/{unit} | "
        f"marginal CPU ms/{unit} | peak RSS MiB | run folder |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for curve in curves:
        for size, point in sorted(curve.points.items()):
            out.append(
                f"| {curve.tool} | {size:,} | {point.wall:.2f} | {point.cpu:.2f} | "
                f"{point.wall / size * 1000:.3f} | {fmt(curve.marginal(size, _wall), 3)} | "
                f"{fmt(curve.marginal(size, _cpu), 3)} | {point.rss_mib:.1f} | "
                f"{curve.notes.get(size, '')} |"
            )
    out.append("")
    return out


def _history_table(curves: list[Curve]) -> list[str]:
    out = ["### Commands on a run with a long history", ""]
    out.append(
        "A run that did a foreach over N items (about N events in its log) and waits. "
        "`resume` answers the wait (which waits again), on a fresh copy of the run each time. "
        "Wall ms per command (median). `status` and `resume` should not grow with the "
        f"history (flat: largest / smallest ≤ {TARGET_FLAT}x); `inspect`, `logs` and `verify` "
        "read the whole history, so they should grow linearly: the cost of one more event "
        f"(the slope of the last span against the first) ≤ {TARGET_FLAT}x."
    )
    out.append("")
    sizes = sorted({size for curve in curves for size in curve.points})
    out.append(
        "| command | tool | "
        + " | ".join(f"{size:,} events ms" for size in sizes)
        + " | CPU ms at largest | largest / smallest | µs per event, last span / first | "
        "verdict |"
    )
    out.append("|---|---|" + "---:|" * (len(sizes) + 3) + "---|")
    for curve in curves:
        cells = [fmt(curve.points[s].wall * 1000, 0) if s in curve.points else "n/a" for s in sizes]
        first, last = curve.points[sizes[0]], curve.points[sizes[-1]]
        spans = [curve.marginal(size, _wall) for size in sizes[1:]]
        slopes = "n/a"
        linear = None
        if len(spans) >= 2 and spans[0] is not None and spans[-1] is not None:
            slopes = f"{spans[-1] * 1000:.1f} / {spans[0] * 1000:.1f}"
            linear = spans[-1] <= TARGET_FLAT * spans[0] or spans[-1] * 1000 < 5
        command = curve.case.split()[1]
        ratio = last.wall / first.wall
        if command in ("status", "resume"):
            verdict = "flat" if ratio <= TARGET_FLAT else "**grows**"
        else:
            verdict = "n/a" if linear is None else "linear" if linear else "**faster than linear**"
        out.append(
            f"| `{command}` | {curve.tool} | {' | '.join(cells)} | "
            f"{last.cpu * 1000:.0f} | {ratio:.2f}x | {slopes} | {verdict} |"
        )
    out.append("")
    return out


def _wall(sample: Sample) -> float:
    return sample.wall


def _cpu(sample: Sample) -> float:
    return sample.cpu


def _verdicts(scale: Scale) -> list[str]:
    out = ["### Flatness", ""]
    out.append(
        "Marginal cost at the largest size against the marginal cost at 1,000 (or the "
        "smallest size that has one), in wall time and in CPU time (the steadier one on a "
        "shared machine); peak RSS at the largest size against the smallest."
    )
    out.append("")
    out.append(
        "| case | tool | sizes | wall ratio | CPU ratio | RSS ratio | flat (wall) | flat (CPU) |"
    )
    out.append("|---|---|---|---:|---:|---:|---|---|")
    for curve in scale.curves:
        if curve.case.startswith("history "):
            continue
        sizes = sorted(curve.points)
        base = 1000 if 1000 in sizes[1:] else (sizes[1] if len(sizes) > 1 else None)
        if base is None or base == sizes[-1]:
            continue
        ratios = [
            _ratio(curve.marginal(sizes[-1], measure), curve.marginal(base, measure))
            for measure in (_wall, _cpu)
        ]
        rss = curve.points[sizes[-1]].rss_mib / curve.points[sizes[0]].rss_mib
        flat = ["**yes**" if r is not None and r <= TARGET_FLAT else "**no**" for r in ratios]
        out.append(
            f"| {curve.case} | {curve.tool} | {base:,} → {sizes[-1]:,} | {fmt(ratios[0])}x | "
            f"{fmt(ratios[1])}x | {rss:.2f}x | {flat[0]} | {flat[1]} |"
        )
    out.append("")
    out.extend(_against_upstream(scale))
    return out


def _against_upstream(scale: Scale) -> list[str]:
    """Per item at 1,000 items, ours against 1.10.0 (the issue asks for at most half)."""
    ours = next((c for c in scale.curves if (c.case, c.tool) == ("foreach", "ours")), None)
    theirs = next((c for c in scale.curves if (c.case, c.tool) == ("foreach", UPSTREAM_NAME)), None)
    if ours is None or theirs is None or 1000 not in ours.points or 1000 not in theirs.points:
        return []
    a, b = ours.points[1000], theirs.points[1000]
    return [
        f"- Per item at 1,000 items (whole run / 1,000): ours {a.wall:.3f} ms wall, "
        f"{a.cpu:.3f} ms CPU; {UPSTREAM_NAME} {b.wall:.3f} ms wall, {b.cpu:.3f} ms CPU: "
        f"ours / {UPSTREAM_NAME} = {a.wall / b.wall:.2f}x wall, {a.cpu / b.cpu:.2f}x CPU.",
        "",
    ]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def merged(old: str, readme: str, section: str) -> str:
    """The results file with the harness's own introduction, the other sections of the old
    file as they were, and this section in place of the old one (at the end)."""
    first = old.find("\n## ")
    body = old[first + 1 :] if first >= 0 else ""
    start = body.find(HEADING)
    if start >= 0:
        end = body.find("\n## ", start + len(HEADING))
        body = body[:start] + (body[end + 1 :] if end >= 0 else "")
    body = body.rstrip("\n")
    return readme.rstrip("\n") + "\n\n" + (body + "\n\n" if body else "") + section


def kept_section(old: str) -> str:
    """The growth section of an existing results file, for the default run to keep."""
    start = old.find(HEADING)
    if start < 0:
        return ""
    end = old.find("\n## ", start + len(HEADING))
    return old[start : end + 1 if end >= 0 else len(old)]


def main(args: object, ours: str, compare: list[str], readme: str, meta: list[str]) -> int:
    """Run the growth curves and write their section into the results file."""
    tools = [("ours", ours)]
    if UPSTREAM.exists() and not any(spec.startswith(f"{UPSTREAM_NAME}=") for spec in compare):
        tools.append((UPSTREAM_NAME, str(UPSTREAM)))
    for spec in compare:
        name, _, path = spec.partition("=")
        tools.append((name, str(Path(path).expanduser())))
    sizes = tuple(getattr(args, "scale_sizes", None) or FOREACH_SIZES)
    reps = int(getattr(args, "scale_reps", 1))
    work = Path(tempfile.mkdtemp(prefix="cpf-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTFLOW_")}
    env["LLM"] = "true"
    started = time.monotonic()
    try:
        scale = Scale(tools, work, env)
        foreach_workflow(work / "foreach.yaml")
        scale.runs(work / "foreach.yaml", sizes, reps, "foreach")
        step_sizes = tuple(s for s in STEP_SIZES if s <= max(sizes))
        for size in step_sizes:
            steps_workflow(work / f"steps-{size}.yaml", size)
        scale.runs(work / "steps.yaml", step_sizes, reps, "steps")
        history_sizes = tuple(s for s in HISTORY_SIZES if s <= max(sizes)) or (max(sizes),)
        scale.history(history_sizes, max(reps, 3))
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"date: {when}", *meta]
        lines += [f"tool `{name}`: `{cpf}`" for name, cpf in tools]
        lines.append(f"repetitions per point: {reps} (history readers: {max(reps, 3)})")
        lines.append(f"total time {time.monotonic() - started:.0f} s")
        section = report(scale, lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output: Path = getattr(args, "output")  # noqa: B009
    old = output.read_text() if output.exists() else ""
    output.write_text(merged(old, readme, section))
    print(section)
    say(f"wrote {output}")
    return 0
