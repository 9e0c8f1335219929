"""The stack's one explicit AWS provider: the configured region, the stack's tags as default tags
(so nothing the provider creates is missed; each resource also carries them in its own inputs)."""

from __future__ import annotations

import pulumi_aws as aws

from cnibench.tags import Tagging


def aws_provider(region: str, tags: Tagging) -> aws.Provider:
    return aws.Provider(
        "aws",
        region=region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=dict(tags.base)),
    )
