//! How WebKitGTK should paint the window: on the GPU only where there is one to use.

use std::ffi::OsStr;
use std::path::Path;

/// The WebKitGTK variable that selects its CPU (Skia raster) renderer.
pub const WEBKIT_CPU_RENDERING: &str = "WEBKIT_SKIA_ENABLE_CPU_RENDERING";

/// Whether to ask WebKitGTK for CPU rendering. `choice` is `IDSE_DESK_RENDERING` (`cpu`, `gpu`,
/// or anything else for automatic); a WebKit variable the user set already wins; automatic
/// means CPU when `dri_dir` holds no DRM render node. Without one, WebKit's GPU path runs on
/// Mesa's software rasteriser, which painted the dashboard 2.5x slower than the CPU renderer
/// (docs/benchmarks.md).
pub fn wants_cpu_rendering(
    choice: Option<&OsStr>,
    webkit_already_set: bool,
    dri_dir: &Path,
) -> bool {
    if webkit_already_set {
        return false;
    }
    match choice.and_then(OsStr::to_str) {
        Some("cpu") => true,
        Some("gpu") => false,
        _ => !has_render_node(dri_dir),
    }
}

fn has_render_node(dri_dir: &Path) -> bool {
    std::fs::read_dir(dri_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_only_without_a_render_node_unless_told() -> std::io::Result<()> {
        let gpu = tempfile::tempdir()?;
        std::fs::write(gpu.path().join("card0"), "")?;
        std::fs::write(gpu.path().join("renderD128"), "")?;
        let no_gpu = tempfile::tempdir()?;
        std::fs::write(no_gpu.path().join("card0"), "")?;
        let missing = no_gpu.path().join("missing");

        assert!(!wants_cpu_rendering(None, false, gpu.path()));
        assert!(wants_cpu_rendering(None, false, no_gpu.path()));
        assert!(wants_cpu_rendering(None, false, &missing));
        assert!(wants_cpu_rendering(
            Some(OsStr::new("auto")),
            false,
            &missing
        ));
        assert!(wants_cpu_rendering(
            Some(OsStr::new("cpu")),
            false,
            gpu.path()
        ));
        assert!(!wants_cpu_rendering(
            Some(OsStr::new("gpu")),
            false,
            &missing
        ));
        // The user's own WebKit setting is left alone.
        assert!(!wants_cpu_rendering(
            Some(OsStr::new("cpu")),
            true,
            &missing
        ));
        Ok(())
    }
}
