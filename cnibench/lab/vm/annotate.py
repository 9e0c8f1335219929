"""Mark a result document measured in the guest: which kernel, which accelerator, and, under
emulation, that no figure is a benchmark (functional only, ranking withheld)."""

from __future__ import annotations

from typing import Any

FUNCTIONAL_ONLY = ("functional only: measured in a guest under software emulation (qemu TCG), where every "
                   "packet costs emulated instructions; the figure shows that the path passes traffic, not its "
                   "speed, and is not comparable with figures measured on a host or with hardware KVM")
FUNCTIONAL_ONLY_MTU = ("functional only: measured in an emulated guest (qemu TCG); a path MTU does not depend on "
                       "speed, so this figure is exact")
NO_RANKING = ("measured under software emulation (qemu TCG, no hardware KVM on this machine): functional only, "
              "rerun with hardware KVM or on a host to rank")


def annotate(doc: dict[str, Any], vm: dict[str, Any]) -> dict[str, Any]:
    """Record the guest in ``environment.extra.vm``; under emulation (``vm['accelerator'] !=
    'kvm'``) add the functional-only caveat to every test and withhold the ranking."""
    doc["environment"].setdefault("extra", {})["vm"] = vm
    if vm.get("accelerator") == "kvm":
        return doc
    for subject in doc["subjects"]:
        for test in subject.get("tests", ()):
            caveats = test.setdefault("caveats", [])
            text = FUNCTIONAL_ONLY_MTU if test.get("kind") == "mtu" else FUNCTIONAL_ONLY
            if text not in caveats:
                caveats.insert(0, text)
    extra = doc.setdefault("extra", {})
    previous = (extra.get("ranking") or {}).get("reason")
    extra["ranking"] = {"allowed": False, "reason": NO_RANKING + (f"; {previous}" if previous else "")}
    return doc
