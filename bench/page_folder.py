"""A folder received by the page: memory and speed of each way it reaches the person.

One ``rtcxfer serve`` on loopback, one headless Chromium (Debian's /usr/bin/chromium
through playwright), and ``rtcxfer send`` of one folder (a few large files of random
bytes plus small ones) to the page, once per route, each in a fresh browser profile on disk:

- ``stream``: the zip streamed to the browser's downloads by the service worker;
- ``blob``: service workers blocked, the zip kept as a Blob and offered when complete
  (the page before issue 9 kept every file as Blobs the same way: the baseline);
- ``directory``: written into a directory (the Origin Private File System stands in
  for the one the person would pick; only showDirectoryPicker is replaced).

Reported: MiB/s from Accept to the page's "received" (and, for ``stream``, to the end
of the download), the page's peak JS heap (CDP Performance.getMetrics), and the peak
of the summed PSS (RSS with shared pages split) of every Chromium process, sampled
every 0.2 s, against the same sum with the page idle before Accept (growth).

    python bench/page_folder.py                      # 4 x 128 MiB + 200 small files
    python bench/page_folder.py --large 8 --mib 128 --routes stream,blob
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-features=WebRtcHideLocalIpsWithMdns"]
MIB = 1024 * 1024
RUN_TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT", "900"))
SAMPLE_S = 0.2


def chromium_rss() -> int:
    """Summed PSS (bytes) of every chromium process that is our descendant."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        names[pid] = stat[stat.index("(") + 1:stat.rindex(")")]
        parents[pid] = int(stat[stat.rindex(")") + 2:].split()[1])
    me = os.getpid()
    total = 0
    for pid, name in names.items():
        if "chrom" not in name:
            continue
        ancestor, hops = parents.get(pid, 0), 0
        while ancestor not in (0, 1, me) and hops < 64:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor != me:
            continue
        try:
            # PSS: pages shared between Chromium's processes are counted once.
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def make_folder(root: Path, large: int, mib: int, small: int) -> int:
    total = 0
    for number in range(large):
        path = root / "big" / f"part{number}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for _ in range(mib):
                out.write(os.urandom(MIB))
        total += mib * MIB
    for number in range(small):
        path = root / "small" / f"s{number % 10}" / f"f{number}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(number * 97 % 20000)
        path.write_bytes(data)
        total += len(data)
    return total


def run_route(playwright: Playwright, http_url: str, ws_url: str, folder: Path, size: int,
              route: str, scratch: Path) -> dict[str, float]:
    # A profile on disk, as people run the browser: an off-the-record context keeps
    # Blobs and the Origin Private File System in memory.
    context = playwright.chromium.launch_persistent_context(
        scratch / f"profile-{route}", executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS, accept_downloads=True,
        service_workers="block" if route == "blob" else "allow")
    try:
        page = context.new_page()
        page.goto(http_url)
        page.wait_for_selector("body[data-ready]")
        if route == "directory":
            page.evaluate("() => { window.showDirectoryPicker = "
                          "() => navigator.storage.getDirectory(); }")
        page.fill("#login-name", f"web-{route}")
        page.click("#login-button")
        page.wait_for_selector("body[data-logged-in]")
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        sender = subprocess.Popen(
            [sys.executable, "-m", "rtcxfer", "send", "--server", ws_url, "--name", "cli",
             f"web-{route}", str(folder)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            # The CLI's pins and settings stay in the scratch folder.
            env={**os.environ, "RTCXFER_CONFIG": os.devnull, "XDG_CONFIG_HOME": str(scratch),
                 "XDG_DATA_HOME": str(scratch), "XDG_STATE_HOME": str(scratch)})
        page.wait_for_timeout(2000)
        idle = chromium_rss()
        peak_heap = peak_rss = 0
        download = None
        try:
            for _ in range(int(RUN_TIMEOUT_S / SAMPLE_S)):
                if page.is_visible("#offer-dialog[open]"):
                    break
                if sender.poll() is not None:
                    raise RuntimeError(f"{route}: the sender stopped: {sender.communicate()[1]}")
                page.wait_for_timeout(SAMPLE_S * 1000)
            started = time.monotonic()
            if route == "stream":
                with page.expect_download() as pending:
                    page.click("#accept-button")
                download = pending.value
            else:
                page.click("#save-folder-button" if route == "directory" else "#accept-button")
            deadline = started + RUN_TIMEOUT_S
            item = "#received-list li[data-testid=received-folder]"
            while page.get_attribute(item, "data-state") not in ("done", "failed"):
                if time.monotonic() > deadline or sender.poll() not in (None, 0):
                    raise RuntimeError(f"{route}: no result in {RUN_TIMEOUT_S:.0f} s")
                metrics = {m["name"]: m["value"]
                           for m in cdp.send("Performance.getMetrics")["metrics"]}
                peak_heap = max(peak_heap, int(metrics.get("JSHeapUsedSize", 0)))
                peak_rss = max(peak_rss, chromium_rss())
                page.wait_for_timeout(SAMPLE_S * 1000)
            if page.get_attribute(item, "data-state") != "done":
                raise RuntimeError(f"{route}: {page.text_content('#status')}")
            if download is not None:
                target = scratch / "folder.zip"
                download.save_as(target)
                if download.failure() is not None:
                    raise RuntimeError(f"{route}: download failed: {download.failure()}")
                target.unlink()
            seconds = time.monotonic() - started
            if sender.wait(RUN_TIMEOUT_S) != 0:
                raise RuntimeError(f"{route}: the sender failed: {sender.stderr}")
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        return {"mib_s": size / MIB / seconds, "heap": peak_heap / MIB, "idle": idle / MIB,
                "rss": peak_rss / MIB}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=4, help="large files (default 4)")
    parser.add_argument("--mib", type=int, default=128, help="MiB per large file (default 128)")
    parser.add_argument("--small", type=int, default=200, help="small files (default 200)")
    parser.add_argument("--routes", default="stream,blob,directory")
    args = parser.parse_args()
    routes = args.routes.split(",")
    with tempfile.TemporaryDirectory(prefix="rtcxfer-bench-page-folder-") as scratch_name:
        scratch = Path(scratch_name)
        folder = scratch / "folder"
        size = make_folder(folder, args.large, args.mib, args.small)
        server = subprocess.Popen(
            [sys.executable, "-m", "rtcxfer", "serve", "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, start_new_session=True)
        results = {}
        try:
            assert server.stdout is not None
            ws_url = ""
            for _ in range(100):
                line = server.stdout.readline()
                if line.startswith("ws://"):
                    ws_url = line.split()[0]
                    break
            if not ws_url:
                raise SystemExit("the server did not start")
            http_url = "http" + ws_url.removeprefix("ws").rstrip("/") + "/"
            with sync_playwright() as playwright:
                for route in routes:
                    results[route] = run_route(playwright, http_url, ws_url, folder, size,
                                               route, scratch)
                    print(f"{route}: {results[route]}", flush=True)
        finally:
            server.kill()
            server.wait()
    print(f"\nfolder of {args.large} x {args.mib} MiB + {args.small} small files "
          f"({size / MIB:.0f} MiB):")
    print(f"{'route':<12}{'MiB/s':>8}{'peak JS heap MiB':>18}{'Chromium PSS MiB: idle':>24}"
          f"{'peak':>7}{'growth':>8}")
    for route, figures in results.items():
        print(f"{route:<12}{figures['mib_s']:>8.1f}{figures['heap']:>18.1f}{figures['idle']:>24.0f}"
              f"{figures['rss']:>7.0f}{figures['rss'] - figures['idle']:>8.0f}")


if __name__ == "__main__":
    main()
