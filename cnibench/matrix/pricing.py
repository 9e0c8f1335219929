"""Cost estimate of a matrix run: instance-hours x an on-demand price table.

The table (``cnibench/data/ec2-prices.yaml``, source cited in the file) maps region -> instance
type -> USD per hour; ``--prices FILE`` replaces it. Only instances are counted (no EBS, data
transfer or NAT), and the hours are an assumption printed with the estimate. A region or
instance type the table does not hold is not refused: its cost is marked unknown (with what
is missing and the ``--prices`` fix) and the total covers only the priced lines.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from cnibench.config import StackConfig
from cnibench.errors import InputError
from cnibench.results import read_regular_file

DEFAULT_TABLE = "data/ec2-prices.yaml"
# Minutes around the benchmark itself: instances boot, kubeadm init/join, CNI rollout (~15),
# and the destroy (~5). An assumption, stated with every estimate.
PROVISION_MINUTES = 15.0
TEARDOWN_MINUTES = 5.0


class PriceError(InputError):
    """A price table that cannot be used; the message names the file and the place in it."""


# A price table is a few hundred lines (the shipped one is ~2 KB): 1 MiB bounds what is read
# and parsed whatever the file is. Its data is 3 levels deep (regions -> region -> type).
MAX_TABLE_BYTES = 1 << 20
MAX_DEPTH = 8
# A typo guard, not a market figure: the dearest EC2 instances cost a few hundred USD an hour.
MAX_PRICE_PER_HOUR = 10_000.0


@functools.cache
def _loader() -> type:
    """PyYAML's SafeLoader without anchors and aliases (what turns a 1 KB file into gigabytes:
    each alias of a list of aliases multiplies it), nesting deeper than :data:`MAX_DEPTH`
    (the composer recurses) or a key given twice in one mapping (YAML would keep the last)."""

    class PriceTableLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise PriceError(f"{self.name}: line {_line(event)}: anchors and aliases (&, *) are refused; "
                                 "write every region's prices out")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise PriceError(f"{self.name}: line {_line(event)}: nested deeper than {MAX_DEPTH} levels "
                                     "(a price table has 3: regions -> region -> instance type)")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise PriceError(f"{self.name}: line {key_node.start_mark.line + 1}: {key!r} given twice "
                                     "in one mapping")
                if isinstance(key, (str, int, float, bool)):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return PriceTableLoader


def _line(event: Any) -> int | str:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else "?"


def _parse(text: str, source: str) -> Any:
    try:
        loader = _loader()(text)  # the reader refuses control characters here already
    except yaml.YAMLError as exc:
        raise PriceError(f"{source}: not a YAML price table: {' '.join(str(exc).split())}") from None
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PriceError(f"{source}: not a YAML price table: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def _price(source: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceError(f"{source}: {where}: {value!r} is not a price per hour; give a number of "
                         f"USD/hour, 0 to {MAX_PRICE_PER_HOUR:g}")
    price = float(value)
    if not math.isfinite(price) or price < 0 or price > MAX_PRICE_PER_HOUR:
        raise PriceError(f"{source}: {where}: {value!r} is not a price per hour; give a number of "
                         f"USD/hour, 0 to {MAX_PRICE_PER_HOUR:g}")
    return price


@dataclass(frozen=True)
class PriceTable:
    regions: Mapping[str, Mapping[str, float]]
    source: str
    currency: str = "USD"

    def price(self, region: str, instance_type: str) -> float:
        if region not in self.regions:
            raise PriceError(
                f"no prices for region {region!r} in {self.source} (regions: {', '.join(sorted(self.regions))}); "
                "pass a table with --prices FILE"
            )
        table = self.regions[region]
        if instance_type not in table:
            raise PriceError(
                f"no price for instance type {instance_type!r} in {region} in {self.source} "
                f"(known: {', '.join(sorted(table))}); pass a table with --prices FILE"
            )
        return float(table[instance_type])


def load_table(path: str | Path | None = None) -> PriceTable:
    """The shipped table, or the file ``path`` (``--prices``): a regular UTF-8 YAML file of at
    most :data:`MAX_TABLE_BYTES`, no anchors or aliases, every price a finite number of USD/hour
    from 0 to :data:`MAX_PRICE_PER_HOUR`. Raises :class:`PriceError` naming the file and the key."""
    if path is None:
        text = resources.files("cnibench").joinpath(DEFAULT_TABLE).read_text()
        source = f"cnibench/{DEFAULT_TABLE}"
    else:
        source = str(path)
        try:
            data = read_regular_file(path, max_bytes=MAX_TABLE_BYTES, what="price table")
        except InputError as exc:  # read_regular_file reports every failure, a directory included, as one
            raise PriceError(str(exc)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PriceError(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                             "a price table is YAML: regions -> region -> instance type -> USD/hour") from None
    doc = _parse(text, source)
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise PriceError(f"{source}: a {type(doc).__name__}, not a price table; expected a mapping with "
                         "'regions': region -> instance type -> USD/hour")
    regions = doc.get("regions")
    if not isinstance(regions, Mapping) or not regions:
        raise PriceError(f"{source}: expected a 'regions' mapping of region -> instance type -> USD/hour")
    clean: dict[str, dict[str, float]] = {}
    for region, types in regions.items():
        if not isinstance(types, Mapping):
            raise PriceError(f"{source}: regions.{region} must map instance types to prices")
        clean[str(region)] = {str(itype): _price(source, f"regions.{region}.{itype}", value)
                              for itype, value in types.items()}
    for key in ("source", "currency"):
        if key in doc and not (isinstance(doc[key], str) and doc[key].strip()):
            raise PriceError(f"{source}: {key}: {doc[key]!r} is not a text")
    return PriceTable(clean, doc.get("source") or source, doc.get("currency") or "USD")


@dataclass(frozen=True)
class Line:
    variant: str
    region: str
    instances: tuple[tuple[str, int, float | None], ...]  # (instance type, count, USD/hour or None: not in the table)
    hours: float
    unknown: str | None = None  # why a price is missing (the table has no such region or instance type)

    @property
    def per_hour(self) -> float | None:
        if any(price is None for _, _, price in self.instances):
            return None
        return sum(count * price for _, count, price in self.instances if price is not None)

    @property
    def cost(self) -> float | None:
        per_hour = self.per_hour
        return None if per_hour is None else per_hour * self.hours

    @property
    def instance_hours(self) -> float:
        return sum(count for _, count, _ in self.instances) * self.hours


@dataclass(frozen=True)
class Estimate:
    lines: tuple[Line, ...]
    assumption: str
    currency: str

    @property
    def total(self) -> float:
        """The cost of the priced lines (see :attr:`unknown` for the others)."""
        return sum(line.cost for line in self.lines if line.cost is not None)

    @property
    def unknown(self) -> tuple[Line, ...]:
        """The lines whose cost is unknown (region or instance type not in the table)."""
        return tuple(line for line in self.lines if line.cost is None)

    def summary(self) -> str:
        """``12.34 USD``, ``12.34 USD + unknown (ap-south-2)`` or ``unknown (ap-south-2)``."""
        if not self.unknown:
            return f"{self.total:.2f} {self.currency}"
        regions = ", ".join(dict.fromkeys(line.region for line in self.unknown))
        if len(self.unknown) == len(self.lines):
            return f"unknown cost ({regions} not in the price table)"
        return f"{self.total:.2f} {self.currency} + unknown ({regions} not in the price table)"


def hours_for(cfg: StackConfig, timeout_s: float | None = None) -> float:
    """Upper bound of one variant's billed hours: provisioning + the benchmark's own hard cap
    (``cnibench:benchmarkTimeout``) + teardown, capped by the matrix timeout + teardown."""
    minutes = PROVISION_MINUTES + cfg.benchmark_timeout / 60.0 + TEARDOWN_MINUTES
    if timeout_s is not None:
        minutes = min(minutes, timeout_s / 60.0 + TEARDOWN_MINUTES)
    return minutes / 60.0


def instances_of(cfg: StackConfig) -> list[tuple[str, int]]:
    """Two benchmark nodes, plus the control plane unless it runs on a benchmark node."""
    out = [(cfg.instance_type, 2)]
    if not cfg.control_plane_on_benchmark_node:
        out.append((cfg.control_plane_instance_type, 1))
    return out


def estimate(configs: Mapping[str, StackConfig], table: PriceTable, timeout_s: float | None = None) -> Estimate:
    lines = []
    for variant, cfg in configs.items():
        merged: dict[str, int] = {}
        for itype, count in instances_of(cfg):
            merged[itype] = merged.get(itype, 0) + count
        priced: list[tuple[str, int, float | None]] = []
        missing: list[str] = []
        for itype, count in merged.items():
            try:
                priced.append((itype, count, table.price(cfg.region, itype)))
            except PriceError as exc:
                priced.append((itype, count, None))
                missing.append(str(exc))
        lines.append(Line(variant, cfg.region, tuple(priced), hours_for(cfg, timeout_s),
                          "; ".join(dict.fromkeys(missing)) or None))
    cap = f", capped at the matrix timeout ({timeout_s / 60:g} min) + teardown" if timeout_s else ""
    assumption = (
        f"hours per variant = {PROVISION_MINUTES:.0f} min provisioning + cnibench:benchmarkTimeout "
        f"+ {TEARDOWN_MINUTES:.0f} min teardown{cap} (an upper bound: a benchmark that finishes "
        f"early costs less); on-demand Linux prices from {table.source}; instances only "
        "(no EBS, data transfer, NAT)"
    )
    return Estimate(tuple(lines), assumption, table.currency)


def rows(est: Estimate) -> list[Sequence[Any]]:
    out: list[Sequence[Any]] = []
    for line in est.lines:
        inst = ", ".join(f"{n} x {t} @ {'?' if p is None else f'{p:.4f}'}/h" for t, n, p in line.instances)
        cost = "unknown" if line.cost is None else f"{line.cost:.2f}"
        out.append((line.variant, line.region, inst, f"{line.hours:.2f}", cost))
    return out
