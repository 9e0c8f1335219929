from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ALL_STACKS
from test_variants import POD_MTU_9001

from cnibench.config import config_keys
from cnibench.variants import CATALOG

STACK_DIR = Path(__file__).resolve().parent.parent / "stacks"


def test_every_variant_has_a_stack_and_every_stack_a_variant():
    files = {p.name[len("Pulumi."):-len(".yaml")] for p in STACK_DIR.glob("Pulumi.*.yaml")}
    assert files == set(ALL_STACKS)
    missing = set(CATALOG) - files
    assert not missing, f"catalog variants without a stack file: {sorted(missing)}"
    unknown = {s: yaml.safe_load((STACK_DIR / f"Pulumi.{s}.yaml").read_text())["config"]["cnibench:variant"]
               for s in files}
    strangers = {s: v for s, v in unknown.items() if v not in CATALOG}
    assert not strangers, f"stack files naming variants not in the catalog: {strangers}"


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_stack_file_holds_only_known_keys_and_its_own_variant(stack):
    config = yaml.safe_load((STACK_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert config["cnibench:variant"] == stack
    for key in config:
        ns, name = key.split(":", 1)
        assert ns == "cnibench" and name in config_keys(), key


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_program_runs_under_mocks(stack, stack_run):
    run = stack_run(stack)
    assert run.outputs["variant"]["name"] == stack
    assert run.outputs["variant"]["podMtu"] == POD_MTU_9001[stack]  # on the VPC's 9001-byte underlay
    assert not run.unknown_outputs
