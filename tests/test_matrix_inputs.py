"""Bad flags and config values of ``cnibench matrix`` are refused offline, each naming its flag,
the value and what is valid, BEFORE the Pulumi CLI is looked for (issue 15, the matrix rows of
scripts/bad-input-attack.py).

Every test here runs with no ``pulumi`` on PATH nor in ~/.pulumi: a refusal must be the flag's
own message (exit 2, ExitCode.REFUSED; a mandatory policy violation 3), never "the Pulumi CLI
is not installed". The real AutomationBackend is used, so nothing is faked past the CLI check."""

from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from cnibench import matrix as mx
from cnibench.cli import app
from cnibench.errors import ExitCode, InputError
from cnibench.matrix import backend, pricing
from cnibench.variants import CATALOG

runner = CliRunner()
CLI_MISSING = "the Pulumi CLI (pulumi) is not installed"
V = "flannel-vxlan"


@pytest.fixture(autouse=True)
def no_pulumi(tmp_path, monkeypatch):
    """No Pulumi CLI anywhere, no passphrase, owner records and the workspace in tmp_path; the
    offline policy check is recorded (the real one is slow and needs no CLI either)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(backend, "PULUMI_INSTALL_ROOT", tmp_path / "no-pulumi-home")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setenv("CNIBENCH_STATE_DIR", str(tmp_path / "state"))
    checked: list[str] = []
    monkeypatch.setattr(mx, "default_preflight", lambda: (lambda stack, overrides: checked.append(stack) or []))
    return checked


def matrix(tmp_path, *args: str, out: bool = True):
    argv = ["matrix", *args, *(["--out", str(tmp_path / "out")] if out else [])]
    # wide enough that no path is cut in two (pytest-xdist's tmp paths are longer: popen-gwN)
    res = runner.invoke(app, argv, env={"COLUMNS": "1000"})
    text = " ".join(re.sub(r"[\u2500-\u257f]", " ", res.stderr).split())  # wrapped lines, Typer's panels
    return res, text


def refused(res, text, *names: str, code: ExitCode = ExitCode.REFUSED) -> None:
    assert res.exit_code == code, text
    assert res.stdout == "" and "Traceback" not in text
    assert CLI_MISSING not in text, "a bad value must be named before the Pulumi CLI is looked for"
    for name in names:
        assert name in text, (name, text)


# --------------------------------------------------------------------------- the flags


@pytest.mark.parametrize("args, names", [
    ([], ("give at least one --variant", "cilium-native")),
    (["-v", "bogus"], ("--variant", "unknown variant(s) bogus", "valid: flannel-vxlan")),
    (["-v", ""], ("--variant ''", "empty", "ipvlan")),
    (["-v", V, "-v", V], (f"--variant {V}", "given 2 times", f"{V}.json")),
    (["-v", V, "--parallel", "0"], ("--parallel 0", f"1 to {len(CATALOG)}")),
    (["-v", V, "--parallel", "-1"], ("--parallel -1", f"1 to {len(CATALOG)}")),
    (["-v", V, "--parallel", "1000000"], ("--parallel 1000000", f"1 to {len(CATALOG)}")),
    (["-v", V, "--timeout", "0"], ("--timeout 0", "out of range", "60 to 604800")),
    (["-v", V, "--timeout", "59"], ("--timeout 59", "60 to 604800")),
    (["-v", V, "--timeout", "1e12"], ("--timeout 1e+12", "60 to 604800")),
    (["-v", V, "--timeout", "nan"], ("--timeout nan", "not a finite number", "60 to 604800")),
    (["-v", V, "--timeout", "inf"], ("--timeout inf", "not a finite number")),
    (["-v", V, "--timeout", "-inf"], ("--timeout -inf", "not a finite number")),
    (["-v", V, "--expiry-hours", "0"], ("--expiry-hours 0", "1 to 720")),
    (["-v", V, "--expiry-hours", "1000000"], ("--expiry-hours 1000000", "1 to 720")),
    (["-v", V, "--expiry-hours", "1", "--timeout", "36000"],
     ("--expiry-hours 1", "shorter than --timeout 36000", "at least 11")),
    (["-v", V, "--backend", "gopher://x"], ("--backend", "'gopher://x'", "unknown scheme gopher://", "s3://")),
    (["-v", V, "--backend", ""], ("--backend", "''", "empty", "file://~")),
    (["-v", V, "--backend", "file://"], ("--backend", "nothing after ://")),
    (["-v", V, "--backend", "api.pulumi.com"], ("--backend", "no scheme", "https://")),
    (["-v", V, "--backend", "s3://my bucket"], ("--backend", "whitespace")),
    (["-v", V, "--secrets-provider", "bogus"], ("--secrets-provider 'bogus'", "passphrase", "awskms://")),
    (["-v", V, "--secrets-provider", ""], ("--secrets-provider ''", "empty")),
    (["-v", V, "--secrets-provider", "awskms://"], ("--secrets-provider 'awskms://'", "no key after")),
    (["-v", V, "--esc-env", ""], ("--esc-env ''", "[org/]project/env")),
    (["-v", V, "--esc-env", "my env"], ("--esc-env 'my env'", "[org/]project/env")),
    (["-v", V, "--all"], ("--all: only with --cleanup",)),
    (["-v", V, "--region", "eu-west-1"], ("--region: only with --cleanup",)),
    (["-v", V, "--no-sweep"], ("--no-sweep: only with --cleanup",)),
])
def test_a_bad_flag_is_named_before_the_pulumi_cli(tmp_path, no_pulumi, args, names):
    res, text = matrix(tmp_path, *args)
    refused(res, text, *names)
    assert no_pulumi == []  # refused before the (slower) policy check too
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()


def test_every_bad_flag_is_listed_at_once(tmp_path):
    res, text = matrix(tmp_path, "-v", V, "--timeout", "nan", "--parallel", "0", "--backend", "gopher://x",
                       "-c", "bogusKey=1")
    refused(res, text, "--timeout nan", "--parallel 0", "--backend", "-c bogusKey=1")


def test_out_that_is_a_file_or_cannot_be_created(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    res, text = matrix(tmp_path, "-v", V, "--out", str(f), out=False)
    refused(res, text, f"--out {f}", "not a directory")
    assert f.read_text() == "x"
    res, text = matrix(tmp_path, "-v", V, "--out", "/proc/cnibench-test-out", out=False)
    refused(res, text, "--out /proc/cnibench-test-out", "cannot create it")


def test_cleanup_refuses_a_bad_backend_before_the_pulumi_cli(tmp_path):
    res, text = matrix(tmp_path, "--cleanup", "--backend", "gopher://x", out=False)
    refused(res, text, "--backend", "gopher://x")
    res, text = matrix(tmp_path, "--cleanup", "--secrets-provider", "bogus", out=False)
    refused(res, text, "--secrets-provider 'bogus'")


# --------------------------------------------------------------------------- -c key=value


@pytest.mark.parametrize("args, names", [
    (["-c", "bogusKey=1"], ("-c bogusKey=1", "cnibench:bogusKey is not a config key", "benchmarkStreams")),
    (["-c", "novalue"], ("-c 'novalue'", "expected key=value")),
    (["-c", "=1"], ("-c '=1'", "expected key=value")),
    (["-c", "aws:region=xx-nowhere-9"], ("-c 'aws:region=xx-nowhere-9'", "only cnibench:* keys")),
    (["-c", "variant=ipvlan"], ("-c variant=ipvlan", "cnibench:variant", "--variant")),
    (["-c", "cnibench:expiryHours=3"], ("-c expiryHours=3", "--expiry-hours")),
])
def test_a_bad_config_key_names_the_c_flag(tmp_path, no_pulumi, args, names):
    res, text = matrix(tmp_path, "-v", V, *args)
    refused(res, text, *names)
    assert no_pulumi == []


@pytest.mark.parametrize("variant, args, names", [
    (V, ["-c", "benchmarkStreams=100000"], ("-c benchmarkStreams=100000: flannel-vxlan: cnibench:benchmarkStreams",
                                            "1..128")),
    (V, ["-c", "benchmarkLoadLevels=[0,80]"], ("-c benchmarkLoadLevels=[0,80]", "cnibench:benchmarkLoadLevels")),
    ("flannel-host-gw", ["-c", "splitSubnets=true"],
     ("-c splitSubnets=true: flannel-host-gw: cnibench:splitSubnets: true puts the benchmark nodes in two subnets",)),
    (V, ["-c", "podCidr=10.20.0.0/16"], ("-c podCidr=10.20.0.0/16", "cnibench:podCidr")),
])
def test_a_value_the_config_layer_refuses_names_the_c_flag_and_the_key(tmp_path, no_pulumi, variant, args, names):
    res, text = matrix(tmp_path, "-v", variant, *args)
    refused(res, text, *names)  # "[0,80]" among them: a value is printed as it is, not read as Rich markup


def test_the_plan_check_refuses_before_the_pulumi_cli(tmp_path, monkeypatch):
    """The real offline check (program under mocks, no CLI): a benchmark plan longer than
    benchmarkTimeout is refused naming the -c flags it comes from."""
    from cnibench.matrix.gate import default_preflight  # the real one (the fixture records instead)

    monkeypatch.setattr(mx, "default_preflight", default_preflight)
    res, text = matrix(tmp_path, "-v", V, "-c", "benchmarkDuration=3600", "-c", "benchmarkRepeat=100")
    refused(res, text, "-c benchmarkDuration=3600", "cnibench:benchmarkTimeout", "flannel-vxlan")


def test_a_policy_violation_is_3_before_the_pulumi_cli(tmp_path, monkeypatch):
    class Finding:
        rule, verdict, messages, blocking = "l2-adjacency", "fail", ("nodes are in two subnets",), True

    monkeypatch.setattr(mx, "default_preflight", lambda: (lambda stack, overrides: [Finding()]))
    res, text = matrix(tmp_path, "-v", "ipvlan")
    refused(res, text, "l2-adjacency", "nodes are in two subnets", code=ExitCode.POLICY)


# --------------------------------------------------------------------------- --prices


def _bomb() -> str:
    anchors = ['l0: &l0 "lol"'] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "x:\n" + "\n".join("  " + a for a in anchors) + "\nregions:\n  us-east-1:\n    c6i.8xlarge: *l9\n"


@pytest.mark.parametrize("content, names", [
    (bytes(range(128, 256)) * 4, ("not UTF-8 text",)),
    ("regions:\n  us-east-1:\n    c6i.8xlarge: -1.36\n", ("regions.us-east-1.c6i.8xlarge", "-1.36", "0 to 10000")),
    ("regions:\n  us-east-1:\n    c6i.8xlarge: .nan\n", ("regions.us-east-1.c6i.8xlarge", "nan")),
    ("regions:\n  us-east-1:\n    c6i.8xlarge: .inf\n", ("regions.us-east-1.c6i.8xlarge", "inf")),
    ("regions:\n  us-east-1:\n    c6i.8xlarge: true\n", ("regions.us-east-1.c6i.8xlarge", "True")),
    (_bomb(), ("anchors and aliases", "line 2")),
    ("regions: &r {us-east-1: {t3.medium: 1}}\n", ("anchors and aliases",)),
    ("[" * 5000 + "]" * 5000, ("nested deeper than",)),
    ("- 1\n- 2\n", ("a list, not a price table",)),
    ("regions:\n  us-east-1:\n    t3.medium: 1\n    t3.medium: 2\n", ("'t3.medium' given twice", "line 4")),
    ("regions: {us-east-1: {t3.medium: 1}\n", ("not a YAML price table",)),
    ("regions:\n  us-east-1: {a: 1}\x00\n", ("not a YAML price table", "#x0000")),
    ("regions: {}\n", ("expected a 'regions' mapping",)),
    ("currency: [1]\nregions: {us-east-1: {t3.medium: 1}}\n", ("currency",)),
])
def test_a_bad_prices_file_is_named_before_the_pulumi_cli(tmp_path, no_pulumi, content, names):
    f = tmp_path / "p.yaml"
    f.write_bytes(content.encode() if isinstance(content, str) else content)
    res, text = matrix(tmp_path, "-v", V, "--prices", str(f))
    refused(res, text, "--prices refused", str(f), *names)
    assert no_pulumi == []


def test_a_prices_file_that_is_too_large_is_not_read(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("regions:\n  us-east-1:\n" + "".join(f"    t{i}.x: 1\n" for i in range(100_000)))
    assert f.stat().st_size > pricing.MAX_TABLE_BYTES
    res, text = matrix(tmp_path, "-v", V, "--prices", str(f))
    refused(res, text, "--prices refused", str(f), "larger than")


@pytest.mark.parametrize("make, names", [
    (lambda t: t / "nope.yaml", ("--prices", "nope.yaml", "does not exist")),
    (lambda t: (t / "pdir").mkdir() or t / "pdir", ("--prices", "pdir", "is a directory")),
])
def test_a_prices_path_that_is_no_file(tmp_path, make, names):
    res, text = matrix(tmp_path, "-v", V, "--prices", str(make(tmp_path)))
    refused(res, text, *names)


def test_the_shipped_table_passes_the_checks_a_prices_file_gets(tmp_path):
    """No anchors in the shipped table any more (a copy of it is a valid --prices file)."""
    from importlib import resources

    copy = tmp_path / "copy.yaml"
    copy.write_text(resources.files("cnibench").joinpath(pricing.DEFAULT_TABLE).read_text())
    shipped, copied = pricing.load_table(), pricing.load_table(copy)
    assert shipped.regions == copied.regions
    assert set(shipped.regions) == {"us-east-1", "us-east-2", "us-west-2"}
    assert shipped.regions["us-west-2"] == shipped.regions["us-east-1"]
    assert all(math.isfinite(p) and p > 0 for r in shipped.regions.values() for p in r.values())


# --------------------------------------------------------------------------- and then the CLI


def test_good_inputs_reach_the_cli_check_after_the_policy_check_and_before_the_cost(tmp_path, no_pulumi):
    prices = tmp_path / "p.yaml"
    prices.write_text("regions:\n  us-east-1:\n    c6i.8xlarge: 1.36\n    t3.medium: 0.0416\n")
    res, text = matrix(tmp_path, "-v", V, "-v", "ipvlan", "-p", "2", "--timeout", "3600", "--expiry-hours", "2",
                       "-c", "benchmarkStreams=8", "--prices", str(prices), "--backend", "s3://bucket/state",
                       "--secrets-provider", "awskms://alias/cnibench", "--esc-env", "org/aws/oidc@3")
    assert res.exit_code == ExitCode.REFUSED and res.stdout == ""
    assert CLI_MISSING in text and backend.PULUMI_INSTALL_URL in text
    assert no_pulumi == [V, "ipvlan"]  # the offline policy check ran first
    assert "estimated cost" not in text and "[y/N]" not in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["file://~", "file:///var/lib/pulumi", "s3://bucket", "s3://b?region=eu-west-1",
                                 "azblob://container", "gs://bucket", "https://api.pulumi.com",
                                 "http://localhost:8080"])
def test_backend_urls_pulumi_knows_are_accepted(url):
    assert mx.check_backend_url(url) == url
    assert mx.check_backend_url(None) == mx.DEFAULT_BACKEND


@pytest.mark.parametrize("provider, expected", [
    ("passphrase", "passphrase"), ("default", None), ("awskms://alias/x?region=us-east-1", None),
    ("azurekeyvault://v.vault.azure.net/keys/k", None), ("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                                                         None), ("hashivault://k", None),
])
def test_secrets_providers_pulumi_knows_are_accepted(provider, expected):
    assert mx.check_secrets_provider(provider) == (expected if provider in ("passphrase", "default") else provider)


def test_esc_environment_names():
    assert mx.check_environments(["env", "proj/env", "org/proj/env", "proj/env@stable"]) == \
        ("env", "proj/env", "org/proj/env", "proj/env@stable")
    for bad in ("", " ", "a/b/c/d", "proj/env@", "proj//env"):
        with pytest.raises(InputError, match="--esc-env"):
            mx.check_environments([bad])


def test_options_validate_names_each_flag():
    with pytest.raises(mx.OptionsError) as exc:
        mx.MatrixOptions(variants=(V, V, "x"), parallel=99, timeout=math.nan, expiry_hours=0,
                         overrides={"nope": "1"}).validate()
    text = "\n".join(exc.value.problems)
    for flag in ("--variant flannel-vxlan", "unknown variant(s) x", "--parallel 99", "--timeout nan",
                 "--expiry-hours 0", "-c nope=1"):
        assert flag in text
    assert exc.value.exit_code == ExitCode.REFUSED
    mx.MatrixOptions(variants=(V,), timeout=60, expiry_hours=1).validate()  # 60 s + 45 min destroy: 1 h
    with pytest.raises(mx.OptionsError, match="at least 2"):
        mx.MatrixOptions(variants=(V,), timeout=3600, expiry_hours=1).validate()
