#!/usr/bin/env python3
"""Writes the corpus report: one self-contained HTML page (no network needed).

usage: ci/report.py DATA_DIR OUT_HTML [MATRIX_DIR]

DATA_DIR holds one JSON file per case and variant, written by the corpus
programs (`<program> --json FILE`): the verdict, the kind of failure, what
leaked, samples of the process's descriptors taken while the scenario ran, the
moments the scenario marked (fixtures::corpus::mark) and when it ended.

For each case the page shows what a reader needs to learn the bug from it
alone:
- the mechanism in one line and the case's first paragraph, from the case's
  README.md (read from the source tree beside ci/), with links to the README
  and to the upstream records it names;
- one time axis for all of the case's variants: a lane per TCP socket,
  coloured by state, that ends with "closed at T" or "still open when the
  scenario ended", and the scenario's marked moments;
- per kind of failure, the picture that fits it: states for a leak or a hang,
  the server's CPU use over time for a spin, the child's sockets for
  descriptors held by another process, descriptor counts by kind for a leak
  that is not TCP;
- the fix: the diff from the broken variant's source to each fixed one's,
  generated from the sources, with the first FIX: line named;
- the leak table, with the line of the case's source that opened each fd.

MATRIX_DIR (build/<preset>/matrix, written by ci/matrix: the ctests
matrix/<tag>/<case>) holds the library matrix's cells, MATRIX_DIR/<tag>/<case>.json:
the page then opens with a table of case × library version.
"""
import difflib
import html
import json
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

COLORS = {
    "LISTEN": "#9e9e9e", "SYN_SENT": "#b39ddb", "SYN_RECV": "#b39ddb", "ESTAB": "#43a047",
    "FIN_WAIT1": "#81d4fa", "FIN_WAIT2": "#29b6f6", "TIME_WAIT": "#0277bd", "CLOSING": "#4dd0e1",
    "CLOSE_WAIT": "#e53935", "LAST_ACK": "#fb8c00", "CLOSE": "#6d4c41", "NONE": "#eeeeee",
}
KIND_COLORS = ["#5c6bc0", "#26a69a", "#ffa726", "#ab47bc", "#8d6e63", "#78909c"]
ROLE_NAMES = {"listener": "listener", "accepted": "server side", "connected": "client side",
              "outbound": "outbound"}
LANES = 16  # at most this many sockets drawn per variant (leaked ones first)

# The badge of a variant whose verdict is as expected, by kind of failure.
BADGES = {
    "leak": ("leaks as expected", "closes everything"),
    "hang": ("hangs as expected", "its close finishes"),
    "spin": ("spins as expected", "does not spin"),
    "held": ("a child holds it, as expected", "nothing held elsewhere"),
}
KIND_TITLES = {
    "leak": "leak: descriptors left open",
    "hang": "hang: a close that never finishes",
    "spin": "spin: a core burned in a loop",
    "held": "held by another process",
}

# ---- the source tree: README, upstream records, the fix ---------------------


def inline_md(text):
    """The little Markdown a README's first paragraph uses: `code`, **bold**, links."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1", part)
        out.append(part)
    return "".join(out)


def readme_lesson(case):
    """(first sentence, rest of the first paragraph, upstream links) from cases/<case>/README.md."""
    try:
        text = (ROOT / "cases" / case / "README.md").read_text()
    except OSError:
        return "", "", []
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    first = next((p for p in paragraphs if p and not p.startswith(("#", "|", "```", "-"))), "")
    first = " ".join(first.split())
    # the first sentence: up to a full stop (or colon) that ends a sentence outside `code`
    sentence, rest, depth = first, "", 0
    for i, ch in enumerate(first):
        depth ^= ch == "`"
        if not depth and ch in ".!?" and (i + 1 == len(first) or first[i + 1] == " ") \
                and not first[max(0, i - 4):i + 1].endswith(("e.g.", "i.e.", "etc.")):
            sentence, rest = first[:i + 1], first[i + 1:].strip()
            break
    if rest.endswith(":"):  # it leads into a table or a list the page does not show
        rest = rest[:-1] + "."
    links, seen = [], set()
    for m in re.finditer(r"\*\*([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+) (PR )?#(\d+)\*\*", text):
        repo, pr, number = m.group(1), m.group(2), m.group(3)
        if (repo, number) in seen:
            continue
        seen.add((repo, number))
        kind = "pull" if pr else "issues"
        links.append((f"{repo} {'PR ' if pr else ''}#{number}", f"https://github.com/{repo}/{kind}/{number}"))
    return sentence, rest, links[:4]


def case_sources(case):
    """The case's CMakeLists.txt: its VARIANT_SOURCE if it has one."""
    try:
        cmake = (ROOT / "cases" / case / "CMakeLists.txt").read_text()
    except OSError:
        return None
    m = re.search(r"VARIANT_SOURCE\s+(\S+)", cmake)
    return m.group(1) if m else None


def overlay(case_dir):
    """A header in the case that takes the place of a library header (it defines
    that header's include guard): (library header, overlay), or None."""
    for h in sorted(case_dir.glob("*.hpp")):
        text = h.read_text()
        m = re.search(r"^#define (BOOST_[A-Z0-9_]+_HPP)\b", text, re.M)
        if not m:
            continue
        rel = m.group(1)[len("BOOST_"):-len("_HPP")].lower().replace("_", "/")
        # boost/beast/websocket/impl/ssl.hpp from BEAST_WEBSOCKET_IMPL_SSL
        library = pathlib.Path("/usr/include/boost") / (rel + ".hpp")
        if library.exists():
            return library, h
    return None


def from_first_template(lines):
    """A header's definitions: from its first template to the end."""
    i = next((i for i, line in enumerate(lines) if line.startswith("template")), 0)
    return lines[i:], i


def fix_diffs(case, variants):
    """[(from_label, to_label, variant, unified diff lines, first line number of each side)]:
    broken.cpp -> <fixed>.cpp for each fixed variant; for a case whose variants
    share one source, the library header it replaces -> the case's overlay."""
    case_dir = ROOT / "cases" / case
    out = []
    broken_src = case_dir / "broken.cpp"
    shared = case_sources(case)
    for v in variants:
        if v["broken"]:
            continue
        fixed_src = case_dir / f'{v["variant"]}.cpp'
        if not shared and broken_src.exists() and fixed_src.exists():
            a, b = broken_src.read_text().splitlines(), fixed_src.read_text().splitlines()
            out.append((f"cases/{case}/broken.cpp", f"cases/{case}/{fixed_src.name}", v["variant"],
                        list(difflib.unified_diff(a, b, lineterm="", n=3)), 0, 0))
    if not out:
        o = overlay(case_dir)
        if o:
            library, header = o
            a, a0 = from_first_template(library.read_text().splitlines())
            b, b0 = from_first_template(header.read_text().splitlines())
            target = next((v["variant"] for v in variants if "overlay" in v["variant"]),
                          next((v["variant"] for v in variants if not v["broken"]), ""))
            out.append((f"{library} (this build's Boost)", f"cases/{case}/{header.name}", target,
                        list(difflib.unified_diff(a, b, lineterm="", n=3)), a0, b0))
    return out


def diff_block(frm, to, variant, lines, a0, b0, first):
    """One diff, coloured; the first FIX: line (or first added line) named."""
    body, fix_line, old, new = [], None, 0, 0
    for line in lines[2:]:  # without the ---/+++ header
        if line.startswith("@@"):
            m = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)", line)
            old, new = int(m.group(1)) + a0, int(m.group(2)) + b0
            body.append(f'<span class="hunk">{html.escape(line)}</span>')
            continue
        cls, number = "ctx", ""
        if line.startswith("+"):
            cls, number = "add", new
            if fix_line is None and "FIX:" in line:
                fix_line = new
            new += 1
        elif line.startswith("-"):
            cls, number = "del", old
            old += 1
        else:
            number = new
            old += 1
            new += 1
        if "FIX:" in line or "FLAW:" in line:
            cls += " note"
        body.append(f'<span class="{cls}"><i>{number}</i>{html.escape(line)}</span>')
    if fix_line is None:
        fix_line = next((int(re.match(r'<span class="add[^"]*"><i>(\d+)', b).group(1))
                         for b in body if b.startswith('<span class="add')), None)
    added = sum(b.startswith('<span class="add') for b in body)
    removed = sum(b.startswith('<span class="del') for b in body)
    site = f"{pathlib.PurePath(to).name}:{fix_line}" if fix_line else ""
    title = (f'<summary>The fix{" (" + html.escape(variant) + ")" if variant else ""}: '
             f'<code>{html.escape(frm)}</code> &rarr; <code>{html.escape(to)}</code>, '
             f'+{added} &minus;{removed} lines'
             + (f'; it starts at <code class="fixline">{html.escape(site)}</code>' if site else "")
             + "</summary>")
    return (f'<details class="diff" {"open" if first else ""} data-from="{html.escape(frm)}" '
            f'data-to="{html.escape(to)}" data-variant="{html.escape(variant)}" data-added="{added}" '
            f'data-removed="{removed}" data-fix-line="{html.escape(site)}">{title}'
            f'<pre>{"".join(body)}</pre></details>')


# ---- the samples: lanes, ends, roles -----------------------------------------


def end_of(d):
    """When the scenario ended (before its teardown), on the samples' clock."""
    samples = d.get("samples") or []
    end = d.get("end_us")
    if end is None:
        end = max((s["t_us"] for s in samples), default=0)
    return end


def lanes_of(d):
    """The TCP sockets of the scenario (samples up to its end), this process's
    and its children's: each with its states over time and how it ended."""
    end = end_of(d)
    samples = [s for s in d.get("samples") or [] if s["t_us"] <= end]
    if not samples:
        return [], samples
    listening = {t["local"].rsplit(":", 1)[-1] for s in samples
                 for t in s["tcp"] + [t for c in s.get("children", []) for t in c["tcp"]] if t["state"] == "LISTEN"}
    leaked = {f.get("inode") for f in d.get("leaked", []) if f.get("inode")}
    lanes = {}
    for i, s in enumerate(samples):
        holders = [(None, "", s["tcp"])] + [(c["pid"], c["command"], c["tcp"]) for c in s.get("children", [])]
        for pid, command, socks in holders:
            for sock in socks:
                key = (pid, sock["inode"])
                lane = lanes.get(key)
                if lane is None:
                    peer = f' &rarr; {html.escape(sock["peer"])}' if sock["peer"] else ""
                    who = f"{html.escape(command)}[{pid}] " if pid else ""
                    lane = lanes[key] = {
                        "pid": pid, "inode": sock["inode"], "points": [],
                        "label": f'{who}fd {sock["fd"]}  {html.escape(sock["local"])}{peer}',
                        "local": sock["local"], "peer": sock["peer"],
                        "leaked": pid is None and sock["inode"] in leaked,
                    }
                lane["points"].append((s["t_us"], sock["state"]))
                lane["last"] = i
                if sock["local"] and not sock["local"].endswith(":0") and lane["local"] != sock["local"] or \
                        sock["peer"] and lane["peer"] != sock["peer"]:  # bound or connected since: say where
                    peer = f' &rarr; {html.escape(sock["peer"])}' if sock["peer"] else ""
                    who = f"{html.escape(command)}[{pid}] " if pid else ""
                    lane["label"] = f'{who}fd {sock["fd"]}  {html.escape(sock["local"])}{peer}'
                    lane["local"], lane["peer"] = sock["local"], sock["peer"]
    for lane in lanes.values():
        if lane["peer"] in ("0.0.0.0:0", "[::]:0", "*:*"):
            lane["label"] = lane["label"].split(" &rarr; ")[0]
        # Open at the end: in the last sample, or a leak the verdict found open then
        # (a sample can miss an fd that another thread's open or close moved).
        if lane["last"] == len(samples) - 1 or lane["leaked"]:
            lane["end"], lane["end_t"] = "open", end
        else:
            lane["end"], lane["end_t"] = "closed", samples[lane["last"] + 1]["t_us"]
        # Its role, to match it with the same socket in another variant.
        states = [p[1] for p in lane["points"]]
        local_port = lane["local"].rsplit(":", 1)[-1]
        peer_port = lane["peer"].rsplit(":", 1)[-1] if lane["peer"] else ""
        if "LISTEN" in states:
            role = "listener"
        elif local_port in listening:
            role = "accepted"
        elif peer_port in listening:
            role = "connected"
        else:
            role = "outbound"
        lane["role"] = ("child " if lane["pid"] else "") + role
        lane["label"] = f'<tspan class="role">{ROLE_NAMES[role]}</tspan> ' + lane["label"]
        lane["states"] = states
    ordered = sorted(lanes.values(), key=lambda l: (l["pid"] is not None, l["points"][0][0]))
    return ordered, samples


def nice_ticks(end_ms):
    """Round tick values for an axis from 0 to end_ms."""
    if end_ms <= 0:
        return [0]
    raw = end_ms / 6
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks, t = [], 0.0
    while t <= end_ms * 1.0001:
        ticks.append(t)
        t += step
    return ticks


class TimeAxis:
    """A time axis shared by a case's variants, linear but for long stretches in
    which nothing changes (no lane starts, ends or changes state, no mark, no
    CPU or count series moves): those are cut short and drawn as a break, so
    that a 3 ms close and a 180 ms wait for a leak to settle both read."""

    def __init__(self, moments, end, left, width):
        self.left, self.width = left, width
        pts = sorted({0, end} | {t for t in moments if 0 <= t <= end})
        self.segments = [[a, b, b - a, False] for a, b in zip(pts, pts[1:]) if b > a]  # a, b, shown, cut
        for _ in range(6):  # cut the longest stretch while it is more than 25% of what is not cut
            uncut = [seg for seg in self.segments if not seg[3]]
            if len(uncut) < 2:
                break
            seg = max(uncut, key=lambda g: g[2])
            if seg[2] <= 0.25 * sum(g[2] for g in uncut) or seg[2] < 2000:
                break
            seg[3] = True
        merged = []  # neighbouring cuts are one
        for seg in self.segments:
            if merged and seg[3] and merged[-1][3]:
                merged[-1][1] = seg[1]
            else:
                merged.append(seg)
        self.segments = merged
        # each cut is drawn 5% of the axis wide
        cuts = sum(seg[3] for seg in self.segments)
        uncut_total = sum(seg[2] for seg in self.segments if not seg[3]) or 1
        for seg in self.segments:
            if seg[3]:
                seg[2] = uncut_total * 0.05 / (1 - 0.05 * cuts)
        self.total = sum(seg[2] for seg in self.segments) or 1

    def __call__(self, t):
        offset = 0.0
        for a, b, shown, _ in self.segments:
            if t <= b:
                return self.left + self.width * (offset + shown * max(0, t - a) / (b - a)) / self.total
            offset += shown
        return self.left + self.width

    def ticks(self):
        """(t, x) of round times in each uncut run, and the cut stretches (x0, x1, length)."""
        runs, cuts = [], []
        for a, b, shown, cut in self.segments:
            if cut:
                cuts.append((self(a), self(b), b - a))
            elif runs and runs[-1][1] == a:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        ticks = []
        for a, b in runs:
            px = self(b) - self(a)
            if px < 40:
                continue
            raw = (b - a) / max(1, px / 90)
            mag = 10 ** int(f"{raw:e}".split("e")[1])
            step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
            t = (a // step) * step
            while t <= b:
                if t >= a:
                    ticks.append((t, self(t)))
                t += step
        return ticks, cuts


def fmt_ms(us):
    ms = us / 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def case_timeline(case, variants):
    """One SVG for all of a case's variants, on one time axis: per variant its
    lanes (with their ends), its marked moments, its scenario end, and the
    picture its kind of failure needs (CPU for a spin, counts for a leak of
    descriptors that are not sockets)."""
    W, LEFT, RIGHT, LANE_H = 1210, 340, 225, 16
    plot = W - LEFT - RIGHT
    axis_end = max(end_of(v) for v in variants) or 1
    axis_end *= 1.02
    kinds_leaked = sorted({f["kind"] for v in variants for f in v.get("leaked", [])
                           if not (f["kind"] == "socket" and f.get("protocol") == "tcp")})
    moments = set()
    for v in variants:
        lanes, samples = lanes_of(v)
        events = v.get("events", [])
        moments |= {end_of(v)} | {e["t_us"] for e in events}
        for lane in lanes:
            moments |= {lane["end_t"]} | {t for t, _ in lane["points"][:1]}
            moments |= {t for (t, st), (_, prev) in zip(lane["points"][1:], lane["points"]) if st != prev}
        if v.get("failure") == "spin" and events:  # the CPU series moves all through the window
            moments |= {s["t_us"] for s in samples if events[0]["t_us"] <= s["t_us"] <= events[-1]["t_us"]}
        moments |= {s["t_us"] for s, prev in zip(samples[1:], samples)
                    if any(s["kinds"].get(k) != prev["kinds"].get(k) for k in kinds_leaked)}
    x = TimeAxis(moments, axis_end, LEFT, plot)
    parts, y = [], 8
    for v in variants:
        lanes, samples = lanes_of(v)
        end = end_of(v)
        failure = v.get("failure", "leak")
        cpu = failure == "spin" and any(s.get("children") for s in samples)
        shown = sorted(lanes, key=lambda l: not l["leaked"])[:LANES]
        shown.sort(key=lambda l: lanes.index(l))
        events = v.get("events", [])
        group_top = y
        parts.append(f'<g class="variant" data-variant="{html.escape(v["variant"])}">')
        parts.append(f'<text x="0" y="{y + 12}" class="vname">{html.escape(v["variant"])}</text>'
                     f'<text x="{LEFT - 8}" y="{y + 12}" text-anchor="end" class="vsub">'
                     f'{len(lanes)} TCP socket{"s" if len(lanes) != 1 else ""} in the scenario'
                     f'{", " + str(len(lanes) - len(shown)) + " not drawn" if len(lanes) > len(shown) else ""}'
                     f'</text>')
        y += 18
        y_events = y
        y += 14 * len(events) if events else 0
        for lane in shown:
            ly = y
            pts = [p for j, p in enumerate(lane["points"]) if j == 0 or p[1] != lane["points"][j - 1][1]]
            segs = []  # one per run of samples in the same state
            for j, (t, state) in enumerate(pts):
                t1 = pts[j + 1][0] if j + 1 < len(pts) else lane["end_t"]
                segs.append(f'<rect x="{x(t):.1f}" y="{ly}" width="{max(x(t1) - x(t), 1.5):.1f}" height="{LANE_H - 5}" '
                            f'fill="{COLORS.get(state, "#000")}"><title>{html.escape(state)} from {fmt_ms(t)}'
                            f'</title></rect>')
            ex = x(lane["end_t"])
            if lane["end"] == "closed":
                mark = (f'<line x1="{ex:.1f}" x2="{ex:.1f}" y1="{ly - 2}" y2="{ly + LANE_H - 3}" class="closed"/>'
                        f'<text x="{ex + 4:.1f}" y="{ly + LANE_H - 6}" class="end closed">closed at {fmt_ms(lane["end_t"])}</text>')
            else:
                mark = (f'<path d="M{ex:.1f},{ly - 1} l6,{(LANE_H - 5) / 2 + 1:.1f} l-6,{(LANE_H - 5) / 2 + 1:.1f} z" class="open"/>'
                        f'<text x="{ex + 9:.1f}" y="{ly + LANE_H - 6}" class="end open">still open when the scenario ended</text>')
            states = " → ".join(dict.fromkeys(lane["states"]))
            parts.append(
                f'<g class="lane{" leaked" if lane["leaked"] else ""}{" child" if lane["pid"] else ""}" '
                f'data-end="{lane["end"]}" data-end-ms="{lane["end_t"] / 1000:.3f}" data-role="{html.escape(lane["role"])}" '
                f'data-inode="{lane["inode"]}" data-leaked="{int(lane["leaked"])}" data-states="{html.escape(states)}">'
                f'<title>{lane["label"]}: {html.escape(states)}</title>'
                f'<text x="{LEFT - 8}" y="{ly + LANE_H - 6}" text-anchor="end" class="lane">{lane["label"]}</text>'
                f'{"".join(segs)}{mark}</g>')
            y += LANE_H
        if not lanes:
            parts.append(f'<text x="{LEFT}" y="{y + 10}" class="vsub">no TCP socket in this variant\'s scenario</text>')
            y += LANE_H
        if failure == "hang" and events and v["broken"]:  # a hang: how long the close has waited
            t0 = events[0]["t_us"]
            x0, x1 = x(t0), x(end)
            parts.append(f'<g class="hang"><path d="M{x0:.1f},{y + 2} v6 H{x1:.1f} v-6" class="hang"/>'
                         f'<text x="{x0 + 4:.1f}" y="{y + 20}" class="end hang">the close began at '
                         f'&#8220;{html.escape(events[0]["what"])}&#8221;: {fmt_ms(end - t0)} later it has not '
                         f'finished, and it never will</text></g>')
            y += 26
        if cpu:  # a spin: the children's CPU use between samples, as a share of one core
            h = 46
            pts, prev = [], None
            for s in samples:
                total = sum(c.get("cpu_us", 0) for c in s.get("children", []))
                if prev and s["t_us"] > prev[0]:
                    share = max(0.0, min(1.0, (total - prev[1]) / (s["t_us"] - prev[0])))
                    pts.append((prev[0], share))
                    pts.append((s["t_us"], share))
                prev = (s["t_us"], total)
            path = " ".join(f"{x(t):.1f},{y + h - share * h:.1f}" for t, share in pts)
            first_x = x(pts[0][0]) if pts else LEFT
            last_x = x(pts[-1][0]) if pts else LEFT
            # the share over the scenario's action: from its first marked moment to its last
            t0 = events[0]["t_us"] if events else samples[0]["t_us"]
            t1 = events[-1]["t_us"] if len(events) > 1 else end
            at = lambda t: next((sum(c.get("cpu_us", 0) for c in s_.get("children", [])), s_["t_us"])
                                for s_ in samples if s_["t_us"] >= t) if samples else (0, 0)
            (c0, u0), (c1, u1) = at(t0), at(t1)
            peak = max(0.0, (c1 - c0) / (u1 - u0)) if u1 > u0 else 0.0
            span = "between the first and last marks" if len(events) > 1 else "over the scenario"
            parts.append(f'<g class="cpu" data-peak="{peak:.2f}">'
                         f'<text x="{LEFT - 8}" y="{y + 12}" text-anchor="end" class="lane">the server\'s CPU use</text>'
                         f'<text x="{LEFT - 8}" y="{y + 24}" text-anchor="end" class="vsub">(its child process, share of one core)</text>'
                         f'<rect x="{LEFT}" y="{y}" width="{plot}" height="{h}" class="cpubg"/>'
                         f'<text x="{LEFT + 3}" y="{y + 9}" class="tick">100%</text>'
                         f'<polygon points="{first_x:.1f},{y + h} {path} {last_x:.1f},{y + h}" class="cpuarea"/>'
                         f'<text x="{x(end) + 9:.1f}" y="{y + h / 2 + 4:.1f}" class="end spin">'
                         f'{peak * 100:.0f}% of a core</text>'
                         f'<text x="{x(end) + 9:.1f}" y="{y + h / 2 + 16:.1f}" class="end">{span}</text></g>')
            y += h + 6
        if kinds_leaked:  # a leak of descriptors that are not sockets: their counts over time
            h = 40
            top = max((s["kinds"].get(k, 0) for vv in variants for s in (vv.get("samples") or [])
                       if s["t_us"] <= end_of(vv) for k in kinds_leaked), default=1) or 1
            parts.append(f'<g class="kinds"><text x="{LEFT - 8}" y="{y + 12}" text-anchor="end" class="lane">'
                         f'descriptors by kind</text><rect x="{LEFT}" y="{y}" width="{plot}" height="{h}" class="cpubg"/>'
                         f'<text x="{LEFT + 3}" y="{y + 9}" class="tick">{top}</text>')
            for n, k in enumerate(kinds_leaked):
                pts = []
                t0 = events[0]["t_us"] if events else 0  # counted from the first marked moment
                for s in samples:
                    c = s["kinds"].get(k, 0)
                    if pts:
                        pts.append((s["t_us"], pts[-1][1]))
                    pts.append((s["t_us"], c))
                color = KIND_COLORS[n % len(KIND_COLORS)]
                path = " ".join(f"{x(t):.1f},{y + h - c * h / top:.1f}" for t, c in pts)
                last = sorted(s["kinds"].get(k, 0) for s in samples[-5:])  # the median of the last 5:
                final = last[len(last) // 2] if last else 0                   # one sample may miss an fd
                first = next((s["kinds"].get(k, 0) for s in samples if s["t_us"] >= t0), final)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{2 + (n == 0)}"/>'
                             f'<text x="{x(end) + 9:.1f}" y="{y + 10 + 11 * n}" class="end" fill="{color}" '
                             f'data-kind="{html.escape(k)}" data-first="{first}" data-final="{final}">'
                             f'{html.escape(k)}: {first} &rarr; {final}</text>')
            parts.append("</g>")
            y += h + 6
        # the scenario's end and its marked moments, over the variant's lanes
        right = x(end) < LEFT + 170  # near the start: the label goes right of the line
        parts.append(f'<line x1="{x(end):.1f}" x2="{x(end):.1f}" y1="{group_top + 16}" y2="{y}" class="scenario-end"/>'
                     f'<text x="{x(end) + (3 if right else -3):.1f}" y="{group_top + 12}" '
                     f'text-anchor="{"start" if right else "end"}" class="endlabel">'
                     f'scenario ended {fmt_ms(end)}</text>')
        for n, e in enumerate(events):
            ex = x(e["t_us"])
            ty = y_events + 10 + 14 * n
            anchor = "end" if ex > LEFT + plot * 0.6 else "start"
            dx = -4 if anchor == "end" else 4
            parts.append(f'<g class="event" data-t-ms="{e["t_us"] / 1000:.3f}"><line x1="{ex:.1f}" x2="{ex:.1f}" '
                         f'y1="{ty - 9}" y2="{y}" class="event"/><text x="{ex + dx:.1f}" y="{ty}" text-anchor="{anchor}" '
                         f'class="event">{html.escape(e["what"])} ({fmt_ms(e["t_us"])})</text></g>')
        parts.append("</g>")
        y += 10
    # the axis, shared, with its cut stretches
    ticks, cuts = x.ticks()
    axis = [f'<line x1="{LEFT}" x2="{LEFT + plot}" y1="{y}" y2="{y}" class="axis"/>']
    for t, tx in ticks:
        axis.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y}" y2="{y + 4}" class="axis"/>'
                    f'<text x="{tx:.1f}" y="{y + 15}" text-anchor="middle" class="tick">{t / 1000:g} ms</text>')
        axis.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="8" y2="{y}" class="grid"/>')
    labelled = -1e9
    for x0, x1, length in cuts:
        mid = (x0 + x1) / 2
        axis.append(f'<rect x="{x0:.1f}" y="8" width="{x1 - x0:.1f}" height="{y - 8}" class="grid cut"/>'
                    f'<path d="M{mid - 5:.1f},{y + 4} l4,-8 l2,8 l4,-8" class="cut"/>')
        if mid - labelled > 60:
            axis.append(f'<text x="{mid:.1f}" y="{y + 26}" text-anchor="middle" class="tick cut">'
                        f'{fmt_ms(length)} cut</text>')
            labelled = mid
    axis.append(f'<text x="{LEFT - 24}" y="{y + 15}" text-anchor="end" class="tick">time since the program started</text>')
    if cuts:
        axis.append(f'<text x="{LEFT - 24}" y="{y + 26}" text-anchor="end" class="tick cut">'
                    f'shaded: a stretch in which nothing changed, cut short</text>')
    h = y + 32
    return (f'<svg class="timeline" data-case="{html.escape(case)}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" '
            f'role="img">{"".join(axis[:1])}{"".join(a for a in axis if "grid" in a)}{"".join(parts)}'
            f'{"".join(a for a in axis[1:] if "grid" not in a)}</svg>')


# ---- leaks and open sites (kept from the first report) ------------------------


def site_of(f):
    """(path relative to the source tree, line, function) of a leak's open site, or None."""
    opened = f.get("opened") or {}
    frames = opened.get("frames") or []
    site = opened.get("site")
    for fr in frames:
        if site and site.startswith(f'{fr["file"]}:{fr["line"]} ') or site == f'{fr["file"]}:{fr["line"]}':
            path = pathlib.Path(fr["file"])
            try:
                rel = path.resolve().relative_to(ROOT)
            except ValueError:
                rel = path
            return str(rel), fr["line"], fr["function"]
    return None


def excerpt(rel, line, function):
    """The lines around an open site, the site's own marked: where the bug's fd was made."""
    try:
        lines = (ROOT / rel).read_text().splitlines()
    except OSError:
        return ""
    first, last = max(1, line - 3), min(len(lines), line + 2)
    body = "".join(f'<span class="{"here" if n == line else "ctx"}">{n:4d}  {html.escape(lines[n - 1])}</span>\n'
                   for n in range(first, last + 1))
    return (f'<div class="site" data-site="{html.escape(rel)}:{line}"><p>opened at <code>{html.escape(rel)}:{line}'
            f'</code> in <code>{html.escape(function)}</code></p><pre>{body}</pre></div>')


def badge(d):
    failure = d.get("failure", "leak")
    if d["verdict"] == "UNEXPECTED":
        return "bad", "UNEXPECTED"
    good, clean = BADGES.get(failure, BADGES["leak"])
    return "ok", good if d["broken"] else clean


def variant_block(d):
    cls, text = badge(d)
    failure = d.get("failure", "leak")
    leaked = d.get("leaked", [])[:50]
    sites = [site_of(f) for f in leaked]
    rows = "".join(
        f"<tr><td>{f['fd']}</td><td>{html.escape(f['kind'])}</td>"
        f"<td>{html.escape(f.get('protocol', ''))}</td><td>{html.escape(f.get('local', f['target']))}</td>"
        f"<td>{html.escape(f.get('peer', ''))}</td><td>{html.escape(f.get('state', ''))}</td>"
        f"<td title=\"{html.escape(f'{s[0]}:{s[1]}') if s else ''}\">"
        f"{html.escape(pathlib.PurePath(s[0]).name + ':' + str(s[1])) if s else ''}</td></tr>"
        for f, s in zip(leaked, sites))
    if rows:
        table = (f'<table class="leaks"><tr><th>fd</th><th>kind</th><th>protocol</th><th>local / target</th>'
                 f'<th>peer</th><th>state</th><th>opened at</th></tr>{rows}</table>')
    elif failure == "spin" and d["broken"]:
        table = '<p class="none">no descriptor leaked: what it loses is a core (the CPU use above)</p>'
    elif failure == "held" and d["broken"]:
        table = ('<p class="none">nothing left in this process: its child holds the sockets '
                 '(the lanes marked with the child\'s pid above)</p>')
    else:
        table = '<p class="none">nothing leaked</p>'
    # Each distinct open site once, with its source: the line that made what the bug never closed.
    shown = "".join(excerpt(*s) for s in dict.fromkeys(s for s in sites if s))
    return (f'<div class="variant" data-variant="{html.escape(d["variant"])}" data-verdict="{html.escape(d["verdict"])}">'
            f'<h3>{html.escape(d["variant"])} <span class="verdict {cls}">{html.escape(text)}</span></h3>'
            f'<p class="summary">{html.escape(d["summary"]) or "&nbsp;"}</p>{table}{shown}</div>')


def comparison(variants):
    """One sentence per fixed variant: what it did with the sockets the broken one left open."""
    broken = [v for v in variants if v["broken"]]
    if not broken:
        return ""
    b = broken[0]
    b_lanes, _ = lanes_of(b)
    failure = b.get("failure", "leak")
    out = []
    stuck = [l for l in b_lanes if l["end"] == "open" and (l["leaked"] or l["pid"] and failure == "held")]
    roles = list(dict.fromkeys(l["role"] for l in stuck))
    role_names = ", ".join(("held by a child: " if r.startswith("child ") else "") + ROLE_NAMES[r.split()[-1]]
                           for r in roles)
    if stuck:
        states = ", ".join(sorted({l["states"][-1] for l in stuck}))
        out.append(f'<li><b>{html.escape(b["variant"])}</b>: {len(stuck)} socket{"s" if len(stuck) > 1 else ""} '
                   f'({html.escape(role_names)}, {html.escape(states)}) still open when the scenario ended.</li>')
    elif failure == "spin":
        out.append(f'<li><b>{html.escape(b["variant"])}</b>: {html.escape(b.get("note") or b["summary"])}</li>')
    elif b.get("leaked"):
        out.append(f'<li><b>{html.escape(b["variant"])}</b>: {html.escape(b["summary"])}</li>')
    for v in variants:
        if v["broken"]:
            continue
        lanes, _ = lanes_of(v)
        same = [l for l in lanes if l["role"] in roles]
        if roles and same:
            closed = [l for l in same if l["end"] == "closed"]
            when = ", ".join(fmt_ms(l["end_t"]) for l in closed[:4])
            text = (f'closed {"all " + str(len(closed)) + " of " if len(same) > 1 else ""}its '
                    f'{html.escape(role_names)} socket{"s" if len(same) > 1 else ""} (at {when})'
                    if closed else "left them open too")
            if len(closed) < len(same) and closed:
                text += f"; {len(same) - len(closed)} still open"
        elif failure == "held":
            held = [l for l in lanes if l["pid"] and l["end"] == "open"]
            text = (f"its child still holds {len(held)} socket{'s' if len(held) > 1 else ''} at the end" if held
                    else "its child holds none of its sockets: each one closed when the server closed it")
        elif roles:
            text = "never held such a socket"
        elif failure == "spin":
            text = html.escape(v.get("note") or v["summary"] or "clean")
        else:
            text = "leaked nothing" if not v.get("leaked") else html.escape(v["summary"])
        out.append(f'<li><b>{html.escape(v["variant"])}</b>: {text}.</li>')
    return f'<ul class="compare">{"".join(out)}</ul>'


# ---- the library matrix ---------------------------------------------------------


def version_key(v):
    return tuple(int(x) if x.isdigit() else 0 for x in v.split("."))


def matrix_table(matrix_dir):
    """The library matrix: one row per case, one column per library version."""
    if matrix_dir is None:
        return ""
    cells = [json.loads(p.read_text()) for p in sorted(matrix_dir.glob("*/*.json"))]
    if not cells:
        return (f'<section id="matrix"><h2>Library matrix</h2><p class="none">no cells in '
                f'{html.escape(str(matrix_dir))}: run <code>ctest -L matrix</code></p></section>')
    tags = [t for *_, t in sorted({(c["library"], version_key(c["version"]), c["tag"]) for c in cells})]
    by = {(c["case"], c["tag"]): c for c in cells}
    head = "".join(f'<th>{html.escape(t)}</th>' for t in tags)
    rows = []
    for case in sorted({c["case"] for c in cells}):
        tds = []
        for t in tags:
            c = by.get((case, t))
            if c is None:
                tds.append('<td class="na">&ndash;</td>')
                continue
            outcome = {"reproduces": "repro", "the library no longer does this": "gone",
                       "does not build": "nobuild"}.get(c["got"], "other")
            detail = [f'expected: {c["expected"]} ({c["expect_source"]})']
            detail += [f'{v["variant"]}: {v["verdict"]} {v["summary"]}'.rstrip() for v in c["variants"]]
            detail += [f'{v}: pinned to a library version of its own, not run here' for v in c.get("pinned", [])]
            detail += [c["note"]] if c.get("note") else []
            detail += c["problems"]
            changed = ""
            if c["got"] != c["expected"]:
                changed += f'<br><span class="changed">CHANGED: expected {html.escape(c["expected"])}</span>'
            if any(p.startswith("FIXED VARIANT") for p in c["problems"]):
                changed += '<br><span class="changed">a fixed variant is not clean</span>'
            tds.append(f'<td class="cell {outcome} {"ok" if c["ok"] else "bad"}" data-case="{html.escape(case)}" '
                       f'data-tag="{html.escape(t)}" title="{html.escape(chr(10).join(detail))}">'
                       f'{html.escape(c["got"])}{changed}</td>')
        rows.append(f'<tr><th class="case"><a href="#{html.escape(case)}">{html.escape(case)}</a></th>{"".join(tds)}</tr>')
    changed = sum(not c["ok"] for c in cells)
    return (f'<section id="matrix"><h2>Library matrix</h2><p>Each case with the library behaviour it '
            f'depends on, built and run against every version of that library: does its broken variant '
            f'still reproduce the bug? Every fixed variant is also checked clean on every version. '
            f'{len(cells)} cells, {changed} differ from what the case declares (hover a cell for details).</p>'
            f'<table class="matrix"><tr><th>case</th>{head}</tr>{"".join(rows)}</table></section>')


# ---- the page -------------------------------------------------------------------


def case_section(name, variants, out_dir):
    sentence, rest, links = readme_lesson(name)
    failure = next((v.get("failure", "leak") for v in variants if v["broken"]), variants[0].get("failure", "leak"))
    readme = os.path.relpath(ROOT / "cases" / name / "README.md", out_dir)
    link_html = (f'<a class="readme" href="{html.escape(readme)}">the case README</a> (story, timeline, how to run it)'
                 + "".join(f' &middot; <a class="upstream" href="{html.escape(url)}">{html.escape(label)}</a>'
                           for label, url in links))
    diffs = fix_diffs(name, variants)
    diff_html = "".join(diff_block(*d, first=(i == 0)) for i, d in enumerate(diffs)) or \
        '<p class="nodiff">no fix diff: the variants share their sources</p>'
    verdicts = "".join(f'<span class="verdict {badge(v)[0]}" title="{html.escape(v["variant"])}">'
                       f'{html.escape(v["variant"])}: {html.escape(badge(v)[1])}</span> ' for v in variants)
    return (f'<section class="case" id="{html.escape(name)}" data-failure="{html.escape(failure)}">'
            f'<h2>{html.escape(name)} <span class="kind {html.escape(failure)}">{html.escape(KIND_TITLES.get(failure, failure))}</span></h2>'
            f'<p class="mechanism">{inline_md(sentence)}</p>'
            + (f'<p class="story">{inline_md(rest)}</p>' if rest else "")
            + f'<p class="links">{link_html}</p>'
            f'<p class="verdicts">{verdicts}</p>{comparison(variants)}'
            f'<figure>{case_timeline(name, variants)}</figure>'
            f'{diff_html}'
            f'<div class="side-by-side">{"".join(variant_block(v) for v in variants)}</div></section>')


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: ci/report.py DATA_DIR OUT_HTML [MATRIX_DIR]")
    data_dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    matrix_dir = pathlib.Path(sys.argv[3]) if len(sys.argv) == 4 else None
    runs = [json.loads(p.read_text()) for p in sorted(data_dir.glob("*.json"))]
    if not runs:
        sys.exit(f"ci/report.py: no corpus results in {data_dir}")
    cases = {}
    for r in runs:
        cases.setdefault(r["case"], []).append(r)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_dir = out.parent.resolve()
    sections, toc = [], []
    for name, variants in cases.items():
        variants.sort(key=lambda v: (not v["broken"], v["variant"]))
        sections.append(case_section(name, variants, out_dir))
        sentence, _, _ = readme_lesson(name)
        failure = next((v.get("failure", "leak") for v in variants if v["broken"]), "leak")
        ok = all(v["verdict"] != "UNEXPECTED" for v in variants)
        toc.append(f'<tr><td><a href="#{html.escape(name)}">{html.escape(name)}</a></td>'
                   f'<td><span class="kind {html.escape(failure)}">{html.escape(failure)}</span></td>'
                   f'<td class="{"ok" if ok else "bad"}">{"as expected" if ok else "UNEXPECTED"}</td>'
                   f'<td>{inline_md(sentence)}</td></tr>')
    legend = "".join(f'<span class="key" style="background:{c}"></span>{s} ' for s, c in COLORS.items()
                     if s != "NONE")
    unexpected = sum(r["verdict"] == "UNEXPECTED" for r in runs)
    out.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>closecheck corpus report</title>
<style>
body {{ font: 14px/1.4 sans-serif; margin: 24px; color: #222; max-width: 1250px; }}
h2 {{ margin-bottom: 4px; }}
section.case {{ border-top: 3px solid #444; margin-top: 28px; padding-top: 4px; }}
p.mechanism {{ font-size: 17px; margin: 4px 0; }}
p.story {{ margin: 2px 0 4px; color: #444; }}
p.links {{ margin: 2px 0 8px; font-size: 13px; }}
.kind {{ font-size: 12px; font-weight: normal; padding: 2px 8px; border-radius: 10px; background: #eceff1;
        vertical-align: middle; }}
.kind.spin {{ background: #fff3c4; }} .kind.hang {{ background: #e1f5fe; }} .kind.held {{ background: #f3e5f5; }}
.kind.leak {{ background: #fde0dc; }}
.side-by-side {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(580px, 1fr)); gap: 16px; }}
.variant {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; overflow-x: auto; }}
.verdict {{ font-size: 12px; padding: 2px 8px; border-radius: 10px; color: white; }}
.verdict.ok {{ background: #2e7d32; }} .verdict.bad {{ background: #c62828; }}
ul.compare {{ margin: 4px 0 8px; padding-left: 20px; }}
.summary {{ font-family: monospace; white-space: pre-wrap; }}
table.leaks {{ border-collapse: collapse; font-family: monospace; font-size: 12px; }}
table.leaks td, table.leaks th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
div.site p {{ margin: 8px 0 2px; font-size: 13px; }}
div.site pre {{ margin: 0; background: #f6f6f6; font-size: 12px; padding: 4px; overflow-x: auto; }}
div.site span.here {{ background: #ffe08a; font-weight: bold; }}
div.site span.ctx {{ color: #555; }}
figure {{ margin: 8px 0; overflow-x: auto; }}
svg.timeline text.lane {{ font: 10px monospace; fill: #111; }}
svg.timeline g.lane.leaked text.lane {{ font-weight: bold; }}
svg.timeline g.lane.child text.lane {{ fill: #6a1b9a; }}
svg.timeline tspan.role {{ font: italic 10px sans-serif; fill: #777; }}
svg.timeline text.vname {{ font: bold 13px sans-serif; }}
svg.timeline text.vsub, svg.timeline text.tick {{ font: 10px sans-serif; fill: #666; }}
svg.timeline text.end {{ font: 10px sans-serif; }}
svg.timeline text.end.closed {{ fill: #2e7d32; }} svg.timeline text.end.open {{ fill: #c62828; font-weight: bold; }}
svg.timeline line.closed {{ stroke: #111; stroke-width: 2; }}
svg.timeline path.open {{ fill: #c62828; }}
svg.timeline line.axis {{ stroke: #555; }} svg.timeline line.grid {{ stroke: #eee; }}
svg.timeline rect.cut {{ fill: #f3f3f3; fill-opacity: 0.6; }} svg.timeline path.cut {{ fill: none; stroke: #555; }}
svg.timeline text.tick.cut {{ fill: #999; font-style: italic; }}
svg.timeline line.scenario-end {{ stroke: #111; stroke-dasharray: 2 2; }}
svg.timeline text.endlabel {{ font: 10px sans-serif; fill: #111; }}
svg.timeline line.event {{ stroke: #1565c0; stroke-dasharray: 4 3; }}
svg.timeline text.event {{ font: 10px sans-serif; fill: #1565c0; }}
svg.timeline rect.cpubg {{ fill: #fafafa; stroke: #ddd; }}
svg.timeline polygon.cpuarea {{ fill: #f9a825; stroke: #e65100; }}
svg.timeline text.end.spin {{ fill: #e65100; font-weight: bold; }}
svg.timeline path.hang {{ fill: none; stroke: #c62828; stroke-width: 1.5; }}
svg.timeline text.end.hang {{ fill: #c62828; }}
details.diff {{ border: 1px solid #ddd; border-radius: 6px; margin: 8px 0; }}
details.diff summary {{ padding: 4px 8px; background: #f6f8fa; cursor: pointer; }}
details.diff pre {{ margin: 0; font-size: 12px; padding: 4px 0; overflow-x: auto; }}
details.diff pre span {{ display: block; padding: 0 8px; white-space: pre; }}
details.diff pre i {{ display: inline-block; width: 3.5em; color: #999; font-style: normal; }}
details.diff span.add {{ background: #e6ffec; }} details.diff span.del {{ background: #ffebe9; }}
details.diff span.hunk {{ color: #777; background: #f1f8ff; }}
details.diff span.note {{ font-weight: bold; }}
code.fixline {{ background: #e6ffec; padding: 0 4px; }}
table.toc {{ border-collapse: collapse; }} table.toc td:first-child {{ white-space: nowrap; }} table.toc td {{ border-bottom: 1px solid #eee; padding: 3px 8px; vertical-align: top; }}
table.toc td.ok {{ color: #2e7d32; }} table.toc td.bad {{ color: #c62828; font-weight: bold; }}
table.matrix {{ border-collapse: collapse; margin-bottom: 16px; }}
table.matrix td, table.matrix th {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
table.matrix th.case {{ font-weight: normal; font-family: monospace; }}
table.matrix td.repro {{ background: #fde0dc; }} table.matrix td.gone {{ background: #e0f2e9; }}
table.matrix td.nobuild {{ background: #eeeeee; color: #555; }} table.matrix td.other {{ background: #fff3c4; }}
table.matrix td.bad {{ outline: 3px solid #c62828; outline-offset: -3px; }}
table.matrix td.na {{ color: #bbb; }}
table.matrix span.changed {{ color: #c62828; font-weight: bold; font-size: 12px; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 10px; vertical-align: middle; }}
p.legend {{ background: #f6f8fa; padding: 6px 10px; border-radius: 6px; }}
</style></head><body>
<h1>closecheck corpus report</h1>
<p>{len(cases)} cases, {len(runs)} variants, {unexpected} unexpected. Each case is a real upstream bug:
its broken variant next to its fix, each run once here while a sampler read this process's descriptors.</p>
<p class="legend"><b>How to read a lane:</b> one TCP socket the program held, coloured by the state the
kernel reported in each sample, from when it appeared to a black bar with <span style="color:#2e7d32">closed
at T</span> or a red arrow, <span style="color:#c62828"><b>still open when the scenario ended</b></span>
(dashed line); blue dashed lines are the moments the scenario marked, and all variants of a case share one
time axis.<br>{legend}</p>
<table class="toc">{"".join(toc)}</table>
{matrix_table(matrix_dir)}
{"".join(sections)}
<script>
// index.html#only=CASE shows that case alone (the README's screenshot)
var only = location.hash.match(/^#only=(.+)$/);
if (only) document.querySelectorAll("section.case, #matrix, table.toc").forEach(function (s) {{
  if (s.id !== only[1]) s.style.display = "none";
}});
</script>
</body></html>
""")
    print(f"ci/report.py: wrote {out}")


if __name__ == "__main__":
    main()
