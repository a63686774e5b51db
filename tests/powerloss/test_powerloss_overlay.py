"""The dirty-page overlay on its own (no mount): reads, writes, truncates and sync vs a model."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replobj.testing.powerloss.overlay import PAGE_SIZE, FileOverlay

offsets = st.integers(0, 5 * PAGE_SIZE)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), offsets, st.binary(min_size=1, max_size=2 * PAGE_SIZE)),
        st.tuples(st.just("truncate"), offsets, st.just(b"")),
        st.tuples(st.just("sync"), st.just(0), st.just(b"")),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(initial=st.binary(max_size=3 * PAGE_SIZE), steps=operations)
def test_overlay_matches_a_byte_array_model(
    tmp_path_factory: pytest.TempPathFactory, initial: bytes, steps: list[tuple[str, int, bytes]]
) -> None:
    path = tmp_path_factory.getbasetemp() / "overlay-backing-file"
    path.write_bytes(initial)
    overlay = FileOverlay(os.open(path, os.O_RDWR))
    live, synced = bytearray(initial), bytes(initial)
    try:
        for kind, offset, data in steps:
            if kind == "write":
                overlay.write(offset, data)
                live.extend(bytes(max(0, offset - len(live))))
                live[offset : offset + len(data)] = data
            elif kind == "truncate":
                overlay.truncate(offset)
                del live[offset:]
                live.extend(bytes(offset - len(live)))
            else:
                overlay.sync()
                synced = bytes(live)
                assert not overlay.dirty
            assert overlay.size == len(live)
            assert overlay.read(0, len(live) + PAGE_SIZE) == bytes(live)
            assert path.read_bytes() == synced, f"steps={steps}"
            middle = len(live) // 3
            assert overlay.read(middle, 5000) == bytes(live[middle : middle + 5000])
    finally:
        overlay.close()
        path.unlink()
