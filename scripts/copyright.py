#!/usr/bin/env python3
"""Prints debian/copyright for the package: ours, then every crate linked into the two
programs (the normal dependencies, not proc-macros or build scripts' own), with the
copyright lines of its licence files and its licence, from `cargo metadata`. Run by
scripts/package.sh after the release build, so the list is Cargo.lock's and cannot
drift. Exits non-zero if a linked crate has a licence this file does not know.
"""
import json, os, re, subprocess, sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--locked"],
    cwd=REPO, check=True, capture_output=True, text=True).stdout)
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]


def is_proc_macro(p):
    return any("proc-macro" in t["kind"] for t in p["targets"])


# The linked closure: normal edges only, not through proc-macros.
linked, todo = set(), [root]
while todo:
    for dep in nodes[todo.pop()]["deps"]:
        if not any(k["kind"] is None for k in dep["dep_kinds"]):
            continue
        p = pkgs[dep["pkg"]]
        if is_proc_macro(p) or dep["pkg"] in linked:
            continue
        linked.add(dep["pkg"])
        todo.append(dep["pkg"])

# Of a dual licence, the one this file carries in full; MIT is compatible with the GPL.
CHOICE = {"MIT OR Apache-2.0": "MIT", "Apache-2.0 OR MIT": "MIT", "Unlicense OR MIT": "MIT",
          "MIT": "MIT"}


def notices(p):
    d = os.path.dirname(p["manifest_path"])
    lines = []
    for f in sorted(os.listdir(d)):
        if f.upper().startswith(("LICENSE", "COPYING", "LICENCE")):
            with open(os.path.join(d, f), errors="replace") as fh:
                for line in fh:
                    m = re.match(r"\s*(Copyright\b.*)$", line)
                    if m and not re.search(r"[{\[]", line) and m.group(1).strip() not in lines:
                        lines.append(m.group(1).strip())
    if not lines:
        who = ", ".join(p["authors"]) or f"the {p['name']} developers"
        lines.append(f"{who} (no copyright line in the crate's licence files)")
    return lines


out = ["""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: munin-async-rs
Comment: munin-async and munin-asyncd are statically linked with the Rust crates
 listed below (as Cargo.lock pins them); each is used under the licence named.

Files: *
Copyright: 2026 the munin-async-rs developers
License: GPL-2.0-only
 On Debian systems, the full text of the GNU General Public License version 2 can be
 found in /usr/share/common-licenses/GPL-2.
"""]
for pid in sorted(linked, key=lambda i: pkgs[i]["name"]):
    p = pkgs[pid]
    lic = CHOICE.get(p["license"])
    if lic is None:
        sys.exit(f"copyright: {p['name']} {p['version']}: licence {p['license']!r} not known here")
    cp = "\n ".join(notices(p))
    out.append(f"""Files: rust-crates/{p['name']}-{p['version']}/*
Copyright: {cp}
License: {lic}
Comment: the crate {p['name']} {p['version']}, licensed {p['license']}; used under {lic}.
""")
out.append("""License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify,
 merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
 permit persons to whom the Software is furnished to do so, subject to the following
 conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies
 or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
 PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
 HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
 CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR
 THE USE OR OTHER DEALINGS IN THE SOFTWARE.
""")
sys.stdout.write("\n".join(out))
