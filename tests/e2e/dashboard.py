"""End-to-end test of the built IDSE Desk in a real window, driven through WebDriver.

tauri-driver + WebKitWebDriver (Debian's webkit2gtk-driver) under Xvfb. The app runs with its
embedded gateway; a second workspace changes a stage through the `idse` CLI against that same
gateway, and the test checks that the card shows it and that Pull brings the file.

Usage: python3 tests/e2e/dashboard.py APP IDSE SHOTS_DIR   (run under xvfb-run)
"""

import subprocess
import sys
import time
from pathlib import Path

from harness import desk, stage_file

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


def main() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with desk(APP, IDSE, "idse-e2e-") as d:
        repo = d.tmp / "repo"
        repo.mkdir()
        for name in ("checkout", "search-ranking", "billing-export"):
            d.idse("init", name, cwd=repo)
        stage_file(repo, "checkout", "specs/spec.md").write_text(SPEC)
        stage_file(repo, "checkout", "tasks/tasks.md").write_text(TASKS)
        assert "No projects yet" in d.read("#projects")

        # Add the folder (the path field; drag-and-drop and the native dialog call the same command).
        d.add_folder(repo)
        d.wait.until(lambda _: len(d.css("article.project")) == 3)
        read, click, wait, css, idse, tmp = d.read, d.click, d.wait, d.css, d.idse, d.tmp

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
        url = d.embedded_url()
        assert url.startswith("http://127.0.0.1:"), url

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

        shot = d.shot(SHOTS / "dashboard.png")

        # Without a GPU the app keeps Mesa's GL driver (and its LLVM) out of its own process,
        # while WebKit's web process still loads it (src-tauri/src/rendering.rs).
        if not list(Path("/dev/dri").glob("renderD*")):
            def maps(name: str) -> str:
                pid = subprocess.run(["pgrep", "-n", "-x", name], capture_output=True, text=True,
                                     check=True).stdout.split()[0]
                return Path(f"/proc/{pid}/maps").read_text()
            assert "libLLVM" not in maps("idse-desk"), "the app process loaded Mesa's GL driver"
            assert "libLLVM" in maps("WebKitWebProces"), "WebKit's web process has no GL driver"
        print(f"e2e ok: live update {live_s:.2f} s, file watch {watch_s:.2f} s, screenshot {shot}")


if __name__ == "__main__":
    main()
