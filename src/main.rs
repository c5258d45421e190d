use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = match ferry::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(refused) => std::process::exit(ferry::cli::refused(refused)),
    };
    std::process::exit(ferry::cli::run(cli).await);
}
