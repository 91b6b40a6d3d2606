fn main() {
    // `generate_context!` embeds the built UI, so a missing `ui/dist` would fail deep inside the
    // macro; say what to run instead.
    println!("cargo:rerun-if-changed=ui/dist");
    if !std::path::Path::new("ui/dist/index.html").exists() {
        panic!(
            "ui/dist/index.html is missing: build the web UI first with \
             `npm --prefix ui ci && npm --prefix ui run build` (scripts/run.sh and scripts/test.sh do this)"
        );
    }
    tauri_build::build();
}
