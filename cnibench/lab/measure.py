"""Measurements inside the lab namespaces: iperf3, nginx + hey, path MTU, CPU.

Every spawned process carries the run marker in its command line (a file under
``/run/cnibench/<run>/`` or a ``cnibench-run=<run>`` header) so that leftovers of a dead
run can be found and killed (see :mod:`cnibench.lab.nsutil`).
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cnibench import parsers
from cnibench.lab.nsutil import in_netns, ns_exec

IPERF3_PORT = 5201
HTTP_PORT = 8080
LATENCY_SIZES = (350, 4096)


class MeasureError(RuntimeError):
    pass


# --------------------------------------------------------------------------- helpers


def wait_listening(ns: str, ip: str, port: int, timeout: float = 5.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``ip:port`` accepts TCP connections (connecting from inside ``ns``)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            args = cast("list[str]", proc.args)  # every process here comes from Servers._spawn(argv: list[str])
            raise MeasureError(f"{args[4] if len(args) > 4 else args} exited with {proc.returncode}: "
                               f"{(err or '').strip()[-300:]}")
        with in_netns(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((ip, port))
            return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
        finally:
            s.close()
    raise MeasureError(f"nothing listens on {ip}:{port} in {ns} after {timeout}s ({last})")


@dataclass
class CpuSnapshot:
    busy: int
    total: int

    @classmethod
    def take(cls) -> CpuSnapshot:
        with open("/proc/stat") as f:
            busy, total = parsers.proc_stat_cpu(f.readline())
        return cls(busy, total)


def cpu_cost(before: CpuSnapshot, after: CpuSnapshot, gbits: float | None) -> dict:
    """Whole-machine CPU use between two snapshots: both lab nodes, the pods and the
    kernel's softirq work all run on this machine, so that is the datapath's cost."""
    hz = os.sysconf("SC_CLK_TCK")
    busy_s = (after.busy - before.busy) / hz
    total = after.total - before.total
    return {
        "busy_percent": 100.0 * (after.busy - before.busy) / total if total else None,
        "cpu_seconds": busy_s,
        "cpu_seconds_per_gbit": busy_s / gbits if gbits else None,
        "source": "/proc/stat (whole machine)",
    }


# --------------------------------------------------------------------------- iperf3


class Servers:
    """Long-running servers of one cluster (iperf3, nginx); stopped explicitly or by cleanup."""

    def __init__(self, run_dir: Path, tag: str):
        self.dir = run_dir / tag
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def start_iperf3(self, ns: str, ip: str, port: int = IPERF3_PORT) -> None:
        p = self._spawn(ns_exec(ns, ["iperf3", "-s", "-B", ip, "-p", str(port),
                                     "--pidfile", str(self.dir / f"iperf3-{port}.pid")]))
        wait_listening(ns, ip, port, proc=p)

    def start_nginx(self, ns: str, ip: str, port: int = HTTP_PORT) -> None:
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        for size in LATENCY_SIZES:
            (www / str(size)).write_bytes(b"x" * size)
        os.chmod(self.dir, 0o755)
        conf = self.dir / "nginx.conf"
        conf.write_text(
            "worker_processes 1;\n"
            f"pid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/nginx-error.log;\n"
            "events { worker_connections 4096; }\n"
            "http {\n access_log off;\n keepalive_requests 1000000;\n"
            f" client_body_temp_path {self.dir}/body;\n"
            f" server {{ listen {ip}:{port} reuseport; root {www}; default_type application/octet-stream; }}\n"
            "}\n"
        )
        p = self._spawn(ns_exec(ns, ["nginx", "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"]))
        wait_listening(ns, ip, port, proc=p)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
        self.procs.clear()


def iperf3(ns: str, server: str, *, duration: float, udp: bool = False, streams: int = 1,
           port: int = IPERF3_PORT, logfile: Path) -> tuple[parsers.Iperf3Result, dict, str]:
    """Run an iperf3 client in ``ns``; return the parsed result, the CPU cost and the raw JSON."""
    argv = ["iperf3", "-J", "-c", server, "-p", str(port), "-t", f"{duration:g}", "-O", "0",
            "-P", str(streams), "--logfile", str(logfile)]
    if udp:
        argv += ["-u", "-b", "0"]
    if logfile.exists():
        logfile.unlink()
    before = CpuSnapshot.take()
    proc = subprocess.run(ns_exec(ns, argv), capture_output=True, text=True, timeout=duration + 30)
    after = CpuSnapshot.take()
    raw = logfile.read_text() if logfile.exists() else proc.stdout
    if not raw.strip():
        raise MeasureError(f"iperf3 produced no output (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    try:
        res = parsers.parse_iperf3(raw)
    except parsers.ParseError as exc:
        raise MeasureError(str(exc)) from exc
    return res, cpu_cost(before, after, res.bits_per_second * res.duration_s / 1e9), raw


# --------------------------------------------------------------------------- hey


def hey(ns: str, url: str, *, duration: float, workers: int, qps_per_worker: float | None, run_id: str,
        ) -> tuple[parsers.LatencyResult, str]:
    argv = ["hey", "-z", f"{int(duration * 1000)}ms", "-c", str(workers), "-o", "csv",
            "-H", f"X-Cnibench: cnibench-run={run_id}", "-t", "10"]
    if qps_per_worker:
        argv += ["-q", f"{qps_per_worker:.3f}"]
    proc = subprocess.run(ns_exec(ns, [*argv, url]), capture_output=True, text=True, timeout=duration + 30)
    if proc.returncode != 0:
        raise MeasureError(f"hey exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    try:
        return parsers.parse_hey_csv(proc.stdout, duration), proc.stdout
    except parsers.ParseError as exc:
        raise MeasureError(str(exc)) from exc


# --------------------------------------------------------------------------- path MTU

IP_MTU_DISCOVER = 10
IP_PMTUDISC_PROBE = 3  # set DF, ignore the cached path MTU: every probe tests the path


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def probe_path_mtu(ns: str, dst: str, *, low: int = 576, high: int = 9216, timeout: float = 0.5) -> int:
    """Largest IPv4 packet (bytes, IP header included) that reaches ``dst`` from ``ns`` and
    gets an echo reply, with DF set: a binary search with ICMP echo requests. A probe fails
    on a local EMSGSIZE (first-hop MTU), an ICMP 'fragmentation needed' from a router, or
    no reply. Equivalent to ``ping -M probe -s N`` (iputils is not needed)."""
    with in_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        ident = random.randrange(1, 0xFFFF)
        seq = 0

        def passes(size: int) -> bool:
            nonlocal seq
            seq = (seq + 1) & 0xFFFF
            payload = os.urandom(8) + b"\0" * max(0, size - 28 - 8)
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, _checksum(hdr + payload), ident, seq) + payload
            try:
                sock.sendto(pkt, (dst, 0))
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    return False
                raise
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                r, _, _ = select.select([sock], [], [], left)
                if not r:
                    return False
                data, addr = sock.recvfrom(65535)
                ihl = (data[0] & 0x0F) * 4
                icmp_type, code = data[ihl], data[ihl + 1]
                if icmp_type == 0 and addr[0] == dst:
                    rid, rseq = struct.unpack("!HH", data[ihl + 4:ihl + 8])
                    if rid == ident and rseq == seq:
                        return True
                elif icmp_type == 3 and code == 4:  # fragmentation needed, from a hop on the path
                    inner = data[ihl + 8:]
                    iihl = (inner[0] & 0x0F) * 4 if inner else 0
                    if len(inner) >= iihl + 8:
                        rid, rseq = struct.unpack("!HH", inner[iihl + 4:iihl + 8])
                        if rid == ident and rseq == seq:
                            return False

        if not (passes(low) or passes(low)):
            raise MeasureError(f"no echo reply from {dst} in {ns} even for {low}-byte packets (no connectivity)")
        lo, hi = low, high  # lo passes; find the largest passing size in [lo, hi]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if passes(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo
    finally:
        sock.close()
