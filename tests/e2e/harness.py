"""What the end-to-end tests share: the built app in a real window through tauri-driver and
WebKitWebDriver (run under Xvfb), the `idse` CLI for a teammate's side, and reads and clicks that
go through one script call each, so that no element handle goes stale while the board re-renders.
"""

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.support.ui import WebDriverWait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage_file(root: Path, project: str, rel: str) -> Path:
    base = root / ".idse" / "projects" / project / "sessions"
    session = root / ".idse" / "projects" / project / "CURRENT_SESSION"
    name = session.read_text().strip() if session.exists() else sorted(p.name for p in base.iterdir())[-1]
    return base / name / rel


# Scrolls an element (the page when no selector is given) top to bottom, 120 px per animation
# frame, and answers the time between frames (ms), at most `limit` of them.
_SCROLL = """
const [selector, limit, done] = arguments;
const el = selector ? document.querySelector(selector) : document.scrollingElement;
const gaps = []; let last = performance.now();
el.scrollTop = 0;
function step(now) {
  gaps.push(now - last); last = now;
  el.scrollTop += 120;
  if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1 || gaps.length > limit) done(gaps.slice(1));
  else requestAnimationFrame(step);
}
requestAnimationFrame(step);
"""

# One column of 5,000 lines of plain text, in a scrolling box over the window or as the page
# itself (the app's elements hidden meanwhile): WebKit scrolls the page by tiles but repaints a
# scrolling box, so these are the two floors of scrolling in this window.
_PLAIN = """
const asPage = arguments[0];
if (asPage) for (const e of document.body.children) { e.dataset.probeHidden = e.style.display; e.style.display = 'none'; }
const el = document.createElement('pre');
el.id = 'plain-probe';
el.style.cssText = asPage ? 'margin:0' : 'position:fixed;inset:0;margin:0;overflow:auto;z-index:99;background:Canvas';
el.textContent = Array.from({length: 5000}, (_, i) => 'Line ' + i + ': plain text of the same kind.').join('\\n');
document.body.append(el);
"""

_PLAIN_UNDO = """
document.getElementById('plain-probe').remove();
for (const e of document.body.children) {
  if ('probeHidden' in e.dataset) { e.style.display = e.dataset.probeHidden; delete e.dataset.probeHidden; }
}
"""


def frame_summary(frames: list) -> str:
    """"N frames, median, p95 and max" of frame times in ms."""
    frames = sorted(frames)
    p95 = frames[max(0, int(len(frames) * 0.95) - 1)]
    return (f"{len(frames)} frames, median {statistics.median(frames):.1f} ms, "
            f"p95 {p95:.1f} ms, max {frames[-1]:.1f} ms")


class Desk:
    """One running app and the WebDriver session on it."""

    def __init__(self, driver, tmp: Path, idse_bin: Path):
        self.driver = driver
        self.tmp = tmp
        self.idse_bin = idse_bin
        self.wait = WebDriverWait(driver, 20, poll_frequency=0.1)

    def idse(self, *args: str, cwd: Path) -> dict:
        out = subprocess.run([str(self.idse_bin), "--json", *args], cwd=cwd, check=True, capture_output=True, text=True)
        return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}

    def css(self, selector: str):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def read(self, selector: str, what: str = "text"):
        return self.driver.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "if (!e) return null;"
            "return arguments[1] === 'text' ? e.textContent : e.getAttribute(arguments[1]);",
            selector, what,
        )

    def exists(self, selector: str) -> bool:
        return bool(self.driver.execute_script("return !!document.querySelector(arguments[0]);", selector))

    def click(self, selector: str) -> None:
        self.wait.until(lambda d: d.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "if (!e || e.disabled) return false; e.click(); return true;", selector))

    def key(self, key: str, ctrl: bool = False, target: str = "#merge-view") -> None:
        """A key press as the view hears it (WebKitWebDriver's native keys do not reach dialogs
        reliably under Xvfb, so the event is dispatched where the view listens)."""
        self.driver.execute_script(
            "document.querySelector(arguments[0]).dispatchEvent("
            "new KeyboardEvent('keydown', {key: arguments[1], ctrlKey: arguments[2], bubbles: true}));",
            target, key, ctrl,
        )

    def add_folder(self, path: Path) -> None:
        field = self.driver.find_element(By.ID, "path-input")
        field.send_keys(str(path))
        self.driver.find_element(By.CSS_SELECTOR, "#path-form button").click()

    def embedded_url(self) -> str:
        self.click("#settings")
        self.wait.until(lambda d: self.css("#embedded-url") and self.css("#health.health-connected"))
        url = self.driver.find_element(By.ID, "embedded-url").text
        self.click("#settings-dialog footer button")
        self.wait.until(lambda d: not self.css("#settings-dialog"))
        return url

    def scroll_frames(self, selector: str | None, limit: int) -> list:
        """Frame times (ms) while scrolling `selector` (or the page) from top to bottom."""
        return self.driver.execute_async_script(_SCROLL, selector, limit)

    def plain_text_frames(self, limit: int, as_page: bool = False) -> list:
        """Frame times (ms) of the same scroll over plain text (see `_PLAIN`), then removed."""
        self.driver.execute_script(_PLAIN, as_page)
        frames = self.scroll_frames(None if as_page else "#plain-probe", limit)
        self.driver.execute_script(_PLAIN_UNDO)
        return frames

    def shot(self, path: Path) -> Path:
        # The window as the X server shows it (ImageMagick's `import`), not WebKitWebDriver's
        # snapshot: without GL in the app's process WebKit paints without compositing, and there
        # WebKitWebDriver's screenshot never answers while a modal dialog is open.
        subprocess.run(["import", "-window", "IDSE Desk", str(path)], check=True, timeout=60,
                       capture_output=True)
        assert path.stat().st_size > 10_000, f"the screenshot {path} is empty"
        return path


@contextlib.contextmanager
def desk(app: Path, idse_bin: Path, prefix: str):
    """Starts tauri-driver and the app with its own home; yields a `Desk`; cleans up."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    env = dict(os.environ, IDSE_DESK_HOME=str(tmp / "desk-home"), RUST_LOG="warn")
    driver_proc = subprocess.Popen(
        ["tauri-driver", "--port", str(port), "--native-driver", "/usr/bin/WebKitWebDriver"],
        env=env, stdout=sys.stderr, stderr=sys.stderr,
    )
    driver = None
    try:
        # tauri-driver listens before its WebKitWebDriver does: wait until /status answers.
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("tauri-driver did not become ready within 30 s")
            time.sleep(0.2)
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": str(app)})
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
        d = Desk(driver, tmp, idse_bin)
        d.wait.until(lambda drv: "connected" in drv.find_element(By.ID, "link").text)
        yield d
    finally:
        if driver is not None:
            driver.quit()
        driver_proc.terminate()
        try:
            driver_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
