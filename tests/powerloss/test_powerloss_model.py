"""Random writes, truncates and fsyncs against a model: a cut leaves exactly the synced image."""

from __future__ import annotations

import os
import random
from pathlib import Path

from replobj.testing.powerloss import PowerLossMount

FILES = 3
MAX_OFFSET = 40_000


class ModelFile:
    """What one file holds now (``live``) and what its last fsync left (``synced``)."""

    def __init__(self, path: Path, synced: bytes) -> None:
        self.path = path
        self.live = bytearray(synced)
        self.synced = synced
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def write(self, offset: int, data: bytes) -> None:
        assert os.pwrite(self.fd, data, offset) == len(data)
        if offset > len(self.live):
            self.live.extend(bytes(offset - len(self.live)))
        self.live[offset : offset + len(data)] = data

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        del self.live[size:]
        self.live.extend(bytes(size - len(self.live)))

    def sync(self, rng: random.Random) -> None:
        (os.fsync if rng.random() < 0.5 else os.fdatasync)(self.fd)
        self.synced = bytes(self.live)

    def check_live(self) -> None:
        reader = os.open(self.path, os.O_RDONLY)
        try:
            assert os.fstat(reader).st_size == len(self.live)
            assert os.pread(reader, len(self.live) + 10, 0) == bytes(self.live)
        finally:
            os.close(reader)

    def close(self) -> None:
        os.close(self.fd)


def random_operations(files: list[ModelFile], rng: random.Random, count: int) -> None:
    for step in range(count):
        target = rng.choice(files)
        roll = rng.random()
        if roll < 0.7:
            offset = rng.randrange(MAX_OFFSET)
            target.write(offset, rng.randbytes(rng.choice([1, 7, 100, 4096, 5000, 13_000])))
        elif roll < 0.8:
            target.truncate(rng.randrange(MAX_OFFSET))
        elif roll < 0.9:
            target.sync(rng)
        else:
            target.check_live()
        if step % 25 == 0:
            for each in files:
                each.check_live()


def test_random_operations_then_cut_leave_the_synced_image(powerloss: PowerLossMount) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"seed={seed}")
    images = [b""] * FILES
    for round_number in range(3):
        files = [
            ModelFile(powerloss.mountpoint / f"f{index}", image)
            for index, image in enumerate(images)
        ]
        random_operations(files, rng, 300)
        for each in files:
            each.check_live()
            each.close()
        images = [each.synced for each in files]
        stats = powerloss.cut()
        print(f"round {round_number}: {stats}")
        assert stats.writes > 0
        powerloss.start()
        for index, image in enumerate(images):
            path = powerloss.mountpoint / f"f{index}"
            assert path.read_bytes() == image, f"seed={seed} round={round_number} file={path}"
            assert (powerloss.backing / f"f{index}").read_bytes() == image
