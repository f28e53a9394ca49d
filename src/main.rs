use clap::Parser;

fn main() {
    let cli = layerinv::cli::Cli::parse();
    if let Err(e) = layerinv::cli::run(cli) {
        eprintln!("error: {}", layerinv::error::one_line(&format!("{e:#}")));
        std::process::exit(1);
    }
}
