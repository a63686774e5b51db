"""The cluster directory refuses member entries no node could use, where they are applied.

The callers check ids and addresses first; these checks are the defence in depth for
entries that reach the log anyway (an older version, a forged entry) or snapshot state
written before the checks existed.
"""

from __future__ import annotations

import logging

import pytest

from replobj import errors
from replobj.directory import ClusterDirectory


def test_add_member_refuses_a_bad_address_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = ClusterDirectory()
    with pytest.raises(errors.InvalidMemberError, match="99999"):
        directory.add_member("d", "127.0.0.1:99999")
    with pytest.raises(errors.InvalidMemberError, match="node_id"):
        directory.add_member("x" * 300, "127.0.0.1:7001")
    with pytest.raises(errors.InvalidMemberError, match="node_id"):
        directory.remove_member("")
    assert (directory.addresses, directory.removed, directory.non_voters) == ({}, set(), set())
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3


def test_register_keeps_the_usable_addresses_only() -> None:
    directory = ClusterDirectory()
    directory.register({"a": "127.0.0.1:7001", "b": "127.1:7002", "": "127.0.0.1:7003"})
    assert directory.addresses == {"a": "127.0.0.1:7001"}


def test_snapshot_state_with_a_bad_address_loses_it_on_restore(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = ClusterDirectory()
    state = {"addresses": {"a": "127.0.0.1:7001", "d": "127.0.0.1:99999"}, "removed": set()}
    directory.__setstate__(state)
    assert directory.addresses == {"a": "127.0.0.1:7001"}
    assert directory.non_voters == set()
    assert any("127.0.0.1:99999" in r.getMessage() for r in caplog.records)
