#!/usr/bin/env python3
"""bench/stacks.sh's Markdown section, from its work folder: `facts` (key=value lines), the JSON of
each `asrimg backup --json` (lvm.json, luks.json, luks-only.json, luks-nokey.json) and speed.tsv (cache,
kind, level, wall seconds, image bytes, the run's JSON)."""
import json
import statistics
import sys

work = sys.argv[1]
facts = dict(l.rstrip("\n").split("=", 1) for l in open(work + "/facts") if "=" in l)
num = {k: int(v) for k, v in facts.items() if v.isdigit()}
M = 1 << 20


def mib(b):
    return "%.1f MiB" % (b / M) if b >= M else "%.0f KiB" % (b / 1024)


def backup(name):
    return json.load(open("%s/%s.json" % (work, name)))


def taken(name):
    """What the backup took, volume by volume: 'ESP used 4.6 MiB; ...'."""
    j = backup(name)
    parts = []
    for v in j["volumes"]:
        what = "p%d %s" % (v["partition"], v["fs"])
        parts.append("%s %s %s" % (what, v["capture"], mib(v["capture_bytes"]) if v["capture"] != "skip" else ""))
    for v in j.get("logical_volumes", []):
        if v["fs"] == "LVM2_member":
            continue
        parts.append("%s %s %s" % (v["name"], v["capture"], mib(v["capture_bytes"]) if v["capture"] != "skip" else ""))
    return "; ".join(p.strip() for p in parts)


root_used = num["root_used"]
fs_used = num["esp_used"] + num["boot_used"] + root_used + num["swap_hdr"]
pc_total = num["pc_esp"] + num["pc_boot"] + num["pc_root"]
img_lvm, img_luks, img_nokey = num["img_lvm"], num["img_luks"], num["img_luks_nokey"]
img_only = num["img_luks_only"]
runs = num["runs"]

L = []
L.append("## Stacks (issue 14): Debian guided LVM, the same in LUKS2, %d MiB ext4 root, zstd level 3, median of %d runs (%s)"
         % (num["root_mib"], runs, facts["date"]))
L.append("")
L.append("- Machine: %s, %s cores, %s RAM, %s" % (facts["cpu"], facts["cores"], facts["ram"], facts["kernel"]))
L.append("- Storage under the bench directory (disks read from it, images written to it): %s" % facts["storage"])
L.append("- Tools: %s; zstd %s; partclone %s" % (facts["asrimg"], facts["zstd"], facts["partclone"]))
L.append("- Disks (`bench/stacks.sh`), %d MiB each, read through read-only loop devices (direct I/O %s): GPT; the bench disk's "
         "FAT32 ESP (40 MiB, %s used); /boot ext4 of %d MiB (kernel and initrd as random bytes, System.map, config, "
         "grub.cfg: %s used); then (a) a PV of vg0 with LVs root (the bench disk's %d MiB ext4 root, `bench/mkdisk.sh`, "
         "%s used, plus an /etc/fstab naming the LVs), swap_1 (%d MiB) and home (%d MiB ext4 holding %d MiB of data), "
         "or (b) the same PV inside LUKS2 (pbkdf2, encrypted offline by `cryptsetup reencrypt --encrypt`), or (c) the same "
         "root, swap and home as plain partitions 3, 4 and 5"
         % (num["disk_mib"], facts["loop_dio"], mib(num["esp_used"]), num["boot_mib"], mib(num["boot_used"]), num["root_mib"],
            mib(root_used), num["swap_mib"], num["home_mib"], num["home_data_mib"]))
other, ours = facts["other_cpu"].split()
L.append("- CPU time meanwhile: %s core-seconds outside this script's processes (the loop devices' kernel threads included) "
         "beside its own %s, over the %s s it took on %s cores; load average (1, 5, 15 min) at its start / end: %s"
         % (other, ours, facts["script_seconds"], facts["cores"], facts["load"]))
L.append("- Command: `BENCH_ROOT_MIB=%d BENCH_RUNS=%d bash bench/stacks.sh` (as root)" % (num["root_mib"], runs))
L.append("")
L.append("Image sizes: `asrimg backup DISK -o IMG` (the default: critical volumes, level 3); partclone's images piped to "
         "`zstd -T0 -3`; used bytes from dumpe2fs (blocks less free blocks) and the FAT (clusters in use, reserved sectors "
         "and FATs), plus 4 KiB of swap header.")
L.append("")
L.append("| image | taken (asrimg --json) | size | against | ratio | target ≤ 1.10 |")
L.append("|---|---|---:|---|---:|---|")
r1 = img_lvm / pc_total
L.append("| 1. Debian LVM | %s | %s | partclone.fat32 of the ESP (%s) + partclone.ext4 of /boot (%s) and of the root (%s) = %s | %.3f | %s |"
         % (taken("lvm"), mib(img_lvm), mib(num["pc_esp"]), mib(num["pc_boot"]), mib(num["pc_root"]), mib(pc_total), r1,
            "met" if r1 <= 1.10 else "NOT met"))
r2 = img_luks / fs_used
L.append("| 2. the same in LUKS2, `--key-file` | %s | %s | used bytes of ESP, /boot, root and swap header = %s | %.3f | %s |"
         % (taken("luks"), mib(img_luks), mib(fs_used), r2, "met" if r2 <= 1.10 else "NOT met"))
inside = root_used + num["swap_hdr"] + num["home_used"]
r3 = img_only / inside
L.append("| 2. the LUKS2 container alone, `--volumes 3 --key-file` (every LV inside) | %s | %s | used bytes of root, swap header and home = %s | %.3f | %s |"
         % (taken("luks-only"), mib(img_only), mib(inside), r3, "met" if r3 <= 1.10 else "NOT met"))
L.append("| 2. the same in LUKS2, no key | %s | %s | the same used bytes | %.3f | (contrast) |"
         % (taken("luks-nokey"), mib(img_nokey), img_nokey / fs_used))
L.append("")

rows = [l.rstrip("\n").split("\t") for l in open(work + "/speed.tsv")]


def pick(cache, kind, lvl, f):
    return [f(r) for r in rows if r[0] == cache and r[1] == kind and r[2] == lvl]


def mbs(r):
    return root_used / float(r[3]) / 1e6


def field(key):
    def get(r):
        j = json.loads(r[5])
        return float(j[key] if key in j else j["stages"][key])
    return get


L.append("Backup speed of the root alone (`--volumes vg0/root` on disk (a), `--volumes 3` on disk (c)): level 3 (the default) "
         "with the image written to a file beside the disks (removed after each run), and level 0 with the image thrown away "
         "(`-o -` to /dev/null: the read path). MB/s is the root's %s used bytes over the command's wall time; cold: page "
         "cache dropped before each run; %d rounds, each running, per level, the LV and the plain partition cold, then both "
         "warm, the first of the two alternating. CPU s is asrimg's user + system time (`/usr/bin/time`), which other work on "
         "the machine sways less than the wall time; the last columns are asrimg's own `--json` clock and stage timings "
         "(medians throughout):"
         % (format(root_used, ","), runs))
L.append("")
L.append("| root on | level | cache | seconds | MB/s (used) | MB/s range | image | × plain | CPU s | asrimg seconds | read wait s | compress CPU s | write s |")
L.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
med = statistics.median
for lvl in ("3", "0"):
    for cache in ("cold", "warm"):
        base = med(pick(cache, "plain", lvl, mbs))
        for kind, label in (("plain", "plain partition 3"), ("lv", "LV vg0/root")):
            v = pick(cache, kind, lvl, mbs)
            L.append("| %s | %s | %s | %.2f | %.0f | %.0f–%.0f | %s | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f |"
                     % (label, lvl, cache, med(pick(cache, kind, lvl, lambda r: float(r[3]))), med(v), min(v), max(v),
                        mib(med(pick(cache, kind, lvl, lambda r: float(r[4])))), med(v) / base,
                        med(pick(cache, kind, lvl, field("cpu_seconds"))),
                        med(pick(cache, kind, lvl, field("seconds"))), med(pick(cache, kind, lvl, field("read_wait_seconds"))),
                        med(pick(cache, kind, lvl, field("compress_cpu_seconds"))), med(pick(cache, kind, lvl, field("write_seconds")))))
L.append("")
for lvl in ("3", "0"):
    lv, pl = med(pick("cold", "lv", lvl, mbs)), med(pick("cold", "plain", lvl, mbs))
    # The LV and the plain run of a round ran back to back: their ratio shares the round's conditions.
    pairs = [a / b for a, b in zip(pick("cold", "lv", lvl, mbs), pick("cold", "plain", lvl, mbs))]
    cpu_lv, cpu_pl = med(pick("cold", "lv", lvl, field("cpu_seconds"))), med(pick("cold", "plain", lvl, field("cpu_seconds")))
    L.append("Target, the LV within 10%% of the plain partition, level %s (cold, medians): %.0f against %.0f MB/s, %+.1f%%: %s. "
             "Same-round ratios LV / plain: median %.3f (%s); CPU seconds LV / plain: %.3f."
             % (lvl, lv, pl, (lv / pl - 1) * 100, "met" if lv >= 0.9 * pl else "NOT met", med(pairs),
                ", ".join("%.2f" % p for p in pairs), cpu_lv / cpu_pl))
    L.append("")
if int(other) > 0.1 * int(facts["cores"]) * int(facts["script_seconds"]):
    L.append("Taken with other work running on the machine (%s core-seconds of other CPU over %s s on %s cores): the speed "
             "rows vary from run to run more than an idle machine would." % (other, facts["script_seconds"], facts["cores"]))
print("\n".join(L).rstrip("\n"))
