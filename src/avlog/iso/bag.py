"""The files a disc carries besides the clips: a BagIt bag (RFC 8493) with a catalog excerpt and READMEs.

Pure: every function renders bytes from what it is given. The layout from the disc's root::

    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
    data/README.txt                  what the disc is, why it exists, how to check it (Chinese and English)
    data/catalog.json                every clip: device, custodian, times, hashes, flags, cases
    data/EXPLANATION.txt             evidence discs only: the Art. 21 explanation, printable
    data/<device>/<date>/<name>      the clips, byte for byte

``manifest-sha256.txt`` has the form ``sha256sum -c`` reads, so the disc checks with stock tools.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: The bag's own files, at fixed paths: everything on a disc that is not a clip.
BAG_FILES = (
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "tagmanifest-sha256.txt",
    "data/README.txt",
    "data/catalog.json",
    "data/EXPLANATION.txt",
)

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

#: Art. 20 (1)-(4), as the README names them (both languages: the disc must speak for itself).
REASON_TEXTS = {
    "dispute": (
        "当事人提出异议、投诉或申诉 (第二十条第一项)",
        "the party objected, complained or petitioned (Art. 20 (1))",
    ),
    "obstruction": (
        "当事人逃避、拒绝、阻挠执法，或者辱骂、殴打执法人员 (第二十条第二项)",
        "the party evaded, refused or obstructed, or abused or assaulted officers (Art. 20 (2))",
    ),
    "incident": ("群体性事件或者突发事件 (第二十条第三项)", "a mass incident or an emergency (Art. 20 (3))"),
    "other": ("其他需要长期保存的情形 (第二十条第四项)", "another case needing long-term keeping (Art. 20 (4))"),
}


@dataclass(frozen=True)
class DiscClip:
    """A clip as the disc describes it; ``entry`` is its catalog.json record."""

    path: str  # from the disc's root: data/...
    size: int
    sha256: str
    blake3: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class DiscInfo:
    volume_id: str
    created: str  # ISO 8601, the store's zone
    organisation: str
    made_by: str
    store: str  # host:path of the store the clips came from
    store_id: str  # the store's identity (see avlog.iso.registry.store_id), also the volume set id
    software: str
    purpose: str  # archive | evidence
    reasons: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    evidence_case: dict[str, Any] | None = None
    group: str = ""  # the burn-iso run: its discs share this
    index: int = 1
    count: int = 1
    #: The store's audit head when the disc was made (an anchor of the chain, see avlog.store.anchor).
    audit_head: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def manifest_line(sha256: str, path: str) -> str:
    # RFC 8493 2.1.3: only CR, LF and % are percent-encoded in manifest paths.
    encoded = path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"{sha256}  {encoded}\n"


def catalog_json(info: DiscInfo, clips: Sequence[DiscClip]) -> bytes:
    document = {
        "format": "avlog-disc-catalog/1",
        "disc": {
            "volume_id": info.volume_id,
            "created": info.created,
            "organisation": info.organisation,
            "made_by": info.made_by,
            "store": info.store,
            "store_id": info.store_id,
            "software": info.software,
            "purpose": info.purpose,
            "reasons": list(info.reasons),
            "cases": list(info.cases),
            "evidence_case": info.evidence_case,
            "disc": f"{info.index} of {info.count}",
            "group": info.group,
            "audit_head": info.audit_head,
        },
        "clips": [{"path": c.path, **c.entry} for c in clips],
    }
    return (json.dumps(document, ensure_ascii=False, indent=1, sort_keys=False) + "\n").encode("utf-8")


def catalog_entry_bytes(entry: dict[str, Any], path: str) -> int:
    """What one clip adds to catalog.json (for the packing bound)."""
    return len(json.dumps({"path": path, **entry}, ensure_ascii=False, indent=1).encode("utf-8")) + 64


def _reasons_lines(info: DiscInfo) -> tuple[list[str], list[str]]:
    zh: list[str] = []
    en: list[str] = []
    for reason in info.reasons:
        z, e = REASON_TEXTS.get(reason, (reason, reason))
        zh.append(f"  - {z}")
        en.append(f"  - {e}")
    if info.cases:
        zh.append("  - 案件: " + ", ".join(info.cases))
        en.append("  - cases: " + ", ".join(info.cases))
    return zh or ["  - (无)"], en or ["  - (none)"]


def readme(info: DiscInfo, clips: Sequence[DiscClip]) -> bytes:
    zh_reasons, en_reasons = _reasons_lines(info)
    payload = sum(c.size for c in clips)
    evidence_zh = evidence_en = ""
    if info.evidence_case:
        case_no = info.evidence_case["case_no"]
        evidence_zh = f"本光盘是案件 {case_no} 的证据光盘 (第二十一条)，说明见 data/EXPLANATION.txt。\n"
        evidence_en = f"This is an evidence disc for case {case_no} (Art. 21); see data/EXPLANATION.txt.\n"
    text = f"""\
{info.volume_id} — {info.organisation or "-"}
=====================================================================

【中文】
这是什么
  本光盘保存执法音视频记录 {len(clips)} 个文件（共 {payload} 字节），光盘编号 {info.volume_id}，
  {info.created} 由 {info.made_by} 从 {info.store} 制作（{info.software}），
  本组共 {info.count} 张，这是第 {info.index} 张。
  {evidence_zh}
为什么保存
  这些记录依照执法音视频记录管理规定第二十条需要长期保存，或者是下列案件的证据（第十九条、第二十一条）：
{chr(10).join(zh_reasons)}

文件在哪里
  data/<设备编号>/<录制日期>/<原文件名>   原始录像，逐字节未改动
  data/catalog.json                         每个文件的设备、保管人、录制时间、哈希值、标记、案件
  manifest-sha256.txt                       每个文件的 SHA-256

如何核对（不需要 avlog）
  Linux / macOS，在光盘根目录执行：
      sha256sum -c manifest-sha256.txt        （macOS: shasum -a 256 -c manifest-sha256.txt）
  每行应显示 "OK"。Windows PowerShell：
      Get-FileHash -Algorithm SHA256 data\\...\\文件名
  并与 manifest-sha256.txt 中的值比较。BLAKE3 值（b3sum）见 data/catalog.json。
  本光盘根目录是一个 BagIt 包 (RFC 8493)，也可以用 bagit.py --validate 检查。

【English】
What this is
  This disc holds {len(clips)} law-enforcement audio/video recordings ({payload} bytes), disc
  {info.volume_id}, made on {info.created} by {info.made_by} from {info.store} ({info.software}),
  disc {info.index} of {info.count} of its set.
  {evidence_en}
Why it exists
  These recordings must be kept long-term under Art. 20 of the rules on law-enforcement recordings,
  or are evidence in the cases below (Art. 19, 21):
{chr(10).join(en_reasons)}

Where things are
  data/<device>/<recording date>/<original name>   the recordings, byte for byte unaltered
  data/catalog.json                                 each file's device, custodian, times, hashes, flags, cases
  manifest-sha256.txt                               the SHA-256 of every file

How to check it (no avlog needed)
  On Linux or macOS, from the root of the disc:
      sha256sum -c manifest-sha256.txt        (macOS: shasum -a 256 -c manifest-sha256.txt)
  Every line must say "OK". On Windows, in PowerShell:
      Get-FileHash -Algorithm SHA256 data\\...\\NAME
  and compare with manifest-sha256.txt. BLAKE3 digests (b3sum) are in data/catalog.json.
  The disc's root is a BagIt bag (RFC 8493): bagit.py --validate checks it as well.
"""
    return text.replace("\n  \n", "\n").encode("utf-8")


def explanation(info: DiscInfo, clips: Sequence[DiscClip]) -> bytes:
    """Art. 21: who made the footage, who extracted it, when, from which store, with the hashes. Printable."""
    case = info.evidence_case or {}
    lines = [
        "证据提取说明 / Explanation of the extraction of evidence (Art. 21)",
        "=" * 72,
        f"案件编号 Case number:            {case.get('case_no', '-')}",
        f"案件名称 Case title:             {case.get('title') or '-'}",
        f"光盘编号 Disc:                   {info.volume_id}  ({info.index} / {info.count})",
        f"提取人 Extracted by:             {info.made_by}",
        f"提取时间 Extracted at:           {info.created}",
        f"提取来源 Extracted from:         {info.store}",
        f"单位 Organisation:               {info.organisation or '-'}",
        f"软件 Software:                   {info.software}",
        f"文件数量 Number of files:        {len(clips)}",
        "",
        "以下录像由所列执法记录设备制作，由上述提取人从存储中逐字节复制，未作任何改动；",
        "每个文件的 SHA-256 与 BLAKE3 值与入库时记录的值一致（刻录前已逐一核对）。",
        "The recordings below were made with the recorders listed, copied byte for byte from the store by",
        "the person above, unaltered; each file's SHA-256 and BLAKE3 equal the values recorded at ingest",
        "(checked one by one before the disc was recorded).",
        "",
    ]
    for n, clip in enumerate(clips, start=1):
        e = clip.entry
        lines += [
            f"[{n}] {clip.path}",
            f"    制作设备 Recorder:          {e.get('device_serial')}   保管人 Custodian: {e.get('custodian') or '-'}",
            f"    录制时间 Recorded:          {e.get('recorded_start') or '-'}  —  {e.get('recorded_end') or '-'}",
            f"    入库时间 Handed over:       {e.get('ingested_at') or '-'}",
            f"    原文件 Original file:       {e.get('original_path')}",
            f"    大小 Size (bytes):          {clip.size}",
            f"    SHA-256:                    {clip.sha256}",
            f"    BLAKE3:                     {clip.blake3}",
            "",
        ]
    lines += [
        "-" * 72,
        "提取人签名 Signature of the person who extracted:   ______________________   日期 Date: __________",
        "",
        "见证人签名 Signature of the witness:                ______________________   日期 Date: __________",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def explanation_bytes_per_clip(path: str, entry: dict[str, Any]) -> int:
    """An upper bound of what one clip adds to the explanation (for the packing bound)."""
    return 700 + 3 * len(path.encode()) + 3 * len(str(entry.get("original_path", "")).encode())


def bag_info(info: DiscInfo, clips: Sequence[DiscClip], data_files: int, data_bytes: int, bagging_date: str) -> bytes:
    fields: list[tuple[str, str]] = [
        ("Source-Organization", info.organisation or "-"),
        ("External-Identifier", info.volume_id),
        ("External-Description", f"avlog {info.purpose} disc: {len(clips)} recordings kept under Art. 20-21"),
        ("Bagging-Date", bagging_date),
        ("Bag-Software-Agent", info.software),
        ("Bag-Group-Identifier", info.group or info.volume_id),
        ("Bag-Count", f"{info.index} of {info.count}"),
        ("Payload-Oxum", f"{data_bytes}.{data_files}"),
        ("Avlog-Purpose", info.purpose),
        ("Avlog-Clip-Count", str(len(clips))),
        ("Avlog-Made-By", info.made_by),
        ("Avlog-Store", info.store),
        ("Avlog-Store-Id", info.store_id),
    ]
    if info.audit_head:
        fields.append(("Avlog-Audit-Head", f"{info.audit_head['seq']}:{info.audit_head['hash']}"))
    fields += [("Avlog-Art20-Reason", r) for r in info.reasons]
    fields += [("Avlog-Case", c) for c in info.cases]
    if info.evidence_case:
        fields.append(("Avlog-Evidence-For", str(info.evidence_case.get("case_no"))))
    text = "".join(f"{k}: {' '.join(str(v).split())}\n" for k, v in fields)
    return text.encode("utf-8")


@dataclass(frozen=True)
class TagFile:
    path: str
    content: bytes


def bag_files(info: DiscInfo, clips: Sequence[DiscClip], bagging_date: str) -> list[TagFile]:
    """Every file of the bag except the clips' own bytes: data/ extras, then the tag files."""
    extras = [TagFile("data/README.txt", readme(info, clips)), TagFile("data/catalog.json", catalog_json(info, clips))]
    if info.evidence_case:
        extras.append(TagFile("data/EXPLANATION.txt", explanation(info, clips)))
    manifest = "".join(manifest_line(c.sha256, c.path) for c in sorted(clips, key=lambda c: c.path))
    manifest += "".join(manifest_line(hashlib.sha256(t.content).hexdigest(), t.path) for t in extras)
    data_bytes = sum(c.size for c in clips) + sum(len(t.content) for t in extras)
    tags = [
        TagFile("bagit.txt", BAGIT_TXT),
        TagFile("bag-info.txt", bag_info(info, clips, len(clips) + len(extras), data_bytes, bagging_date)),
        TagFile("manifest-sha256.txt", manifest.encode("utf-8")),
    ]
    tagmanifest = "".join(manifest_line(hashlib.sha256(t.content).hexdigest(), t.path) for t in tags)
    tags.append(TagFile("tagmanifest-sha256.txt", tagmanifest.encode("utf-8")))
    return extras + tags


def parse_manifest(text: bytes) -> dict[str, str]:
    """``path -> sha256`` from a manifest file."""
    result = {}
    for line in text.decode("utf-8", "replace").splitlines():
        digest, sep, path = line.partition("  ")
        if not sep:
            digest, sep, path = line.partition(" ")
        if sep:
            result[path.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")] = digest.strip().lower()
    return result
