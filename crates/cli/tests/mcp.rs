//! `idse mcp` driven by a real MCP client that is not ours: the official Python SDK
//! (`tests/mcp_client.py`). Under CI it must run; elsewhere it is skipped, with a note, when
//! the `mcp` package is not installed (`python3 -m pip install mcp`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_sdk_reads_and_writes_stages() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the Python mcp SDK (scripts/test.sh does)"
        );
        eprintln!("python3 with the mcp package is not available: skipped");
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let idse = env!("CARGO_BIN_EXE_idse");
    let init = Command::new(idse)
        .arg("-C")
        .arg(ws.path())
        .args(["init", "demo"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(idse)
        .arg(ws.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("mcp client: ok"));
    let state =
        std::fs::read_to_string(ws.path().join(".idse/projects/demo/session_state.json")).unwrap();
    assert!(state.contains("python-sdk-agent"), "{state}");
}
