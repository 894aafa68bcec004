#!/usr/bin/env python3
"""Turns one bench/run.sh run into a Markdown section and puts it into the results file, replacing
the section of the same disk size (so a quick run never overwrites a full one) and keeping
bench/restore.sh's sections after the backup ones. Prints the section.

Usage: report.py FACTS ROWS MANIFEST RESULTS
  FACTS     key=value lines: the machine, the tools, the disk
  ROWS      tab-separated: id, cache (cold|warm), seconds (or "na"), output bytes, peak RSS KiB,
            round; one line a run, several runs of a row (BENCH_RUNS rounds) summed up by their
            median
  MANIFEST  bench/mkdisk.sh's description of the disk's content"""
import re
import statistics
import sys

LABELS = {
    "asrimg-{level}": "`asrimg backup --level {level}`",
    "asrimg-0": "`asrimg backup --level 0`",
    "partclone": "`partclone.ext4 -c \\| zstd -T0 -{level}`",
    "dd": "`dd bs=4M \\| zstd -T0 -{level}`",
    "zstd-limit": "compression limit: `zstd -T0 -{level}` of the used bytes",
    "fio-limit": "I/O limit: fio {engine} read of the used bytes (used.bin)",
    "fio-extents": "I/O limit, same extents: fio {engine} replay of asrimg's reads of the disk device",
    "fio-partition": "fio {engine} read of the partition (same byte count)",
}
# The baselines every row is compared with: (row id, cache state or None for "the same as the row").
BASELINES = [("partclone", None), ("dd", None), ("zstd-limit", None), ("fio-limit", "cold"), ("fio-extents", "cold")]
HEAD = """# asrimg benchmark results

Written by `bench/run.sh` (see `bench/README.md`): one section per disk size, replaced when that
size is measured again. Every row reads the same ext4 root of the same generated disk; MB/s is
always the root's used bytes (from `asrimg layout --json --extents`, 1 MB = 10^6 bytes) over
the row's wall time, so rows compare directly. Each row ran once per round, and the rounds
repeated; seconds and MB/s are the median run, with the slowest and fastest beside it. Ratios
are medians over medians: a row's MB/s over the baseline's, at the same cache state for
partclone, dd and the compression limit, against the cold I/O limits (the used bytes copied into
one file, `used.bin`, and the same extents read where asrimg reads them). Cold: `sync; echo
3 > /proc/sys/vm/drop_caches` just before; warm: straight after the cold run, so what it reads is
in the page cache. Peak RSS is summed over a pipeline's stages (the largest of the runs).
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
    level = facts["level"]
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

    labels = {k.format(level=level): v.format(level=level, engine=engine) for k, v in LABELS.items()}
    head = ["run", "cache", "seconds", "MB/s (used)", "MB/s range", "output", "used/output", "peak RSS",
            "× partclone", "× dd", "× zstd limit", "× I/O limit (used.bin)", "× I/O limit, same extents"]
    table = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
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
    section = [
        "<!-- bench root_mib=%s -->" % facts["root_mib"],
        "## %s MiB ext4 root, zstd level %s, median of %s runs (%s)" % (
            facts["root_mib"], level, facts.get("runs", "1"), facts["date"]),
        "",
        "- Machine: %s, %s cores, %s RAM, %s" % (facts["cpu"], facts["cores"], facts["ram"], facts["kernel"]),
        "- Storage under the bench directory: %s" % facts["storage"],
        "- Tools: asrimg %s; zstd %s; partclone %s; %s" % (
            facts["asrimg"].replace("asrimg ", ""), facts["zstd"],
            facts["partclone"], facts["fio"]),
        "- Disk (`bench/mkdisk.sh`, %s): GPT, FAT32 ESP, ext4 root (partition %s) of %s with %s used "
        "bytes (%.0f%%) in %s extents, read through a loop device %s" % (
            facts["disk_params"].rsplit(" script=", 1)[0], facts["root_part"], mib(root_size),
            "{:,}".format(used), 100 * used / root_size, facts["extents"],
            "with direct I/O (no page cache under it, like a disk)" if facts.get("loop_dio") == "on"
            else "through the page cache (`BENCH_LOOP_DIO=0`, or direct I/O refused)"),
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
    section.append("<!-- end -->")
    text = "\n".join(section) + "\n"
    print(text)

    try:
        old = open(results_path).read()
    except FileNotFoundError:
        old = ""
    sections = dict((int(m.group(1)), m.group(0)) for m in
                    re.finditer(r"<!-- bench root_mib=(\d+) -->.*?<!-- end -->\n", old, re.S))
    sections[int(facts["root_mib"])] = text
    # bench/restore.sh's sections follow the backup ones and are kept as they are.
    restore = [m.group(0) for m in re.finditer(r"<!-- restore root_mib=\d+ -->.*?<!-- end -->\n", old, re.S)]
    with open(results_path, "w") as f:
        f.write(HEAD)
        for k in sorted(sections, reverse=True):
            f.write("\n" + sections[k])
        for r in restore:
            f.write("\n" + r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
