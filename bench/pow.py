"""python -m bench.pow: what a proof of work costs a browser, and a bot farm.

Runs frontrow's own worker (frontrow/web/pow.js) in headless Chromium
(Debian's, `--chromium`) on fresh random challenges for each difficulty and
reports the time per proof (median and mean; the work is geometric, so the
spread is wide) and the hashes per second; then what 100,000 entries cost
at that rate. One core of this machine; a phone is several times slower.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile

from bench.__main__ import server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pow", description=__doc__)
    parser.add_argument("--bits", default="16,20,22")
    parser.add_argument("--proofs", type=int, default=12, help="proofs per difficulty")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env = {"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/frontrow.db"}
        with (
            server([sys.executable, "-m", "frontrow", "serve"], env) as url,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(
                executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(url + "/")
            print("| bits | median | mean | hashes/s | 100,000 entries cost |")
            print("|---|---|---|---|---|")
            for bits in (int(b) for b in args.bits.split(",")):
                runs = [
                    page.evaluate(
                        """([challenge, bits]) => new Promise((resolve) => {
                            const worker = new Worker("/static/pow.js");
                            worker.onmessage = ({ data }) => {
                              if (data.nonce !== undefined) { worker.terminate(); resolve(data); }
                            };
                            worker.postMessage({ challenge, bits });
                        })""",
                        [secrets.token_urlsafe(16), bits],
                    )
                    for _ in range(args.proofs)
                ]
                ms = [r["ms"] for r in runs]
                rate = sum(r["tried"] for r in runs) / (sum(ms) / 1000)
                farm_h = 100_000 * 2**bits / rate / 3600  # expected work, not this sample's
                print(
                    f"| {bits} | {statistics.median(ms) / 1000:.2f} s | "
                    f"{statistics.mean(ms) / 1000:.2f} s | {rate / 1e6:.2f} M |"
                    f" {farm_h:,.1f} core-hours |"
                )
            browser.close()


if __name__ == "__main__":
    main()
