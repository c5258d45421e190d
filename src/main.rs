use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = ferry::cli::Cli::parse();
    std::process::exit(ferry::cli::run(cli).await);
}
