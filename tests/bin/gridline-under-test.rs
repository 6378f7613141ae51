//! The `gridline` command, built inside the test package so integration tests can spawn it.

#[tokio::main]
async fn main() {
    std::process::exit(gridline_server::cli::main().await);
}
