#!/usr/bin/env python3
"""Turns one bench/run.sh run into a Markdown section and puts it into the results file, replacing
the section of the same filesystem and disk size (so a quick run never overwrites a full one, nor
an XFS run an ext4 one) and keeping bench/restore.sh's sections after the backup ones. Prints the
section.

Usage: report.py FACTS ROWS MANIFEST RESULTS [PHASES]
  FACTS     key=value lines: the machine, the tools, the disk
  ROWS      tab-separated: id, cache (cold|warm), seconds (or "na"), output bytes, peak RSS KiB,
            round; one line a run, several runs of a row (BENCH_RUNS rounds) summed up by their
            median
  MANIFEST  bench/mkdisk.sh's description of the disk's content
  PHASES    tab-separated: asrimg row id, cache, asrimg's own data-phase seconds (--json), round"""
import re
import statistics
import sys

LABELS = {
    "asrimg-{level}": "`asrimg backup --level {level}`",
    "asrimg-0": "`asrimg backup --level 0`",
    "partclone": "`partclone.{fs} -c \\| zstd -T0 -{level}`",
    "dd": "`dd bs=4M \\| zstd -T0 -{level}`",
    "zstd-limit": "compression limit: `zstd -T0 -{level}` of the used bytes",
    "fio-limit": "I/O limit: fio {engine} read of the used bytes (used.bin)",
    "fio-extents": "I/O limit, same extents: fio {engine} replay of asrimg's reads of the disk device",
    "fio-partition": "fio {engine} read of the partition (same byte count)",
}
# The baselines every row is compared with: (row id, cache state or None for "the same as the row").
BASELINES = [("partclone", None), ("dd", None), ("zstd-limit", None), ("fio-limit", "cold"), ("fio-extents", "cold")]
# How each filesystem is named in titles; sections are ordered by it, then by size, largest first.
FS_NAMES = {"ext4": "ext4", "xfs": "XFS", "btrfs": "btrfs"}
# How the disk line names the root: ext4's as it always did; the others with how they were made.
FS_ROOTS = {"ext4": "ext4",
            "xfs": "XFS (`mkfs.xfs` defaults, files copied in through a mount, then the aging ones deleted)",
            "btrfs": "btrfs (`mkfs.btrfs` defaults: single data, DUP metadata; files copied in through a mount "
                     "without compression, then the aging ones deleted)"}
HEAD = """# asrimg benchmark results

Written by `bench/run.sh` (see `bench/README.md`): one section per filesystem and disk size,
replaced when that filesystem and size are measured again. Every row of a section reads the same
root (ext4, or XFS or btrfs with `BENCH_FS`) of the same generated disk; MB/s is always the
root's used bytes (from `asrimg layout --json --extents`, 1 MB = 10^6 bytes) over the row's wall
time, so rows compare directly. Each row ran once per round, and the rounds repeated; seconds and
MB/s are the median run, with the slowest and fastest beside it. Ratios are medians over medians:
a row's MB/s over the baseline's, at the same cache state for partclone, dd and the compression
limit, against the cold I/O limits (the used bytes copied into one file, `used.bin`, and the same
extents read where asrimg reads them). Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` just
before; warm: straight after the cold run, so what it reads is in the page cache. Peak RSS is
summed over a pipeline's stages (the largest of the runs). The map step is timed apart, as
`asrimg layout DISK --volumes ROOT` (which computes the used maps a backup starts from), against
the backup's wall time.
"""


def mib(n: float) -> str:
    return "%.1f MiB" % (n / 2**20)


def round_ratios(by_round: dict, rid: str, cache: str, limit: str) -> dict:
    """round -> a row's speed over its limit's in the same round (seconds inverted)."""
    return {r: by_round[(limit, cache, r)] / secs for (i, c, r), secs in by_round.items()
            if i == rid and c == cache and (limit, cache, r) in by_round}


def paired_ratios(by_round: dict, level: str) -> list:
    """Median over rounds of a row's speed over its limit's in the same round."""
    out = []
    for rid, cache, limit, name in [("asrimg-0", "cold", "fio-limit", "level 0 cold / I/O limit (used.bin)"),
                                     ("asrimg-0", "cold", "fio-extents", "level 0 cold / I/O limit, same extents"),
                                     ("asrimg-" + level, "cold", "zstd-limit", "level %s cold / cold compression limit" % level),
                                     ("asrimg-" + level, "warm", "zstd-limit", "level %s warm / warm compression limit" % level)]:
        ratios = list(round_ratios(by_round, rid, cache, limit).values())
        if ratios:
            out.append("%s %.2f (%.2f–%.2f, %d rounds)" % (name, statistics.median(ratios), min(ratios), max(ratios),
                                                            len(ratios)))
    return out


def replay_note(facts: dict, by_round: dict, used: int) -> str:
    """What the same-extents limit replays, level 0 against it round by round, and the target."""
    reads, nbytes = int(facts["replay_reads"]), int(facts["replay_bytes"])
    text = ("The same-extents limit replays, with fio's `--read_iolog` (`--replay_no_stall=1`, O_DIRECT, "
            "16 in flight), the %d reads asrimg makes of the root on the device it backs up from, planned "
            "as `engine/source.c` plans them (up to 1 MiB each, in offset order, extents less than 64 KiB "
            "apart read as one through the gap, 4 KiB aligned): %s bytes, %s more than the used bytes; "
            "its MB/s, like asrimg's, counts the used bytes only. It ran just before level 0 cold in odd "
            "rounds and just after level 0 warm in even ones." % (reads, "{:,}".format(nbytes), mib(nbytes - used)))
    per = []
    for limit in ["fio-limit", "fio-extents"]:
        r = round_ratios(by_round, "asrimg-0", "cold", limit)
        if r:
            per.append("against %s %s" % ("used.bin" if limit == "fio-limit" else "the same extents",
                                          ", ".join("%.2f" % r[k] for k in sorted(r, key=int))))
    if per:
        text += " Level 0 cold over the limit round by round: " + "; ".join(per) + "."
    target = []
    for limit, name in [("fio-limit", "the used.bin limit"), ("fio-extents", "the same-extents limit")]:
        r = list(round_ratios(by_round, "asrimg-0", "cold", limit).values())
        if r:
            m = statistics.median(r)
            target.append("%s %.0f%%, %s" % (name, 100 * m, "met" if m >= 0.9 else "NOT met"))
    if target:
        text += (" Against the issue's target (level 0 at least 90% of the I/O limit, same-round median): "
                 + "; ".join(target) + ".")
    return text


def map_step(rows: list, by_round: dict, cache: str) -> tuple:
    """(the whole `asrimg layout` row, the blank-root baseline row, the median over rounds of the
    difference: the root's map itself) at one cache state; None where not measured."""
    med = {(r["id"], r["cache"]): r for r in rows if r["secs"]}
    net = [secs - by_round[("map-base", c, r)] for (i, c, r), secs in by_round.items()
           if i == "map" and c == cache and ("map-base", c, r) in by_round]
    return med.get(("map", cache)), med.get(("map-base", cache)), statistics.median(net) if net else None


def map_note(rows: list, by_round: dict, phases: list, level: str) -> list:
    """The map step (`asrimg layout`, less the same of the disk with an empty root) against the
    backup's wall time, and what the backup spends outside its data phase (its wall time less its
    own --json "seconds")."""
    med = {(r["id"], r["cache"]): r for r in rows if r["secs"]}
    out = []
    for cache in ("cold", "warm"):
        whole, base, net = map_step(rows, by_round, cache)
        if not whole:
            continue
        text = "%s: %.3f s (%.3f–%.3f)" % (cache, whole["secs"], whole["fastest"], whole["slowest"])
        if base and net is not None:
            text += ", of the blank-root copy %.3f s, the difference %.3f s" % (base["secs"], net)
        parts = []
        for rid in ("asrimg-" + level, "asrimg-0"):
            b = med.get((rid, cache))
            if b:
                parts.append("%s%.1f%% of `asrimg backup --level %s`'s %.2f s" % (
                    "%.1f%% (the whole command), " % (100 * whole["secs"] / b["secs"]) if net is not None else "",
                    100 * (whole["secs"] if net is None else net) / b["secs"], rid[7:], b["secs"]))
        out.append(text + (": " + "; ".join(parts) if parts else ""))
    if not out:
        return []
    text = ("The map step, timed as `asrimg layout DISK --volumes ROOT` (process start, the partition table, "
            "probing, every volume's used map: the root's, and the ESP's FAT; what a backup does before it "
            "reads data), and as the same command on a sparse copy of the disk with nothing in the root (the "
            "same without the root's map), run in pairs back to back (`BENCH_MAP_PAIRS` a round, either first by "
            "turns), medians of %d runs; the difference is the median of the differences within a pair, as a "
            "share of the backup's median wall time: %s." % (
                max(r["n"] for r in rows if r["id"] == "map"), "; ".join(out)))
    outside = {}
    for rid, cache, secs, rnd in phases:
        outside.setdefault((rid, cache), []).append(secs)
    extra = []
    for (rid, cache), inner in outside.items():
        b = med.get((rid, cache))
        if b:
            extra.append("level %s %s %.3f s (%.1f%%)" % (rid[7:], cache, b["secs"] - statistics.median(inner),
                                                         100 * (1 - statistics.median(inner) / b["secs"])))
    if extra:
        text += (" The backups' wall time less their own clock of the data phase (`--json` \"seconds\": "
                 "start, the map step, the image's index and trailer), medians: " + "; ".join(extra) + ".")
    return [text, ""]


def targets_note(rows: list, by_round: dict, level: str, fs: str) -> list:
    """Issue 15's targets for the XFS and btrfs roots: at least 2x partclone's speed (cold and
    warm), an image no larger than partclone | zstd's, the map step under 2% of the backup's time."""
    med = {(r["id"], r["cache"]): r for r in rows if r["secs"]}
    a, p = "asrimg-" + level, "partclone"
    out = []
    for cache in ("cold", "warm"):
        if (a, cache) in med and (p, cache) in med:
            x = med[(p, cache)]["secs"] / med[(a, cache)]["secs"]
            out.append("speed %s %.2fx partclone, %s" % (cache, x, "met" if x >= 2 else "NOT met"))
    if (a, "cold") in med and (p, "cold") in med and med[(a, "cold")]["out"] and med[(p, "cold")]["out"]:
        ai, pi = med[(a, "cold")]["out"], med[(p, "cold")]["out"]
        out.append("image %s against %s (%.3fx), %s" % (mib(ai), mib(pi), ai / pi, "met" if ai <= pi else "NOT met"))
    whole, _, net = map_step(rows, by_round, "cold")
    if whole and (a, "cold") in med:
        b = med[(a, "cold")]["secs"]
        if net is not None:
            out.append("map step (cold, the root's map: layout less its blank-root baseline) %.1f%% of the backup's "
                       "time, %s (the whole `asrimg layout` command: %.1f%%)" % (
                           100 * net / b, "met" if net / b < 0.02 else "NOT met", 100 * whole["secs"] / b))
        else:
            out.append("map step (cold, the whole `asrimg layout` command) %.1f%% of the backup's time, %s" % (
                100 * whole["secs"] / b, "met" if whole["secs"] / b < 0.02 else "NOT met"))
    if not out:
        return []
    return ["Against issue 15's targets for the %s root (`asrimg backup --level %s` against `partclone.%s -c | "
            "zstd -T0 -%s`, medians): %s." % (FS_NAMES[fs], level, fs, level, "; ".join(out)), ""]


def partclone_used(facts: dict, used: int) -> str:
    """partclone's own count of the root's used bytes (its log: blocks in use times block size)
    beside asrimg's map; for btrfs, asrimg's includes the DUP copies of metadata."""
    pc = int(facts["partclone_used"])
    return ("- partclone.%s's bitmap: %s bytes in use (its log), %s %s than asrimg's map%s" % (
        facts.get("fs", "ext4"), "{:,}".format(pc), mib(abs(used - pc)), "fewer" if pc <= used else "more",
        " (which also holds the second copy of DUP metadata)" if facts.get("fs") == "btrfs" else ""))


def machine_load(facts: dict) -> list:
    """A line on what else ran. No verdict: the kernel threads that do the loop devices' reads (every
    read of the disk here) count as outside the script, so this is far from 0 on an idle machine."""
    if "other_cpu" not in facts:
        return []
    other, ours = facts["other_cpu"].split()
    return ["- CPU time meanwhile: %s core-seconds outside this script's processes (the kernel threads that "
            "do the loop devices' reads included) beside its own %s, over the %s s it took on %s cores; load "
            "average (1, 5, 15 min) at its start / end: %s" % (other, ours, facts["script_seconds"],
                                                                facts["cores"], facts["load"])]


def main() -> int:
    facts_path, rows_path, manifest_path, results_path = sys.argv[1:5]
    facts = dict(line.rstrip("\n").split("=", 1) for line in open(facts_path) if "=" in line)
    phases = []
    if len(sys.argv) > 5:
        for line in open(sys.argv[5]):
            rid, cache, secs, rnd = line.rstrip("\n").split("\t")
            phases.append((rid, cache, float(secs), rnd))
    level = facts["level"]
    fs = facts.get("fs", "ext4")
    engine = facts["fio"].split("(")[-1].rstrip(")")
    used = int(facts["used_bytes"])
    runs = {}
    by_round = {}  # (id, cache, round) -> seconds
    for line in open(rows_path):
        rid, cache, secs, out, rss, rnd = line.rstrip("\n").split("\t")
        runs.setdefault((rid, cache), []).append((None if secs == "na" else float(secs), int(out), int(rss)))
        if secs != "na":
            by_round[(rid, cache, rnd)] = float(secs)
    rows = []
    for (rid, cache), rr in runs.items():  # in the order first measured
        secs = sorted(r[0] for r in rr if r[0] is not None)
        rows.append({"id": rid, "cache": cache, "n": len(secs),
                     "secs": statistics.median(secs) if secs else None,
                     "fastest": secs[0] if secs else None, "slowest": secs[-1] if secs else None,
                     "out": int(statistics.median(r[1] for r in rr)), "rss": max(r[2] for r in rr)})
    mbps = {(r["id"], r["cache"]): used / r["secs"] / 1e6 for r in rows if r["secs"]}

    labels = {k.format(level=level): v.format(level=level, engine=engine, fs=fs) for k, v in LABELS.items()}
    head = ["run", "cache", "seconds", "MB/s (used)", "MB/s range", "output", "used/output", "peak RSS",
            "× partclone", "× dd", "× zstd limit", "× I/O limit (used.bin)", "× I/O limit, same extents"]
    table = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
        if r["id"] in ("map", "map-base"):  # not a copy of the used bytes: their own paragraph
            continue
        label = labels.get(r["id"], r["id"])
        if r["secs"] is None:
            cells = [label, r["cache"], "not available (no `asrimg backup`)"] + ["—"] * (len(head) - 3)
        else:
            m = mbps[(r["id"], r["cache"])]
            cells = [label, r["cache"], "%.2f" % r["secs"], "%.0f" % m,
                     "%.0f–%.0f" % (used / r["slowest"] / 1e6, used / r["fastest"] / 1e6),
                     mib(r["out"]) if r["out"] else "—",
                     "%.2f" % (used / r["out"]) if r["out"] else "—",
                     mib(r["rss"] * 1024)]
            for base, bcache in BASELINES:
                b = mbps.get((base, bcache or r["cache"]))
                cells.append("—" if base == r["id"] or not b else "%.2f" % (m / b))
        table.append("| " + " | ".join(cells) + " |")

    manifest = [line.rstrip() for line in open(manifest_path)]
    root_size = int(facts["root_size"])
    # ext4's sections keep the marker and title they had before other filesystems came.
    section = [
        "<!-- bench %sroot_mib=%s -->" % ("" if fs == "ext4" else "fs=%s " % fs, facts["root_mib"]),
        "## %s MiB %s root, zstd level %s, median of %s runs (%s)" % (
            facts["root_mib"], FS_NAMES[fs], level, facts.get("runs", "1"), facts["date"]),
        "",
        "- Machine: %s, %s cores, %s RAM, %s" % (facts["cpu"], facts["cores"], facts["ram"], facts["kernel"]),
        "- Storage under the bench directory: %s" % facts["storage"],
        "- Tools: asrimg %s; zstd %s; partclone %s; %s" % (
            facts["asrimg"].replace("asrimg ", ""), facts["zstd"],
            facts["partclone"], facts["fio"]),
        "- Disk (`bench/mkdisk.sh`, %s): GPT, FAT32 ESP, %s root (partition %s) of %s with %s used "
        "bytes (%.0f%%) in %s extents, read through a loop device %s" % (
            facts["disk_params"].rsplit(" script=", 1)[0], FS_ROOTS[fs], facts["root_part"], mib(root_size),
            "{:,}".format(used), 100 * used / root_size, facts["extents"],
            "with direct I/O (no page cache under it, like a disk)" if facts.get("loop_dio") == "on"
            else "through the page cache (`BENCH_LOOP_DIO=0`, or direct I/O refused)"),
        *([partclone_used(facts, used)] if facts.get("partclone_used") else []),
        *machine_load(facts),
        "- Root content:",
        "",
        "```",
        *manifest,
        "```",
        "",
        *table,
        "",
    ]
    if facts.get("asrimg_notes"):
        section += [facts["asrimg_notes"], ""]
    paired = paired_ratios(by_round, level)
    if paired:
        section += ["Each limit ran close to the row held against it; the median of those same-round "
                    "ratios: " + "; ".join(paired) + ".", ""]
    if facts.get("replay_reads"):
        section += [replay_note(facts, by_round, used), ""]
    section += map_note(rows, by_round, phases, level)
    if fs != "ext4":
        section += targets_note(rows, by_round, level, fs)
    section.append("<!-- end -->")
    text = "\n".join(section) + "\n"
    print(text)

    try:
        old = open(results_path).read()
    except FileNotFoundError:
        old = ""
    bench_re = re.compile(r"<!-- bench (?:fs=(\w+) )?root_mib=(\d+) -->.*?<!-- end -->\n", re.S)
    restore_re = re.compile(r"<!-- restore root_mib=\d+ -->.*?<!-- end -->\n", re.S)
    sections = dict(((m.group(1) or "ext4", int(m.group(2))), m.group(0)) for m in bench_re.finditer(old))
    sections[(fs, int(facts["root_mib"]))] = text
    # bench/restore.sh's sections follow the backup ones and are kept as they are, and so is any
    # other script's section (bench/stacks.sh's, a "## " heading without markers) after them.
    restore = [m.group(0) for m in restore_re.finditer(old)]
    other = restore_re.sub("", bench_re.sub("", old))
    other = other[other.index("\n## ") + 1:].strip("\n") + "\n" if "\n## " in other else ""
    with open(results_path, "w") as f:
        f.write(HEAD)
        order = list(FS_NAMES)
        for k in sorted(sections, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), -k[1])):
            f.write("\n" + sections[k])
        for r in restore:
            f.write("\n" + r)
        if other:
            f.write("\n" + other)
    return 0


if __name__ == "__main__":
    sys.exit(main())
