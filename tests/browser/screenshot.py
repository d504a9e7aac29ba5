"""Take docs/screenshot.png: the app answering a question about the seeds, its first source opened.

    .venv/bin/python tests/browser/screenshot.py [--model quality] [--question "..."] [--out docs/screenshot.png]

Starts app.py on a free port over a copy of seeds/ (as the browser tests do) and drives /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_harness import ROOT, ask, launch_chromium, running_app  # noqa: E402

QUESTION = "What did Armenia refuse to provide to Azerbaijan?"
# Scroll the chat's own scrolling box (not the page) so that the question and its answer start at its top.
SCROLL_TO_ANSWER = """() => {
  const rows = document.querySelectorAll('#chat .user-row');
  const answer = rows.length ? rows[rows.length - 1] : document.querySelector('#chat .rag-answer');
  let box = answer.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight && /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
    box = box.parentElement;
  }
  if (box) box.scrollTop += answer.getBoundingClientRect().top - box.getBoundingClientRect().top - 10;
  window.scrollTo(0, 0);
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="quality", help="chat model (default: quality)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(Path(tmp), model=args.model) as (url, _),
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1300}, device_scale_factor=1)
        page.goto(url)
        page.locator("#question textarea").wait_for(timeout=60_000)
        started = time.monotonic()
        answer = ask(page, args.question, timeout_s=300)
        print(f"answered in {time.monotonic() - started:.1f} s: {answer.inner_text()[:200]!r}")
        answer.locator("details.rag-context summary").first.click()
        time.sleep(1)  # the chat scrolls itself to the bottom when its content grows: let it, then scroll back
        # Show the answer from its first line, with the opened source below it.
        page.evaluate(SCROLL_TO_ANSWER)
        page.mouse.move(0, 0)
        time.sleep(1)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
