"""Cost estimate of a matrix run: instance-hours x the price table."""

from __future__ import annotations

import pytest

from cnibench.config import parse_config
from cnibench.matrix import pricing


def cfg(**values):
    return parse_config({"variant": "cilium-native", **values})


def test_default_table_has_the_default_instance_types_with_its_source():
    table = pricing.load_table()
    assert table.source.startswith("https://aws.amazon.com/ec2/pricing/on-demand")
    assert table.price("us-east-1", "c6i.8xlarge") == 1.36
    assert table.price("us-east-1", "t3.medium") == 0.0416
    assert table.price("us-west-2", "c6i.8xlarge") == 1.36


def test_estimate_counts_two_benchmark_nodes_and_the_control_plane():
    est = pricing.estimate({"a": cfg(), "b": cfg(controlPlaneOnBenchmarkNode=True, benchmarkTimeout=1800)},
                           pricing.load_table())
    a, b = est.lines
    assert dict((t, n) for t, n, _ in a.instances) == {"c6i.8xlarge": 2, "t3.medium": 1}
    assert dict((t, n) for t, n, _ in b.instances) == {"c6i.8xlarge": 2}
    # 15 min provisioning + 3600 s benchmark cap + 5 min teardown
    assert a.hours == pytest.approx((15 + 60 + 5) / 60)
    assert a.cost == pytest.approx((2 * 1.36 + 0.0416) * a.hours)
    assert b.cost == pytest.approx(2 * 1.36 * (15 + 30 + 5) / 60)
    assert est.total == pytest.approx(a.cost + b.cost)
    assert "benchmarkTimeout" in est.assumption and "upper bound" in est.assumption


def test_matrix_timeout_caps_the_hours():
    est = pricing.estimate({"a": cfg()}, pricing.load_table(), timeout_s=1200)
    assert est.lines[0].hours == pytest.approx((20 + 5) / 60)


def test_prices_file_overrides_and_missing_entries_name_the_fix(tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text("source: my contract\nregions:\n  eu-west-1:\n    c6i.8xlarge: 1.0\n    t3.medium: 0.05\n")
    table = pricing.load_table(f)
    est = pricing.estimate({"a": cfg(region="eu-west-1")}, table)
    assert est.lines[0].per_hour == pytest.approx(2.05)
    assert "my contract" in est.assumption
    # a type (or region) the table lacks: the line's cost is unknown, with what is missing and the fix
    est = pricing.estimate({"a": cfg(region="eu-west-1", instanceType="c6i.4xlarge")}, table)
    assert est.lines[0].cost is None and est.unknown == est.lines
    assert "c6i.4xlarge" in est.lines[0].unknown and "--prices" in est.lines[0].unknown
    with pytest.raises(pricing.PriceError, match="us-east-1.*eu-west-1"):
        table.price("us-east-1", "c6i.8xlarge")


@pytest.mark.parametrize("text, match", [
    ("{}", "regions"),
    ("regions: {us-east-1: {c6i.8xlarge: cheap}}", "c6i.8xlarge"),
    ("regions: {us-east-1: [1, 2]}", "us-east-1"),
])
def test_bad_price_file(tmp_path, text, match):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(pricing.PriceError, match=match):
        pricing.load_table(f)


def test_a_region_outside_the_table_is_unknown_not_refused():
    est = pricing.estimate({"a": cfg(), "b": cfg(region="ap-south-2")}, pricing.load_table())
    a, b = est.lines
    assert a.cost is not None and b.cost is None and b.per_hour is None
    assert est.total == pytest.approx(a.cost)  # the priced lines only
    assert est.summary() == f"{a.cost:.2f} USD + unknown (ap-south-2 not in the price table)"
    assert "ap-south-2" in b.unknown and "--prices" in b.unknown
    rows = pricing.rows(est)
    assert rows[1][-1] == "unknown" and "c6i.8xlarge @ ?/h" in rows[1][2]
    only_unknown = pricing.estimate({"b": cfg(region="ap-south-2")}, pricing.load_table())
    assert only_unknown.summary() == "unknown cost (ap-south-2 not in the price table)"
