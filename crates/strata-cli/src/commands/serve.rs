//! `strata serve`: the configured setup as an S3-compatible endpoint (crate `storage-serve`).

use std::net::SocketAddr;
use std::path::Path;

use storage_serve::{ServeConfig, Server};

use crate::output::{CliResult, Ctx};

/// Serve every bucket handle, route and tenant as an S3 bucket.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the S3 endpoint (default: `[serve] listen`, else 127.0.0.1:9000).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of /health and /metrics (default: `[serve] admin`, else 127.0.0.1:9001).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// No admin listener.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
}

/// Run until SIGTERM or Ctrl-C; in-flight requests finish first. `config` is the
/// `--config` file, whose `[serve]` table is read here; `telemetry` is the Prometheus
/// recorder `[telemetry.prometheus]` installed, which `/metrics` then exposes (otherwise
/// serve installs its own).
pub async fn run(
    ctx: &Ctx,
    config: Option<&Path>,
    args: ServeArgs,
    telemetry: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> CliResult {
    let mut cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            ServeConfig::from_toml_str(&text, &path.display().to_string())?
        }
        None => ServeConfig::default(),
    };
    if let Some(a) = args.listen {
        cfg.listen = a;
    }
    if let Some(a) = args.admin {
        cfg.admin = Some(a);
    }
    if args.no_admin {
        cfg.admin = None;
    }
    let mut server = Server::new(ctx.strata.clone(), cfg)?;
    if let Some(handle) = telemetry.or_else(storage_serve::install_prometheus) {
        server = server.with_prometheus(handle);
    }
    let names = server.bucket_names();
    let bound = server.bind().await?;
    if !ctx.quiet {
        eprintln!(
            "strata serve: S3 endpoint http://{} ({} bucket{}: {}){}",
            bound.local_addr(),
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            bound
                .admin_addr()
                .map(|a| format!("; health and metrics on http://{a}"))
                .unwrap_or_default()
        );
    }
    bound.run_until(storage_serve::shutdown_signal()).await?;
    Ok(())
}
