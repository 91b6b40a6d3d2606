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

/// On Linux, with WebKit painting on the CPU: keeps Mesa's GL driver out of the app's own
/// process. GTK probes GLX at start-up and WebKitGTK's UI process sets up EGL whether or not it
/// draws with them, and Mesa's driver brings LLVM: ~60 MiB of the process's 172 MiB resident
/// here (docs/benchmarks.md). Without a GPU that GL would only be Mesa's software rasteriser,
/// which the app does not use for painting anyway. With GTK's GL off (`GDK_GL=disable`) WebKit
/// paints without compositing (it logs "Disabled hardware acceleration"), in the web process,
/// which still needs EGL: it aborts without a display, so it must still find Mesa.
///
/// libglvnd reads its EGL vendor list once per process, at the first EGL call. So: point it at
/// no vendor, make that first call here, and remove the variable again before WebKit starts
/// its web process, which inherits the environment. A variable the user set is left alone.
/// Call it while the process is still single-threaded: setting a variable is only sound then.
#[cfg(target_os = "linux")]
pub fn keep_gl_out_of_ui_process() {
    const VENDORS: &str = "__EGL_VENDOR_LIBRARY_FILENAMES";
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
    if std::env::var_os(VENDORS).is_some()
        || std::env::var_os("__EGL_VENDOR_LIBRARY_DIRS").is_some()
    {
        return;
    }
    std::env::set_var(VENDORS, "");
    // The answer (an empty list: no vendor) does not matter; the call makes libglvnd read its
    // vendor list while the variable is set.
    let _ =
        khronos_egl::Instance::new(khronos_egl::Static).query_string(None, khronos_egl::EXTENSIONS);
    std::env::remove_var(VENDORS);
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
