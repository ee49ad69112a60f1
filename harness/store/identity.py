"""Who a worker is: an id unique across machines, containers and cloned VMs.

``host:pid:machine:token``. ``machine`` is a short hash of the kernel boot id and the pid
namespace, so two containers with host networking (one hostname) or two clones of one VM (one
hostname, different boots) never take each other's workers for their own; ``token`` is random,
so a reused pid is a new worker. Only a worker on *this* machine (same hostname, boot and pid
namespace) whose pid no longer exists is declared dead early; any other is left to its lease.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import uuid

__all__ = ["machine_id", "parse_worker_id", "same_machine", "worker_id"]


@functools.cache
def machine_id() -> str:
    """12 hex digits naming this kernel boot and pid namespace."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as fh:
                parts.append(fh.read().strip())
        except OSError:
            parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    if not any(parts):  # not Linux: nothing better than a per-process random id
        parts.append(uuid.uuid4().hex)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def worker_id(pid: int | None = None) -> str:
    host = socket.gethostname().replace(":", "_")
    return f"{host}:{pid or os.getpid()}:{machine_id()}:{uuid.uuid4().hex[:8]}"


def parse_worker_id(worker: str | None) -> tuple[str, int, str] | None:
    """``(host, pid, machine)`` of a worker id, or None for anything else (older ids)."""
    parts = (worker or "").split(":")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def same_machine(worker: str | None) -> int | None:
    """The worker's pid when it ran on this very machine (host, boot, pid namespace)."""
    parsed = parse_worker_id(worker)
    if parsed is None:
        return None
    host, pid, machine = parsed
    if host != socket.gethostname().replace(":", "_") or machine != machine_id():
        return None
    return pid
