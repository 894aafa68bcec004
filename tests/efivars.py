#!/usr/bin/env python3
"""Fabricates and reads a directory of files in efivarfs format (4 bytes of attributes, then the
data) for the boot entry tests: asrimg reads and writes it through ASRIMG_EFIVARS_DIR.

  efivars.py boot DIR NUM DESC GUID PARTNO START SIZE FILE [--full] [--data HEX]
  efivars.py other DIR NUM DESC            an entry without HD() (a firmware application)
  efivars.py order DIR NUM...              BootOrder
  efivars.py raw DIR NAME HEX              any bytes as variable NAME
  efivars.py show DIR                      JSON: boot entries (parsed here) and BootOrder
"""
import json
import os
import struct
import sys
import uuid

GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
ATTRS = 7


def put(d, name, data):
    with open(os.path.join(d, "%s-%s" % (name, GLOBAL)), "wb") as f:
        f.write(struct.pack("<I", ATTRS) + data)


def node(t, s, body):
    return struct.pack("<BBH", t, s, 4 + len(body)) + body


def hd(partno, start, size, guid):
    return node(4, 1, struct.pack("<IQQ", partno, start, size) + uuid.UUID(guid).bytes_le + bytes([2, 2]))


def file_node(path):
    return node(4, 4, (path + "\0").encode("utf-16-le"))


END = node(0x7F, 0xFF, b"")


def load_option(desc, path, data=b"", attrs=1):
    d = (desc + "\0").encode("utf-16-le")
    return struct.pack("<IH", attrs, len(path)) + d + path + data


def parse(b):
    attrs, plen = struct.unpack_from("<IH", b)
    at = 6
    while b[at:at + 2] != b"\0\0":
        at += 2
    desc = b[6:at].decode("utf-16-le")
    path = b[at + 2:at + 2 + plen]
    out = {"attributes": attrs, "description": desc, "nodes": []}
    i = 0
    while i < len(path):
        t, s, l = struct.unpack_from("<BBH", path, i)
        n = {"type": t, "subtype": s}
        if (t, s) == (4, 1):
            p, st, sz = struct.unpack_from("<IQQ", path, i + 4)
            n.update(partition=p, start=st, size=sz, guid=str(uuid.UUID(bytes_le=path[i + 24:i + 40])),
                     mbr_type=path[i + 40], sig_type=path[i + 41])
        elif (t, s) == (4, 4):
            n["path"] = path[i + 4:i + l].decode("utf-16-le").rstrip("\0")
        out["nodes"].append(n)
        i += l
    out["optional_data"] = b[at + 2 + plen:].hex()
    return out


def main(a):
    cmd, d = a[0], a[1]
    os.makedirs(d, exist_ok=True)
    if cmd == "boot":
        num, desc, guid, partno, start, size, fpath = a[2:9]
        path = hd(int(partno), int(start), int(size), guid) + file_node(fpath) + END
        if "--full" in a:  # as firmware stores it: the controller before HD()
            path = node(2, 1, struct.pack("<II", 0x0A0341D0, 0)) + node(1, 1, bytes([0, 0x1F])) + path
        data = bytes.fromhex(a[a.index("--data") + 1]) if "--data" in a else b""
        put(d, "Boot%04X" % int(num, 16), load_option(desc, path, data))
    elif cmd == "other":
        num, desc = a[2:4]
        path = node(4, 7, uuid.UUID("7c04a583-9e3e-4f1c-ad65-e05268d0b4d1").bytes_le) + END
        put(d, "Boot%04X" % int(num, 16), load_option(desc, path))
    elif cmd == "order":
        put(d, "BootOrder", b"".join(struct.pack("<H", int(x, 16)) for x in a[2:]))
    elif cmd == "raw":
        put(d, a[2], bytes.fromhex(a[3]))
    elif cmd == "show":
        res = {"entries": {}, "order": None}
        for f in sorted(os.listdir(d)):
            name = f.split("-")[0]
            with open(os.path.join(d, f), "rb") as fh:
                b = fh.read()
            if name == "BootOrder":
                res["order"] = ["%04X" % x for x in struct.unpack("<%dH" % ((len(b) - 4) // 2), b[4:])]
            elif name.startswith("Boot") and len(name) == 8 and f.endswith(GLOBAL):
                res["entries"][name[4:]] = parse(b[4:])
        json.dump(res, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
