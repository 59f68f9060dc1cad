"""The registry contract: the types and errors every other part of the project sees.

Everything outside this package talks to MLflow through :class:`RegistryClient`, so the
watcher, the decision records and fetch are plain logic over a small interface, and
exactly one module (``mlflow_client``) imports mlflow. Errors are typed so callers can
tell "try again later" (:class:`RegistryUnavailable`) from "this will never work".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

# Tag keys written by this package. One prefix, so people browsing MLflow can see at a
# glance which tags the platform owns (and so nothing else collides with them).
TAG_PREFIX = "modeldeploy."
TAG_FAMILY = TAG_PREFIX + "family"
TAG_MAX_LENGTH = TAG_PREFIX + "max_length"
TAG_LABELS = TAG_PREFIX + "labels"
TAG_TEST_ACCURACY = TAG_PREFIX + "test_accuracy"
TAG_VALIDATION_ACCURACY = TAG_PREFIX + "validation_accuracy"
TAG_MANIFEST = TAG_PREFIX + "manifest"
TAG_MANIFEST_SHA256 = TAG_PREFIX + "manifest_sha256"
TAG_WEIGHTS_FORMAT = TAG_PREFIX + "weights_format"
TAG_RECIPE = TAG_PREFIX + "recipe"
TAG_PUBLISHED_AT = TAG_PREFIX + "published_at"
TAG_OUTCOME = TAG_PREFIX + "outcome"
TAG_DECIDED_AT = TAG_PREFIX + "decided_at"
TAG_REASON = TAG_PREFIX + "reason"

DEFAULT_STABLE_ALIAS = "champion"
DEFAULT_CANDIDATE_ALIAS = "challenger"


class RegistryError(Exception):
    """Any registry failure that retrying will not fix by itself."""


class RegistryUnavailable(RegistryError):
    """MLflow could not be reached (or answered 5xx): transient, try again later."""


class NotFound(RegistryError):
    """The registered model, version or alias does not exist."""


class PublishRefused(RegistryError):
    """The checkpoint directory is not publishable; nothing was registered."""


class PickleWeightsRefused(PublishRefused):
    """The checkpoint carries pickle weights, which can run code when loaded."""

    def __init__(self, files: Sequence[str]) -> None:
        self.files = tuple(files)
        super().__init__(
            "refusing to publish pickle weights (loading them can execute arbitrary code): "
            + ", ".join(self.files)
            + ". Convert the checkpoint to safetensors (save_pretrained(..., "
            "safe_serialization=True)) and publish again; nothing was registered."
        )


class IntegrityError(RegistryError):
    """A fetched file is missing, truncated, altered or unexpected. ``path`` names it."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class DecisionConflict(RegistryError):
    """A rollout decision cannot be applied as asked (for example rejecting the champion)."""


class ChangeKind(StrEnum):
    """What the watcher saw change between two polls of one registered model."""

    VERSION_CREATED = "version_created"
    ALIAS_SET = "alias_set"  # the alias did not exist before
    ALIAS_MOVED = "alias_moved"  # the alias now points at another version
    ALIAS_REMOVED = "alias_removed"
    TAG_SET = "tag_set"  # a version tag was added or got a new value
    TAG_REMOVED = "tag_removed"


@dataclass(frozen=True)
class RegistryChange:
    """One typed change. Fields that do not apply to the kind are None."""

    kind: ChangeKind
    model: str
    version: str | None = None
    alias: str | None = None
    previous_version: str | None = None  # ALIAS_MOVED / ALIAS_REMOVED
    key: str | None = None  # TAG_SET / TAG_REMOVED
    value: str | None = None
    previous_value: str | None = None

    def describe(self) -> str:
        """One readable line, for logs and events."""
        k = self.kind
        if k is ChangeKind.VERSION_CREATED:
            return f"{self.model}: version {self.version} created"
        if k is ChangeKind.ALIAS_SET:
            return f"{self.model}: alias {self.alias} set on version {self.version}"
        if k is ChangeKind.ALIAS_MOVED:
            return (
                f"{self.model}: alias {self.alias} moved from version "
                f"{self.previous_version} to {self.version}"
            )
        if k is ChangeKind.ALIAS_REMOVED:
            return f"{self.model}: alias {self.alias} removed (was version {self.previous_version})"
        if k is ChangeKind.TAG_SET:
            return f"{self.model}: version {self.version} tag {self.key}={self.value!r}"
        return f"{self.model}: version {self.version} tag {self.key} removed"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version, as the platform needs it (no mlflow objects leak out)."""

    name: str
    version: str
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    source: str = ""
    run_id: str | None = None
    created_ms: int = 0
    description: str = ""


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model and where its aliases point (alias -> version)."""

    name: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    updated_ms: int = 0
    description: str = ""


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook registered in MLflow (the secret is never read back)."""

    webhook_id: str
    name: str
    url: str
    events: tuple[str, ...]
    active: bool = True


@runtime_checkable
class RegistryClient(Protocol):
    """What the platform needs from a model registry: small on purpose.

    Implementations raise :class:`RegistryUnavailable` when the server cannot be reached,
    :class:`NotFound` for a missing model/version, and :class:`RegistryError` otherwise.
    """

    def is_online(self) -> bool:
        """A cheap, fast health check (never raises)."""
        ...

    def list_models(self) -> list[RegisteredModelInfo]: ...

    def get_model(self, name: str) -> RegisteredModelInfo: ...

    def search_versions(
        self, name: str, *, max_results: int, page_token: str | None = None
    ) -> tuple[list[ModelVersionInfo], str | None]:
        """Newest versions first, one page at a time; ``aliases`` may be empty here."""
        ...

    def get_version(self, name: str, version: str) -> ModelVersionInfo: ...

    def create_version(
        self,
        name: str,
        local_dir: Path,
        *,
        tags: Mapping[str, str],
        description: str = "",
    ) -> ModelVersionInfo:
        """Upload every file under ``local_dir`` and register them as a new version."""
        ...

    def download_version(self, name: str, version: str, dst_dir: Path) -> Path:
        """Download a version's files into ``dst_dir``; return the directory holding them."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None: ...

    def list_webhooks(self) -> list[WebhookInfo]: ...

    def create_webhook(
        self, name: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo: ...

    def update_webhook(
        self, webhook_id: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo: ...
