"""One table of ratios from one run of scripts/bench.sh compare: the webhook core against HMAC alone and
against pywa on the same payload files, cold starts under the same harness, and the Lambda packages.

    python compare.py RUN_DIR CRITERION_DIR [--smoke]

RUN_DIR holds pywa.json, payloads/, cold-wahook.json, cold-sender.json, cold-publisher.json,
cold-python.json and binaries.txt (one path a line); CRITERION_DIR is criterion's output
(target/criterion).
"""

import io
import json
import os
import sys
import zipfile

CORE = [("text_625B", "text-hola.json"), ("statuses_1000", "statuses-1000.json")]


def criterion_median_ns(criterion_dir, group, function):
    path = os.path.join(criterion_dir, group, function, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def items_in(payload_path):
    with open(payload_path, "rb") as f:
        body = json.loads(f.read())
    n = 0
    for entry in body.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            n += len(value.get("messages", [])) + len(value.get("statuses", []))
    return n


def micros(ns):
    us = ns / 1000.0
    return f"{us:,.2f} µs" if us < 1000 else f"{us / 1000:,.3f} ms"


def zipped_size(path):
    """The size of a Lambda package holding this binary as `bootstrap` (deflate, as cargo lambda zips)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    return buf.tell()


def mb(n):
    return f"{n / 1e6:.1f} MB"


def main():
    run_dir, criterion_dir = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    with open(os.path.join(run_dir, "pywa.json")) as f:
        pywa = json.load(f)
    meta = pywa.pop("_meta")
    peer = f"pywa {meta['pywa']} (Python {meta['python']})"
    out = []
    if smoke:
        out.append("SMOKE RUN (debug build, tiny samples): proves the comparison runs; the figures mean nothing.\n")

    out.append("## Webhook core: one delivery, verify + parse + plan (wahook) / dispatch (pywa), medians\n")
    out.append(f"| payload | HMAC-SHA256 alone | wahook | wahook / HMAC | {peer} | pywa / wahook | items pywa builds |")
    out.append("|---|---|---|---|---|---|---|")
    for group, file in CORE:
        payload = os.path.join(run_dir, "payloads", file)
        size = os.path.getsize(payload)
        hmac_ns = criterion_median_ns(criterion_dir, group, "hmac_sha256_only")
        ours_ns = criterion_median_ns(criterion_dir, group, "verify_parse_plan")
        theirs_ns = pywa[group]["us"] * 1000.0
        total = items_in(payload)
        handled = pywa[group]["handled"]
        covers = f"{handled} of {total}"
        if handled == 0:
            covers += " (pywa's handler failed on this payload and built nothing: docs/performance.md)"
        elif handled < total:
            covers += " (pywa dispatches only the first item of a change; wahook plans all)"
        out.append(
            f"| {group} ({size:,} B) | {micros(hmac_ns)} | {micros(ours_ns)} | {ours_ns / hmac_ns:.1f}× "
            f"| {micros(theirs_ns)} | {theirs_ns / ours_ns:.1f}× | {covers} |"
        )

    with open(os.path.join(run_dir, "cold-wahook.json")) as f:
        ours = json.load(f)
    with open(os.path.join(run_dir, "cold-python.json")) as f:
        theirs = json.load(f)
    out.append("")
    out.append(
        f"## Cold start under tools/coldstart: {ours['runs']} runs each, median (min–max); "
        "first invocation = the GET verification event"
    )
    out.append("")
    out.append(f"| | wahook `webhook` | Python + {peer} + boto3 | Python / wahook |")
    out.append("|---|---|---|---|")
    rows = [
        ("init: exec → first `next`", "init_ms", "ms"),
        ("first invocation", "invoke_ms", "ms"),
        ("RSS at ready", "rss_ready_mb", "MB"),
        ("peak RSS after the first event", "peak_rss_mb", "MB"),
    ]
    for title, key, unit in rows:
        a, b = ours[key], theirs[key]
        ratio = b["median"] / a["median"] if a["median"] else float("nan")
        out.append(
            f"| {title} | {a['median']:.1f} {unit} ({a['min']:.1f}–{a['max']:.1f}) "
            f"| {b['median']:.1f} {unit} ({b['min']:.1f}–{b['max']:.1f}) | {ratio:.1f}× |"
        )

    for name, batch in (("sender", "an empty SQS batch"), ("publisher", "an empty stream batch")):
        with open(os.path.join(run_dir, f"cold-{name}.json")) as f:
            other = json.load(f)
        init = other["init_ms"]
        ratio = init["median"] / ours["init_ms"]["median"] if ours["init_ms"]["median"] else float("nan")
        out.append("")
        out.append(f"Our `{name}` under the same harness ({other['runs']} runs, {batch}): "
                   f"init {init['median']:.1f} ms ({init['min']:.1f}–{init['max']:.1f}), {ratio:.2f}× the webhook's, "
                   f"RSS at ready {other['rss_ready_mb']['median']:.1f} MB, peak {other['peak_rss_mb']['median']:.1f} MB.")
    out.append("")
    out.append("## Lambda packages (the binary as `bootstrap`, deflate)")
    out.append("")
    out.append("| binary | size | zipped |")
    out.append("|---|---|---|")
    with open(os.path.join(run_dir, "binaries.txt")) as f:
        for path in filter(None, (line.strip() for line in f)):
            # A debug binary is hundreds of MB: deflating it would only slow the smoke run down.
            zipped = "—" if smoke else mb(zipped_size(path))
            out.append(f"| {os.path.basename(path)} | {mb(os.path.getsize(path))} | {zipped} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
