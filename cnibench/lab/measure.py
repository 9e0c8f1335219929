"""Measurements inside the lab namespaces: iperf3, sockperf, nginx + wrk, path MTU, CPU and
the background-load guard.

Every spawned process carries the run marker in its command line (a file under
``/run/cnibench/<run>/`` or a ``cnibench-run=<run>`` header) so that leftovers of a dead
run can be found and killed (see :mod:`cnibench.lab.nsutil`).
"""

from __future__ import annotations

import errno
import os
import random
import resource
import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import cast

from cnibench import parsers
from cnibench.lab.nsutil import in_netns, ns_exec

IPERF3_PORT = 5201
HTTP_PORT = 8080
SOCKPERF_PORT = 11111  # sockperf's own default port
WRK_SCRIPT = files("cnibench.suite") / "runner" / "wrk-report.lua"  # shared with the cloud suite


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


# The scheduler's own CPU clock. On this project's VMs the tick-sampled counters of /proc/stat
# are not usable for short tests: eight identical 1 s iperf3 runs at 3.2 Gbit/s (whose client
# alone used 0.19-0.21 s by getrusage) showed 0.01 to 0.65 busy CPU seconds in /proc/stat, while
# the root cpuacct counter read 0.33-0.37 s (CV 4 %). cgroup v1's root ``cpuacct.usage`` is the
# nanosecond runtime of every task (kernel/sched/cpuacct.c, charged from update_curr); cgroup
# v2's root ``cpu.stat`` is not an alternative: for the root it is summed from the same tick
# counters as /proc/stat (kernel/cgroup/rstat.c, root_cgroup_cputime).
CPUACCT_USAGE = Path("/sys/fs/cgroup/cpuacct/cpuacct.usage")
HZ = os.sysconf("SC_CLK_TCK")


def _read_cpuacct() -> float | None:
    try:
        return int(CPUACCT_USAGE.read_text()) / 1e9
    except (OSError, ValueError):
        return None


@dataclass
class CpuSnapshot:
    """The machine's busy CPU seconds (all cores) at one instant, and where they come from."""

    busy_s: float
    at: float  # time.monotonic()
    source: str

    @classmethod
    def take(cls) -> CpuSnapshot:
        with open("/proc/stat") as f:
            line = f.readline()
        precise = _read_cpuacct()
        if precise is not None:
            # steal (time the hypervisor gave to someone else) is no task's runtime: add it from
            # /proc/stat, so a busy neighbour still shows as a busy machine
            steal = int(line.split()[8]) if len(line.split()) > 8 else 0
            return cls(precise + steal / HZ, time.monotonic(), "cpuacct.usage (scheduler clock) + /proc/stat steal")
        busy, _total = parsers.proc_stat_cpu(line)
        return cls(busy / HZ, time.monotonic(), "/proc/stat (tick-sampled)")


def busy_seconds(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """Busy CPU seconds of the whole machine between two snapshots (all cores; steal included:
    time the hypervisor gave to someone else is time this run did not get)."""
    return after.busy_s - before.busy_s


def sample_load(seconds: float) -> dict:
    """The background-load guard's sample: how busy the machine is while the lab itself is idle
    (its servers wait, no test runs). ``busy_fraction`` is of all cores."""
    cpus = os.cpu_count() or 1
    before = CpuSnapshot.take()
    time.sleep(seconds)
    after = CpuSnapshot.take()
    wall = after.at - before.at
    with open("/proc/loadavg") as f:
        load1 = float(f.read().split()[0])
    busy = busy_seconds(before, after) / (wall * cpus) if wall > 0 else 0.0
    return {"busy_fraction": min(max(busy, 0.0), 1.0), "seconds": wall, "loadavg_1min": load1, "cpus": cpus,
            "source": after.source}


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds a running process has used: the scheduler's runtime from
    ``/proc/PID/schedstat`` (nanoseconds, first field; proc(5)), else user + system ticks of
    ``/proc/PID/stat`` (fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


# --------------------------------------------------------------------------- iperf3


class Servers:
    """Long-running servers of one cluster (iperf3, nginx); stopped explicitly or by cleanup."""

    def __init__(self, run_dir: Path, tag: str):
        self.dir = run_dir / tag
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.iperf3_pid: int | None = None

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def start_iperf3(self, ns: str, ip: str, port: int = IPERF3_PORT) -> None:
        # `ip netns exec` execs the command in the same process: p.pid is iperf3's own pid
        p = self._spawn(ns_exec(ns, ["iperf3", "-s", "-B", ip, "-p", str(port),
                                     "--pidfile", str(self.dir / f"iperf3-{port}.pid")]))
        self.iperf3_pid = p.pid
        wait_listening(ns, ip, port, proc=p)

    def start_sockperf(self, ns: str, ip: str, port: int = SOCKPERF_PORT, cpu: int | None = None) -> None:
        """A TCP and a UDP sockperf server on ``ip:port`` (pinned to ``cpu`` if given)."""
        tcp = self._spawn(ns_exec(ns, [*pinned(cpu), "sockperf", "server", "--tcp", "-i", ip, "-p", str(port)]))
        udp = self._spawn(ns_exec(ns, [*pinned(cpu), "sockperf", "server", "-i", ip, "-p", str(port)]))
        wait_listening(ns, ip, port, proc=tcp)
        time.sleep(0.1)
        if udp.poll() is not None:
            err = udp.stderr.read() if udp.stderr else ""
            raise MeasureError(f"sockperf UDP server exited with {udp.returncode}: {(err or '').strip()[-300:]}")

    def start_nginx(self, ns: str, ip: str, sizes: tuple[int, ...], port: int = HTTP_PORT,
                    cpu: int | None = None) -> None:
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        for size in sizes:
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
        p = self._spawn(ns_exec(ns, [*pinned(cpu), "nginx", "-c", str(conf), "-p", str(self.dir), "-g",
                                     "daemon off;"]))
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


@dataclass
class Iperf3Run:
    result: parsers.Iperf3Result
    raw: str
    machine_busy_s: float  # whole machine, during the run
    wall_s: float
    client_cpu_s: float | None  # the iperf3 client process (user + system)
    server_cpu_s: float | None  # the iperf3 server process, over the same interval


def iperf3(ns: str, server: str, *, duration: float, omit: int = 0, udp: bool = False, streams: int = 1,
           bitrate: str | None = None, length: int | None = None, port: int = IPERF3_PORT, logfile: Path,
           server_pid: int | None = None, reverse: bool = False) -> Iperf3Run:
    """Run an iperf3 client in ``ns``. ``bitrate`` (iperf3 ``-b``, e.g. ``500M``) fixes the offered
    rate, ``length`` the UDP datagram / TCP write size, ``omit`` the seconds not counted;
    ``reverse`` (``-R``): the server sends and the client receives."""
    argv = ["iperf3", "-J", "-c", server, "-p", str(port), "-t", f"{duration:g}", "-O", str(omit),
            "-P", str(streams), "--logfile", str(logfile)]
    if udp:
        argv += ["-u"]
    if reverse:
        argv += ["-R"]
    if udp or bitrate:
        argv += ["-b", bitrate or "0"]
    if length:
        argv += ["-l", str(length)]
    if logfile.exists():
        logfile.unlink()
    srv0 = process_cpu_seconds(server_pid) if server_pid else None
    before = CpuSnapshot.take()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(ns_exec(ns, argv), capture_output=True, text=True, timeout=duration + omit + 30)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = CpuSnapshot.take()
    srv1 = process_cpu_seconds(server_pid) if server_pid else None
    raw = logfile.read_text() if logfile.exists() else proc.stdout
    if not raw.strip():
        raise MeasureError(f"iperf3 produced no output (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    try:
        res = parsers.parse_iperf3(raw)
    except parsers.ParseError as exc:
        raise MeasureError(str(exc)) from exc
    client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    server_s = (srv1 - srv0) if (srv0 is not None and srv1 is not None) else None
    return Iperf3Run(res, raw, busy_seconds(before, after), wall, client, server_s)


# --------------------------------------------------------------------------- sockperf, wrk


def pinned(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` (util-linux; it execs the command, so the pid stays the command's)."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def sockperf(ns: str, server: str, *, mode: str, protocol: str, size: int, duration: float,
             mps: float | None = None, reply_every: int | None = None, cpu: int | None = None,
             port: int = SOCKPERF_PORT) -> tuple[parsers.SockperfResult, str]:
    """``sockperf ping-pong|under-load|throughput`` from ``ns`` (sockperf's ``-t`` is whole seconds).
    Latencies are full round trips (``--full-rtt``; sockperf's default would print half of it)."""
    argv = [*pinned(cpu), "sockperf", mode, "-i", server, "-p", str(port), "-t", str(max(1, round(duration))),
            "-m", str(size)]
    if mode != "throughput":
        argv.append("--full-rtt")
    if protocol == "tcp":
        argv.append("--tcp")
    if mode == "under-load":
        argv += ["--mps", str(max(1, int(mps or 0)))]
        if reply_every:
            argv += ["--reply-every", str(reply_every)]
    elif mode == "throughput":
        argv += ["--mps", "max"]
    proc = subprocess.run(ns_exec(ns, argv), capture_output=True, text=True, timeout=duration + 30)
    text = proc.stdout + proc.stderr
    try:
        return parsers.parse_sockperf(text, mode=mode), text
    except parsers.ParseError as exc:
        raise MeasureError(f"{exc} (exit {proc.returncode})") from exc


def wrk(ns: str, url: str, *, duration: float, connections: int, close: bool, run_id: str,
        cpu: int | None = None) -> tuple[parsers.WrkResult, str]:
    """wrk from ``ns`` with the suite's report script (one thread; ``close``: a new TCP
    connection per request)."""
    with as_file(WRK_SCRIPT) as script:
        argv = [*pinned(cpu), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
                "-s", str(script), "-H", f"X-Cnibench: cnibench-run={run_id}"]
        if close:
            argv += ["-H", "Connection: close"]
        proc = subprocess.run(ns_exec(ns, [*argv, url]), capture_output=True, text=True, timeout=duration + 30)
    try:
        return parsers.parse_wrk(proc.stdout + proc.stderr), proc.stdout
    except parsers.ParseError as exc:
        raise MeasureError(f"{exc} (exit {proc.returncode})") from exc


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
