# Usage: .venv/bin/python scripts/bad-input-attack.py [--only AREA[,AREA...]] [--json OUT] [--jobs N] [--list]
#   The adversarial bad-input campaign of issue 15 (a benchmark-like tool, not a unit test): areas config, check,
#   variants, cli, report, import, matrix, lab (lab rows run last, as root, one at a time); nothing lands in the repo.
"""Feed cnibench several hundred bad inputs and classify how each one is refused.

Every row runs ``cnibench ...`` as a user would, in a temp directory of its own (cwd and every
``--out`` there), and is classified as

* ``clear``: exit code != 0, no Python traceback, and the output names the key, flag or file concerned;
* ``unclear``: exit code != 0 and no traceback, but the concerned key/flag/file is not named;
* ``traceback``: a Python traceback in stdout or stderr;
* ``accepted``: exit code 0 (the bad input was silently taken);
* ``hang``: still running at the timeout (60 s for check/report/import/matrix, 20 s for lab).

Importer and report rows run under ``prlimit --as=1GiB`` (YAML alias bombs, /dev/zero); every row
under ``--fsize=256MiB`` (so a runaway output cannot fill the disk). ``matrix`` rows never get
``--yes``, stdin is /dev/null and the environment holds no Pulumi passphrase/token nor AWS
credentials; the harness refuses to run them at all if a ``pulumi`` CLI is on this machine.
Lab rows: 20 s, then SIGTERM (the lab cleans up on it), 20 s more, then SIGKILL of the row's own
process group; ``ip netns`` is polled during the row, and namespaces of the row's run that are
still there afterwards are recorded as leftovers. ``cnibench lab --cleanup`` is never run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
CNIBENCH = REPO / ".venv" / "bin" / "cnibench"
DATA = REPO / "tests" / "data"
AREAS = ("config", "check", "variants", "cli", "report", "import", "matrix", "lab")
TIMEOUT = {"lab": 20.0}
DEFAULT_TIMEOUT = 60.0
LAB_TERM_GRACE = 20.0
MEM_LIMIT = 1 << 30  # 1 GiB address space for the importer and report rows
FSIZE_LIMIT = 256 << 20
HEAD_BYTES = 2 << 20  # how much of each output stream is read back for the verdict
STACK = "flannel-vxlan"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile(r"[\u2500-\u257f]")  # Rich/Typer panel borders
BOILERPLATE = re.compile(r"^(Usage: |Try '.*--help' for help|offline policy check \(Pulumi mocks\)|Error$)")
NETNS_MARK = ("cnib", "cnb-")  # the lab's namespaces are cnb-<run>-...; the brief asks for "cnib"


@dataclass
class Row:
    id: str
    area: str
    argv: list[str]  # after "cnibench"; "{T}" stands for the row's temp directory
    why: str
    names: tuple[str, ...]  # the key/flag/file the message must name (any one, case-insensitive)
    files: dict[str, str] = field(default_factory=dict)  # what setup creates in {T}: name -> description
    setup: Callable[[Path], None] | None = None
    stdin: bytes | None = None
    arguable: str = ""  # why exit 0 could be defended (shown beside the outcome; counted as the rules say)
    # filled in by the run
    outcome: str = ""
    exit: int | None = None
    seconds: float = 0.0
    message: list[str] = field(default_factory=list)
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    output_bytes: int = 0
    netns_seen: list[str] = field(default_factory=list)
    netns_left: list[str] = field(default_factory=list)

    @property
    def timeout(self) -> float:
        return TIMEOUT.get(self.area, DEFAULT_TIMEOUT)

    def shown_argv(self) -> str:
        parts = ["cnibench", *self.argv]
        text = " ".join(_quote(p) for p in parts)
        return text if len(text) <= 240 else text[:237] + "..."


def _quote(arg: str) -> str:
    if len(arg) > 80:
        arg = f"{arg[:40]}...<{len(arg)} chars>"
    if arg and re.fullmatch(r"[A-Za-z0-9_./:=,{}@%+-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''").replace("\n", "\\n").replace("\t", "\\t") + "'"


# --------------------------------------------------------------------------- file builders


def _base_lab_doc() -> dict[str, Any]:
    return json.loads((DATA / "lab-result.json").read_text())


def _base_knb() -> dict[str, Any]:
    return json.loads((DATA / "knb" / "lab-run1.json").read_text(), strict=False)  # knb leaves \r in strings


def write(name: str, content: bytes | str | Callable[[], bytes | str]) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        value = content() if callable(content) else content
        path = t / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, str):
            path.write_text(value)
        else:
            path.write_bytes(value)

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        for s in setups:
            s(t)

    return setup


def symlink(name: str, target: str) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        path = t / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.replace("{T}", str(t)), path)

    return setup


def fifo(name: str) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        path = t / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)

    return setup


def mkdir(name: str) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        (t / name).mkdir(parents=True, exist_ok=True)

    return setup


def lab_doc(mutate: Callable[[dict[str, Any]], Any] | None = None, *, allow_nan: bool = True) -> Callable[[], str]:
    def build() -> str:
        doc = _base_lab_doc()
        if mutate:
            mutate(doc)
        return json.dumps(doc, allow_nan=allow_nan)

    return build


def knb_doc(mutate: Callable[[dict[str, Any]], Any]) -> Callable[[], str]:
    def build() -> str:
        doc = _base_knb()
        mutate(doc)
        return json.dumps(doc, indent=2)

    return build


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """``_set("subjects.0.tests.0.stats.median", nan)``."""

    def mutate(doc: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = doc
        for k in keys[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return mutate


_DELETE = object()
NAN, INF = float("nan"), float("inf")


def nested_json(depth: int, opener: str = "[", closer: str = "]", head: str = "", tail: str = "") -> Callable[[], str]:
    return lambda: head + opener * depth + closer * depth + tail


def yaml_bomb(levels: int, width: int, where: str) -> str:
    """A billion-laughs YAML document: ``width ** levels`` strings from a few hundred bytes.

    ``where``: ``metadata`` (anchors and alias inside metadata, which knb stringifies), ``cpu``,
    ``bandwidth`` or ``client`` (anchors under an ignored ``data`` key, alias at that field), or
    ``prices`` (a price table whose price is the alias).
    """
    anchors = ['l0: &l0 "lol"'] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    top = f"*l{levels}"

    def block(indent: int) -> str:
        pad = " " * indent
        return "\n".join(pad + a for a in anchors)

    if where == "prices":
        return f"x-anchors:\n{block(2)}\nus-east-1:\n  c6i.8xlarge: {top}\n  t3.medium: 0.0416\n"
    if where == "metadata":
        return (
            f"metadata:\n  x-anchors:\n{block(4)}\n  name: {top}\n  generator: knb\n  version: 1.5.0\n"
            "data:\n  mtu: '1500'\n  pod2pod:\n    tcp:\n      bandwidth: 13648\n"
        )
    fields = {"cpu": "AMD", "bandwidth": "13648", "client": "{cpu: {total: 1.0}}"}
    fields[where] = top
    return (
        f"metadata:\n  name: bomb\n  generator: knb\n  version: 1.5.0\ndata:\n  x-anchors:\n{block(4)}\n"
        f"  cpu: {fields['cpu']}\n  mtu: '1500'\n  pod2pod:\n    tcp:\n      bandwidth: {fields['bandwidth']}\n"
        f"      client: {fields['client']}\n"
    )


def garbage(n: int, seed: int = 7) -> bytes:
    import random

    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


# --------------------------------------------------------------------------- the rows


class Rows:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._n: dict[str, int] = {}

    def add(self, area: str, argv: list[str], why: str, names: tuple[str, ...] | str, **kw: Any) -> None:
        prefix = {
            "config": "cfg",
            "check": "chk",
            "variants": "var",
            "cli": "cli",
            "report": "rep",
            "import": "knb",
            "matrix": "mtx",
            "lab": "lab",
        }[area]
        self._n[area] = self._n.get(area, 0) + 1
        if isinstance(names, str):
            names = (names,)
        self.rows.append(Row(f"{prefix}-{self._n[area]:03d}", area, argv, why, names, **kw))

    def cfg(
        self,
        key: str,
        value: str,
        why: str,
        *,
        stack: str = STACK,
        extra: tuple[str, ...] = (),
        names: tuple[str, ...] | None = None,
    ) -> None:
        argv = ["check", "--stack", stack, "-c", f"cnibench:{key}={value}"]
        for e in extra:
            argv += ["-c", e]
        self.add("config", argv, why, names or (key,))


def config_rows(r: Rows) -> None:
    c = r.cfg
    big = "x" * 100_000
    # variant
    c("variant", "", "empty variant")
    c("variant", "nonexistent", "unknown variant")
    c("variant", "FLANNEL-VXLAN", "variant in the wrong case")
    c("variant", "flannel\u2010vxlan", "unicode hyphen (U+2010) look-alike")
    c("variant", big, "100 000-character variant")
    # region (the real region list)
    c("region", "xx-nowhere-9", "region that matches the pattern but does not exist")
    c("region", "", "empty region")
    c("region", "us-east-99", "region number that does not exist")
    c("region", "US-EAST-1", "region in upper case")
    c("region", "us-east-1 ", "trailing space")
    c("region", "\u00fcs-east-1", "unicode letter in the region")
    c("region", "mars-north-1", "plausible-looking but non-AWS region")
    r.add(
        "config",
        ["check", "--stack", STACK, "-c", "aws:region=xx-nowhere-9"],
        "aws:region (the provider's key) set to a region that does not exist",
        ("aws:region",),
    )
    r.add("config", ["check", "--stack", STACK, "-c", "aws:region="], "empty aws:region", ("aws:region",))
    # availabilityZone
    c("availabilityZone", "us-east-10a", "zone of another (non-existent) region sharing the prefix")
    c("availabilityZone", "us-east-1-bogus", "zone that only starts with the region name")
    c("availabilityZone", "eu-west-1a", "zone of a different region")
    c("availabilityZone", "us-east-1z", "zone letter that does not exist in us-east-1")
    c("availabilityZone", "us-east-1A", "zone in upper case")
    c("availabilityZone", "a", "bare zone letter")
    c("availabilityZone", "us-east-1\u0430", "Cyrillic 'a' (U+0430) as the zone letter")
    # instance types
    c("instanceType", "", "empty instance type")
    c("instanceType", "c6i.99xlarge", "size that does not exist")
    c("instanceType", "nonexistent", "not an instance type at all")
    c("instanceType", "C6I.8XLARGE", "instance type in upper case")
    c("instanceType", "c6i.8xlarge; rm -rf /", "shell metacharacters in the instance type")
    c("instanceType", big, "100 000-character instance type")
    c("controlPlaneInstanceType", "", "empty control-plane instance type")
    c("controlPlaneInstanceType", "bogus.type", "non-existent control-plane instance type")
    c("controlPlaneInstanceType", "t3.\u043cedium", "Cyrillic letter in the control-plane type")
    # booleans
    c("controlPlaneOnBenchmarkNode", "maybe", "not a boolean")
    c("controlPlaneOnBenchmarkNode", "2", "integer 2 as a boolean")
    c("controlPlaneOnBenchmarkNode", "", "empty boolean")
    c("splitSubnets", "nan", "NaN string as a boolean")
    c("splitSubnets", "truee", "misspelt boolean")
    c("splitSubnets", "true", "split subnets for an L2-only variant", stack="flannel-host-gw")
    c("allowSshFromAnywhere", "perhaps", "not a boolean")
    # amiId / vpcId
    c("amiId", "ami-123", "AMI id too short")
    c("amiId", "ami-zzzzzzzzzzzzzzzzz", "AMI id with non-hex characters")
    c("amiId", "AMI-0123456789ABCDEF0", "AMI id in upper case")
    c("amiId", "ubuntu", "a name instead of an AMI id")
    c("amiId", "i-0123456789abcdef0", "an instance id instead of an AMI id")
    c("amiId", "ami-" + "0" * 5000, "5000-digit AMI id")
    c("vpcId", "vpc-123", "VPC id too short")
    c("vpcId", "vpc-XYZXYZXY", "VPC id with non-hex characters")
    c("vpcId", "subnet-0123456789abcdef0", "a subnet id instead of a VPC id")
    c("vpcId", "vpc_0123456789abcdef0", "underscore instead of dash")
    c("vpcId", "vpc-0123456789abcdef0\n", "trailing newline in the VPC id")
    # kubernetesVersion
    c("kubernetesVersion", "1.99", "minor version without a package repository")
    c("kubernetesVersion", "1.23", "minor older than pkgs.k8s.io")
    c("kubernetesVersion", "2.0", "major version 2")
    c("kubernetesVersion", "v1.33", "leading v")
    c("kubernetesVersion", "", "empty version")
    c("kubernetesVersion", "latest", "not a version")
    c("kubernetesVersion", "1.\uff13\uff13", "fullwidth digits (\\d matches them)")
    c("kubernetesVersion", "1.33.99", "patch version instead of a minor")
    c("kubernetesVersion", "1." + "9" * 400, "400-digit minor")
    # vpcCidr
    c("vpcCidr", "10.20.0.0/8", "VPC wider than AWS's /16")
    c("vpcCidr", "10.20.0.0/29", "VPC narrower than AWS's /28")
    c("vpcCidr", "10.20.0.0/28", "/28 VPC: no room for the subnets")
    c("vpcCidr", "10.20.0.1/16", "host bits set")
    c("vpcCidr", "10.20.0.0/33", "prefix length 33")
    c("vpcCidr", "10.20.0.0/-1", "negative prefix length")
    c("vpcCidr", "10.20.0.0", "no prefix length")
    c("vpcCidr", "", "empty CIDR")
    c("vpcCidr", "not-a-cidr", "not a CIDR")
    c("vpcCidr", "2001:db8::/56", "IPv6 CIDR")
    c("vpcCidr", "224.0.0.0/16", "multicast VPC range")
    c("vpcCidr", "127.0.0.0/16", "loopback VPC range")
    c("vpcCidr", "8.8.0.0/16", "public (non-RFC1918) VPC range")
    c("vpcCidr", "10.20.0.0/16,10.30.0.0/16", "two CIDRs in one value")
    c("vpcCidr", "\uff11\uff10.20.0.0/16", "fullwidth digits in the CIDR")
    # podCidr
    c("podCidr", "224.0.0.0/16", "multicast pod CIDR")
    c("podCidr", "240.0.0.0/16", "reserved (class E) pod CIDR")
    c("podCidr", "169.254.0.0/16", "link-local pod CIDR")
    c("podCidr", "127.0.0.0/16", "loopback pod CIDR")
    c("podCidr", "0.0.0.0/0", "the whole address space as pod CIDR")
    c("podCidr", "10.20.0.0/16", "pod CIDR equal to the VPC CIDR (overlap)")
    c("podCidr", "10.96.0.0/16", "pod CIDR inside the service CIDR (overlap)")
    c("podCidr", "10.244.0.0/30", "pod CIDR too small for a /24 per node")
    c("podCidr", "10.244.0.0/24", "pod CIDR holding one node range for three nodes")
    c("podCidr", "10.244.1.0/16", "host bits set")
    c("podCidr", "10.244.0.0/16 ", "trailing space")
    # serviceCidr
    c("serviceCidr", "10.0.0.0/8", "service CIDR wider than /12 (kube-apiserver refuses it)")
    c("serviceCidr", "10.96.0.0/30", "service CIDR too small for kubernetes + DNS services")
    c("serviceCidr", "10.96.0.0/31", "service CIDR of two addresses")
    c("serviceCidr", "10.96.0.0/32", "service CIDR of one address")
    c("serviceCidr", "10.244.0.0/16", "service CIDR equal to the pod CIDR")
    c("serviceCidr", "10.20.0.0/20", "service CIDR inside the VPC")
    c("serviceCidr", "224.1.0.0/16", "multicast service CIDR")
    c("serviceCidr", "", "empty service CIDR")
    # nodePodMaskSize
    c("nodePodMaskSize", "15", "below 16")
    c("nodePodMaskSize", "29", "above 28")
    c("nodePodMaskSize", "-1", "negative")
    c("nodePodMaskSize", "24.5", "fractional")
    c("nodePodMaskSize", "abc", "not a number")
    c("nodePodMaskSize", "", "empty")
    c("nodePodMaskSize", "99999999999999999999999", "huge integer")
    c("nodePodMaskSize", "nan", "NaN")
    # underlayMtu
    c("underlayMtu", "0", "zero MTU")
    c("underlayMtu", "-1", "negative MTU")
    c("underlayMtu", "1279", "below the IPv6 minimum 1280")
    c("underlayMtu", "9002", "above the VPC's 9001")
    c("underlayMtu", "65536", "above the 16-bit maximum")
    c("underlayMtu", "inf", "infinity")
    c("underlayMtu", "NaN", "NaN")
    c("underlayMtu", "1500.0", "float text for an integer")
    c("underlayMtu", "1300", "1300: vxlan's 50 bytes leave a pod MTU below 1280", stack="flannel-vxlan")
    # sshIngressCidr
    c("sshIngressCidr", "0.0.0.0/0", "world-open SSH")
    c("sshIngressCidr", "0.0.0.0/1", "half the internet")
    c("sshIngressCidr", "1.2.3.4/33", "prefix length 33")
    c("sshIngressCidr", "", "empty")
    c("sshIngressCidr", "AUTO", "'auto' in upper case")
    c("sshIngressCidr", "any", "not a CIDR")
    c("sshIngressCidr", "::/0", "IPv6 world-open")
    c("sshIngressCidr", "10.0.0.1/8", "host bits set")
    c("sshIngressCidr", "1.2.3.4/32,0.0.0.0/0", "a list smuggling a world-open range")
    # benchmark keys
    c("benchmarkDuration", "0", "zero seconds")
    c("benchmarkDuration", "-5", "negative seconds")
    c("benchmarkDuration", "3601", "above an hour")
    c("benchmarkDuration", "1000000000", "a billion seconds")
    c("benchmarkDuration", "nan", "NaN")
    c("benchmarkDuration", "inf", "infinity")
    c("benchmarkDuration", "10s", "unit suffix")
    c("benchmarkDuration", "", "empty")
    c("benchmarkRepeat", "0", "zero repetitions")
    c("benchmarkRepeat", "-1", "negative repetitions")
    c("benchmarkRepeat", "101", "above 100")
    c("benchmarkRepeat", "100000", "100 000 repetitions")
    c("benchmarkStreams", "0", "zero streams")
    c("benchmarkStreams", "100000", "iperf3 allows 128")
    c("benchmarkStreams", "129", "one above iperf3's 128")
    c("benchmarkStreams", "-1", "negative streams")
    c("benchmarkStreams", "abc", "not a number")
    c("benchmarkLoadLevels", "[]", "no load level")
    c("benchmarkLoadLevels", "[0]", "0 percent")
    c("benchmarkLoadLevels", "[101]", "above 100 percent")
    c("benchmarkLoadLevels", "[30,30]", "repeated level")
    c("benchmarkLoadLevels", "[-5]", "negative percent")
    c("benchmarkLoadLevels", "30,50", "not a JSON list")
    c("benchmarkLoadLevels", '["a"]', "string element")
    c("benchmarkLoadLevels", "[30.5]", "fractional percent")
    c("benchmarkLoadLevels", "[NaN]", "NaN element (Python's json accepts it)")
    c("benchmarkLoadLevels", "[Infinity]", "infinite element")
    c("benchmarkLoadLevels", "[[30]]", "nested list")
    c("benchmarkLoadLevels", json.dumps(list(range(1, 101)) * 1), "100 levels (100 tests)")
    c("benchmarkLoadLevels", "{}", "object instead of a list")
    c("benchmarkLoadLevels", "null", "null")
    c("benchmarkLoadLevels", "[" * 5000 + "]" * 5000, "5000-deep nested list")
    c("benchmarkResponseSizes", "[1000000000000]", "1 TB HTTP response")
    c("benchmarkResponseSizes", "[0]", "zero bytes")
    c("benchmarkResponseSizes", "[-1]", "negative size")
    c("benchmarkResponseSizes", "[350,350]", "repeated size")
    c("benchmarkResponseSizes", "[1e20]", "float exponent")
    c("benchmarkResponseSizes", '["4k"]', "size with a unit")
    c("benchmarkResponseSizes", "[NaN]", "NaN size")
    c("benchmarkResponseSizes", "350", "a scalar instead of a list")
    c("benchmarkRun", "", "empty run marker")
    c("benchmarkRun", "   ", "blank run marker")
    c("benchmarkTimeout", "0", "zero timeout")
    c("benchmarkTimeout", "-1", "negative timeout")
    c("benchmarkTimeout", "5", "shorter than one test")
    c("benchmarkTimeout", "1e309", "overflowing float text")
    c(
        "benchmarkTimeout",
        "3600",
        "100 x 3600 s x every test, far beyond the 3600 s timeout",
        extra=("cnibench:benchmarkRepeat=100", "cnibench:benchmarkDuration=3600"),
    )
    c(
        "benchmarkTimeout",
        "600",
        "5 x 60 s x ~10 tests = 3000 s of tests in a 600 s timeout",
        extra=("cnibench:benchmarkDuration=60",),
    )
    c("expiryHours", "1000000", "a million hours (114 years)")
    c("expiryHours", "999999999", "past datetime's range (OverflowError)")
    c("expiryHours", "0", "zero hours")
    c("expiryHours", "-1", "negative hours")
    c("expiryHours", "99999999999999999999999", "huge integer")
    c("expiryHours", "NaN", "NaN")
    c("routeTableQuota", "0", "zero routes")
    c("routeTableQuota", "-1", "negative routes")
    c("routeTableQuota", "1", "one route for a 3-node aws-vpc cluster", stack="flannel-aws-vpc")
    c("routeTableQuota", "abc", "not a number")
    c("routeTableQuota", "1000000", "above AWS's hard maximum of 1000")
    # extraTags
    c("extraTags", '["aws:owner=me"]', "reserved aws: prefix")
    c("extraTags", '["AWS:owner=me"]', "reserved prefix in upper case (AWS reserves it case-insensitively)")
    c("extraTags", '["cnibench:stack=other"]', "overrides the project's own tag")
    c("extraTags", json.dumps([f"k{i}=v" for i in range(51)]), "51 tags (AWS allows 50)")
    c("extraTags", json.dumps([f"k{i}=v" for i in range(48)]), "48 tags + the project's 3 = 51")
    c("extraTags", '["=x"]', "empty key")
    c("extraTags", '["novalue"]', "no '='")
    c("extraTags", json.dumps(["k" * 129 + "=v"]), "key longer than 128")
    c("extraTags", json.dumps(["k=" + "v" * 257]), "value longer than 256")
    c("extraTags", "owner=me", "not a JSON list")
    c("extraTags", '{"owner": "me"}', "an object instead of a list")
    c("extraTags", "[1, 2]", "numbers instead of strings")
    c("extraTags", '["Name=a", "Name=b"]', "duplicate key")
    c("extraTags", '["a#b=c"]', "character AWS does not allow in tag keys")
    # unknown keys and malformed overrides
    c("bogusKey", "1", "unknown key")
    c("instancetype", "c6i.large", "key in the wrong case")


def check_rows(r: Rows) -> None:
    a = r.add
    a("check", ["check"], "missing --stack", ("--stack",))
    a("check", ["check", "--stack", "nonexistent"], "stack that does not exist", ("nonexistent",))
    a("check", ["check", "--stack", ""], "empty stack name", ("stack",))
    a("check", ["check", "--stack", "../Pulumi"], "path traversal in the stack name", ("../Pulumi",))
    a("check", ["check", "--stack", "/etc/passwd"], "absolute path as the stack name", ("/etc/passwd",))
    a("check", ["check", "--stack", "flannel\u2010vxlan"], "unicode hyphen look-alike stack", ("flannel\u2010vxlan",))
    a("check", ["check", "--stack", STACK, "-c", "novalue"], "override without '='", ("novalue",))
    a("check", ["check", "--stack", STACK, "-c", "=x"], "override without a key", ("=x",))
    a("check", ["check", "--stack", STACK, "-c", "other:key=1"], "override of another namespace", ("other:key",))
    a("check", ["check", "--stack", STACK, "-c", "cnibench:=x"], "empty key after the namespace", ("cnibench:",))
    a("check", ["check", "--stack", STACK, "-c"], "-c without its value", ("-c", "--config"))
    a("check", ["check", "--stack", STACK, "--bogus"], "unknown option", ("--bogus",))


def variants_rows(r: Rows) -> None:
    r.add("variants", ["variants", "extra"], "unexpected argument", ("extra",))
    # (--json was one until issue 14 gave variants a --json; --yaml it still does not have)
    r.add("variants", ["variants", "--yaml"], "option variants does not have", ("--yaml",))
    r.add("variants", ["variants", "--variant", "bogus"], "option of another command", ("--variant",))


def cli_rows(r: Rows) -> None:
    r.add("cli", ["--bogus"], "unknown global option", ("--bogus",))
    r.add("cli", ["bogus"], "unknown command", ("bogus",))
    r.add("cli", ["import", "bogus", "x"], "unknown importer", ("bogus",))
    r.add("cli", ["import"], "import without an importer", ("import", "knb"))


def report_rows(r: Rows) -> None:
    def rep(
        why: str,
        name: str,
        setup: Callable[[Path], None],
        files: dict[str, str] | None = None,
        extra: list[str] | None = None,
        names: tuple[str, ...] | None = None,
    ) -> None:
        r.add(
            "report",
            ["report", "{T}/docs", "--out", "{T}/out", *(extra or [])],
            why,
            names or (name,),
            files=files or {f"docs/{name}": why},
            setup=setup,
        )

    def doc(name: str, why: str, content: Callable[[], str | bytes] | str | bytes) -> None:
        rep(why, name, write(f"docs/{name}", content))

    doc("nan-median.json", "median NaN", lab_doc(_set("subjects.0.tests.0.stats.median", NAN)))
    doc("inf-sample.json", "an infinite sample", lab_doc(_set("subjects.0.tests.0.samples.0", INF)))
    doc("neg-inf-mean.json", "-Infinity mean", lab_doc(_set("subjects.1.tests.0.stats.mean", -INF)))
    doc("nan-efficiency.json", "NaN efficiency", lab_doc(_set("subjects.1.tests.0.efficiency", NAN)))
    doc(
        "overflow-literal.json",
        "1e999 literal (json.loads makes it inf)",
        lambda: lab_doc()().replace('"median": ', '"median": 1e999, "x_median": ', 1),
    )
    doc(
        "negative-samples.json",
        "negative throughput samples",
        lab_doc(lambda d: d["subjects"][0]["tests"][0].update(samples=[-5.0, -6.0, -7.0])),
    )
    doc("huge-value.json", "1e308 Gbit/s median", lab_doc(_set("subjects.0.tests.0.stats.median", 1e308)))
    doc("median-string.json", "median as a string", lab_doc(_set("subjects.0.tests.0.stats.median", "fast")))
    doc("median-gt-max.json", "median above max (inconsistent stats)", lab_doc(_set("subjects.0.tests.0.stats.median", 1e6)))
    doc("no-subjects.json", "empty subject list", lab_doc(_set("subjects", [])))
    doc("subjects-missing.json", "no subjects key", lab_doc(_set("subjects", _DELETE)))
    doc("schema-9.json", "unknown schema_version 9.9", lab_doc(_set("schema_version", "9.9")))
    doc("schema-number.json", "schema_version as a number", lab_doc(_set("schema_version", 1.0)))
    doc("schema-huge-major.json", "schema_version with a 5000-digit major", lab_doc(_set("schema_version", "9" * 5000 + ".0")))
    doc("origin-bogus.json", "unknown origin", lab_doc(_set("origin", "bogus")))
    doc(
        "dup-subjects.json",
        "two subjects with the same name",
        lab_doc(lambda d: d["subjects"].append(json.loads(json.dumps(d["subjects"][1])))),
    )
    doc("subject-name-traversal.json", "subject named ../../../etc/evil", lab_doc(_set("subjects.1.name", "../../../etc/evil")))
    doc("tests-not-list.json", "tests is an object", lab_doc(_set("subjects.0.tests", {"tcp": 1})))
    doc(
        "deep-nested.json",
        "100 000-deep nested arrays",
        nested_json(100_000, head='{"schema_version": "1.0", "subjects": ', tail="}"),
    )
    doc(
        "deep-objects.json",
        "50 000-deep nested objects",
        lambda: '{"schema_version": "1.0", "x": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}",
    )
    doc("huge-string.json", "valid document with a 40 MB description", lab_doc(_set("subjects.1.description", "x" * 40_000_000)))
    doc(
        "many-subjects.json",
        "3000 subjects in one document",
        lab_doc(
            lambda d: d["subjects"].extend({**json.loads(json.dumps(d["subjects"][1])), "name": f"s{i}"} for i in range(3000))
        ),
    )
    doc("garbage.json", "binary garbage", garbage(4096))
    doc("empty.json", "empty file", b"")
    doc("null.json", "JSON null", "null")
    doc("array.json", "JSON array", "[1, 2, 3]")
    doc("number.json", "a bare number", "42")
    doc("bom.json", "UTF-8 BOM before a valid document", lambda: b"\xef\xbb\xbf" + lab_doc()().encode())
    doc("utf16.json", "valid document encoded as UTF-16", lambda: lab_doc()().encode("utf-16"))
    doc(
        "bad-utf8.json",
        "invalid UTF-8 bytes in a string",
        lambda: lab_doc()().replace("vm", "\udcff", 1).encode("utf-8", "surrogateescape"),
    )
    doc("truncated.json", "valid document cut in half", lambda: lab_doc()()[: len(lab_doc()()) // 2])
    doc(
        "dup-keys.json",
        "duplicate schema_version keys (the last, 9.9, wins)",
        lambda: lab_doc()().replace('"schema_version": "1.0"', '"schema_version": "1.0", "schema_version": "9.9"', 1),
    )
    rep("a FIFO named *.json (blocks a reader forever)", "fifo.json", fifo("docs/fifo.json"))
    rep(
        "symlink loop a.json -> b.json -> a.json",
        "a.json",
        both(symlink("docs/a.json", "{T}/docs/b.json"), symlink("docs/b.json", "{T}/docs/a.json")),
        names=("a.json", "b.json"),
    )
    rep(
        "directory symlink loop plus a NaN document inside",
        "nan-in-loop.json",
        both(
            symlink("docs/loop", "{T}/docs"),
            write("docs/nan-in-loop.json", lab_doc(_set("subjects.0.tests.0.stats.median", NAN))),
        ),
    )
    rep("dangling symlink *.json", "dangling.json", symlink("docs/dangling.json", "/nonexistent/cnibench-attack"))
    rep(
        "unreadable file (EACCES even for root: /proc/sys/vm/compact_memory)",
        "unreadable.json",
        symlink("docs/unreadable.json", "/proc/sys/vm/compact_memory"),
    )
    rep("file whose read fails with EIO (/proc/self/mem)", "eio.json", symlink("docs/eio.json", "/proc/self/mem"))
    rep("endless file (/dev/zero) named *.json", "zero.json", symlink("docs/zero.json", "/dev/zero"))
    rep("endless random file (/dev/urandom) named *.json", "urandom.json", symlink("docs/urandom.json", "/dev/urandom"))
    rep("a directory named *.json", "dir.json", mkdir("docs/dir.json"))
    rep(
        "2000 empty *.json files",
        "docs",
        both(*[write(f"docs/e{i}.json", b"") for i in range(2000)]),
        files={"docs/e0..e1999.json": "2000 empty files"},
        names=("e0.json", "e1999.json"),
    )
    rep(
        # not a bad input (exit 0 is right, see ARGUABLE): kept as the check that no copy overwrites another
        "two valid documents with the same basename and run id in different directories",
        "lab.json",
        both(write("docs/a/lab.json", lab_doc()),
             write("docs/b/lab.json", lab_doc(_set("created", "2026-11-23T06:06:00+00:00")))),
        files={"docs/a/lab.json": "valid", "docs/b/lab.json": "valid, same basename and run id, other content"},
    )
    # --out and DIRECTORY
    valid = write("docs/valid.json", lab_doc())
    vf = {"docs/valid.json": "a valid lab document"}

    def out(
        why: str,
        target: str,
        setup: Callable[[Path], None] | None = None,
        names: tuple[str, ...] = ("--out",),
        files: dict[str, str] | None = None,
    ) -> None:
        r.add(
            "report",
            ["report", "{T}/docs", "--out", target],
            why,
            names,
            files={**vf, **(files or {})},
            setup=both(valid, *([setup] if setup else [])),
        )

    out(
        "--out is an existing regular file",
        "{T}/out-file",
        write("out-file", "x"),
        ("out-file", "--out"),
        {"out-file": "a regular file"},
    )
    out(
        "--out under a regular file",
        "{T}/out-file/sub",
        write("out-file", "x"),
        ("out-file", "--out"),
        {"out-file": "a regular file"},
    )
    out("--out in /proc (cannot create)", "/proc/cnibench-attack-out", names=("cnibench-attack-out", "--out"))
    out("--out in /sys (EACCES even for root)", "/sys/cnibench-attack-out", names=("cnibench-attack-out", "--out"))
    out("--out is /dev/full", "/dev/full", names=("/dev/full", "--out"))
    out(
        "--out where comparison.md is a directory",
        "{T}/out",
        mkdir("out/comparison.md"),
        ("comparison.md", "--out"),
        {"out/comparison.md/": "a directory in place of the report file"},
    )
    out("--out is the empty string (the working directory)", "", names=("--out",))
    out("--out is the input directory itself", "{T}/docs", names=("--out", "docs"))
    out(
        "--out is a dangling symlink",
        "{T}/out-link",
        symlink("out-link", "/nonexistent/cnibench-attack"),
        ("out-link", "--out"),
        {"out-link": "dangling symlink"},
    )
    r.add("report", ["report", "{T}/missing"], "PATH does not exist", ("missing", "PATH"))
    r.add(  # report takes files as well as directories (PATH...): a valid document file is no bad input
        "report",
        ["report", "{T}/afile.json"],
        "PATH is a file that is not a result document",
        ("afile.json",),
        files={"afile.json": "a JSON object without schema_version"},
        setup=write("afile.json", '{"x": 1}'),
    )
    r.add("report", ["report", "{T}/docs"], "empty DIRECTORY", ("docs",), files={"docs/": "empty"}, setup=mkdir("docs"))
    r.add("report", ["report", ""], "empty PATH argument (the working directory)", ("PATH",))
    r.add("report", ["report"], "missing PATH", ("PATH",))
    r.add("report", ["report", "{T}/docs", "--out"], "--out without a value", ("--out",), setup=valid, files=vf)
    r.add("report", ["report", "{T}/docs", "--bogus"], "unknown option", ("--bogus",), setup=valid, files=vf)
    # later additions (appended: the ids above stay as they were)
    doc("test-name-nul.json", "a test name with a NUL byte (it names a chart file)",
        lab_doc(_set("subjects.0.tests.0.name", "tcp\u0000x")))
    doc("subject-name-escape.json", "a subject name with a terminal escape sequence",
        lab_doc(_set("subjects.1.name", "vx\u001b[2J\u001b]0;pwned\u0007")))
    doc("stats-not-samples.json", "stats.n and median that do not summarize the samples",
        lab_doc(lambda d: d["subjects"][0]["tests"][0].update(samples=[1.0, 2.0])))
    out("--out is the working directory (not empty, not a report folder)", ".", names=("--out",))


def import_rows(r: Rows) -> None:
    def imp(
        name: str,
        why: str,
        content: Callable[[], str | bytes] | str | bytes | None = None,
        setup: Callable[[Path], None] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        r.add(
            "import",
            ["import", "knb", f"{{T}}/{name}", "--output", "{T}/out.json", *(extra or [])],
            why,
            (name,),
            files={name: why},
            setup=setup or write(name, content if content is not None else b""),
        )

    imp("empty.txt", "empty file", b"")
    imp("blank.txt", "whitespace only", " \n\t\n")
    imp("garbage.bin", "binary garbage", garbage(8192))
    imp("nul.txt", "NUL bytes", b"\0" * 4096)
    imp(
        "bad-utf8.json",
        "invalid UTF-8 inside a JSON report",
        lambda: (DATA / "knb" / "lab-run1.json").read_bytes().replace(b"AMD EPYC", b"AMD \xff\xfe EPYC"),
    )
    imp("deep.json", "100 000-deep nested arrays in a JSON object", nested_json(100_000, head='{"data": ', tail="}"))
    imp(
        "deep-objects.json",
        "50 000-deep nested objects",
        lambda: '{"metadata": {}, "data": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}",
    )
    imp(
        "deep-metadata.json",
        "deeply nested value in metadata.name (str() of it recurses)",
        lambda: json.dumps({"metadata": {"name": "x"}, "data": {}}).replace('"x"', "[" * 50_000 + "]" * 50_000),
    )
    imp(
        "deep.yaml",
        "10 000-deep nested YAML flow sequences",
        lambda: "metadata:\n  name: " + "[" * 10_000 + "]" * 10_000 + "\ndata: {}\n",
    )
    imp("bomb-metadata.yaml", "YAML alias bomb 9^9 in metadata.name", yaml_bomb(9, 9, "metadata"))
    imp("bomb-cpu.yaml", "YAML alias bomb 9^9 in data.cpu", yaml_bomb(9, 9, "cpu"))
    imp("bomb-small.yaml", "YAML alias bomb 10^6 in metadata.name (tens of MB of output)", yaml_bomb(6, 10, "metadata"))
    imp("bomb-bandwidth.yaml", "YAML alias bomb 9^9 as a bandwidth", yaml_bomb(9, 9, "bandwidth"))
    imp("bomb-client.yaml", "YAML alias bomb 9^9 as a client cpu mapping", yaml_bomb(9, 9, "client"))
    imp(
        "python-tag.yaml",
        "YAML with a !!python/object/apply tag",
        "metadata: !!python/object/apply:os.system ['true']\ndata: {}\n",
    )
    imp("yaml-list.yaml", "YAML whose data is a list", "metadata:\n  name: x\ndata: [1, 2]\n")
    imp("no-data.json", "JSON without a data section", '{"metadata": {"name": "x"}}')
    imp("data-list.json", "data is a list", '{"metadata": {}, "data": []}')
    imp("metadata-list.json", "metadata is a list", knb_doc(_set("metadata", [1, 2, 3])))
    imp("array.json", "top-level JSON array starting with '{' detection bypassed", "[{}]")
    imp("bw-string.json", "bandwidth 'fast'", knb_doc(_set("data.pod2pod.tcp.bandwidth", "fast")))
    imp("bw-negative.json", "negative bandwidth", knb_doc(_set("data.pod2pod.tcp.bandwidth", -13648)))
    imp("bw-nan.json", "bandwidth 'NaN' (float() parses it)", knb_doc(_set("data.pod2pod.tcp.bandwidth", "NaN")))
    imp("bw-inf.json", "bandwidth 'inf'", knb_doc(_set("data.pod2pod.tcp.bandwidth", "inf")))
    imp(
        "bw-overflow.json",
        "bandwidth 1e999 literal (inf)",
        lambda: knb_doc(_set("data.pod2pod.tcp.bandwidth", 7))().replace('"bandwidth": 7', '"bandwidth": 1e999', 1),
    )
    imp("bw-huge.json", "bandwidth 1e300 Mbit/s", knb_doc(_set("data.pod2pod.tcp.bandwidth", 1e300)))
    imp("cpu-nan.json", "client cpu total NaN", knb_doc(_set("data.pod2pod.tcp.client.cpu.total", "nan")))
    imp("cpu-negative.json", "cpu total -50 %", knb_doc(_set("data.pod2pod.tcp.client.cpu.total", -50)))
    imp("cpu-over-100.json", "cpu total 5000 %", knb_doc(_set("data.pod2pod.tcp.client.cpu.total", 5000)))
    imp("ram-negative.json", "negative RAM", knb_doc(_set("data.pod2pod.tcp.server.ram", -1)))
    imp("mtu-huge.json", "MTU of 400 digits", knb_doc(_set("data.mtu", "9" * 400)))
    imp("mtu-zero.json", "MTU 0", knb_doc(_set("data.mtu", "0")))
    imp("generator-other.json", "generator is not knb", knb_doc(_set("metadata.generator", "iperf-o-matic")))
    imp("version-future.json", "knb version 99.0.0", knb_doc(_set("metadata.version", "99.0.0")))
    imp("name-huge.json", "10 MB run name", knb_doc(_set("metadata.name", "n" * 10_000_000)))
    imp("no-tests.json", "a knb report without any test section", knb_doc(lambda d: d["data"].clear()))
    imp(
        "truncated.txt",
        "text report cut after its header",
        lambda: "\n".join((DATA / "knb" / "lab-run1.txt").read_text().splitlines()[:14]) + "\n",
    )
    imp(
        "text-garbage-bw.txt",
        "text report with 'bandwidth = lots Mbit/s'",
        lambda: (DATA / "knb" / "lab-run1.txt").read_text().replace("bandwidth = 13648", "bandwidth = lots"),
    )
    imp(
        "text-nan-bw.txt",
        "text report with 'bandwidth = nan Mbit/s'",
        lambda: (DATA / "knb" / "lab-run1.txt").read_text().replace("bandwidth = 13648", "bandwidth = nan"),
    )
    imp("text-banner-only.txt", "only the 'Benchmark Results' banner", " Benchmark Results\n")
    imp(
        "text-many-lines.txt",
        "banner + 2 000 000 junk lines",
        lambda: " Benchmark Results\n  Pod to pod :\n    TCP :\n" + "      bandwidth = 1 Mbit/s\n" * 2_000_000,
    )
    imp("fifo.json", "a FIFO as FILE (blocks forever)", setup=fifo("fifo.json"))
    imp("zero.json", "/dev/zero as FILE (endless)", setup=symlink("zero.json", "/dev/zero"))
    imp("urandom.json", "/dev/urandom as FILE (endless)", setup=symlink("urandom.json", "/dev/urandom"))
    imp(
        "unreadable.json",
        "unreadable file (EACCES even for root)",
        setup=symlink("unreadable.json", "/proc/sys/vm/compact_memory"),
    )
    imp("eio.json", "read fails with EIO (/proc/self/mem)", setup=symlink("eio.json", "/proc/self/mem"))
    imp("adir", "a directory as FILE", setup=mkdir("adir"))
    imp("missing.json", "FILE does not exist", setup=lambda t: None)
    imp("loop.json", "symlink loop as FILE", setup=symlink("loop.json", "{T}/loop.json"))
    imp("huge.json", "60 MB of spaces before a report", lambda: " " * 60_000_000 + (DATA / "knb" / "lab-run1.json").read_text())
    r.add("import", ["import", "knb", "-"], "empty stdin", ("stdin", "-", "empty"), stdin=b"")
    r.add("import", ["import", "knb", "-"], "binary garbage on stdin", ("stdin", "-"), stdin=garbage(2048, 3))
    # options
    good = str(DATA / "knb" / "lab-run1.json")

    def opt(
        why: str,
        extra: list[str],
        names: tuple[str, ...],
        setup: Callable[[Path], None] | None = None,
        files: dict[str, str] | None = None,
    ) -> None:
        r.add("import", ["import", "knb", good, *extra], why, names, setup=setup, files=files or {})

    for value, why in (
        ("0", "zero seconds"),
        ("-1", "negative seconds"),
        ("nan", "NaN"),
        ("inf", "infinity"),
        ("abc", "not a number"),
        ("1e309", "overflows to inf"),
        ("0.0001", "below the 0.001 minimum"),
        ("1e12", "31 700 years"),
        ("", "empty"),
    ):
        opt(f"--duration {why}", ["--duration", value, "--output", "{T}/out.json"], ("--duration",))
    opt("--subject empty", ["--subject", "", "--output", "{T}/out.json"], ("--subject",))
    opt("--subject of 100 000 characters", ["--subject", "s" * 100_000, "--output", "{T}/out.json"], ("--subject",))
    opt(
        "--subject with a newline and a NUL-like escape",
        ["--subject", "a\nb\x1b[31m", "--output", "{T}/out.json"],
        ("--subject",),
    )
    opt(
        "--output is a directory", ["--output", "{T}/outdir"], ("outdir", "--output"), mkdir("outdir"), {"outdir/": "a directory"}
    )
    opt("--output in /proc", ["--output", "/proc/cnibench-attack.json"], ("cnibench-attack.json", "--output"))
    opt(
        "--output in /sys (EACCES even for root)", ["--output", "/sys/cnibench-attack.json"], ("cnibench-attack.json", "--output")
    )
    opt("--output is /dev/full (disk full)", ["--output", "/dev/full"], ("/dev/full", "--output"))
    opt("--output in a missing directory", ["--output", "{T}/no/such/dir/out.json"], ("out.json", "--output"))
    opt(
        "--output under a regular file",
        ["--output", "{T}/afile/out.json"],
        ("afile", "out.json", "--output"),
        write("afile", "x"),
        {"afile": "a regular file"},
    )
    opt("--output is the empty string", ["--output", ""], ("--output",))
    opt(
        "--output is a symlink to a directory",
        ["--output", "{T}/link.json"],
        ("link.json", "--output"),
        both(mkdir("realdir"), symlink("link.json", "{T}/realdir")),
        {"link.json": "symlink to the directory realdir"},
    )
    r.add(
        "import",
        ["import", "knb", "{T}/in.json", "--output", "{T}/in.json"],
        "--output is the input file (overwrites the knb report)",
        ("in.json", "--output"),
        setup=write("in.json", (DATA / "knb" / "lab-run1.json").read_bytes),
        files={"in.json": "a valid knb report"},
    )
    r.add("import", ["import", "knb"], "missing FILE", ("FILE",))
    r.add("import", ["import", "knb", good, "--bogus"], "unknown option", ("--bogus",))


def matrix_rows(r: Rows) -> None:
    def m(
        why: str,
        extra: list[str],
        names: tuple[str, ...],
        setup: Callable[[Path], None] | None = None,
        files: dict[str, str] | None = None,
        variant: bool = True,
    ) -> None:
        argv = ["matrix", *(["-v", STACK] if variant else []), *([] if "--out" in extra else ["--out", "{T}/m"]), *extra]
        r.add("matrix", argv, why, names, setup=setup, files=files or {})

    m("no --variant", [], ("--variant",), variant=False)
    m("unknown variant", ["-v", "bogus"], ("bogus",), variant=False)
    m("empty variant", ["-v", ""], ("--variant", "variant"), variant=False)
    m("the same variant twice (its result file would be written twice)", ["-v", STACK], (STACK, "--variant"))
    m("--parallel 0", ["--parallel", "0"], ("--parallel",))
    m("--parallel -1", ["--parallel", "-1"], ("--parallel",))
    m("--parallel 1000000 for one variant", ["--parallel", "1000000"], ("--parallel",))
    m("--parallel abc", ["--parallel", "abc"], ("--parallel",))
    m("--timeout 0", ["--timeout", "0"], ("--timeout",))
    m("--timeout nan", ["--timeout", "nan"], ("--timeout",))
    m("--timeout inf", ["--timeout", "inf"], ("--timeout",))
    m("--timeout 59 (below the 60 s minimum)", ["--timeout", "59"], ("--timeout",))
    m("--timeout 1e12", ["--timeout", "1e12"], ("--timeout",))
    m("--expiry-hours 0", ["--expiry-hours", "0"], ("--expiry-hours",))
    m("--expiry-hours 1000000", ["--expiry-hours", "1000000"], ("--expiry-hours",))
    m(
        "--expiry-hours shorter than --timeout (stacks expire mid-run)",
        ["--expiry-hours", "1", "--timeout", "36000"],
        ("--expiry-hours",),
    )
    m("--prices file does not exist", ["--prices", "{T}/nope.yaml"], ("--prices", "nope.yaml"))
    m("--prices is a directory", ["--prices", "{T}/pdir"], ("--prices", "pdir"), mkdir("pdir"), {"pdir/": "directory"})
    m(
        "--prices is garbage",
        ["--prices", "{T}/p.yaml"],
        ("--prices", "p.yaml"),
        write("p.yaml", garbage(512)),
        {"p.yaml": "binary garbage"},
    )
    m(
        "--prices with a negative price",
        ["--prices", "{T}/p.yaml"],
        ("--prices", "p.yaml"),
        write("p.yaml", "regions:\n  us-east-1:\n    c6i.8xlarge: -1.36\n    t3.medium: 0.0416\n"),
        {"p.yaml": "negative price"},
    )
    m(
        "--prices with a NaN price",
        ["--prices", "{T}/p.yaml"],
        ("--prices", "p.yaml"),
        write("p.yaml", "regions:\n  us-east-1:\n    c6i.8xlarge: .nan\n    t3.medium: 0.0416\n"),
        {"p.yaml": ".nan price"},
    )
    m(
        "--prices YAML alias bomb",
        ["--prices", "{T}/p.yaml"],
        ("--prices", "p.yaml"),
        write("p.yaml", yaml_bomb(9, 9, "prices")),
        {"p.yaml": "alias bomb"},
    )
    m("-c unknown key", ["-c", "bogusKey=1"], ("bogusKey",))
    m("-c benchmarkStreams=100000", ["-c", "benchmarkStreams=100000"], ("benchmarkStreams",))
    m("-c without '='", ["-c", "novalue"], ("novalue",))
    m("-c other namespace", ["-c", "aws:region=xx-nowhere-9"], ("aws:region",))
    m("-c splitSubnets=true on an L2 variant", ["-c", "splitSubnets=true"], ("splitSubnets",), variant=False)
    r.rows[-1].argv[1:1] = ["-v", "flannel-host-gw"]
    m("--backend with an unknown scheme", ["--backend", "gopher://x"], ("--backend", "gopher"))
    m("--backend empty", ["--backend", ""], ("--backend",))
    m("--secrets-provider bogus", ["--secrets-provider", "bogus"], ("--secrets-provider", "bogus"))
    m("--out is a regular file", ["--out", "{T}/f"], ("--out", "{T}/f"), write("f", "x"), {"f": "a regular file"})
    m("--out in /proc", ["--out", "/proc/cnibench-attack"], ("--out", "cnibench-attack"))
    m("--all without --cleanup (ignored?)", ["--all"], ("--all",))
    m("unknown option", ["--bogus"], ("--bogus",))


def lab_rows(r: Rows) -> None:
    def lab(
        why: str,
        extra: list[str],
        names: tuple[str, ...],
        setup: Callable[[Path], None] | None = None,
        files: dict[str, str] | None = None,
        out: bool = True,
    ) -> None:
        r.add("lab", ["lab", *(["--out", "{T}/lab"] if out else []), *extra], why, names, setup=setup, files=files or {})

    for flag, values in (
        (
            "--duration",
            (
                ("nan", "NaN"),
                ("inf", "infinity"),
                ("-1", "negative"),
                ("0", "zero"),
                ("0.4", "iperf3 truncates it to 0 = unlimited"),
                ("100000", "27 hours per test"),
                ("abc", "not a number"),
            ),
        ),
        ("--rr-duration", (("nan", "NaN"), ("0", "zero"), ("-1", "negative"))),
        ("--repeat", (("0", "zero"), ("-1", "negative"), ("101", "above 100"), ("abc", "not a number"))),
        ("--repeat-min", (("0", "zero"),)),
        (
            "--loads",
            (
                ("abc", "not numbers"),
                ("", "empty"),
                (",,,", "only commas"),
                ("nan", "NaN"),
                ("inf", "infinity"),
                ("-0.3", "negative"),
                ("0", "zero"),
                ("11", "above 10"),
                ("0.3;0.5", "semicolon separator"),
            ),
        ),
        ("--streams", (("0", "zero"), ("1000", "above iperf3's 128"), ("-1", "negative"))),
        ("--busy-threshold", (("nan", "NaN"), ("0", "zero"), ("2", "above 1"), ("-1", "negative"))),
        ("--udp-rate", (("0", "zero"), ("-1", "negative"), ("1000000000000", "10^12 Mbit/s"))),
        ("--omit", (("-1", "negative"), ("1000", "1000 s of slow start"))),
        ("--target-half-width", (("0", "zero"), ("nan", "NaN"), ("-1", "negative"))),
        ("--service-proxy", (("bogus", "unknown proxy"), ("", "empty"))),
        ("--pin-cpu", (("9999", "CPU that does not exist"), ("-5", "negative other than -1"))),
        ("--datapath", (("bogus", "unknown datapath"), ("", "empty datapath"))),
    ):
        for value, why in values:
            lab(f"{flag} {value!r}: {why}", [flag, value], (flag,))
    lab("--repeat-min above --repeat-max", ["--repeat-min", "5", "--repeat-max", "2"], ("--repeat-min", "--repeat-max"))
    lab("--latency-duration -1 (refused only after the run in the issue)", ["--latency-duration", "-1"], ("--latency-duration",))
    lab(
        "--out is a regular file (known only when the results are written)",
        ["--out", "{T}/f"],
        ("--out", "{T}/f"),
        write("f", "x"),
        {"f": "a regular file"},
        out=False,
    )
    lab("--out in /proc", ["--out", "/proc/cnibench-attack-lab"], ("--out", "cnibench-attack-lab"), out=False)
    lab(
        "--out in /sys (EACCES even for root)", ["--out", "/sys/cnibench-attack-lab"], ("--out", "cnibench-attack-lab"), out=False
    )
    lab("--run-id too short (hidden option, 4-12 [a-z0-9])", ["--run-id", "x"], ("--run-id",))
    lab("--run-id with upper case and punctuation", ["--run-id", "BAD_Id!"], ("--run-id",))
    lab("unknown option", ["--bogus"], ("--bogus",))


# Rows whose exit 0 could be defended: counted as the rules say, flagged in the list of non-clear rows.
ARGUABLE = {
    "public (non-RFC1918) VPC range": "AWS accepts any /16-/28 IPv4 range, it only recommends RFC 1918",
    "float text for an integer": "1500.0 is a whole number",
    "1300: vxlan's 50 bytes leave a pod MTU below 1280": "1250 is a valid IPv4 MTU; only IPv6 needs 1280",
    "UTF-8 BOM before a valid document": "decoding past a BOM is tolerance",
    "valid document encoded as UTF-16": "RFC 8259 asks for UTF-8, but decoding it is tolerance",
    "invalid UTF-8 inside a JSON report": "the bytes sit in a free-text field and become U+FFFD",
    "knb version 99.0.0": "a warning could be enough",
    "--parallel 1000000 for one variant": "a parallelism above the variant count is harmless if clamped",
    "--all without --cleanup (ignored?)": "an ignored flag is harmless",
    "valid document with a 40 MB description": "large but well-formed",
    "subject named ../../../etc/evil": "a subject name is text (import knb --subject takes any 200 printable "
                                       "characters): it never names a file, copies and charts are named by slugged ids",
    "two valid documents with the same basename and run id in different directories":
        "both are read and kept (results/lab-5d6184.json, results/lab-5d6184-2.json): copies are named by unique "
        "source ids, never by basename",
}


def all_rows() -> list[Row]:
    r = Rows()
    for build in (config_rows, check_rows, variants_rows, cli_rows, report_rows, import_rows, matrix_rows, lab_rows):
        build(r)
    for row in r.rows:
        row.arguable = ARGUABLE.get(row.why, "")
    return r.rows


# --------------------------------------------------------------------------- running


def _env(t: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_")) and k not in ("VIRTUAL_ENV",)}
    env.update(
        COLUMNS="300",
        NO_COLOR="1",
        TERM="dumb",
        _TYPER_STANDARD_TRACEBACK="1",
        PYTHONUNBUFFERED="1",
        PULUMI_HOME=str(t / ".pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_BACKEND_URL=f"file://{t / '.pulumi-state'}",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(t / ".aws-none"),
        AWS_SHARED_CREDENTIALS_FILE=str(t / ".aws-none"),
    )
    return env


def _clean_lines(text: str) -> list[str]:
    lines = []
    for raw in ANSI.sub("", text).splitlines():
        line = BOX.sub(" ", raw).strip()
        line = re.sub(r"\s{2,}", " ", line)
        if line and not BOILERPLATE.match(line):
            lines.append(line)
    return lines


def _names_present(text: str, names: tuple[str, ...], t: Path) -> bool:
    plain = ANSI.sub("", text)
    squeezed = re.sub(r"[\s\u2500-\u257f]+", "", plain).lower()
    low = plain.lower()
    for name in names:
        n = name.replace("{T}", str(t)).lower()
        if not n:
            continue
        if n in low or re.sub(r"\s+", "", n) in squeezed:
            return True
    return False


def _read_head_tail(path: Path) -> tuple[str, int]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        tail = b""
        if size > HEAD_BYTES:
            fh.seek(max(HEAD_BYTES, size - 256 * 1024))
            tail = fh.read()
    text = head.decode("utf-8", "replace")
    if tail:
        text += f"\n...[{size - len(head) - len(tail)} bytes skipped]...\n" + tail.decode("utf-8", "replace")
    return text, size


def _netns() -> set[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    return {n for n in names if any(mark in n for mark in NETNS_MARK)}


def run_row(row: Row, base: Path) -> Row:
    t = base / row.id
    t.mkdir(parents=True)
    io_dir = base / "_io"
    io_dir.mkdir(exist_ok=True)
    if row.setup:
        try:
            row.setup(t)
        except Exception as exc:  # noqa: BLE001 - a defect of this harness, reported as such, not of cnibench
            row.outcome, row.message = "harness-error", [f"setup failed: {type(exc).__name__}: {exc}"]
            return row
    argv = [str(CNIBENCH), *(a.replace("{T}", str(t)) for a in row.argv)]
    if row.area in ("import", "report"):
        argv = ["prlimit", f"--as={MEM_LIMIT}", f"--fsize={FSIZE_LIMIT}", "--", *argv]
    elif row.area != "lab":
        argv = ["prlimit", f"--fsize={FSIZE_LIMIT}", "--", *argv]
    out_path, err_path = io_dir / f"{row.id}.out", io_dir / f"{row.id}.err"
    is_lab = row.area == "lab"
    before = _netns() if is_lab else set()
    seen: set[str] = set()
    timed_out = group_killed = False
    start = time.monotonic()
    with out_path.open("wb") as out_f, err_path.open("wb") as err_f:
        proc = subprocess.Popen(
            argv,
            cwd=t,
            env=_env(t),
            stdout=out_f,
            stderr=err_f,
            stdin=subprocess.PIPE if row.stdin is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        if row.stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(row.stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        deadline = start + row.timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if is_lab:
                seen |= _netns() - before
            time.sleep(0.25)
        if proc.poll() is None:
            timed_out = True
            if is_lab:
                os.kill(proc.pid, signal.SIGTERM)  # the lab removes what it made on SIGTERM
                term_deadline = time.monotonic() + LAB_TERM_GRACE
                while proc.poll() is None and time.monotonic() < term_deadline:
                    seen |= _netns() - before
                    time.sleep(0.25)
                if proc.poll() is None:
                    row.notes.append(f"still running {LAB_TERM_GRACE:g} s after SIGTERM: SIGKILL")
            if proc.poll() is None:
                group_killed = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the row's own process group only
                except ProcessLookupError:
                    pass
            proc.wait()
        # the row's own process group: children it left running (none expected)
        try:
            if group_killed:
                raise ProcessLookupError
            os.killpg(proc.pid, 0)
            row.notes.append("processes of the row were still running after it exited: SIGKILL to its group")
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    row.seconds = time.monotonic() - start
    row.exit = proc.returncode
    out_text, out_size = _read_head_tail(out_path)
    err_text, err_size = _read_head_tail(err_path)
    row.output_bytes = out_size + err_size
    text = out_text + "\n" + err_text
    if is_lab:
        time.sleep(0.5)
        after = _netns() - before
        run_ids = set(re.findall(r"cnibench lab\s*run\s+([a-z0-9]+)", ANSI.sub("", text)))
        row.netns_seen = sorted(seen | after)
        # the lab prints its run id before it makes the first namespace: no run id, no namespace of this row
        mine = {n for n in after if any(f"cnb-{rid}-" in n for rid in run_ids)}
        row.netns_left = sorted(mine)
        if after - mine:
            row.notes.append(f"other new cnb-* namespaces (not this row's run): {', '.join(sorted(after - mine))}")
        for rid in run_ids:
            if Path(f"/run/cnibench/{rid}").exists():
                row.notes.append(f"state directory /run/cnibench/{rid} left behind")
        if run_ids:
            row.notes.append(f"the lab started run {', '.join(sorted(run_ids))} (not refused up front)")
    lines = _clean_lines(text)
    row.message = lines[:8]
    if row.exit is not None and row.exit < 0:
        row.notes.append(f"killed by {signal.Signals(-row.exit).name}")
    if row.output_bytes > 10 << 20:
        row.notes.append(f"{row.output_bytes / 1e6:.0f} MB of output")
    if timed_out:
        row.outcome = "hang"
    elif TRACEBACK.search(text):
        row.outcome = "traceback"
    elif row.exit == 0:
        row.outcome = "accepted"
    elif _names_present(text, row.names, t):
        row.outcome = "clear"
    else:
        row.outcome = "unclear"
    row.summary = _summary(row, lines)
    for leftover in ("/proc/cnibench-attack-out", "/proc/cnibench-attack.json"):
        if os.path.exists(leftover):
            row.notes.append(f"{leftover} exists")
    return row


# --------------------------------------------------------------------------- output

ORDER = ("clear", "unclear", "traceback", "accepted", "hang")
STYLE = {
    "harness-error": "blue",
    "clear": "green",
    "unclear": "yellow",
    "traceback": "bold red",
    "accepted": "red",
    "hang": "magenta",
}


KEY_LINE = re.compile(
    r"error|refused|invalid|cannot|must|not |unknown|no such|missing|too |violat|failed|denied|shorter|larger|"
    r"expected|wrote|comparison|no result|is a |exist|give ",
    re.IGNORECASE,
)
ACCEPTED_LINE = re.compile(r"no mandatory violation|rule\(s\) violated|^wrote |^markdown: |^# cnibench comparison")
EXC_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception|Exit|Interrupt|bad_alloc)\b")


def _summary(row: Row, lines: list[str]) -> str:
    """The line that says what happened: the exception of a traceback, else the first line that refuses or reports."""
    if row.outcome == "traceback":
        exc = [ln for ln in lines if EXC_LINE.match(ln)]
        if exc:
            return exc[-1][:240]
    candidates = [ln for ln in lines if not TRACEBACK.search(ln) and not ln.startswith("File ")]
    if row.outcome == "accepted":
        done = [ln for ln in candidates if ACCEPTED_LINE.search(ln)]
        if done:
            return done[-1][:240]
    for line in candidates:
        if KEY_LINE.search(line) and not line.endswith(":"):
            return line[:240]
    return (candidates[0] if candidates else "(no output)")[:240]


def first_line(row: Row) -> str:
    return row.summary or (row.message[0] if row.message else "(no output)")


def render(rows: list[Row], console: Console, elapsed: float) -> None:
    table = Table(title="cnibench bad-input attack", show_lines=False)
    for col in ("id", "area", "outcome", "exit", "s", "what makes it bad", "first line of output"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row.id,
            row.area,
            f"[{STYLE[row.outcome]}]{row.outcome}[/]",
            str(row.exit),
            f"{row.seconds:.1f}",
            escape(row.why),
            escape(first_line(row)),
            end_section=False,
        )
    console.print(table)
    counts = {k: sum(r.outcome == k for r in rows) for k in ORDER}
    by_area = Table(title="per area")
    for col in ("area", "tried", *ORDER):
        by_area.add_column(col, justify="right")
    for area in AREAS:
        sub = [r for r in rows if r.area == area]
        if sub:
            by_area.add_row(area, str(len(sub)), *(str(sum(r.outcome == k for r in sub)) for k in ORDER))
    console.print(by_area)
    console.print(
        f"[bold]tried {len(rows)} / clear {counts['clear']} / unclear {counts['unclear']} / traceback "
        f"{counts['traceback']} / silently accepted {counts['accepted']} / hang {counts['hang']}[/]"
        f"  ({elapsed:.0f} s)"
    )
    harness = sum(r.outcome == "harness-error" for r in rows)
    if harness:
        console.print(f"[blue]{harness} row(s) not run: the harness failed to set them up (a defect of this script)[/]")
    bad = [r for r in rows if r.outcome != "clear"]
    if bad:
        console.print(f"\n[bold]{len(bad)} non-clear rows[/]")
        for r in bad:
            arguable = f" [dim](arguable: {escape(r.arguable)})[/]" if r.arguable else ""
            console.print(
                f"[{STYLE[r.outcome]}]{r.outcome:9}[/] {r.id} ({escape(r.why)}) exit {r.exit}{arguable}", highlight=False
            )
            console.print(f"    $ {r.shown_argv()}", markup=False, highlight=False)
            console.print(f"    > {first_line(r)}", markup=False, highlight=False)
            for note in r.notes:
                console.print(f"    note: {note}", markup=False, highlight=False)
    lab_rows_run = [r for r in rows if r.area == "lab"]
    left = [r for r in lab_rows_run if r.netns_left]
    if lab_rows_run:
        console.print(
            f"\nlab rows that left cnib/cnb- namespaces behind: {len(left)}"
            + "".join(f"\n  {r.id}: {', '.join(r.netns_left)}" for r in left)
        )


def to_json(rows: list[Row], elapsed: float) -> dict[str, Any]:
    return {
        "tool": "scripts/bad-input-attack.py",
        "elapsed_s": round(elapsed, 1),
        "totals": {"tried": len(rows), **{k: sum(r.outcome == k for r in rows) for k in (*ORDER, "harness-error")}},
        "rows": [
            {
                "id": r.id,
                "area": r.area,
                "argv": ["cnibench", *r.argv],
                "files": r.files,
                "why": r.why,
                "expected_names": list(r.names),
                "outcome": r.outcome,
                "exit": r.exit,
                "seconds": round(r.seconds, 2),
                "summary": r.summary,
                "message": r.message,
                "arguable": r.arguable,
                "notes": r.notes,
                "output_bytes": r.output_bytes,
                **({"netns_seen": r.netns_seen, "netns_left": r.netns_left} if r.area == "lab" else {}),
            }
            for r in rows
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated areas: {', '.join(AREAS)}")
    parser.add_argument("--json", type=Path, help="write every row with its outcome to this file")
    parser.add_argument("--jobs", type=int, default=3, help="rows run at the same time (not lab rows; default 3)")
    parser.add_argument("--list", action="store_true", help="only list the rows")
    args = parser.parse_args()
    rows = all_rows()
    if args.only:
        wanted = {a.strip() for a in args.only.split(",") if a.strip()}
        unknown = wanted - set(AREAS)
        if unknown:
            parser.error(f"--only: unknown area(s) {', '.join(sorted(unknown))}; areas: {', '.join(AREAS)}")
        rows = [r for r in rows if r.area in wanted]
    console = Console(width=None if sys.stdout.isatty() else 220)
    if args.list:
        for r in rows:
            console.print(f"{r.id:8} {r.area:8} {r.shown_argv()}  # {r.why}", markup=False, highlight=False)
        console.print(f"{len(rows)} rows")
        return 0
    if not CNIBENCH.exists():
        console.print(f"[red]{CNIBENCH} not found: run scripts/setup.sh[/]")
        return 2
    if any(r.area == "matrix" for r in rows) and (shutil.which("pulumi") or (Path.home() / ".pulumi/bin/pulumi").exists()):
        console.print("[red]a pulumi CLI is installed here: matrix rows are skipped so that none can reach an up[/]")
        rows = [r for r in rows if r.area != "matrix"]
    if any(r.area == "lab" for r in rows) and os.geteuid() != 0:
        console.print("[yellow]not root: the lab rows will only measure the root check[/]")
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="cnibench-attack-"))
    lock = threading.Lock()
    done = [0]

    def progress(row: Row) -> None:
        with lock:
            done[0] += 1
            console.print(
                f"[dim]{done[0]:3}/{len(rows)}[/] {row.id:8} [{STYLE[row.outcome]}]{row.outcome:9}[/] "
                f"{row.seconds:5.1f}s  {escape(row.why)}",
                highlight=False,
            )

    try:
        others = [r for r in rows if r.area != "lab"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for fut in concurrent.futures.as_completed([pool.submit(run_row, r, base) for r in others]):
                progress(fut.result())
        for r in rows:  # lab rows last, one at a time: they make real namespaces
            if r.area == "lab":
                progress(run_row(r, base))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: partial results[/]")
        rows = [r for r in rows if r.outcome]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    elapsed = time.monotonic() - started
    render(rows, console, elapsed)
    if args.json:
        args.json.write_text(json.dumps(to_json(rows, elapsed), indent=2, ensure_ascii=False) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
