"""Fresh request ids: random version-4 UUIDs from a pool of kernel randomness."""

from __future__ import annotations

import os
import uuid

from modeldeploy.serving.codecs import request_id_from
from modeldeploy.serving.contract.ids import RANDOM_POOL_BYTES, new_request_id, parse_request_id


def test_a_fresh_id_is_a_version_4_uuid_in_canonical_form() -> None:
    for _ in range(2 * RANDOM_POOL_BYTES // 16 + 3):  # across two refills of the pool
        text = new_request_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parse_request_id(text) == text  # valid wherever a request id travels


def test_fresh_ids_do_not_repeat_and_use_every_random_digit() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    # Version and variant aside, each of the 30 hex positions takes all 16 values.
    digits = [text.replace("-", "") for text in ids]
    for position in set(range(32)) - {12, 16}:
        assert len({d[position] for d in digits}) == 16
    assert {d[16] for d in digits} == set("89ab")


def test_a_request_without_an_id_gets_a_fresh_one_and_a_client_id_is_kept() -> None:
    first, second = request_id_from(None, {}), request_id_from(None, None)
    assert first != second and uuid.UUID(first).version == 4
    assert request_id_from("abc-1", {}) == "abc-1"
    assert request_id_from(None, {"x-request-id": "from-header"}) == "from-header"


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_request_id()  # the parent's pool holds unused bytes when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read)
        os.write(write, ",".join(new_request_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [new_request_id() for _ in range(4)]
    assert len(child) == 4
    assert not set(child) & set(parent)
