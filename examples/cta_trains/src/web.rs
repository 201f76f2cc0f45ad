//! The dashboard page at `127.0.0.1:8888` (the original's `server.py` and
//! `templates/status.html`): per line its stations in order with the trains last arrived in
//! each direction, turnstile entries per station and the current weather, updated live over
//! server-sent events.
//!
//! `GET /` is the page, drawn on the server from the dashboard application's stores, so it
//! is complete without a script; its one script subscribes to `GET /events` and swaps in each
//! newer drawing of the page's body (sent whenever the stores change, at most twice a
//! second). `GET /api/status` gives the same as JSON.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use streamkit::prelude::*;

use crate::clock;
use crate::dashboard::{LineView, Snapshot, StoreContents, TrainView};
use crate::simulation::SimStats;

/// What the page is drawn from.
#[derive(Clone)]
pub struct WebState {
    app: Arc<KafkaStreams>,
    stats: Arc<SimStats>,
    stations_from: String,
}

impl WebState {
    /// The page of the dashboard application `app`, with the running simulation's `stats`;
    /// `stations_from` says where the stations came from (shown in the footer).
    pub fn new(app: Arc<KafkaStreams>, stats: Arc<SimStats>, stations_from: String) -> Self {
        WebState {
            app,
            stats,
            stations_from,
        }
    }

    /// The page's content now.
    pub fn status(&self) -> Status {
        Status {
            snapshot: StoreContents::read(&self.app).snapshot(),
            sim_time: clock::format(self.stats.sim_time.load(Ordering::Relaxed)),
            arrivals: self.stats.arrivals.load(Ordering::Relaxed),
            entries: self.stats.entries.load(Ordering::Relaxed),
            finished: self.stats.finished.load(Ordering::Relaxed),
            stations_from: self.stations_from.clone(),
        }
    }
}

/// The page's content: the stores' snapshot and the simulation's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Lines, stations, trains, entries, weather.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// The simulated time.
    pub sim_time: String,
    /// Arrivals the simulation produced.
    pub arrivals: u64,
    /// Turnstile entries it produced.
    pub entries: u64,
    /// Whether it has finished.
    pub finished: bool,
    /// Where the stations came from.
    pub stations_from: String,
}

/// The page's routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/api/status", get(api_status))
        .with_state(state)
}

async fn status_of(state: &WebState) -> Status {
    // Store reads are synchronous (RocksDB): off the async workers.
    let state = state.clone();
    tokio::task::spawn_blocking(move || state.status())
        .await
        .expect("reading the stores")
}

async fn page(State(state): State<WebState>) -> Response {
    let body = render_body(&status_of(&state).await);
    let mut html = String::with_capacity(body.len() + 4_096);
    html.push_str(HEAD);
    html.push_str("<main id=\"dashboard\">");
    html.push_str(&body);
    html.push_str("</main>");
    html.push_str(SCRIPT);
    html.push_str("</body></html>");
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn api_status(State(state): State<WebState>) -> Response {
    axum::Json(status_of(&state).await).into_response()
}

async fn events(State(state): State<WebState>) -> Response {
    let stream =
        futures_util::stream::unfold((state, None::<String>), |(state, last)| async move {
            loop {
                let body = render_body(&status_of(&state).await);
                if last.as_deref() != Some(body.as_str()) {
                    let event = Event::default().event("body").data(body.clone());
                    return Some((Ok::<_, Infallible>(event), (state, Some(body))));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `s` with HTML's special characters escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn title(line: &str) -> String {
    let mut c = line.chars();
    match c.next() {
        Some(f) => format!("{}{} Line", f.to_uppercase(), c.as_str()),
        None => String::new(),
    }
}

fn train_cell(dir: &str, train: Option<&TrainView>) -> String {
    match train {
        Some(t) => format!(
            "<td class=\"train dir-{dir}\" data-train=\"{id}\"><span class=\"id\">{id}</span> \
             <span class=\"status {cls}\">{status}</span></td>",
            id = esc(&t.train_id),
            cls = esc(&t.status.replace(' ', "-")),
            status = esc(&t.status),
        ),
        None => format!("<td class=\"train dir-{dir} empty\">–</td>"),
    }
}

fn render_line(out: &mut String, line: &LineView) {
    let total: i64 = line.stations.iter().map(|s| s.entries).sum();
    let _ = write!(
        out,
        "<section class=\"line {l}\" data-line=\"{l}\"><h2>{title} \
         <small>{n} stations · {total} entries</small></h2><div class=\"scroll\"><table>\
         <thead><tr><th>Station</th><th>Direction A<br><small>to {a}</small></th>\
         <th>Direction B<br><small>to {b}</small></th><th class=\"num\">Entries</th></tr></thead><tbody>",
        l = esc(&line.line),
        title = title(&line.line),
        n = line.stations.len(),
        a = esc(&line.towards_a),
        b = esc(&line.towards_b),
    );
    for s in &line.stations {
        let _ = write!(
            out,
            "<tr class=\"station\" data-station-id=\"{id}\" data-order=\"{order}\">\
             <td class=\"name\">{name}</td>{a}{b}\
             <td class=\"num entries\" data-entries=\"{entries}\">{entries}</td></tr>",
            id = s.station_id,
            order = s.order,
            name = esc(&s.name),
            a = train_cell("a", s.a.as_ref()),
            b = train_cell("b", s.b.as_ref()),
            entries = s.entries,
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// The page's body (what `/events` sends).
pub fn render_body(status: &Status) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let weather = match &status.snapshot.weather {
        Some(w) => format!(
            "<div id=\"weather\" data-temperature=\"{t:.1}\" data-status=\"{s}\">\
             <span class=\"temp\">{t:.0}°F</span> <span class=\"sky\">{sky}</span></div>",
            t = w.temperature,
            s = esc(&w.status),
            sky = esc(&w.status.replace('_', " ")),
        ),
        None => "<div id=\"weather\" class=\"empty\">no weather reading yet</div>".to_string(),
    };
    let _ = write!(
        out,
        "<header><h1>CTA Train Status</h1>{weather}<div id=\"clock\">{time}{done} · \
         {arrivals} arrivals · {entries} turnstile entries</div></header>",
        time = esc(&status.sim_time),
        done = if status.finished { " (done)" } else { "" },
        arrivals = status.arrivals,
        entries = status.entries,
    );
    for line in &status.snapshot.lines {
        render_line(&mut out, line);
    }
    let _ = write!(
        out,
        "<footer><p>Entries: <code>turnstile_summary</code>, the original's KSQL statements run \
         verbatim.</p><p>Stations: {from}. Trains: the simulation's, from the arrivals topic.</p></footer>",
        from = esc(&status.stations_from),
    );
    out
}

const HEAD: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CTA Train Status</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d1d1f}
main{max-width:1400px;margin:0 auto;padding:12px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr))}
header,footer{grid-column:1/-1}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 20px}
h1{margin:0;font-size:1.5rem}
#weather{font-size:1.2rem;background:#fff;border-radius:8px;padding:4px 12px}
#weather .temp{font-weight:700}
#clock{color:#555;font-size:.9rem}
section.line{background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.12)}
section.line h2{margin:0;padding:8px 12px;color:#fff;font-size:1.15rem}
section.line h2 small{font-weight:400;opacity:.9;font-size:.8rem}
.blue h2{background:#00a1de}.green h2{background:#009b3a}.red h2{background:#c60c30}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{font-size:.75rem;color:#555;background:#fafafa;position:sticky;top:0}
th small{font-weight:400}
td.name{white-space:normal;min-width:7em}
.num{text-align:right}
td.train .id{font-family:ui-monospace,monospace;font-weight:600}
.status{font-size:.7rem;border-radius:4px;padding:0 4px;background:#e8f5e9;color:#1b5e20}
.status.broken-down{background:#ffebee;color:#b71c1c}
.status.out-of-service{background:#eee;color:#555}
td.empty{color:#bbb}
footer{font-size:.8rem;color:#555}
@media (max-width:520px){main{padding:6px}th,td{padding:3px 4px}table{font-size:.8rem}h1{font-size:1.2rem}
td.train{white-space:normal}td.train .status{display:block;width:max-content}td.name{min-width:5em}}
</style></head><body>
"#;

const SCRIPT: &str = r#"<script>
(function(){
  if(!window.EventSource)return;
  var main=document.getElementById("dashboard");
  var es=new EventSource("/events");
  es.addEventListener("body",function(e){main.innerHTML=e.data;});
})();
</script>"#;
