"""Start-up time of the ``updraft`` command beside a bare interpreter, in the same run.

    .venv/bin/python tests/bench/bench_startup.py [-n 15] [--compare DIR] [--airflow PATH]

Times, as medians of ``-n`` runs taken in turn (so that every command meets the same load):

- ``python -c pass``: the bare interpreter, the baseline;
- ``updraft --help``;
- ``updraft dags list`` on an empty DAGs folder, twice: with a fresh ``UPDRAFT_HOME``
  (nothing created yet) and with a migrated, empty store (what a newcomer has after one
  ``updraft db migrate`` or a first scheduler start).

Each figure is printed with its cost over the bare interpreter; the targets are ``--help``
under 150 ms more and ``dags list`` under 300 ms more. ``--compare DIR`` times a checkout of
Updraft at DIR too (``git worktree add DIR <commit>``; run with PYTHONPATH=DIR on the same
interpreter), ``--airflow PATH`` an ``airflow`` executable's ``--help`` and ``dags list``
(with a fresh ``AIRFLOW_HOME``). The last lines say which heavy modules ``updraft --help``
imported (it should import no Flask, SQLAlchemy or Dask). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
HEAVY = ("flask", "werkzeug", "sqlalchemy", "alembic", "dask", "distributed", "nats",
         "jinja2", "scheduler", "executors", "bus", "web", "composition")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UPDRAFT__", "UPDRAFT_", "AIRFLOW")) and k != "PYTHONPATH"}
    env.update(extra)
    return env


#: Where the commands run: not the repository, whose folder ``python -m`` would put first on
#: ``sys.path`` (ahead of a ``--compare`` checkout).
WORKDIR = tempfile.gettempdir()


def _time(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False, cwd=WORKDIR)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


class Case:
    """One command to time: ``make()`` gives (argv, env) for one run."""

    def __init__(self, label: str, make: Callable[[], tuple[list[str], dict[str, str]]]):
        self.label = label
        self.make = make
        self.times: list[float] = []

    def run_once(self) -> None:
        argv, env = self.make()
        self.times.append(_time(argv, env))


def updraft_cases(tmp: Path, label: str, pythonpath: str | None) -> list[Case]:
    """``--help``, ``dags list`` in a fresh home and in a migrated empty one."""
    extra = {"PYTHONPATH": pythonpath} if pythonpath else {}
    cli = [sys.executable, "-m", "updraft.cli"]
    migrated = tmp / f"migrated-{len(label)}-{abs(hash(label))}"
    (migrated / "dags").mkdir(parents=True)
    subprocess.run(cli + ["db", "migrate"], env=_clean_env(UPDRAFT_HOME=str(migrated), **extra),
                   check=True, stdout=subprocess.DEVNULL, cwd=WORKDIR)
    counter = iter(range(10**6))

    def fresh_home() -> str:
        home = tmp / f"fresh-{abs(hash(label))}-{next(counter)}"
        (home / "dags").mkdir(parents=True)
        return str(home)

    return [
        Case(f"{label}updraft --help",
             lambda: (cli + ["--help"], _clean_env(UPDRAFT_HOME=str(migrated), **extra))),
        Case(f"{label}updraft dags list (fresh home)",
             lambda: (cli + ["dags", "list"], _clean_env(UPDRAFT_HOME=fresh_home(), **extra))),
        Case(f"{label}updraft dags list (migrated, empty)",
             lambda: (cli + ["dags", "list"], _clean_env(UPDRAFT_HOME=str(migrated), **extra))),
    ]


def airflow_cases(tmp: Path, airflow: str) -> list[Case]:
    home = tmp / "airflow-home"
    (home / "dags").mkdir(parents=True)
    env = _clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                     AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return [Case("airflow --help", lambda: ([airflow, "--help"], env)),
            Case("airflow dags list (migrated, empty)",
                 lambda: ([airflow, "dags", "list"], env))]


def heavy_modules_of_help(pythonpath: str | None) -> list[str]:
    """The heavy top-level packages ``updraft --help`` imported."""
    probe = ("import sys\nfrom updraft.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('LOADED', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    extra = {"PYTHONPATH": pythonpath} if pythonpath else {}
    done = subprocess.run([sys.executable, "-c", probe], env=_clean_env(**extra),
                          capture_output=True, text=True, check=True, cwd=WORKDIR)
    loaded = set(done.stdout.rpartition("LOADED")[2].split())
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--compare", metavar="DIR",
                        help="also time the Updraft checkout at DIR (PYTHONPATH=DIR)")
    parser.add_argument("--airflow", metavar="PATH", help="also time this airflow executable")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="updraft-bench-startup-"))
    try:
        bare = Case("python -c pass", lambda: ([sys.executable, "-c", "pass"], _clean_env()))
        cases = [bare, *updraft_cases(tmp, "", None)]
        if args.compare:
            cases += updraft_cases(tmp, f"[{args.compare}] ", str(Path(args.compare).resolve()))
        if args.airflow:
            cases += airflow_cases(tmp, shutil.which(args.airflow) or args.airflow)
        for case in cases:  # warm the page cache and the bytecode
            case.run_once()
            case.times.clear()
        for _ in range(args.n):
            for case in cases:
                case.run_once()
        base = statistics.median(bare.times)
        print(f"{len(os.sched_getaffinity(0))} CPUs, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; medians of {args.n} runs")
        for case in cases:
            median = statistics.median(case.times)
            over = "" if case is bare else f"   {1000 * (median - base):+7.0f} ms over bare"
            print(f"{case.label:<52} {1000 * median:7.0f} ms (min {1000 * min(case.times):5.0f})"
                  f"{over}")
        print(f"updraft --help imports: {', '.join(heavy_modules_of_help(None)) or 'none'} "
              f"of {', '.join(HEAVY)}")
        if args.compare:
            print(f"[{args.compare}] updraft --help imports: "
                  f"{', '.join(heavy_modules_of_help(str(Path(args.compare).resolve()))) or 'none'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
