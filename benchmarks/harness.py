"""Alternated measurement: every side of an item warmed up in a live process, then timed in turn.

For each item (worker.py lists them), each side's worker loads and warms up
(compiling every shape the item uses); then repetition r times side A, side
B, side C, A, B, C, ... so a slow stretch of a shared machine falls on every
side alike, and the ratio of each repetition's adjacent pair is a fair
comparison. The pipeline, whose repetition is a whole run with its
compilation, gets a fresh process per repetition, alternated the same way.
Records are saved after each item (WORKDIR/records.json), so a killed run
keeps what it measured and `--reuse` can finish it; a reused record is marked
as such and is not alternated with the sides measured now.
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerDied(Exception):
    pass


class Worker:
    """A `python -m benchmarks.worker SIDE WORKDIR` process and its line protocol."""

    def __init__(self, side: str, workdir: Path):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        if side != "torch":
            env["KERAS_BACKEND"] = side
        self.side = side
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", side, str(workdir)], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise WorkerDied(f"the {self.side} worker died (exit {code}{', killed' if code < 0 else ''})")
        return json.loads(line)

    def ask(self, op: str, **fields) -> dict:
        try:
            self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports the exit
        answer = self._read()
        if "error" in answer:
            raise WorkerDied(f"the {self.side} worker failed: {answer['error']}")
        return answer

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "exit"}\n')
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
            self.process.wait()


def measure_item(name, sides, repeats, workers, log) -> dict:
    """{side: record} for one item; `workers` (Workers) gives each side's live process."""
    records, live = {}, {}
    for side in sides:
        try:
            worker = workers.get(side)
            records[side] = {"setup": worker.ask("setup", item=name), "repeats": []}
            live[side] = worker
        except WorkerDied as error:
            records[side] = {"error": str(error)}
    for r in range(repeats):
        line = []
        for side, worker in list(live.items()):
            try:
                answer = worker.ask("repeat")
            except WorkerDied as error:
                records[side] = {"error": str(error)}
                del live[side]
                continue
            records[side]["repeats"].append(answer)
            line.append(f"{side} {answer.get('seconds', answer.get('gflops', 0)):.2f}")
        log(f"{name} repetition {r + 1}/{repeats}: " + ", ".join(line))
    for side, worker in live.items():
        try:
            records[side]["finish"] = worker.ask("finish")
        except WorkerDied as error:
            records[side] = {"error": str(error)}
        workers.release(worker)
    return records


def measure_fresh(name, sides, repeats, workdir, log) -> dict:
    """Repetitions that each need a new process (the pipeline): A B C, A B C, ..., one process each."""
    records = {side: {"setup": {}, "repeats": [], "finish": {}} for side in sides}
    for r in range(repeats):
        line = []
        for side in sides:
            if "error" in records[side]:
                continue
            worker = None
            try:
                worker = Worker(side, workdir)
                worker.ask("setup", item=name)
                answer = worker.ask("repeat")
                finish = worker.ask("finish")
            except WorkerDied as error:
                records[side] = {"error": str(error)}
                continue
            finally:
                if worker is not None:
                    worker.close()
            records[side]["repeats"].append(answer)
            peak = max(records[side]["finish"].get("peak_rss_gib", 0), finish.get("peak_rss_gib", 0))
            records[side]["finish"] = {**finish, "peak_rss_gib": peak}
            line.append(f"{side} {answer['seconds']:.1f}")
        log(f"{name} repetition {r + 1}/{repeats}: " + ", ".join(line))
    return records


class Workers:
    """Each side's worker process: one per side for every item when `keep` (the tests' tiny run: start-up
    would outweigh the items), else a fresh one per item, closed on `release` (it keeps the frameworks'
    memory and threads of one item out of the next one's timings)."""

    def __init__(self, workdir: Path, keep: bool):
        self.workdir, self.keep, self.kept = workdir, keep, {}

    def get(self, side) -> Worker:
        if not self.keep:
            return Worker(side, self.workdir)
        if side not in self.kept:
            self.kept[side] = Worker(side, self.workdir)
        return self.kept[side]

    def release(self, worker: Worker):
        if not self.keep:
            worker.close()

    def close(self):
        for worker in self.kept.values():
            worker.close()


def run_items(names, sides, repeats, workdir: Path, records: dict, run_id: str, keep_workers: bool) -> dict:
    """Measure every (item, side) not yet in `records` ({item: {side: record}}), saving after each item."""
    def log(text):
        print(f"[bench] {text}", flush=True)

    workers = Workers(workdir, keep_workers)
    try:
        for name in names:
            todo = [side for side in sides if side not in records.get(name, {})]
            if not todo:
                continue
            started = time.perf_counter()
            log(f"{name}: {' / '.join(todo)}, {repeats} alternated repetitions")
            if name == "pipeline" and not keep_workers:
                measured = measure_fresh(name, todo, repeats, workdir, log)
            else:
                measured = measure_item(name, todo, repeats if name != "pipeline" else 1, workers, log)
            for record in measured.values():
                record["run"] = run_id
            records.setdefault(name, {}).update(measured)
            (workdir / "records.json").write_text(json.dumps(records))
            log(f"{name}: {time.perf_counter() - started:.0f} s")
    finally:
        workers.close()
    return records


def machine() -> dict:
    """What the figures were measured on and with: commit, versions, CPU, memory, accelerators."""
    import importlib.metadata

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    cpu = platform.processor()
    memory_gib = None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                   cpu)
        meminfo = Path("/proc/meminfo").read_text().split()
        memory_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20
    except (OSError, ValueError):
        pass
    gpus = nvidia_gpus()
    return {
        "commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain")),
        "versions": {name: version(name) for name in (
            "kerastune", "keras", "keras-hub", "tensorflow", "jax", "jaxlib", "torch", "transformers", "numpy")},
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)), "memory_gib": memory_gib,
        "gpus": gpus,
    }


def nvidia_gpus() -> list[str]:
    """NVIDIA GPUs by name, without importing a framework into the parent process."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
