"""Measures how the dashboard scrolls with 100 projects (700 stage cards), in a real window
driven through WebDriver (run under xvfb-run). Scrolls the page top to bottom, 120 px per
animation frame, and prints frame times; then does the same with one column of plain text, to
show what scrolling costs in this window at all (under Xvfb WebKitGTK paints in software).

Usage: xvfb-run -a -s "-screen 0 1440x900x24" python3 scripts/measure-scroll.py APP IDSE
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from harness import desk  # noqa: E402

APP, IDSE = (Path(a).resolve() for a in sys.argv[1:3])

SCROLL = """
const done = arguments[arguments.length - 1];
const el = arguments[0] ? document.querySelector(arguments[0]) : document.scrollingElement;
const gaps = []; let last = performance.now();
el.scrollTop = 0;
function step(now) {
  gaps.push(now - last); last = now;
  el.scrollTop += 120;
  if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1 || gaps.length > 400) done(gaps.slice(1));
  else requestAnimationFrame(step);
}
requestAnimationFrame(step);
"""

PLAIN = """
const el = document.createElement('pre');
el.id = 'plain-probe';
el.style.cssText = 'position:fixed;inset:0;margin:0;overflow:auto;z-index:99;background:Canvas';
el.textContent = Array.from({length: 5000}, (_, i) => 'Line ' + i + ': plain text of the same kind.').join('\\n');
document.body.append(el);
"""


def report(name: str, frames: list) -> None:
    frames = sorted(frames)
    p95 = frames[max(0, int(len(frames) * 0.95) - 1)]
    print(f"{name}: {len(frames)} frames, median {statistics.median(frames):.1f} ms, "
          f"p95 {p95:.1f} ms, max {frames[-1]:.1f} ms")


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
        report("dashboard scroll", d.driver.execute_async_script(SCROLL, None))
        d.driver.execute_script(PLAIN)
        report("plain text scroll (baseline)", d.driver.execute_async_script(SCROLL, "#plain-probe"))


if __name__ == "__main__":
    main()
