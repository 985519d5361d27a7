"""python -m bench.page: the buyer's page on a slow line, in Debian's Chromium.

Starts `frontrow serve` (embedded backends, demo login on) and loads the page
under DevTools' "Slow 3G" profile (400 ms round trips, 400 kbit/s each way).
Reports, per run, when the first thing was painted counted from the moment
the HTML had arrived, next to the emulated round trip it is made of, and the
bytes the first load fetched. Then, with one 50,000-seat date of
examples/stadium.json imported and no throttling, the time from a click on a
section to its 2,500 seats being click-ready (the page's own
`performance.measure("map-ready")`). Needs playwright (the test extra) and
/usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.__main__ import ROOT, server

SLOW_3G = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 50_000,
    "uploadThroughput": 50_000,
}
PAINT = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const bytes = performance.getEntriesByType('resource')
    .reduce((sum, r) => sum + r.transferSize, nav.transferSize);
  return {paint_ms: paint.startTime - nav.responseEnd, bytes: bytes,
          text: document.querySelector('main').innerText.slice(0, 80)};
})()"""


def measure(url: str, runs: int, chromium: str) -> list[dict[str, object]]:
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(runs):
            # the bench waits with page functions: the page's CSP forbids their eval
            context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
            cdp.send("Network.emulateNetworkConditions", SLOW_3G)
            page.goto(url + "/", wait_until="load", timeout=60_000)
            page.wait_for_function(
                "performance.getEntriesByName('first-contentful-paint').length > 0"
            )
            results.append(page.evaluate(PAINT))
            context.close()
        browser.close()
    return results


def map_ready(url: str, runs: int, chromium: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    took = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for i in range(runs):
            page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
            page.goto(url + "/")
            page.get_by_role("button", name="Continue as a guest").click()
            page.get_by_role("button", name="Join the queue").click()
            section = page.locator("#section-list button").nth(4 + i % 16)  # a stand
            section.click(timeout=30_000)
            page.wait_for_function("performance.getEntriesByName('map-ready').length > 0")
            took.append(page.evaluate("performance.getEntriesByName('map-ready')[0].duration"))
            page.close()
        browser.close()
    return took


def stadium_map(runs: int, chromium: str) -> list[float]:
    venue = json.loads((ROOT / "examples" / "stadium.json").read_text())
    venue["concerts"][0]["dates"] = venue["concerts"][0]["dates"][:1]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "stadium.json").write_text(json.dumps(venue))
        env = {
            "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'stadium.db'}",
            "FRONTROW_DEMO_LOGIN": "1",
            "FRONTROW_LOG_LEVEL": "WARNING",
            "FRONTROW_ADMIT_INTERVAL_S": "0.2",
        }
        subprocess.run(
            [
                sys.executable,
                "-m",
                "frontrow",
                "catalog",
                "import",
                str(Path(tmp) / "stadium.json"),
            ],
            env={**os.environ, **env},
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        with server([sys.executable, "-m", "frontrow", "serve"], env) as url:
            return map_ready(url, runs, chromium)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'page.db'}",
            "FRONTROW_DEMO_LOGIN": "1",
            "FRONTROW_LOG_LEVEL": "WARNING",
        }
        with server([sys.executable, "-m", "frontrow", "serve"], env) as url:
            results = measure(url, args.runs, args.chromium)
    paints = [float(r["paint_ms"]) for r in results]  # type: ignore[arg-type]
    rtt = SLOW_3G["latency"]
    median = statistics.median(paints)
    print(f"Slow 3G ({rtt} ms round trip, 400 kbit/s), {args.runs} cold loads at 390x844:")
    print(f"  first paint after the HTML arrived: median {median:.0f} ms, max {max(paints):.0f} ms")
    print(f"  = {median / rtt:.2f} round trips; bytes of the first load: {results[0]['bytes']}")
    print(f"  first words shown: {results[0]['text']!r}")
    ready = stadium_map(args.runs, args.chromium)
    print(
        f"Stadium (one 50,000-seat date), a section of 2,500 seats from click to click-ready:"
        f" median {statistics.median(ready):.0f} ms, max {max(ready):.0f} ms"
    )


if __name__ == "__main__":
    main()
