//! `meta-sim`: the Meta simulator as a process, for the local stack.
//!
//! Environment:
//! - `WAHOOK_META_SIM_PORT` (default 0: any free port), always on 127.0.0.1;
//! - `WAHOOK_META_SIM_WEBHOOK_URL` and `WAHOOK_APP_SECRET`: where signed webhooks go;
//! - `WAHOOK_ACCESS_TOKEN`: the token sends must carry (default: any);
//! - `WAHOOK_META_SIM_STATUS_DELAYS_MS`: `sent,delivered,read` delays (default `100,300,800`);
//! - `WAHOOK_META_SIM_TEMPLATES`: comma-separated approved template names (default: any).
//!
//! Prints `meta-sim listening on http://127.0.0.1:<port>` once ready.

use std::net::SocketAddr;
use std::time::Duration;

use wahook_meta_sim::{MetaSim, SimConfig, WebhookTarget};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt().with_target(false).init();
    let port: u16 = env("WAHOOK_META_SIM_PORT")
        .map(|p| {
            p.parse()
                .map_err(|_| format!("WAHOOK_META_SIM_PORT={p:?} is not a port number"))
        })
        .transpose()?
        .unwrap_or(0);
    let mut config = SimConfig {
        access_token: env("WAHOOK_ACCESS_TOKEN"),
        templates: env("WAHOOK_META_SIM_TEMPLATES")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        ..SimConfig::default()
    };
    if let Some(url) = env("WAHOOK_META_SIM_WEBHOOK_URL") {
        let app_secret = env("WAHOOK_APP_SECRET")
            .ok_or("WAHOOK_META_SIM_WEBHOOK_URL is set but WAHOOK_APP_SECRET is not: the simulator signs webhooks with it")?;
        config.webhook = Some(WebhookTarget { url, app_secret });
    }
    if let Some(delays) = env("WAHOOK_META_SIM_STATUS_DELAYS_MS") {
        let parsed: Vec<u64> = delays
            .split(',')
            .filter_map(|d| d.trim().parse().ok())
            .collect();
        let [a, b, c] = parsed[..] else {
            return Err(format!("WAHOOK_META_SIM_STATUS_DELAYS_MS={delays:?}: expected three numbers, e.g. 100,300,800"));
        };
        config.status_delays = [
            Duration::from_millis(a),
            Duration::from_millis(b),
            Duration::from_millis(c),
        ];
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let sim = MetaSim::start(addr, config).await.map_err(|e| {
        format!("cannot listen on {addr}: {e} (is the port taken? set WAHOOK_META_SIM_PORT)")
    })?;
    println!("meta-sim listening on {}", sim.url());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    sim.stop().await;
    Ok(())
}
