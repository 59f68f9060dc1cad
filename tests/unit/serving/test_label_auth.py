"""Label and control credentials, issued ids, rate limits: the rules, one test each."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving.auth import (
    Auth,
    AuthConfigError,
    Denied,
    RateLimiter,
    TokenSet,
    bearer,
    read_tokens,
    write_token_file,
)
from modeldeploy.serving.contract.ids import ROUTER_ORIGIN, IdIssuer, parse_item_id
from modeldeploy.serving.feedback import (
    ROUTER_ID_WINDOW_S,
    FeedbackError,
    PredictionStore,
    apply_feedback,
)
from modeldeploy.serving.metrics import ArmMetrics

LABEL = "label-token-0123456789abcdef"
CONTROL = "control-token-0123456789abcdef"
LABELS = ["negative", "positive"]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def auth_with(tmp_path: Path, rate: float = 100.0, burst: float = 100.0) -> Auth:
    (tmp_path / "label").write_text(f"# apps\n{LABEL}\nsecond-app-token-0123456789\n")
    (tmp_path / "control").write_text(CONTROL + "\n")
    return Auth.from_files(tmp_path / "label", tmp_path / "control", rate, burst)


def test_written_token_file_is_private_and_kept_on_a_second_call(tmp_path: Path) -> None:
    path = write_token_file(tmp_path / "auth" / "label-token")
    token = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    write_token_file(path)
    assert path.read_text() == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(read_tokens(path)[0]) >= 32


@pytest.mark.parametrize("text", ["", "# only a comment\n", "short\n"])
def test_token_file_without_a_usable_token_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "t").write_text(text)
    with pytest.raises(AuthConfigError):
        read_tokens(tmp_path / "t")


def test_a_label_token_cannot_also_be_the_control_token(tmp_path: Path) -> None:
    (tmp_path / "label").write_text(CONTROL)
    (tmp_path / "control").write_text(CONTROL)
    with pytest.raises(AuthConfigError, match="must not also be"):
        Auth.from_files(tmp_path / "label", tmp_path / "control")


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Basic abc", None), ("Bearer", None), ("bearer  xyz ", "xyz")],
)
def test_bearer_reads_only_bearer_credentials(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_missing_credential_is_401_wrong_is_403_and_any_listed_token_passes() -> None:
    tokens = TokenSet([b"a" * 20, b"b" * 20], "labels")
    missing = tokens.check(None)
    assert isinstance(missing, Denied) and (missing.status, missing.reason) == (
        401,
        "unauthenticated",
    )
    assert missing.headers()["WWW-Authenticate"].startswith("Bearer")
    wrong = tokens.check("Bearer " + "c" * 20)
    assert isinstance(wrong, Denied) and (wrong.status, wrong.reason) == (403, "forbidden")
    first, second = tokens.check("Bearer " + "a" * 20), tokens.check("Bearer " + "b" * 20)
    assert isinstance(first, str) and isinstance(second, str) and first != second


def test_labels_need_the_label_token_and_control_needs_the_control_token(tmp_path: Path) -> None:
    auth = auth_with(tmp_path)
    assert auth.admit_label({"authorization": f"Bearer {LABEL}"}) is None
    assert auth.admit_label({"authorization": f"Bearer {CONTROL}"}) is None  # router hop
    assert auth.admit_control({"authorization": f"Bearer {CONTROL}"}) is None
    denied = auth.admit_control({"authorization": f"Bearer {LABEL}"})
    assert denied is not None and denied.status == 403


def test_rate_limit_is_per_credential_and_refills_with_time() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # another credential has its own bucket
    clock.now = 0.5
    assert limiter.allow("a") and not limiter.allow("a")


def test_rate_limiter_keeps_a_bounded_number_of_keys() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_keys=100, clock=Clock(0.0))
    for i in range(10_000):
        limiter.allow(f"k{i}")
    assert len(limiter._buckets) == 100


def test_over_the_rate_a_label_post_is_429(tmp_path: Path) -> None:
    auth = auth_with(tmp_path, rate=1, burst=2)
    headers = {"authorization": f"Bearer {LABEL}"}
    results = [auth.admit_label(headers) for _ in range(3)]
    assert results[:2] == [None, None]
    assert results[2] is not None and (results[2].status, results[2].reason) == (
        429,
        "rate_limited",
    )


# --- issued ids -----------------------------------------------------------------------


def test_issued_ids_verify_carry_origin_and_time_and_are_valid_request_ids() -> None:
    clock = Clock()
    issuer = IdIssuer(b"k" * 32, ROUTER_ORIGIN, clock)
    first, second = issuer.issue(), issuer.issue()
    assert first != second
    assert parse_item_id(first) == first and parse_item_id(f"{first}/3") == f"{first}/3"
    check = issuer.check(f"{first}/3")
    assert (check.verdict, check.origin) == ("ok", ROUTER_ORIGIN)
    clock.now += 90
    assert issuer.age_s(check) == pytest.approx(90, abs=1)


@pytest.mark.parametrize(
    "forge",
    [
        lambda i: i[:-1] + ("A" if i[-1] != "A" else "B"),  # MAC changed
        lambda i: ".".join([i[:2], "Y1pnvyV4lMA", *i.split(".")[2:]]),  # origin changed
        lambda i: "client-chosen-id",
        lambda i: "m1.router.0.abc.def",
        lambda i: "m2.router.0.abc.def",
        lambda i: i.replace("m2.", "m1.", 1),  # the old format's prefix
    ],
)
def test_ids_not_signed_by_the_key_are_not_issued(forge) -> None:
    issuer = IdIssuer(b"k" * 32, ROUTER_ORIGIN)
    assert issuer.check(forge(issuer.issue())).verdict == "not_issued"
    other_key = IdIssuer(b"x" * 32, ROUTER_ORIGIN)
    assert issuer.check(other_key.issue()).verdict == "not_issued"


# --- the predictor's side ---------------------------------------------------------------


def predictor(role: str = "stable", clock: Clock | None = None) -> tuple[PredictionStore, Clock]:
    clock = clock or Clock()
    store = PredictionStore(capacity=100, ttl_s=600, clock=clock)
    store.issue_ids(IdIssuer(b"k" * 32, role, clock))
    return store, clock


REGISTRY = CollectorRegistry()


def metrics() -> ArmMetrics:
    global REGISTRY
    REGISTRY = CollectorRegistry()
    return ArmMetrics("demo", "1", "stable", LABELS, registry=REGISTRY)


def counted(m: ArmMetrics) -> float:
    return sum(
        REGISTRY.get_sample_value(
            "modeldeploy_labelled_predictions_total",
            {**m.base_labels, "source": "feedback", "correct": c},
        )
        or 0.0
        for c in ("true", "false")
    )


def test_predictor_never_stores_under_a_client_id() -> None:
    store, _ = predictor()
    assigned = store.assign_id("client-chosen", {"x-request-id": "client-chosen"})
    assert assigned != "client-chosen" and assigned.startswith("m2.")
    assert store.ids is not None and store.ids.check(assigned).origin == "stable"
    assert "stable" not in assigned  # sealed: a client cannot read which arm issued it


def test_predictor_takes_a_fresh_router_id_once_and_a_replay_gets_its_own() -> None:
    store, clock = predictor()
    router = IdIssuer(b"k" * 32, ROUTER_ORIGIN, clock)
    rid = router.issue()
    assert store.assign_id("", {"x-request-id": rid}) == rid
    store.put(rid, 1)
    assert store.assign_id("", {"x-request-id": rid}) != rid  # replayed: seen here
    old = router.issue()
    clock.now += ROUTER_ID_WINDOW_S + 1
    assert store.assign_id("", {"x-request-id": old}) != old  # replayed: stale


def test_label_for_an_id_never_issued_is_refused_without_a_count() -> None:
    store, _ = predictor()
    m = metrics()
    store.put("guessed", 1)  # even if something were stored under it
    with pytest.raises(FeedbackError) as refused:
        apply_feedback({"request_id": "guessed", "label": 1}, store, LABELS, m)
    assert (refused.value.status, refused.value.reason) == (404, "not_issued")
    assert counted(m) == 0


def test_label_for_the_other_arms_id_is_refused() -> None:
    store, clock = predictor("stable")
    canary = IdIssuer(b"k" * 32, "canary", clock)
    with pytest.raises(FeedbackError) as refused:
        apply_feedback({"request_id": canary.issue(), "label": 1}, store, LABELS, metrics())
    assert (refused.value.status, refused.value.reason) == (409, "wrong_arm")


def test_issued_id_counts_once_and_the_answer_hides_the_prediction() -> None:
    store, _ = predictor()
    m = metrics()
    rid = store.assign_id("", None)
    store.put(rid, 1)
    first = apply_feedback({"request_id": rid, "label": 0}, store, LABELS, m)
    again = apply_feedback({"request_id": rid, "label": 1}, store, LABELS, m)
    assert (first["counted"], again["counted"]) == (True, False)
    assert counted(m) == 1
    assert set(first) == {"request_id", "counted", "source"}


def test_ids_of_different_origins_look_alike_and_each_is_sealed_differently() -> None:
    """A predictor's ids carry its role, sealed: a client holding ids from both arms sees
    the same shape and no repeated field that would sort them into two groups."""
    key = b"k" * 32
    stable, canary = IdIssuer(key, "stable"), IdIssuer(key, "canary")
    ids = [stable.issue() for _ in range(20)] + [canary.issue() for _ in range(20)]
    assert {tuple(len(f) for f in i.split(".")) for i in ids} == {
        tuple(len(f) for f in ids[0].split("."))
    }
    assert len({i.split(".")[1] for i in ids}) == len(ids)  # no shared origin field
    assert [stable.check(i).origin for i in ids] == ["stable"] * 20 + ["canary"] * 20
    with pytest.raises(ValueError):
        IdIssuer(key, "a-very-long-origin")
