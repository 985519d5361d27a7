"""python -m bench.page: the buyer's page on a slow line, in Debian's Chromium.

Starts `frontrow serve` (embedded backends, demo login on) and loads the page
under DevTools' "Slow 3G" profile (400 ms round trips, 400 kbit/s each way).
Reports, per run, when the first thing was painted counted from the moment
the HTML had arrived, next to the emulated round trip it is made of, and the
bytes the first load fetched. Needs playwright (the test extra) and
/usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.__main__ import server

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
            context = browser.new_context(viewport={"width": 390, "height": 844})
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


if __name__ == "__main__":
    main()
