#!/usr/bin/env python3
"""Writes the corpus report: one self-contained HTML page (no network needed).

usage: ci/report.py DATA_DIR OUT_HTML [MATRIX_DIR]

DATA_DIR holds one JSON file per case and variant, written by the corpus
programs (`<program> --json FILE`): the verdict, what leaked, and samples of
the process's descriptors taken while the scenario ran. For each case the page
shows broken and fixed side by side: the verdict, the leak table, and a
timeline of every TCP socket's state over time, drawn from those samples.

MATRIX_DIR (build/<preset>/matrix, written by ci/matrix: the ctests
matrix/<tag>/<case>) holds the library matrix's cells, MATRIX_DIR/<tag>/<case>.json:
the page then opens with a table of case × library version.
"""
import html
import json
import pathlib
import sys

COLORS = {
    "LISTEN": "#9e9e9e", "SYN_SENT": "#b39ddb", "SYN_RECV": "#b39ddb", "ESTAB": "#43a047",
    "FIN_WAIT1": "#81d4fa", "FIN_WAIT2": "#29b6f6", "TIME_WAIT": "#0277bd", "CLOSING": "#4dd0e1",
    "CLOSE_WAIT": "#e53935", "LAST_ACK": "#fb8c00", "CLOSE": "#6d4c41", "NONE": "#eeeeee",
}
LANES = 24  # at most this many sockets drawn per variant


def timeline(samples):
    """An SVG: one lane per TCP socket (by inode), coloured by state over time."""
    if not samples:
        return "<p>no samples</p>"
    end = max(s["t_us"] for s in samples) or 1
    lanes, labels = {}, {}
    for s in samples:
        for sock in s["tcp"]:
            key = sock["inode"]
            if key not in lanes and len(lanes) >= LANES:
                continue
            lanes.setdefault(key, []).append((s["t_us"], sock["state"]))
            peer = f' -> {sock["peer"]}' if sock["peer"] else ""
            labels.setdefault(key, f'fd {sock["fd"]}  {sock["local"]}{peer}')
    width, left, lane_h = 270, 270, 18
    height = 30 + lane_h * max(1, len(lanes))
    out = [f'<svg class="timeline" viewBox="0 0 {left + width + 10} {height + 10}" '
           f'width="{left + width + 10}" height="{height + 10}" role="img">']
    times = [s["t_us"] for s in samples]
    for i, (key, points) in enumerate(lanes.items()):
        y = 10 + i * lane_h
        for j, (t, state) in enumerate(points):
            # a segment lasts until the next sample of this socket, or the next sample at all
            later = [p[0] for p in points[j + 1:j + 2]]
            nxt = later[0] if later else next((u for u in times if u > t), end)
            x0 = left + width * t / end
            x1 = left + width * nxt / end
            out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{lane_h - 4}" '
                       f'fill="{COLORS.get(state, "#000")}"><title>{html.escape(state)} at '
                       f'{t / 1000:.2f} ms: {html.escape(labels[key])}</title></rect>')
        out.append(f'<text x="0" y="{y + lane_h - 7}" class="lane">'
                   f'{html.escape(labels[key])}</text>')
    axis_y = height - 8
    out.append(f'<text x="{left}" y="{axis_y}" class="axis">0 ms</text>')
    out.append(f'<text x="{left + width}" y="{axis_y}" text-anchor="end" class="axis">'
               f'{end / 1000:.2f} ms, {len(samples)} samples</text>')
    out.append("</svg>")
    return "".join(out)


ROOT = pathlib.Path(__file__).resolve().parent.parent


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


def variant_block(d):
    verdict = d["verdict"]
    cls = "ok" if verdict in ("clean", "leaks as expected") else "bad"
    leaked = d.get("leaked", [])[:50]
    sites = [site_of(f) for f in leaked]
    rows = "".join(
        f"<tr><td>{f['fd']}</td><td>{html.escape(f['kind'])}</td>"
        f"<td>{html.escape(f.get('protocol', ''))}</td><td>{html.escape(f.get('local', f['target']))}</td>"
        f"<td>{html.escape(f.get('peer', ''))}</td><td>{html.escape(f.get('state', ''))}</td>"
        f"<td title=\"{html.escape(f'{s[0]}:{s[1]}') if s else ''}\">"
        f"{html.escape(pathlib.PurePath(s[0]).name + ':' + str(s[1])) if s else ''}</td></tr>"
        for f, s in zip(leaked, sites))
    table = (f'<table class="leaks"><tr><th>fd</th><th>kind</th><th>protocol</th><th>local / target</th>'
             f'<th>peer</th><th>state</th><th>opened at</th></tr>{rows}</table>'
             if rows else '<p class="none">nothing leaked</p>')
    # Each distinct open site once, with its source: the line that made what the bug never closed.
    shown = "".join(excerpt(*s) for s in dict.fromkeys(s for s in sites if s))
    return (f'<div class="variant" data-variant="{html.escape(d["variant"])}">'
            f'<h3>{html.escape(d["variant"])} <span class="verdict {cls}">{html.escape(verdict)}</span></h3>'
            f'<p class="summary">{html.escape(d["summary"]) or "&nbsp;"}</p>{table}{shown}'
            f'<h4>TCP sockets over time</h4>{timeline(d.get("samples", []))}</div>')


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
    sections = []
    for name, variants in cases.items():
        variants.sort(key=lambda v: (not v["broken"], v["variant"]))
        sections.append(f'<section class="case" id="{html.escape(name)}"><h2>{html.escape(name)}</h2>'
                        f'<div class="side-by-side">{"".join(variant_block(v) for v in variants)}</div>'
                        f'<p class="more">Story, mechanism and fix: cases/{html.escape(name)}/README.md</p></section>')
    legend = "".join(f'<span class="key" style="background:{c}"></span>{s} ' for s, c in COLORS.items()
                     if s != "NONE")
    unexpected = sum(r["verdict"] == "UNEXPECTED" for r in runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>closecheck corpus report</title>
<style>
body {{ font: 14px/1.4 sans-serif; margin: 24px; color: #222; }}
.side-by-side {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(580px, 1fr)); gap: 16px; }}
.variant {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; overflow-x: auto; }}
.verdict {{ font-size: 12px; padding: 2px 8px; border-radius: 10px; color: white; }}
.verdict.ok {{ background: #2e7d32; }} .verdict.bad {{ background: #c62828; }}
.summary {{ font-family: monospace; white-space: pre-wrap; }}
table.leaks {{ border-collapse: collapse; font-family: monospace; font-size: 12px; }}
table.leaks td, table.leaks th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
div.site p {{ margin: 8px 0 2px; font-size: 13px; }}
div.site pre {{ margin: 0; background: #f6f6f6; font-size: 12px; padding: 4px; overflow-x: auto; }}
div.site span.here {{ background: #ffe08a; font-weight: bold; }}
div.site span.ctx {{ color: #555; }}
svg.timeline text.lane {{ font: 9px monospace; fill: #111; }}
svg.timeline text.axis {{ font: 10px sans-serif; fill: #555; }}
table.matrix {{ border-collapse: collapse; margin-bottom: 16px; }}
table.matrix td, table.matrix th {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
table.matrix th.case {{ font-weight: normal; font-family: monospace; }}
table.matrix td.repro {{ background: #fde0dc; }} table.matrix td.gone {{ background: #e0f2e9; }}
table.matrix td.nobuild {{ background: #eeeeee; color: #555; }} table.matrix td.other {{ background: #fff3c4; }}
table.matrix td.bad {{ outline: 3px solid #c62828; outline-offset: -3px; }}
table.matrix td.na {{ color: #bbb; }}
table.matrix span.changed {{ color: #c62828; font-weight: bold; font-size: 12px; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 10px; vertical-align: middle; }}
</style></head><body>
<h1>closecheck corpus report</h1>
<p>{len(cases)} cases, {len(runs)} variants, {unexpected} unexpected. Each timeline lane is one TCP socket
this process held, coloured by the state the kernel reported in each sample (hover for details).</p>
<p class="legend">{legend}</p>
{matrix_table(matrix_dir)}
{"".join(sections)}
</body></html>
""")
    print(f"ci/report.py: wrote {out}")


if __name__ == "__main__":
    main()
