use clap::Parser;

// Tensor buffers are large and short-lived: mimalloc keeps freed pages for reuse instead of
// returning them to the OS, which saves page faults on every op.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (`enum mi_option_e` in its `include/mimalloc.h`; the
/// Rust bindings lack the name): milliseconds before freed memory goes back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory for 100 s rather than mimalloc's 1 s. A training step frees and
/// reallocates the same large buffers every few seconds; with the default they went back to the
/// OS in between and every step faulted them in again (4–5% of a pool5 step's CPU time in the
/// kernel zeroing pages, 170 K page faults in a short bench run, 1 K with this). An idle app still
/// hands the memory back after the delay.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100_000) };
    }
}

fn main() {
    keep_freed_memory();
    // `layerinv info | head` ends quietly when head stops reading, as other command-line tools do
    // (Rust ignores SIGPIPE, and the next print then panics).
    // SAFETY: restores the default action of one signal before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL)
    };
    let cli = match layerinv::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as clap writes them.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error (an unknown option, a value not among the choices): one line, exit 2.
        Err(e) => {
            let text = e.render().to_string();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            eprintln!("{}; see --help", layerinv::error::one_line(&lines.join(" ")));
            std::process::exit(2);
        }
    };
    match layerinv::cli::run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", layerinv::error::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
