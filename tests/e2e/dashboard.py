"""End-to-end test of the built IDSE Desk in a real window, driven through WebDriver.

tauri-driver + WebKitWebDriver (Debian's webkit2gtk-driver) under Xvfb. The app runs with its
embedded gateway; a second workspace changes a stage through the `idse` CLI against that same
gateway, and the test checks that the card shows it and that Pull brings the file.

Usage: python3 tests/e2e/dashboard.py APP IDSE SHOTS_DIR   (run under xvfb-run)
"""

import json
import os
import shutil
import socket
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

APP, IDSE, SHOTS = (Path(a).resolve() for a in sys.argv[1:4])
SPEC = """# Specification

## Overview

Checkout takes a card, a coupon and a gift note.

## Requirements

- Pay by card
- Apply one coupon
- Add a gift note
"""
TASKS = """# Tasks

- [x] Card form
- [x] Coupon field
- [ ] Gift note
- [ ] Receipt e-mail
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def idse(*args: str, cwd: Path) -> dict:
    out = subprocess.run([str(IDSE), "--json", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}


def stage_file(root: Path, project: str, rel: str) -> Path:
    base = root / ".idse" / "projects" / project / "sessions"
    session = (root / ".idse" / "projects" / project / "CURRENT_SESSION")
    name = session.read_text().strip() if session.exists() else sorted(p.name for p in base.iterdir())[-1]
    return base / name / rel


def main() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="idse-e2e-"))
    home = tmp / "desk-home"
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("checkout", "search-ranking", "billing-export"):
        idse("init", name, cwd=repo)
    stage_file(repo, "checkout", "specs/spec.md").write_text(SPEC)
    stage_file(repo, "checkout", "tasks/tasks.md").write_text(TASKS)

    port = free_port()
    env = dict(os.environ, IDSE_DESK_HOME=str(home), RUST_LOG="warn")
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
        options.set_capability("tauri:options", {"application": str(APP)})
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
        wait = WebDriverWait(driver, 20, poll_frequency=0.1)
        css = lambda sel: driver.find_elements(By.CSS_SELECTOR, sel)  # noqa: E731

        wait.until(lambda d: "connected" in d.find_element(By.ID, "link").text)
        assert "No projects yet" in driver.find_element(By.ID, "projects").text

        # Add the folder (the path field; drag-and-drop and the native dialog call the same command).
        field = driver.find_element(By.ID, "path-input")
        field.send_keys(str(repo))
        driver.find_element(By.CSS_SELECTOR, "#path-form button").click()
        wait.until(lambda d: len(css("article.project")) == 3)
        # The board re-renders on every event, so reads go through one script call each (no
        # element handle can go stale between finding and reading it).
        def read(selector: str, what: str = "text"):
            return driver.execute_script(
                "const e = document.querySelector(arguments[0]);"
                "if (!e) return null;"
                "return arguments[1] === 'text' ? e.textContent : e.getAttribute(arguments[1]);",
                selector, what,
            )

        def click(selector: str) -> None:
            wait.until(lambda d: driver.execute_script(
                "const e = document.querySelector(arguments[0]);"
                "if (!e || e.disabled) return false; e.click(); return true;", selector))

        ROW = 'article.project[data-name="checkout"]'
        badge = lambda: read(f"{ROW} .badge", "data-badge")  # noqa: E731
        row_text = lambda: read(ROW) or ""  # noqa: E731
        assert len(css(f"{ROW} .stage")) == 7
        assert badge() == "never_pushed", badge()
        tasks_text = read(f'{ROW} .stage[data-stage="tasks"]')
        assert "2/4" in tasks_text, tasks_text

        # Push from the app.
        click(f"{ROW} .act-push")
        wait.until(lambda d: "Pushed" in row_text())
        wait.until(lambda d: badge() == "in_sync")
        # Its neighbours in the same repository were not pushed and must not look pushed.
        assert read('article.project[data-name="billing-export"] .badge', "data-badge") == "never_pushed"

        # The embedded gateway's address, from Settings.
        click("#settings")
        wait.until(lambda d: css("#embedded-url") and css("#health.health-connected"))
        url = driver.find_element(By.ID, "embedded-url").text
        assert url.startswith("http://127.0.0.1:"), url
        click("#settings-dialog footer button")
        wait.until(lambda d: not css("#settings-dialog"))

        # A teammate fetches the project into a second workspace, edits spec, pushes.
        projects = idse("--agency-url", url, "projects", cwd=tmp)
        project_id = next(p["id"] for p in projects["projects"] if p["name"] == "checkout")
        mate = tmp / "teammate"
        mate.mkdir()
        idse("--agency-url", url, "sync", "fetch", project_id, cwd=mate)
        theirs = SPEC.replace("- Add a gift note", "- Add a gift note (max 200 characters)")
        stage_file(mate, "checkout", "specs/spec.md").write_text(theirs)
        idse("--agency-url", url, "--project", "checkout", "sync", "push", cwd=mate)

        # The live link updates the card without a click.
        start = time.time()
        wait.until(lambda d: badge() == "remote_changes")
        live_s = time.time() - start
        assert read(f'{ROW} .stage[data-stage="spec"]', "data-sync") == "remote_changes"

        # Editing a file on disk updates its card (file watching), no refresh.
        problems = lambda: read('article.project[data-name="search-ranking"] .stage[data-stage="intent"] .stage-problems') or ""  # noqa: E731
        assert "error" in problems(), problems()  # the template still holds its markers
        stage_file(repo, "search-ranking", "intents/intent.md").write_text(
            "# Intent\n\n## Goal\n\nRank search results by recency and by how often they were opened.\n"
        )
        start = time.time()
        wait.until(lambda d: "error" not in problems())
        watch_s = time.time() - start

        # Pull from the app: the file and the card.
        click(f"{ROW} .act-pull")
        wait.until(lambda d: "Updated spec" in row_text())
        assert stage_file(repo, "checkout", "specs/spec.md").read_text() == theirs
        wait.until(lambda d: badge() == "in_sync")
        assert read(f'{ROW} .stage[data-stage="spec"]', "data-sync") == "in_sync"

        shot = SHOTS / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000, "the screenshot is empty"
        print(f"e2e ok: live update {live_s:.2f} s, file watch {watch_s:.2f} s, screenshot {shot}")
    finally:
        if driver is not None:
            driver.quit()
        driver_proc.terminate()
        try:
            driver_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
