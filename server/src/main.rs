//! `gridline`: see `gridline --help`.

#[tokio::main]
async fn main() {
    std::process::exit(gridline_server::cli::main().await);
}
