"""The tag sweep: AWS resources of matrix stacks that no stack state knows any more.

A ``pulumi up`` stopped in the middle of a create (SIGKILL, OOM, a cancelled CI job) can leave a
resource that AWS made but the state never recorded; ``refresh --clear-pending-creates`` then
forgets it, and ``destroy`` cannot see it. Every resource the program makes carries
``cnibench:stack`` and ``cnibench:expires-at`` (cnibench/tags.py), so such a resource is found
by its tags:

* regional resources through the Resource Groups Tagging API (``GetResources`` with a
  ``TagFilters`` on ``cnibench:stack``), one call chain per region;
* IAM roles and instance profiles through IAM (``GetResources`` does not return IAM roles):
  the roles whose description starts with ``cnibench`` (the program's), then their tags.

An orphan is a resource whose ``cnibench:stack`` is a matrix stack name, that is in no state of
the backend, whose run is not alive (owner record), and that is expired (``cnibench:expires-at``
in the past) or whose run is known dead. Each is listed with the AWS CLI command that deletes
it; :func:`delete` removes the common types (``KINDS``) in dependency order.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from cnibench.matrix.names import parse_stack_name
from cnibench.tags import EXPIRES_TAG, STACK_TAG

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Orphan:
    arn: str
    region: str  # "global" for IAM
    kind: str  # "ec2:instance", "iam:role", ...
    resource_id: str
    stack: str
    expires: _dt.datetime | None

    @property
    def command(self) -> str:
        kind = KINDS.get(self.kind)
        if kind is None:
            return f"(no delete rule for {self.kind}: delete {self.arn} in the console or its service's CLI)"
        return kind.command.format(id=self.resource_id, region=self.region)

    @property
    def deletable(self) -> bool:
        return self.kind in KINDS


@dataclass(frozen=True)
class Kind:
    order: int  # deletion order: dependents first
    command: str  # the AWS CLI command, {id} and {region}
    delete: Callable[[Any, str], None]  # (client, resource id)
    service: str = "ec2"


def _delete_eip(ec2: Any, alloc: str) -> None:
    for addr in ec2.describe_addresses(AllocationIds=[alloc]).get("Addresses", []):
        if addr.get("AssociationId"):
            ec2.disassociate_address(AssociationId=addr["AssociationId"])
    ec2.release_address(AllocationId=alloc)


def _delete_route_table(ec2: Any, rtb: str) -> None:
    for table in ec2.describe_route_tables(RouteTableIds=[rtb]).get("RouteTables", []):
        for assoc in table.get("Associations", []):
            if not assoc.get("Main") and assoc.get("RouteTableAssociationId"):
                ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=rtb)


def _delete_igw(ec2: Any, igw: str) -> None:
    for gw in ec2.describe_internet_gateways(InternetGatewayIds=[igw]).get("InternetGateways", []):
        for att in gw.get("Attachments", []):
            ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=att["VpcId"])
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def _delete_role(iam: Any, name: str) -> None:
    for profile in iam.list_instance_profiles_for_role(RoleName=name).get("InstanceProfiles", []):
        iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for policy in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=name)


def _delete_profile(iam: Any, name: str) -> None:
    for role in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Roles", []):
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
    iam.delete_instance_profile(InstanceProfileName=name)


KINDS: dict[str, Kind] = {
    "ec2:instance": Kind(0, "aws ec2 terminate-instances --region {region} --instance-ids {id}",
                         lambda c, i: c.terminate_instances(InstanceIds=[i])),
    "ec2:elastic-ip": Kind(1, "aws ec2 release-address --region {region} --allocation-id {id}", _delete_eip),
    "ec2:key-pair": Kind(1, "aws ec2 delete-key-pair --region {region} --key-pair-id {id}",
                         lambda c, i: c.delete_key_pair(KeyPairId=i)),
    "ec2:placement-group": Kind(2, "aws ec2 delete-placement-group --region {region} --group-name {id}",
                                lambda c, i: c.delete_placement_group(GroupName=i)),
    "ec2:security-group": Kind(2, "aws ec2 delete-security-group --region {region} --group-id {id}",
                               lambda c, i: c.delete_security_group(GroupId=i)),
    "ec2:subnet": Kind(3, "aws ec2 delete-subnet --region {region} --subnet-id {id}",
                       lambda c, i: c.delete_subnet(SubnetId=i)),
    "ec2:route-table": Kind(3, "aws ec2 delete-route-table --region {region} --route-table-id {id} "
                               "(after aws ec2 disassociate-route-table of its subnets)", _delete_route_table),
    "ec2:internet-gateway": Kind(3, "aws ec2 detach-internet-gateway --region {region} --internet-gateway-id {id} "
                                    "--vpc-id <vpc>; aws ec2 delete-internet-gateway --region {region} "
                                    "--internet-gateway-id {id}", _delete_igw),
    "ec2:vpc": Kind(4, "aws ec2 delete-vpc --region {region} --vpc-id {id}", lambda c, i: c.delete_vpc(VpcId=i)),
    "iam:instance-profile": Kind(1, "aws iam remove-role-from-instance-profile --instance-profile-name {id} "
                                    "--role-name <role>; aws iam delete-instance-profile --instance-profile-name {id}",
                                 _delete_profile, "iam"),
    "iam:role": Kind(2, "aws iam delete-role-policy --role-name {id} --policy-name <policy>; "
                        "aws iam delete-role --role-name {id}", _delete_role, "iam"),
}


def parse_arn(arn: str) -> tuple[str, str, str]:
    """``arn:aws:ec2:us-east-1:123:instance/i-1`` -> ("ec2:instance", "us-east-1", "i-1")."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "?", "", arn
    service, region, resource = parts[2], parts[3], parts[5]
    rtype, _, rid = resource.partition("/") if "/" in resource else resource.partition(":")
    if not rid:
        rtype, rid = resource, resource
    if service == "iam":
        rid = rid.rsplit("/", 1)[-1]  # a role's path: role/some/path/name
    return f"{service}:{rtype}", region or "global", rid


def _tags(items: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items}


def _expiry(value: str | None) -> _dt.datetime | None:
    if not value:
        return None
    try:
        return _dt.datetime.strptime(value, EXPIRES_FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


@dataclass
class Clients:
    """The boto3 clients the sweep uses: per region ``resourcegroupstaggingapi`` and ``ec2``,
    and one ``iam`` (None: IAM is not swept)."""

    tagging: Mapping[str, Any]
    ec2: Mapping[str, Any]
    iam: Any | None = None


def aws_clients(regions: Iterable[str]) -> Clients:
    """Real boto3 clients (credentials from the environment, as the Pulumi program's)."""
    import boto3

    session = boto3.session.Session()
    regions = list(dict.fromkeys(regions))
    return Clients(tagging={r: session.client("resourcegroupstaggingapi", region_name=r) for r in regions},
                   ec2={r: session.client("ec2", region_name=r) for r in regions},
                   iam=session.client("iam"))


def _tagged(clients: Clients) -> Iterable[tuple[str, str, dict[str, str]]]:
    """(arn, region, tags) of every resource carrying ``cnibench:stack``."""
    for region, client in clients.tagging.items():
        token = ""
        while True:
            page = client.get_resources(TagFilters=[{"Key": STACK_TAG}], ResourcesPerPage=100,
                                        **({"PaginationToken": token} if token else {}))
            for item in page.get("ResourceTagMappingList", []):
                yield item["ResourceARN"], region, _tags(item.get("Tags", []))
            token = page.get("PaginationToken") or ""
            if not token:
                break
    iam = clients.iam
    if iam is None:
        return
    roles: list[dict] = []
    marker = None
    while True:
        page = iam.list_roles(**({"Marker": marker} if marker else {}))
        roles += [r for r in page.get("Roles", []) if str(r.get("Description") or "").startswith("cnibench")]
        if not page.get("IsTruncated"):
            break
        marker = page["Marker"]
    for role in roles:
        tags = _tags(iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", []))
        if STACK_TAG not in tags:
            continue
        yield role["Arn"], "global", tags
        for profile in iam.list_instance_profiles_for_role(RoleName=role["RoleName"]).get("InstanceProfiles", []):
            ptags = _tags(iam.list_instance_profile_tags(InstanceProfileName=profile["InstanceProfileName"]).get("Tags", []))
            if STACK_TAG in ptags:
                yield profile["Arn"], "global", ptags


def find_orphans(clients: Clients, in_state: Iterable[str], protected: Iterable[str] = (),
                 dead: Iterable[str] = (), now: _dt.datetime | None = None) -> list[Orphan]:
    """The orphans (see the module). ``in_state``: ids and ARNs of every resource in a state of
    the backend; ``protected``: stacks of live runs (never touched); ``dead``: stacks whose
    run is known dead (eligible before their expiry)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    in_state, protected, dead = set(in_state), set(protected), set(dead)
    found: list[Orphan] = []
    seen: set[str] = set()
    for arn, region, tags in _tagged(clients):
        if arn in seen:
            continue
        seen.add(arn)
        stack = tags.get(STACK_TAG, "")
        if parse_stack_name(stack) is None or stack in protected:
            continue
        kind, arn_region, rid = parse_arn(arn)
        if arn in in_state or rid in in_state:
            continue
        expires = _expiry(tags.get(EXPIRES_TAG))
        if not (stack in dead or (expires is not None and expires <= now)):
            continue
        found.append(Orphan(arn, region if arn_region == "global" else arn_region, kind, rid, stack, expires))
    return _without_terminated(clients, found)


def _without_terminated(clients: Clients, orphans: list[Orphan]) -> list[Orphan]:
    """The Tagging API still lists a terminated instance for a while: drop those."""
    gone: set[str] = set()
    by_region: dict[str, list[str]] = {}
    for o in orphans:
        if o.kind == "ec2:instance":
            by_region.setdefault(o.region, []).append(o.resource_id)
    for region, ids in by_region.items():
        client = clients.ec2.get(region)
        if client is None:
            continue
        for reservation in client.describe_instances(InstanceIds=ids).get("Reservations", []):
            for inst in reservation.get("Instances", []):
                if inst.get("State", {}).get("Name") in ("terminated", "shutting-down"):
                    gone.add(inst["InstanceId"])
    return [o for o in orphans if not (o.kind == "ec2:instance" and o.resource_id in gone)]


def delete(clients: Clients, orphans: Iterable[Orphan], log: Callable[[str], None] = print,
           wait_terminated: Callable[[Any, list[str]], None] | None = None) -> list[tuple[Orphan, str]]:
    """Delete the orphans of the known kinds, dependents first (instances, then addresses,
    key pairs and profiles, groups, subnets, route tables, gateways, VPCs; IAM roles after
    their profiles). Returns the (orphan, error) of those not deleted, with the reason."""
    failed: list[tuple[Orphan, str]] = []
    todo = sorted(orphans, key=lambda o: (KINDS[o.kind].order if o.deletable else 99, o.region, o.resource_id))
    wait = wait_terminated or _wait_terminated
    terminated: dict[str, list[str]] = {}
    for o in todo:
        kind = KINDS.get(o.kind)
        if kind is None:
            failed.append((o, "no delete rule for this type"))
            continue
        if kind.order > 0 and terminated:
            for region, ids in terminated.items():  # instances must be gone before their groups and subnets
                try:
                    wait(clients.ec2[region], ids)
                except Exception as exc:  # noqa: BLE001 - the deletes below then fail and say so
                    log(f"  waiting for {', '.join(ids)} to terminate: {exc}")
            terminated = {}
        client = clients.iam if kind.service == "iam" else clients.ec2.get(o.region)
        if client is None:
            failed.append((o, f"no {kind.service} client for {o.region}"))
            continue
        try:
            kind.delete(client, o.resource_id)
            log(f"  deleted {o.kind} {o.resource_id} ({o.region}, stack {o.stack})")
            if o.kind == "ec2:instance":
                terminated.setdefault(o.region, []).append(o.resource_id)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError & co: reported with the command
            failed.append((o, str(exc)))
            log(f"  NOT deleted {o.kind} {o.resource_id}: {exc}")
    return failed


def _wait_terminated(ec2: Any, ids: list[str]) -> None:
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 10, "MaxAttempts": 60})
