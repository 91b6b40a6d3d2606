//! IDSE Desk, the desktop app: the Tauri command layer over `idse-core`, the embedded gateway,
//! file watching and the live link to the gateway.

pub mod commands;
pub mod desk;
pub mod documents;
pub mod embedded;
pub mod error;
pub mod live;
pub mod rendering;
pub mod settings;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use tauri::{Emitter, Manager, Runtime};

pub use desk::{Desk, DeskEvent, EventSink};

/// The name of the one event the window listens to.
pub const EVENT: &str = "desk://event";

/// Where the app keeps its own state: `IDSE_DESK_HOME`, else the user's data folder.
pub fn home(env_home: Option<PathBuf>, data_dir: Option<PathBuf>) -> PathBuf {
    env_home
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| data_dir.map(|d| d.join("idse-desk")))
        .unwrap_or_else(|| PathBuf::from(".idse-desk"))
}

/// Registers the commands on a builder (the real one, or the mock one in tests).
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::dashboard,
        commands::add_folders,
        commands::remove_folder,
        commands::preview,
        commands::push,
        commands::pull,
        commands::fetch_project,
        commands::settings,
        commands::save_settings,
        commands::gateway_health,
        commands::painted,
        commands::stage_document,
        commands::stage_history,
        commands::revision_text,
        commands::restore_revision,
        commands::merge_view,
        commands::save_merge_draft,
        commands::discard_merge_draft,
        commands::save_merge,
    ])
}

/// Starts the app.
pub fn run() {
    // First, while the process is still single-threaded (setting a variable is only sound
    // then); WebKit's web process inherits it.
    let cpu_rendering = cfg!(target_os = "linux")
        && rendering::wants_cpu_rendering(
            std::env::var_os("IDSE_DESK_RENDERING").as_deref(),
            std::env::var_os(rendering::WEBKIT_CPU_RENDERING).is_some(),
            std::path::Path::new("/dev/dri"),
        );
    if cpu_rendering {
        std::env::set_var(rendering::WEBKIT_CPU_RENDERING, "1");
        #[cfg(target_os = "linux")]
        rendering::keep_gl_out_of_ui_process();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(idse_gateway::colour_logs())
        .with_writer(std::io::stderr)
        .init();
    if cpu_rendering {
        tracing::info!(
            "no GPU render node: WebKit paints on the CPU (IDSE_DESK_RENDERING=gpu to change)"
        );
    }
    let home = home(
        std::env::var_os("IDSE_DESK_HOME").map(PathBuf::from),
        dirs::data_dir(),
    );
    let built = with_commands(tauri::Builder::default())
        .plugin(tauri_plugin_dialog::init())
        .setup(move |app| {
            let handle = app.handle().clone();
            let sink: EventSink = Arc::new(move |event| {
                if let Err(e) = handle.emit(EVENT, event) {
                    tracing::debug!(error = %e, "the window did not take an event");
                }
            });
            let desk = tauri::async_runtime::block_on(Desk::open(&home, sink))?;
            tauri::async_runtime::spawn(live::follow(desk.clone()));
            app.manage(desk);
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = built {
        eprintln!("IDSE Desk could not start: {e}");
        std::process::exit(1);
    }
}
