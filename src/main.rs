use clap::Parser;

// Tensor buffers are large and short-lived: mimalloc keeps freed pages for reuse instead of
// returning them to the OS, which saves page faults on every op.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = layerinv::cli::Cli::parse();
    match layerinv::cli::run(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", layerinv::error::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
