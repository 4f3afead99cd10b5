"""Hosts of their own for the stack's workers: one Linux network namespace each, on a private bridge.

A worker in its own namespace has its own loopback: it reaches the Prefect server, the teacher,
PostgreSQL and Redis by the bridge address, as a worker on another machine would, so a setting that
only works on 127.0.0.1 fails here rather than on the team's second machine. Needs root and
``ip`` (iproute2); ``available()`` says whether this machine allows it, and the stack falls back to
plain processes when it does not.

Names derive from a short tag of the stack's home, so two stacks on one machine do not collide,
and interface names stay within Linux's 15 characters.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass

from vqa_distill.errors import FatalRunError

SUBNET_PREFIX = "10.213"  # 10.213.<n>.0/24, <n> from the stack's tag; .1 is the host side
FIRST_HOST = 10


@dataclass(frozen=True)
class Bridge:
    """The host side: a bridge with the address every worker reaches the services by."""

    name: str
    address: str  # e.g. 10.213.42.1
    prefix_len: int = 24


@dataclass(frozen=True)
class WorkerHost:
    """One namespace: its name, its veth pair and its address."""

    namespace: str
    veth_host: str
    veth_ns: str
    address: str


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise FatalRunError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def available() -> bool:
    """True when this process may create namespaces (root, iproute2, a kernel that allows it)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"vqa-probe-{os.getpid()}"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return False
    _ip("netns", "del", probe, check=False)
    return True


def stack_tag(home: str) -> str:
    """Return a 6-hex tag of the stack's home, for interface and namespace names."""
    return hashlib.sha256(home.encode()).hexdigest()[:6]


def bridge_for(tag: str) -> Bridge:
    """Return the bridge of a stack tag (its subnet's third byte also from the tag)."""
    return Bridge(name=f"vqa{tag}", address=f"{SUBNET_PREFIX}.{int(tag, 16) % 200 + 20}.1")


def host_for(tag: str, bridge: Bridge, index: int) -> WorkerHost:
    """Return the ``index``-th worker host of a stack (index from 0)."""
    subnet = bridge.address.rsplit(".", 1)[0]
    return WorkerHost(
        namespace=f"vqa-{tag}-{index}",
        veth_host=f"v{tag}h{index}",
        veth_ns=f"v{tag}n{index}",
        address=f"{subnet}.{FIRST_HOST + index}",
    )


def create_bridge(bridge: Bridge) -> None:
    """Create the bridge and give it the host address (an existing one is kept)."""
    if _ip("link", "show", bridge.name, check=False).returncode != 0:
        _ip("link", "add", "name", bridge.name, "type", "bridge")
        _ip("addr", "add", f"{bridge.address}/{bridge.prefix_len}", "dev", bridge.name)
    _ip("link", "set", bridge.name, "up")


def create_host(host: WorkerHost, bridge: Bridge) -> None:
    """Create the namespace, plug it into the bridge and bring its interfaces up (idempotent)."""
    if _ip("netns", "exec", host.namespace, "true", check=False).returncode == 0:
        return
    _ip("netns", "add", host.namespace)
    _ip("link", "add", host.veth_host, "type", "veth", "peer", "name", host.veth_ns)
    _ip("link", "set", host.veth_host, "master", bridge.name, "up")
    _ip("link", "set", host.veth_ns, "netns", host.namespace)
    _ip("-n", host.namespace, "addr", "add", f"{host.address}/{bridge.prefix_len}", "dev", host.veth_ns)
    _ip("-n", host.namespace, "link", "set", host.veth_ns, "up")
    _ip("-n", host.namespace, "link", "set", "lo", "up")


def delete_host(namespace: str, veth_host: str) -> None:
    """Remove a namespace and its veth pair (missing ones are fine)."""
    _ip("link", "del", veth_host, check=False)
    _ip("netns", "del", namespace, check=False)


def delete_bridge(name: str) -> None:
    """Remove the bridge (a missing one is fine)."""
    _ip("link", "del", name, check=False)


def in_namespace(namespace: str, argv: list[str]) -> list[str]:
    """Return ``argv`` run inside ``namespace`` (``ip netns exec`` execs it: the pid is the command's)."""
    return ["ip", "netns", "exec", namespace, *argv]
