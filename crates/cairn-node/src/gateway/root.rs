//! `GET /` and `GET /?t=json`: the node's view of its storage servers, in the shape of Tahoe
//! 1.20's `Root.render_JSON` (`web/root.py`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;
use cairn_client::{ServerEntry, ServerHealth};
use serde::Serialize;

use super::{pyjson, text_response, Args, GatewayState, WebError};

#[derive(Serialize)]
struct RootJson {
    introducers: Introducers,
    servers: Vec<ServerJson>,
}

#[derive(Serialize)]
struct Introducers {
    statuses: Vec<String>,
}

/// Tahoe's `_describe_server`, keys in its order.
#[derive(Serialize)]
struct ServerJson {
    nodeid: String,
    connection_status: String,
    available_space: Option<u64>,
    nickname: String,
    version: Option<String>,
    last_received_data: Option<f64>,
}

/// Tahoe's connection summary for a server:
/// - answered the last probe: `Connected to tcp:HOST:PORT via tcp` (Foolscap's wording; Tahoe
///   1.20 says just `connected` for HTTPS servers: both start with "connected", which is what
///   tools that wait for servers look for, case-insensitively);
/// - never reached yet: `Trying to connect`;
/// - unreachable: `failure: <reason>` (Tahoe 1.20's wording for HTTPS servers).
pub(crate) fn connection_status(server: &ServerEntry, h: &ServerHealth) -> String {
    match h.connected {
        Some(true) => format!("Connected to tcp:{} via tcp", server.client.server()),
        None => "Trying to connect".to_string(),
        Some(false) => match &h.last_problem {
            Some((_, reason)) => format!("failure: {reason}"),
            None => "failure: unreachable".to_string(),
        },
    }
}

fn epoch_secs(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

fn describe(server: &ServerEntry) -> ServerJson {
    let h = server.health();
    ServerJson {
        nodeid: server.info.server_id.clone(),
        connection_status: connection_status(server, &h),
        available_space: h.version.as_ref().map(|v| v.available_space),
        nickname: server.info.nickname.clone(),
        version: h
            .version
            .as_ref()
            .map(|v| String::from_utf8_lossy(&v.application_version).into_owned()),
        last_received_data: h.last_ok.and_then(epoch_secs),
    }
}

pub(super) fn root(state: &GatewayState, args: &Args, head: bool) -> Result<Response, WebError> {
    let servers: Vec<ServerJson> = state.grid.servers().iter().map(|s| describe(s)).collect();
    match args.t() {
        "json" => {
            let body = pyjson::dumps_indent1(&RootJson {
                introducers: Introducers { statuses: vec![] },
                servers,
            });
            let body = if head { String::new() } else { body };
            Ok(text_response(
                StatusCode::OK,
                "application/json; charset=utf-8",
                body,
            ))
        }
        "" => {
            let connected = servers
                .iter()
                .filter(|s| s.connection_status.starts_with("Connected"))
                .count();
            let mut html = String::new();
            html.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>cairn node</title></head><body>\n");
            html.push_str(&format!(
                "<h1>cairn node {}</h1>\n",
                escape(&state.nickname)
            ));
            html.push_str(&format!(
                "<p>Connected to {connected} of {} known storage servers. Machine-readable: <a href=\"?t=json\">?t=json</a>.</p>\n",
                servers.len()
            ));
            html.push_str("<table border=\"1\"><tr><th>nickname</th><th>node id</th><th>status</th><th>available</th><th>version</th></tr>\n");
            for s in &servers {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    escape(&s.nickname),
                    escape(&s.nodeid),
                    escape(&s.connection_status),
                    s.available_space
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "N/A".into()),
                    escape(s.version.as_deref().unwrap_or("")),
                ));
            }
            html.push_str("</table>\n</body></html>\n");
            let body = if head { String::new() } else { html };
            Ok(text_response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                body,
            ))
        }
        t => Err(WebError::bad_request(format!("Unknown t={t}"))),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /statistics?t=json`, in the shape of Tahoe's (`{"counters": {...}, "stats": {...}}`):
/// the storage-server requests sent by the node's successful mutable operations since it
/// started, by kind (`cairn.mutable.round_trips.servermap|read|write`) and in all.
pub(super) fn statistics(state: &GatewayState, args: &Args) -> Result<Response, WebError> {
    if args.t() != "json" {
        return Err(WebError::not_implemented(
            "/statistics is served as JSON only (t=json)",
        ));
    }
    let mut counters = std::collections::BTreeMap::new();
    if let Some(c) = state.backend.mutable_round_trips_total() {
        counters.insert("cairn.mutable.round_trips", c.total());
        counters.insert("cairn.mutable.round_trips.read", c.reads);
        counters.insert("cairn.mutable.round_trips.servermap", c.servermap);
        counters.insert("cairn.mutable.round_trips.write", c.writes);
    }
    #[derive(Serialize)]
    struct Statistics {
        counters: std::collections::BTreeMap<&'static str, u64>,
        stats: std::collections::BTreeMap<&'static str, u64>,
    }
    let body = pyjson::dumps_indent1(&Statistics {
        counters,
        stats: Default::default(),
    });
    Ok(text_response(
        StatusCode::OK,
        "application/json; charset=utf-8",
        body,
    ))
}
