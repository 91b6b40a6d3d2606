"""Measures IDSE Desk's start-up and idle memory with 100 projects (run under xvfb-run).

Start-up: from launching the process to the app reporting its first painted dashboard (the UI
calls `painted` in the first animation frame after rendering all rows). Memory: resident set of
the app process and of its whole process tree (WebKit's web and network processes included),
after 5 s idle. Prints one line per run and the median.

Usage: xvfb-run -a python3 scripts/measure-desk.py target/release/idse-desk target/release/idse [RUNS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP, IDSE = (str(Path(a).resolve()) for a in sys.argv[1:3])
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that map them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="idse-measure-"))
    repos = []
    for r in range(10):
        repo = tmp / f"repo-{r}"
        repo.mkdir()
        for p in range(10):
            subprocess.run([IDSE, "init", f"project-{r}-{p}"], cwd=repo, check=True, capture_output=True)
        repos.append(str(repo.resolve()))
    home = tmp / "home"
    home.mkdir()
    (home / "folders.json").write_text('{"folders": [%s]}' % ",".join(f'"{r}"' for r in repos))
    env = dict(os.environ, IDSE_DESK_HOME=str(home), IDSE_DESK_REPORT_PAINT="1", RUST_LOG="warn")
    starts, mains, trees = [], [], []
    for run in range(RUNS):
        t0 = time.time()
        proc = subprocess.Popen([APP], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = ""
        while proc.stdout is not None:
            line = proc.stdout.readline()
            if not line or line.startswith("painted"):
                break
        if not line.startswith("painted"):
            raise SystemExit(f"the app exited before painting (code {proc.wait()})")
        painted_ms = int(line.split(" at ")[1].split()[0])
        start_ms = painted_ms - t0 * 1000
        time.sleep(5)
        main_kib = rss_kib(proc.pid)
        anon_kib = rss_kib(proc.pid, "RssAnon")
        tree_kib = sum(rss_kib(p) for p in tree(proc.pid))
        pss_tree_kib = sum(pss_kib(p) for p in tree(proc.pid))
        proc.terminate()
        proc.wait(timeout=10)
        starts.append(start_ms)
        mains.append(main_kib / 1024)
        trees.append(tree_kib / 1024)
        print(f"run {run + 1}: {line.split(' at ')[0]}; start to first paint {start_ms:.0f} ms; "
              f"idle RSS {main_kib / 1024:.0f} MiB (app; {anon_kib / 1024:.0f} MiB of it anonymous, the rest "
              f"mapped libraries) / {tree_kib / 1024:.0f} MiB (with WebKit processes); "
              f"PSS {pss_tree_kib / 1024:.0f} MiB for the whole tree")
    print(f"median of {RUNS}: start {statistics.median(starts):.0f} ms (max {max(starts):.0f}); "
          f"idle RSS {statistics.median(mains):.0f} MiB app, {statistics.median(trees):.0f} MiB with WebKit")


if __name__ == "__main__":
    main()
