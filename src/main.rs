use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = ferry::cli::Cli::parse();
    std::process::exit(ferry::cli::run(cli).await);
}
