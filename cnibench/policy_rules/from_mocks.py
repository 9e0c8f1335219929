"""Adapter: the resources of an offline run (Pulumi mocks) -> the rules' neutral view."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from cnibench.policy_rules.model import Res, Stack


def stack_from_registered(resources: Iterable[Any], settings: Mapping[str, Any] | None = None) -> Stack:
    """``resources`` are :class:`cnibench.mocks.Registered` (type, name, urn, inputs, state, ...)."""
    resources = list(resources)
    by_urn = {r.urn: r for r in resources}
    out = []
    for r in resources:
        provider_props = None
        if r.provider:
            # a provider reference is "<urn>::<id>"
            prov = by_urn.get(r.provider) or by_urn.get(r.provider.rsplit("::", 1)[0])
            provider_props = dict(prov.inputs) if prov is not None else None
        out.append(Res(
            type=r.type, name=r.name, urn=r.urn, props=dict(r.inputs), parent=r.parent,
            property_dependencies={k: tuple(v) for k, v in r.property_dependencies.items()},
            provider_props=provider_props, ids=_ids(r),
        ))
    return Stack(out, dict(settings or {}))


def _ids(r: Any) -> tuple[str, ...]:
    if not r.custom:
        return ()
    state = r.state or {}
    return tuple(str(state[k]) for k in ("id", "name") if isinstance(state.get(k), str) and state.get(k))
