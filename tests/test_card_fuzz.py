"""A fuzzer over real card images: every mutant card is ingested (and, on FAT, cleared) by the real code.

The base cards (FAT12, FAT16, FAT32, exFAT) are made once per module by the real tools; hypothesis draws
flipped FAT entries, directory bytes, sizes, attributes, first clusters, names and exFAT stream fields.
Each mutant goes to a worker process under a memory limit (RLIMIT_AS) with a time limit per example;
the promises checked are tests/cardfuzz.py's :func:`problems`. A fixed seed and a modest number of
examples keep this in the default suite; ``bench/fuzz-cards`` runs longer campaigns.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cardcraft import KINDS
from cardfuzz import Base, Worker, build_base, describe, draw_mutations, run_one

EXAMPLES = 12  # per kind of card


class DataChooser:
    """Draws through hypothesis, so a failing example shrinks to a small one."""

    def __init__(self, data: st.DataObject):
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(list(options)))


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Base]:
    folder = tmp_path_factory.mktemp("fuzz-bases")
    made: dict[str, Base] = {}

    def get(kind: str) -> Base:
        if kind not in made:
            made[kind] = build_base(kind, folder)
        return made[kind]

    return get


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    runner = Worker(timeout=30)
    try:
        yield runner
    finally:
        runner.close()


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_cards_end_and_account_for_every_file(
    kind: str, bases: Callable[[str], Base], worker: Worker, tmp_path: Path
) -> None:
    base = bases(kind)
    numbers = itertools.count()
    outcomes: list[str] = []

    @seed(20261202)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.data())
    def mutant(data: st.DataObject) -> None:
        image, mutations = draw_mutations(base, DataChooser(data))
        doc, found = run_one(worker, base, image, tmp_path, next(numbers), clear=kind != "exfat")
        outcomes.append("error" if "error" in doc else "cleared" if "cleared" in doc else "ingested")
        assert not found, describe(mutations) + "\n" + "\n".join(found)

    mutant()
    assert len(outcomes) >= EXAMPLES
