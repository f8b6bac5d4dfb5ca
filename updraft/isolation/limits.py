"""What a supervisor needs to know about a process: its memory, its descendants, how it
ended, and the kernel's parent-death signal. Linux (``/proc``, ``prctl``)."""

from __future__ import annotations

import os
import re
import signal

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2,
          "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(value: str | int | float | None) -> int | None:
    """Bytes in ``value``: a number or text like ``"2GiB"``, ``"512 MB"``, ``"1.5g"``;
    None, 0 and empty text mean no limit. ValueError names what is wrong."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ValueError(f"a memory size must be a number of bytes or text like '2GiB', "
                         f"not {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a memory size cannot be negative: {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"cannot read {value!r} as a memory size: write a number of bytes "
                         "or a number with a unit (KiB, MiB, GiB, KB, MB, GB)")
    size = int(float(match.group(1)) * _UNITS[unit])
    return size or None


def format_size(size: int) -> str:
    """``size`` bytes for people (MiB/GiB)."""
    if size >= 1024**3:
        return f"{size / 1024**3:.2f} GiB"
    return f"{size / 1024**2:.0f} MiB"


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid``; None if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (children first), read from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(status: int | None) -> str:
    """How a process ended, from its wait status: "exited with code 3", "died of signal 11
    (SIGSEGV)"; "ended (its exit status is unknown)" for None."""
    if status is None:
        return "ended (its exit status is unknown)"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"died of signal {number} ({signal_name(number)})"
    return f"exited with code {os.WEXITSTATUS(status)}"


def killed_by_signal(status: int | None) -> int | None:
    if status is not None and os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    return None


def oom_kill_count() -> int | None:
    """The kernel's count of out-of-memory kills so far (``/proc/vmstat``), if it has one."""
    try:
        with open("/proc/vmstat", "rb") as handle:
            for line in handle:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def set_parent_death_signal(number: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``number`` to this process when its parent dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, number, 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def kill_quietly(pid: int, number: int) -> bool:
    try:
        os.kill(pid, number)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group_quietly(pgid: int, number: int) -> bool:
    try:
        os.killpg(pgid, number)
        return True
    except (ProcessLookupError, PermissionError):
        return False


__all__ = ["describe_exit", "descendants", "format_size", "kill_group_quietly",
           "kill_quietly", "killed_by_signal", "oom_kill_count", "parse_size", "rss_bytes",
           "set_parent_death_signal", "signal_name"]
