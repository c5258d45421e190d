//! `ferry serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::app::Application;
use crate::config::{Config, Layer, LogFormat};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [env: FERRY_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Base URL of links Ferry hands out [env: FERRY_PUBLIC_URL]
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Base URL of signed upload/download URLs [env: FERRY_UPLOAD_URL] [default: public URL]
    #[arg(long, value_name = "URL")]
    upload_url: Option<String>,
    /// Log as JSON lines instead of text [env: FERRY_LOG_FORMAT=json]
    #[arg(long)]
    log_json: bool,
}

impl ServeArgs {
    pub fn add_flags(&self, layer: &mut Layer) {
        if let Some(listen) = self.listen {
            layer.insert("listen", listen.to_string());
        }
        if let Some(url) = &self.public_url {
            layer.insert("public_url", url.clone());
        }
        if let Some(url) = &self.upload_url {
            layer.insert("upload_url", url.clone());
        }
        if self.log_json {
            layer.insert("log_format", "json".into());
        }
    }
}

pub async fn run(config_file: Option<&Path>, flags: Layer) -> anyhow::Result<()> {
    let config = Config::load(config_file, flags)?;
    init_tracing(config.log_format);
    let app = Application::build(config).await?;
    // Scripts and tests read this first line to find the server.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", app.local_addr())?;
    stdout.flush()?;
    let state = app.state();
    tracing::info!(
        address = %app.local_addr(),
        public_url = %state.public_url,
        data_dir = %state.config.data_dir.display(),
        catalog = %crate::app::catalog_name(&state.config.database_url),
        blob_store = %state.store.describe(),
        watch = ?state.config.watch,
        "ferry is serving"
    );
    tokio::spawn(crate::media::Tools::report());
    app.run_until_stopped().await
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
