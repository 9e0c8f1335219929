"""The cnibench policy pack: `pulumi preview --stack <variant> --policy-pack policy`.

Only constructs the pack (which starts the analyzer and blocks); the policies are built in
cnibench.policy_rules.from_policy_pack from the rules in cnibench/policy_rules/ (the cnibench
package is installed in the pack's virtualenv, ../.venv, by scripts/setup.sh).
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from cnibench.policy_rules.from_policy_pack import PACK_NAME, build_policies

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
)
