#!/usr/bin/env python3
"""Turns one bench/restore.sh run into a Markdown section and puts it into the results file after
bench/run.sh's backup sections, replacing the restore section of the same disk size. Prints it.

Usage: restore_report.py FACTS ROWS MANIFEST RESULTS
  FACTS     key=value lines: the machine, the tools, the disk, the inputs, the checks
  ROWS      tab-separated: id, seconds, bytes its MB/s counts, peak RSS KiB, CPU seconds (user +
            system), round, and for asrimg rows "own-seconds bytes-written direct-io" from
            restore --json; one line a run
  MANIFEST  bench/mkdisk.sh's description of the disk's content"""
import re
import statistics
import sys

ORDER = ["write-limit", "zstd-limit", "asrimg-1", "write-limit-2", "asrimg-2", "asrimg-1-mem", "asrimg-2-mem",
         "partclone"]
LABELS = {
    "write-limit": "write limit: fio {engine} `--rw=write --direct=1 --bs=1M --iodepth=16 --fallocate=none "
                   "--end_fsync=1` to a new file beside the targets",
    "write-limit-2": "two-file write limit: the same fio write to two new files at once (two jobs, "
                     "`--group_reporting`), as two mirrored targets on one device write",
    "zstd-limit": "decompression limit: `zstd -dc -T0` of the root's used bytes (level {level}) to /dev/null",
    "asrimg-1": "`asrimg restore IMAGE --to A` (one target: a new file, sparse, of the disk's size)",
    "asrimg-2": "`asrimg restore IMAGE --to A --to B` (two mirrored targets, one pass)",
    "asrimg-1-mem": "the same, one target in memory (a tmpfs file of the disk's size, written whole before "
                    "the runs)",
    "asrimg-2-mem": "the same, two mirrored targets in memory (two such tmpfs files: not sharing a disk)",
    "partclone": "`zstd -dc root.pc.zst \\| partclone.ext4 -r -s - -O ROOT` (the root only, onto a sparse file "
                 "of the root's size)",
}
COUNTS = {"write-limit": "captured", "write-limit-2": "2 × captured", "zstd-limit": "root used", "asrimg-1": "captured", "asrimg-2": "captured",
          "asrimg-1-mem": "captured", "asrimg-2-mem": "captured", "partclone": "root used"}


def mib(n: float) -> str:
    return "%.1f MiB" % (n / 2**20)


def spread(values: list, unit: str = "round") -> str:
    return "%.2f (%.2f–%.2f, %d %s%s)" % (statistics.median(values), min(values), max(values), len(values), unit,
                                          "" if len(values) == 1 else "s")


def main() -> int:
    facts_path, rows_path, manifest_path, results_path = sys.argv[1:5]
    facts = dict(line.rstrip("\n").split("=", 1) for line in open(facts_path) if "=" in line)
    level = facts["level"]
    engine = facts["fio"].split("(")[-1].rstrip(")")
    used = int(facts["used_bytes"])
    captured = int(facts["captured_bytes"])
    runs = {}  # id -> [(secs, bytes, rss, round, own, cpu)]
    for line in open(rows_path):
        rid, secs, nbytes, rss, cpu, rnd, own = line.rstrip("\n").split("\t")
        runs.setdefault(rid, []).append((float(secs), int(nbytes), int(rss), rnd, own, float(cpu)))
    per_round = {(rid, r[3]): r[1] / r[0] / 1e6 for rid, rr in runs.items() for r in rr}  # MB/s
    secs_round = {(rid, r[3]): r[0] for rid, rr in runs.items() for r in rr}
    cpu_round = {(rid, r[3]): r[5] for rid, rr in runs.items() for r in rr}

    # A round is "N", or "N.K" for the K-th of the in-memory pairs measured in round N.
    def rounds_of(*ids):
        have = [{r for rid, r in per_round if rid == i} for i in ids]
        return sorted(set.intersection(*have), key=lambda r: tuple(int(x) for x in r.split(".")))

    med = {}
    for rid, rr in runs.items():
        secs = sorted(r[0] for r in rr)
        nbytes = rr[0][1]
        med[rid] = {"secs": statistics.median(secs), "fastest": secs[0], "slowest": secs[-1], "bytes": nbytes,
                    "rss": max(r[2] for r in rr), "cpu": statistics.median(r[5] for r in rr)}
        med[rid]["mbps"] = nbytes / med[rid]["secs"] / 1e6
    limits = {k: med[k]["mbps"] for k in ("write-limit", "zstd-limit") if k in med}
    lower_id = min(limits, key=limits.get)
    lower = limits[lower_id]
    lower_name = {"write-limit": "write", "zstd-limit": "decompression"}[lower_id]

    head = ["run", "bytes counted", "seconds", "MB/s", "MB/s range", "peak RSS", "CPU s", "× partclone",
            "× lower limit", "time × one target"]
    table = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for rid in [r for r in ORDER if r in med]:
        m = med[rid]
        cells = [LABELS[rid].format(engine=engine, level=level), COUNTS[rid], "%.2f" % m["secs"], "%.0f" % m["mbps"],
                 "%.0f–%.0f" % (m["bytes"] / m["slowest"] / 1e6, m["bytes"] / m["fastest"] / 1e6), mib(m["rss"] * 1024),
                 "%.2f" % m["cpu"]]
        asr = rid.startswith("asrimg")
        cells.append("%.2f" % (m["mbps"] / med["partclone"]["mbps"]) if asr and "partclone" in med else "—")
        cells.append("%.2f" % (m["mbps"] / lower) if asr or rid == "partclone" else "—")
        one = "asrimg-1-mem" if rid.endswith("-mem") else "asrimg-1"  # the same kind of target
        cells.append("%.2f" % (m["secs"] / med[one]["secs"]) if asr and one in med else "—")
        table.append("| " + " | ".join(cells) + " |")

    # Same-round ratios: the disk's speed drifts between rounds far more than within one.
    paired = []
    same_round = {}
    for name, ids, fn in [
        ("one target / partclone", ("asrimg-1", "partclone"),
         lambda r: per_round[("asrimg-1", r)] / per_round[("partclone", r)]),
        ("one target / lower limit", ("asrimg-1", "write-limit", "zstd-limit"), lambda r: per_round[("asrimg-1", r)] /
         min(per_round[("write-limit", r)], per_round[("zstd-limit", r)])),
        ("two targets / lower limit", ("asrimg-2", "write-limit", "zstd-limit"), lambda r: per_round[("asrimg-2", r)] /
         min(per_round[("write-limit", r)], per_round[("zstd-limit", r)])),
        ("two targets' time / one target's", ("asrimg-2", "asrimg-1"),
         lambda r: secs_round[("asrimg-2", r)] / secs_round[("asrimg-1", r)]),
        ("two targets' time / the two-file write limit's", ("asrimg-2", "write-limit-2"),
         lambda r: secs_round[("asrimg-2", r)] / secs_round[("write-limit-2", r)]),
        ("in memory, two targets' time / one target's (pairs run back to back)", ("asrimg-2-mem", "asrimg-1-mem"),
         lambda r: secs_round[("asrimg-2-mem", r)] / secs_round[("asrimg-1-mem", r)]),
    ]:
        rr = rounds_of(*ids)
        if rr:
            same_round[ids] = [fn(r) for r in rr]
            paired.append("%s %s" % (name, spread(same_round[ids], "pair" if "." in rr[0] else "round")))
    # What the second target costs asrimg's process in CPU time (user + system), same round.
    second_cpu = {}
    for one, two, where in (("asrimg-1", "asrimg-2", "on the device"), ("asrimg-1-mem", "asrimg-2-mem", "in memory")):
        rr = rounds_of(one, two)
        if not rr:
            continue
        extra = [cpu_round[(two, r)] - cpu_round[(one, r)] for r in rr]
        second_cpu[where] = (statistics.median(extra), statistics.median(cpu_round[(one, r)] for r in rr))
        paired.append("the second target's CPU seconds %s %+.2f (%+.2f–%+.2f) beside one target's %.2f" % (
            where, second_cpu[where][0], min(extra), max(extra), second_cpu[where][1]))

    # asrimg's own clock (the restore pass, --json "seconds") beside the wall time of the command.
    own = []
    for rid, what in (("asrimg-1", "one target"), ("asrimg-2", "two targets"), ("asrimg-1-mem", "one in memory"),
                      ("asrimg-2-mem", "two in memory")):
        if rid in runs and runs[rid][0][4]:
            secs = statistics.median(float(r[4].split()[0]) for r in runs[rid])
            written = int(runs[rid][0][4].split()[1])
            direct = runs[rid][0][4].split()[2]
            own.append("%s %.2f s (%.0f MB/s), \"bytes_written\" %s, O_DIRECT %s" % (
                what, secs, captured / secs / 1e6, "{:,}".format(written), direct))

    verdict = []
    if "partclone" in med and "asrimg-1" in med:
        x = med["asrimg-1"]["mbps"] / med["partclone"]["mbps"]
        verdict.append("at least 2x `zstd -dc | partclone.ext4 -r`: %.2fx, %s" % (x, "met" if x >= 2 else "NOT met"))
    if "asrimg-1" in med:
        x = med["asrimg-1"]["mbps"] / lower
        verdict.append("at least 90%% of the lower limit (%s, %.0f MB/s): %.0f%%, %s" % (
            lower_name, lower, 100 * x, "met" if x >= 0.9 else "NOT met"))
    # "Well under 2x": at most 1.25x, where the two targets do not share a device (in memory). On one
    # shared device the second copy takes that device's time: held against the two-file write limit.
    # Judged on the pairs run back to back: the machine's speed drifts between them far less.
    mem_pairs = same_round.get(("asrimg-2-mem", "asrimg-1-mem"))
    if mem_pairs:
        x = statistics.median(mem_pairs)
        verdict.append("two mirrored targets well under 2x one target's time (here: at most 1.25x) where they "
                       "do not share a device: in memory %.2fx (median of %d pairs run back to back; %.2fx over "
                       "the rows' medians), %s" % (x, len(mem_pairs), med["asrimg-2-mem"]["secs"] /
                                                  med["asrimg-1-mem"]["secs"], "met" if x <= 1.25 else "NOT met"))
    if "asrimg-2" in med:
        x = med["asrimg-2"]["secs"] / med["asrimg-1"]["secs"]
        text = "both on the bench directory's one device: %.2fx one target's time" % x
        if "write-limit-2" in med:
            text += ", %.2fx the time fio takes to write both files at once" % (
                med["asrimg-2"]["secs"] / med["write-limit-2"]["secs"])
        verdict.append(text)
    if "on the device" in second_cpu:
        verdict.append("the second target's CPU time with O_DIRECT onto the device: %+.2f s beside one target's %.2f"
                       % second_cpu["on the device"])

    # More than a tenth of the machine's CPU time went to something else: say so.
    other, ours = facts["other_cpu"].split()
    busy_elsewhere = float(other) > 0.1 * float(facts["script_seconds"]) * int(facts["cores"])

    manifest = [line.rstrip() for line in open(manifest_path)]
    root_size = int(facts["root_size"])
    runs_n = facts.get("runs", "1")
    section = [
        "<!-- restore root_mib=%s -->" % facts["root_mib"],
        "## Restore: %s MiB ext4 root, zstd level %s, median of %s run%s (%s)" % (
            facts["root_mib"], level, runs_n, "" if runs_n == "1" else "s", facts["date"]),
        "",
        "Written by `bench/restore.sh` (see `bench/README.md`). Every run writes new targets on the filesystem "
        "of the bench directory (deleted before each run, then `sync; echo 3 > /proc/sys/vm/drop_caches`), "
        "but the rows in memory: their targets are two tmpfs files in /dev/shm of the disk's size, written "
        "whole before the runs (as a disk's sectors exist), so that two mirrored targets do not share one "
        "device. "
        "\"Captured\" MB/s: the bytes the image restores (every used extent of the ESP and the root, all-zero "
        "ones included, %s bytes; 1 MB = 10^6 bytes) over the wall time of the whole command (fio: over fio's "
        "own clock). \"Root used\" MB/s: the root's used bytes (%s) over the wall time, because partclone "
        "restores the root alone: per used byte, the two compare directly. The lower limit is the lower of "
        "the write and the decompression limit's medians (%s here). Ratios are medians over medians; peak "
        "RSS is summed over a pipeline's stages (`/usr/bin/time -f %%M`, the largest of the runs); CPU s is the "
        "median of user + system seconds, summed over the stages." % (
            "{:,}".format(captured), "{:,}".format(used), lower_name),
        "",
        "- Machine: %s, %s cores, %s RAM, %s" % (facts["cpu"], facts["cores"], facts["ram"], facts["kernel"]),
        "- Storage under the bench directory (image read from it, targets written to it): %s" % facts["storage"],
        "- Tools: asrimg %s; zstd %s; partclone %s; %s" % (
            facts["asrimg"].replace("asrimg ", ""), facts["zstd"], facts["partclone"], facts["fio"]),
        "- Disk (`bench/mkdisk.sh`, %s): GPT, FAT32 ESP, ext4 root (partition %s) of %s with %s used bytes "
        "(%.0f%%) in %s extents; %s bytes in all" % (
            facts["disk_params"].rsplit(" script=", 1)[0], facts["root_part"], mib(root_size),
            "{:,}".format(used), 100 * used / root_size, facts["extents"], "{:,}".format(int(facts["disk_size"]))),
        "- Inputs, made once: `asrimg backup DISK -o bench.asrimg --volumes all --level %s` (%s, %s bytes "
        "captured); `partclone.ext4 -c -s ROOT -o - | zstd -T0 -%s` (%s); `zstd -T0 -%s` of the root's used "
        "bytes (%s)" % (level, mib(int(facts["image_bytes"])), "{:,}".format(captured), level,
                        mib(int(facts["partclone_bytes"])), level, mib(int(facts["used_zst_bytes"]))),
        "- %s: %s core-seconds of CPU outside this script's processes (kernel threads doing its I/O "
        "included) beside its own %s, over the %s s it took on %s cores; load average (1, 5, 15 min) at its "
        "start / end: %s" % ("Taken with other work running on the machine" if busy_elsewhere else
                             "The machine was otherwise idle", other, ours, facts["script_seconds"],
                             facts["cores"], facts["load"]),
    ]
    if facts.get("note"):
        section.append("- " + facts["note"])
    section += [
        "- Command: `%s` (as root; the whole script took %s s)" % (facts["command"], facts["script_seconds"]),
        "- Root content:",
        "",
        "```",
        *manifest,
        "```",
        "",
        *table,
        "",
    ]
    if paired:
        section += ["Same-round ratios (median, range): " + "; ".join(paired) + ".", ""]
    if own:
        section += ["asrimg's own clock (the restore pass, `--json` \"seconds\"): " + "; ".join(own) + ".", ""]
    if facts.get("checks"):
        section += ["Checked in round 1, outside the timing (`bench/restored.py` against the disk, and "
                    "`e2fsck -fn`): " + facts["checks"] + ".", ""]
    if verdict:
        caution = (" With other work taking CPU time unevenly from run to run (above), the limits and asrimg "
                   "lost different shares of the %s cores: compare the same-round ratios and their ranges, and "
                   "take these as indicative." % facts["cores"]) if busy_elsewhere else ""
        section += ["Against the issue's targets: " + "; ".join(verdict) + "." + caution, ""]
    section.append("<!-- end -->")
    text = "\n".join(section) + "\n"
    print(text)

    try:
        old = open(results_path).read()
    except FileNotFoundError:
        old = "# asrimg benchmark results\n"
    pattern = re.compile(r"\n*<!-- restore root_mib=(\d+) -->.*?<!-- end -->\n", re.S)
    sections = {int(m.group(1)): m.group(0).lstrip("\n") for m in pattern.finditer(old)}
    sections[int(facts["root_mib"])] = text
    rest = pattern.sub("", old).rstrip("\n") + "\n"
    with open(results_path, "w") as f:
        f.write(rest)
        for k in sorted(sections, reverse=True):
            f.write("\n" + sections[k])
    return 0


if __name__ == "__main__":
    sys.exit(main())
