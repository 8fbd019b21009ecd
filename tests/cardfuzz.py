"""A mutator over real card images, and a worker process that ingests (and clears) each mutant.

Used by tests/test_card_fuzz.py (hypothesis, a fixed seed, a modest number of examples) and by
bench/fuzz-cards (a longer run that reports what it finds).

- :func:`build_base` makes a real card of each kind once (mkfs.vfat -F 12/16/32 with mtools, mkfs.exfat
  with exfat-fuse) and maps its structures with the tests' own parser: FAT entries in use, directory
  slots, short entries and exFAT entry sets.
- :func:`draw_mutations` draws flipped FAT entries, directory bytes, sizes, attributes, first clusters,
  names and exFAT stream fields (checksums fixed or not) through a ``Chooser`` that hypothesis or a
  plain ``random.Random`` drives.
- :class:`Worker` is one ``python tests/cardfuzz.py --worker`` process under a memory limit
  (RLIMIT_AS); it runs the real ``avlog.ingest.pipeline.ingest`` (and, on FAT cards whose ingest had
  no failure, ``clear_card``) for each image it is sent. An example that does not answer in time is a
  hang: the worker is killed and a new one started.
- :func:`problems` lists every broken promise in one outcome: a hang, a crash, an exception other than
  a one-line SourceError, an item without a status or reason, a listed entry not counted, an unsafe
  stored path, an object that is not what its name says, a clearing that wrote outside what it deleted.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MEMORY_HEADROOM = 768 << 20  # what one example may add to the worker's address space
KNOWN_REFUSALS = (
    "cannot read the filesystem",
    "cannot read the directory tree",
    "no FAT or exFAT filesystem",
    "is shorter than the filesystem",
    "too small to hold",
)


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[Any]) -> Any: ...


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[Any]) -> Any:
        return self.rng.choice(list(options))


# -- the base cards ----------------------------------------------------------------------------------


@dataclass
class Base:
    kind: str
    image: bytes
    bits: int
    cluster_count: int
    cluster_size: int
    fat_entries: list[tuple[int, int]]  # (cluster, image offset of its entry in the first FAT) for clusters in use
    fat_copies: list[int]  # image offsets of each FAT copy
    fat_size: int
    fsinfo: int | None  # image offset of the FAT32 FSInfo sector
    slots: list[int]  # image offsets of every live directory slot (long-name parts, short entries, exFAT sets)
    entries: list[int]  # image offsets of short entries (FAT) or of the file entry of each set (exFAT)
    sets: list[list[int]] = field(default_factory=list)  # exFAT: the slots of each entry set
    regions: list[tuple[int, int]] = field(default_factory=list)  # where directory slots may lie: (start, end)


def base_files() -> dict[str, bytes]:
    from cardcraft import clip

    return {
        "DCIM/100MEDIA/CLIP0001.MP4": clip(1),
        "DCIM/100MEDIA/CLIP0002.MP4": clip(2),
        "DCIM/100MEDIA/Long name clip.mp4": clip(3),
        "DCIM/101MEDIA/录像0004.mp4": clip(4),
        "REC0005.WAV": clip(5)[:3000],
        "CFG/SET.INI": b"serial=BC-0001\n",
    }


def build_base(kind: str, folder: Path) -> Base:
    """A real card of ``kind`` holding :func:`base_files`, mapped by the tests' own parser."""
    from cardcraft import Exfat, Fat, make_card

    image = make_card(kind, folder / f"{kind}.img", base_files())
    data = image.read_bytes()
    if kind == "exfat":
        ex = Exfat(image)
        sets: list[list[int]] = []
        stack: list[Any] = [None]
        clusters: set[int] = set(ex.chain(ex.root_cluster))
        while stack:
            folder_set = stack.pop()
            for s in ex.sets(folder_set):
                sets.append(s.offsets)
                n = -(-s.size // ex.cluster_size)
                own = list(range(s.first, s.first + n)) if s.flags & 2 else ex.chain(s.first, n)
                clusters.update(own)
                if s.attributes & 0x10:
                    stack.append(s)
        fat_entries = [(c, ex.fat_at + 4 * c) for c in sorted(clusters)]
        region = (ex.data, len(data))
        return Base(kind, data, 32, ex.clusters, ex.cluster_size, fat_entries, [ex.fat_at],
                    4 * (ex.clusters + 2), None, [o for s in sets for o in s], [s[0] for s in sets], sets,
                    [region])  # fmt: skip
    fat = Fat(image)
    slots: list[int] = []
    entries: list[int] = []
    clusters = set(fat.chain(fat.root_cluster)) if fat.bits == 32 else set()
    for entry in fat.walk():
        slots += entry.slots
        entries.append(entry.offset)
        first = fat.cluster_of(entry)
        if first:
            limit = -(-entry.size // fat.cluster_size) if not entry.attr & 0x10 else None
            clusters.update(fat.chain(first, limit))
    width_of = {12: 0, 16: 2, 32: 4}[fat.bits]
    fat_entries = [(c, fat.fat_offset(0) + (c * 3 // 2 if fat.bits == 12 else c * width_of)) for c in sorted(clusters)]
    regions = [(fat.data, len(data))] + ([(fat.root, fat.data)] if fat.bits != 32 else [])
    return Base(kind, data, fat.bits, fat.clusters, fat.cluster_size, fat_entries,
                [fat.fat_offset(n) for n in range(fat.fats)], fat.fat_sectors * fat.bps,
                fat.fsinfo * fat.bps if fat.bits == 32 else None, slots, entries, [], regions)  # fmt: skip


# -- mutations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    what: str
    offset: int  # image offset of what is changed
    data: bytes  # the bytes written there
    note: str = ""

    def describe(self) -> str:
        return f"{self.what} @{self.offset}: {self.data.hex()} {self.note}".strip()


def _fat_value(base: Base, chooser: Chooser, cluster: int) -> tuple[int, str]:
    bits = base.bits
    top = 0xFFFFFFFF if base.kind == "exfat" else (1 << bits) - 1
    used = [c for c, _o in base.fat_entries]
    options: list[tuple[int, str]] = [
        (0, "free"),
        (top - 8, "bad") if base.kind == "exfat" else ({12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[bits], "bad"),
        (top, "end"),
        (cluster, "itself"),
        (chooser.choice(used), "another cluster in use"),
        (base.cluster_count + 2 + chooser.integer(0, 100), "off the volume"),
        (chooser.integer(0, top), "any"),
        (1, "reserved"),
    ]
    return chooser.choice(options)


def _fat_bytes(base: Base, cluster: int, value: int, old: bytes) -> bytes:
    if base.kind == "exfat":
        return value.to_bytes(4, "little")
    if base.bits == 12:
        span = int.from_bytes(old, "little")
        new = (span & 0x000F) | (value << 4) if cluster & 1 else (span & 0xF000) | value
        return new.to_bytes(2, "little")
    return value.to_bytes(base.bits // 8, "little")


def draw_mutation(base: Base, chooser: Chooser, image: bytearray) -> list[Mutation]:
    """One change to a card: what it is, and the bytes it writes."""
    kinds = ["fat", "fat", "dirbyte", "size", "attr", "cluster", "name"]
    if base.kind == "exfat":
        kinds += ["stream", "stream", "count"]
    what = chooser.choice(kinds)
    if what == "fat":
        cluster, offset = chooser.choice(base.fat_entries)
        value, why = _fat_value(base, chooser, cluster)
        width = 4 if base.kind == "exfat" else (2 if base.bits == 12 else base.bits // 8)
        new = _fat_bytes(base, cluster, value, bytes(image[offset : offset + width]))
        out = [Mutation("fat", offset, new, f"cluster {cluster} -> {value:#x} ({why})")]
        if base.kind != "exfat" and len(base.fat_copies) > 1 and chooser.integer(0, 3):  # mostly in every copy
            for copy in base.fat_copies[1:]:
                out.append(Mutation("fat", offset - base.fat_copies[0] + copy, new, "same in the other copy"))
        return out
    if base.kind == "exfat":
        set_slots = chooser.choice(base.sets)
        primary, stream = set_slots[0], set_slots[1]
        fix = chooser.integer(0, 3) > 0  # mostly with a right checksum, so the deeper checks are reached
        if what == "stream":
            field_at, width = chooser.choice([(1, 1), (3, 1), (8, 8), (20, 4), (24, 8)])
            top = (1 << (8 * width)) - 1
            value = chooser.choice(
                [0, 1, top, top >> 1 ^ top, chooser.integer(0, top), base.cluster_size * chooser.integer(1, 64) + 1]
            )
            value &= (1 << (8 * width)) - 1
            change = [Mutation("stream", stream + field_at, value.to_bytes(width, "little"))]
        elif what == "count":
            change = [Mutation("secondary count", primary + 1, bytes([chooser.integer(0, 255)]))]
        elif what == "attr":
            change = [Mutation("attributes", primary + 4, bytes([chooser.integer(0, 255)]))]
        elif what == "size":
            change = [Mutation("size", stream + 24, chooser.integer(0, 1 << 34).to_bytes(8, "little"))]
        elif what == "cluster":
            change = [Mutation("first cluster", stream + 20, _cluster(base, chooser).to_bytes(4, "little"))]
        elif what == "name":
            slot = chooser.choice(set_slots[2:]) if len(set_slots) > 2 else stream
            unit = chooser.choice([b"/\x00", b".\x00", b"\x00\x00", b"\x00\xd8", b"\x1b\x00", b"\\\x00"])
            change = [Mutation("name", slot + 2 + 2 * chooser.integer(0, 14), unit)]
        else:
            slot = chooser.choice(set_slots)
            change = [Mutation("dirbyte", slot + chooser.integer(0, 31), bytes([chooser.integer(0, 255)]))]
        if fix:
            change.append(Mutation("checksum", primary + 2, b"", "recomputed"))
        return change
    entry = chooser.choice(base.entries)
    if what == "dirbyte":
        slot = chooser.choice(base.slots)
        return [Mutation("dirbyte", slot + chooser.integer(0, 31), bytes([chooser.integer(0, 255)]))]
    if what == "size":
        value = chooser.choice([0, 1, 0xFFFFFFFF, base.cluster_size * chooser.integer(1, 600) + chooser.integer(-1, 1),
                                chooser.integer(0, 0xFFFFFFFF)])  # fmt: skip
        return [Mutation("size", entry + 28, max(0, value).to_bytes(4, "little"))]
    if what == "attr":
        value = chooser.choice([0x08, 0x10, 0x0F, 0x18, 0x28, chooser.integer(0, 255)])
        return [Mutation("attr", entry + 11, bytes([value]))]
    if what == "cluster":
        value = _cluster(base, chooser)
        out = [Mutation("first cluster", entry + 26, (value & 0xFFFF).to_bytes(2, "little"))]
        if base.bits == 32:
            out.append(Mutation("first cluster (high)", entry + 20, (value >> 16 & 0xFFFF).to_bytes(2, "little")))
        return out
    name = chooser.choice([b".          ", b"..         ", b"A/B     MP4", b"\x00ULL    MP4", b"\x05LIP    MP4",
                           b"\xe5LIP    MP4", b"CLIP0001MP4", bytes([chooser.integer(0, 255)]) * 11])  # fmt: skip
    return [Mutation("name", entry, name)]


def _cluster(base: Base, chooser: Chooser) -> int:
    used = [c for c, _o in base.fat_entries]
    return int(chooser.choice([0, 1, chooser.choice(used), base.cluster_count + 1, base.cluster_count + 2,
                               chooser.integer(0, 0x0FFFFFFF)]))  # fmt: skip


def exfat_checksum(entries: bytes) -> int:
    total = 0
    for i, byte in enumerate(entries):
        if i in (2, 3):
            continue
        total = ((0x8000 if total & 1 else 0) + (total >> 1) + byte) & 0xFFFF
    return total


def apply(base: Base, image: bytearray, mutations: list[Mutation]) -> None:
    for m in mutations:
        if m.what == "checksum":
            set_slots = next(s for s in base.sets if s[0] == m.offset - 2)
            count = min(image[set_slots[0] + 1], 18)
            slots = [set_slots[0] + 32 * i for i in range(count + 1)] if set_slots else []
            if any(s + 32 > len(image) for s in slots):
                continue
            whole = b"".join(bytes(image[s : s + 32]) for s in slots)
            image[m.offset : m.offset + 2] = exfat_checksum(whole).to_bytes(2, "little")
            continue
        image[m.offset : m.offset + len(m.data)] = m.data


def draw_mutations(base: Base, chooser: Chooser) -> tuple[bytes, list[Mutation]]:
    image = bytearray(base.image)
    mutations: list[Mutation] = []
    for _ in range(chooser.integer(1, 4)):
        change = draw_mutation(base, chooser, image)
        apply(base, image, change)
        mutations += change
    return bytes(image), mutations


# -- the worker --------------------------------------------------------------------------------------


def _worker() -> None:
    """Read one job per line on stdin, answer one JSON document per line on stdout."""
    import resource
    import traceback
    from zoneinfo import ZoneInfo

    from avlog.context import init_store, open_context
    from avlog.errors import AvlogError
    from avlog.ingest.clearing import ClearRefused, clear_card
    from avlog.ingest.pipeline import ingest
    from avlog.ingest.sources import CardImageSource, open_source

    tz = ZoneInfo("Asia/Shanghai")
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_HEADROOM, vm + MEMORY_HEADROOM))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        doc: dict[str, Any] = {}
        try:
            store = Path(job["store"])
            init_store(store, actor="fuzz")
            ctx = open_context(store, actor="fuzz")
            try:
                source = open_source(Path(job["image"]), tz)
                try:
                    doc["listed"] = len(list(source.entries()))
                    report = ingest(ctx, source, "FUZZ-1", allow_unregistered=True)
                    doc["items"] = [
                        {"path": i.original_path, "status": i.status, "error": i.error, "blake3": i.blake3}
                        for i in report.items
                    ]
                    doc["skipped"] = report.skipped
                    doc["bad_objects"] = [
                        i.original_path
                        for i in report.items
                        if i.blake3 and ctx.objects.check(i.blake3, i.size, i.sha256) is not None
                    ]
                    fat = isinstance(source, CardImageSource) and source.kind == "fat"
                    if job.get("clear") and fat and report.items and not report.failed:
                        try:
                            doc["cleared"] = clear_card(ctx, source, report, confirmed=True).deleted
                        except ClearRefused as exc:
                            doc["clear_refused"] = str(exc)
                finally:
                    source.close()
            finally:
                ctx.close()
        except AvlogError as exc:
            doc["error"] = {"class": type(exc).__name__, "message": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - what the fuzzer is looking for
            doc["crash"] = "".join(traceback.format_exception(exc))
        print(json.dumps(doc), flush=True)


class Worker:
    """One worker process; :meth:`run` restarts it after a hang or a death."""

    def __init__(self, timeout: float = 30):
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert json.loads(ready) == {"ready": True}, ready
        return proc

    def run(self, image: Path, store: Path, *, clear: bool) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"image": str(image), "store": str(store), "clear": clear}) + "\n")
        self.proc.stdin.flush()
        started = time.monotonic()
        ready, _w, _x = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.close()
            return {"hang": self.timeout}
        answer = self.proc.stdout.readline()
        if not answer:
            code = self.proc.wait()
            self.close()
            return {"died": code}
        doc: dict[str, Any] = json.loads(answer)
        doc["seconds"] = round(time.monotonic() - started, 3)
        return doc

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None


# -- the promises ------------------------------------------------------------------------------------


def _unsafe(path: str) -> bool:
    parts = path[:-1].split("/") if path.endswith("/") else path.split("/")
    if path == "/":
        return False
    return any(p in ("", ".", "..") for p in parts) or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path)


def problems(base: Base, before: bytes, after: bytes, doc: dict[str, Any]) -> list[str]:
    """Every promise the outcome breaks (empty when it keeps them all)."""
    found: list[str] = []
    if "hang" in doc:
        return [f"no answer within {doc['hang']} s"]
    if "died" in doc:
        return [f"the worker died (exit {doc['died']}; memory limit?)"]
    if "crash" in doc:
        return ["an exception escaped:\n" + doc["crash"]]
    if "error" in doc:
        error = doc["error"]
        if error["class"] != "SourceError" or not any(k in error["message"] for k in KNOWN_REFUSALS):
            found.append(f"unexpected error {error['class']}: {error['message']}")
        if "\n" in error["message"]:
            found.append("an error of more than one line")
        if after != before:
            found.append("the card was written although it was refused")
        return found
    items = doc["items"]
    for item in items:
        if item["status"] not in ("stored", "duplicate", "failed"):
            found.append(f"{item['path']}: status {item['status']}")
        if item["status"] == "failed" and not item["error"]:
            found.append(f"{item['path']}: failed without a reason")
        if item["status"] != "failed" and not item["blake3"]:
            found.append(f"{item['path']}: stored without a digest")
        if _unsafe(item["path"]):
            found.append(f"unsafe stored path {item['path']!r}")
    if doc["listed"] != len(items) + sum(doc["skipped"].values()):
        found.append(f"{doc['listed']} entries listed but {len(items)} items and {doc['skipped']} skipped")
    if doc["bad_objects"]:
        found.append(f"objects that are not what their names say: {doc['bad_objects']}")
    if "cleared" in doc:
        found += _clearing_problems(base, before, after, len(doc["cleared"]))
    elif after != before:
        found.append("the card was written although it was not cleared")
    return found


def _clearing_problems(base: Base, before: bytes, after: bytes, deleted: int) -> list[str]:
    """A clearing may change FAT entries, the FSInfo count, and the first byte of directory slots (to 0xE5)."""
    from cardcraft import changed_offsets

    found = []
    short_marked = 0
    for offset in changed_offsets(before, after):
        if any(copy <= offset < copy + base.fat_size for copy in base.fat_copies):
            continue
        if base.fsinfo is not None and base.fsinfo + 488 <= offset < base.fsinfo + 492:
            continue
        aligned = any(start <= offset < end and (offset - start) % 32 == 0 for start, end in base.regions)
        if not aligned or after[offset] != 0xE5:
            found.append(f"clearing changed byte {offset} ({before[offset]:#x} -> {after[offset]:#x})")
            continue
        if before[offset + 11] & 0x3F != 0x0F:
            short_marked += 1
    if short_marked != deleted:
        found.append(f"clearing reported {deleted} files deleted but marked {short_marked} entries deleted")
    return found


def run_one(
    worker: Worker, base: Base, image: bytes, work: Path, n: int, clear: bool
) -> tuple[dict[str, Any], list[str]]:
    folder = work / f"ex{n}"
    folder.mkdir(parents=True)
    path = folder / "card.img"
    path.write_bytes(image)
    try:
        doc = worker.run(path, folder / "store", clear=clear)
        after = path.read_bytes()
        return doc, problems(base, image, after, doc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe(mutations: list[Mutation]) -> str:
    return "; ".join(m.describe() for m in mutations)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("LC_ALL", "C.UTF-8")
    _worker()
