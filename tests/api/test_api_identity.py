"""The identity stamp of a store: checked at start, completed with the cluster id."""

from __future__ import annotations

import logging

import pytest

from replobj.directory import DIRECTORY_NAME, ClusterDirectory
from replobj.errors import ForeignDataDirError
from replobj.identity import IdentityCheckedSnapshots, IdentityKeeper
from replobj.raft.types import Entry
from replobj.statemachine import StateMachine
from replobj.storage import StoreIdentity, WriteBatch
from replobj.storage.memory import MemoryStorage


def test_a_new_store_is_stamped_with_the_member_and_no_cluster() -> None:
    storage = MemoryStorage()
    keeper = IdentityKeeper(storage, "a", "/data/a")
    keeper.check_at_start()
    assert storage.identity() == StoreIdentity("a", "")
    assert keeper.cluster_id == ""
    assert keeper.needs_stamp("c1")
    keeper.stamp("c1")
    assert storage.identity() == StoreIdentity("a", "c1")
    assert not keeper.needs_stamp("c1")


def test_a_store_with_data_but_no_stamp_is_stamped_and_that_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = MemoryStorage()
    storage.write(WriteBatch().append([Entry(1, 1, b"x")]))
    with caplog.at_level(logging.WARNING, logger="replobj"):
        IdentityKeeper(storage, "a", "/data/a").check_at_start()
    assert storage.identity() == StoreIdentity("a", "")
    assert any("older version" in r.getMessage() for r in caplog.records)


def test_a_store_of_another_member_is_refused_and_left_alone() -> None:
    storage = MemoryStorage()
    storage.set_identity(StoreIdentity("a", "c1"))
    with pytest.raises(ForeignDataDirError, match=r"/data/x.*'a'.*'b'"):
        IdentityKeeper(storage, "b", "/data/x").check_at_start()
    assert storage.identity() == StoreIdentity("a", "c1")


def test_a_pinned_cluster_refuses_a_store_of_another_cluster() -> None:
    storage = MemoryStorage()
    storage.set_identity(StoreIdentity("a", "c1"))
    with pytest.raises(ForeignDataDirError, match=r"c1.*c2"):
        IdentityKeeper(storage, "a", "/data/a", pinned="c2").check_at_start()
    IdentityKeeper(storage, "a", "/data/a", pinned="c1").check_at_start()


def test_a_log_naming_another_cluster_than_the_stamp_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = MemoryStorage()
    storage.set_identity(StoreIdentity("a", "c1"))
    keeper = IdentityKeeper(storage, "a", "/data/a")
    keeper.check_at_start()
    keeper.check_cluster("")
    keeper.check_cluster("c1")
    with caplog.at_level(logging.ERROR, logger="replobj"), pytest.raises(ForeignDataDirError):
        keeper.stamp("c2")
    assert storage.identity() == StoreIdentity("a", "c1")
    assert any("c1" in r.getMessage() and "c2" in r.getMessage() for r in caplog.records)


def _machine_of_cluster(cluster_id: str) -> StateMachine:
    machine = StateMachine()
    directory = machine.attach(DIRECTORY_NAME, ClusterDirectory())
    if cluster_id:
        directory.set_cluster_id(cluster_id)
    return machine


def test_a_received_snapshot_of_another_cluster_fails_the_check() -> None:
    storage = MemoryStorage()
    storage.set_identity(StoreIdentity("a", "c1"))
    keeper = IdentityKeeper(storage, "a", "/data/a")
    keeper.check_at_start()
    live = _machine_of_cluster("")
    checked = IdentityCheckedSnapshots(live, keeper)
    with pytest.raises(ForeignDataDirError, match=r"c1.*c2"):
        checked.check_snapshot(_machine_of_cluster("c2").snapshot())
    checked.check_snapshot(_machine_of_cluster("c1").snapshot())
    checked.check_snapshot(_machine_of_cluster("").snapshot())
    checked.restore_checked(checked.check_snapshot(_machine_of_cluster("c1").snapshot()))
    assert live.objects[DIRECTORY_NAME].cluster_id == "c1"
    assert checked.snapshot() == live.snapshot()
