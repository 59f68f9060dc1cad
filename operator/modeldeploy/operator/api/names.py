"""Which ModelDeployment names KServe will accept for the InferenceService it gets.

The resource's name becomes the InferenceService's name, and KServe's admission webhook
refuses a name that is not a DNS-1035 label (tests/upstream/rules/kserve_isvc_validation.go:46
``IsvcNameFmt``, anchored at :55, checked at :470). That file has no length rule of its own;
the limit comes from the names KServe derives from it: ``<name>-predictor-canary``
(tests/upstream/rules/kserve_constants.go:813, the canary's Service) must still be a
DNS-1035 label, which is at most 63 characters. Refusing such a
name up front (in the CRD and in the operator) beats a rollout that fails on its first
InferenceService write.
"""

from __future__ import annotations

import re

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MAX = 63
LONGEST_SUFFIX = "-predictor-canary"
NAME_MAX_LENGTH = DNS_LABEL_MAX - len(LONGEST_SUFFIX)

_LABEL = re.compile(DNS1035_LABEL)


def name_problems(name: str) -> list[str]:
    """Why KServe would refuse ``name`` for an InferenceService; empty when it is fine."""
    problems: list[str] = []
    if not _LABEL.fullmatch(name):
        problems.append(
            f"metadata.name: {name!r} must be a DNS-1035 label (lowercase letters, digits and"
            " '-', starting with a letter and ending with a letter or digit)"
        )
    if len(name) > NAME_MAX_LENGTH:
        problems.append(
            f"metadata.name: {len(name)} characters is more than {NAME_MAX_LENGTH}"
            f" (KServe derives '{name}{LONGEST_SUFFIX}', which must fit in {DNS_LABEL_MAX})"
        )
    return problems
