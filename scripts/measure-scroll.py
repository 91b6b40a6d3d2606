"""Measures how the dashboard scrolls with 100 projects (700 stage cards), in a real window
driven through WebDriver (run under xvfb-run). Scrolls the page top to bottom, 120 px per
animation frame, and prints frame times; then does the same with one column of plain text, in a
scrolling box and as the page, to show what scrolling costs in this window at all (under Xvfb
WebKitGTK paints in software).

Usage: xvfb-run -a -s "-screen 0 1440x900x24" python3 scripts/measure-scroll.py APP IDSE
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from harness import desk, frame_summary  # noqa: E402

APP, IDSE = (Path(a).resolve() for a in sys.argv[1:3])


def main() -> None:
    with desk(APP, IDSE, "idse-scroll-") as d:
        repo = d.tmp / "repo"
        repo.mkdir()
        for i in range(100):
            d.idse("init", f"project-{i:03}", cwd=repo)
        d.add_folder(repo)
        d.wait.until(lambda _: len(d.css("article.project")) == 100)
        cards = d.driver.execute_script("return document.querySelectorAll('.stage').length;")
        nodes = d.driver.execute_script("return document.querySelectorAll('*').length;")
        print(f"dashboard: 100 projects, {cards} stage cards, {nodes} elements")
        print(f"dashboard scroll: {frame_summary(d.scroll_frames(None, 400))}")
        print(f"plain text in a scrolling box (baseline): {frame_summary(d.plain_text_frames(400))}")
        print(f"plain text as the page (baseline): {frame_summary(d.plain_text_frames(400, as_page=True))}")


if __name__ == "__main__":
    main()
