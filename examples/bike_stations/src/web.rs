//! The dashboard at `127.0.0.1:8501` (the original's Streamlit app): a map of the stations
//! coloured by availability, city totals, live alerts, every station with a sparkline of its
//! last six hours, and the daily batches, updated live over server-sent events.
//!
//! `GET /` is drawn on the server from the streaming application's stores, so everything but
//! the map is there without a script. `assets/dashboard.js` (Leaflet and the page's code,
//! bundled from npm by esbuild and committed; see `web/`) draws the map on a plain vector
//! background (no tiles: nothing is loaded from elsewhere), subscribes to `GET /events` and
//! swaps in each newer drawing of the panels and the markers. `GET /api/status` gives the
//! same as JSON.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use streamkit::prelude::*;

use crate::BatchLog;
use crate::model::{Alert, Availability, CityTotals, StationTrack, format_time, now_ms};
use crate::topology::{CITY_TOTALS, STATION_10MIN, TRACKS};

/// The page's script: Leaflet and `web/src/dashboard.js`, bundled (`web/`: `npm run build`).
const SCRIPT: &str = include_str!("../assets/dashboard.js");
/// Leaflet's stylesheet and the page's.
const STYLE: &str = include_str!("../assets/dashboard.css");

/// Hours of history in each sparkline.
pub const SPARK_HOURS: i64 = 6;

/// What the page is drawn from.
#[derive(Clone)]
pub struct WebState {
    app: Arc<KafkaStreams>,
    batches: BatchLog,
    warehouse: bool,
}

impl WebState {
    /// The page of the streaming application `app` and the batches in `batches`;
    /// `warehouse` says whether they load PostgreSQL.
    pub fn new(app: Arc<KafkaStreams>, batches: BatchLog, warehouse: bool) -> Self {
        WebState {
            app,
            batches,
            warehouse,
        }
    }

    /// The page's content now.
    pub fn status(&self) -> Status {
        let now = now_ms();
        let tracks = self
            .app
            .store::<String, StationTrack>(TRACKS)
            .and_then(|s| s.all())
            .unwrap_or_default();
        let windows = self
            .app
            .window_store::<String, Availability>(STATION_10MIN)
            .ok();
        let mut stations: Vec<StationView> = tracks
            .into_iter()
            .filter_map(|(key, t)| {
                let s = t.latest.clone()?;
                let spark = windows
                    .as_ref()
                    .and_then(|w| {
                        w.fetch(&key, now - SPARK_HOURS * crate::model::HOUR_MS, now)
                            .ok()
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(start, a)| (start, a.mean_bikes()))
                    .collect();
                Some(StationView {
                    key,
                    number: s.number,
                    name: s.name.clone(),
                    address: s.address.clone(),
                    lat: s.position.lat,
                    lng: s.position.lng,
                    open: s.is_open(),
                    bikes: s.available_bikes,
                    stands: s.available_bike_stands,
                    bike_stands: s.bike_stands,
                    banking: s.banking,
                    last_update: s.last_update,
                    trend: t.trend(),
                    alert: t.alert.clone(),
                    spark,
                })
            })
            .collect();
        stations.sort_by(|a, b| a.name.cmp(&b.name));
        let cities = self
            .app
            .store::<String, CityTotals>(CITY_TOTALS)
            .and_then(|s| s.all())
            .unwrap_or_default();
        let batches = self
            .batches
            .lock()
            .expect("batch log")
            .iter()
            .map(|r| match r {
                Ok(r) => BatchView {
                    day: r.day.clone(),
                    facts: r.facts,
                    stations: r.stations,
                    bikes_taken: r.bikes_taken,
                    loaded: r.loaded,
                    error: None,
                },
                Err(e) => BatchView {
                    day: String::new(),
                    facts: 0,
                    stations: 0,
                    bikes_taken: 0,
                    loaded: false,
                    error: Some(e.clone()),
                },
            })
            .collect();
        Status {
            stations,
            cities,
            batches,
            warehouse: self.warehouse,
        }
    }
}

/// A station on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationView {
    /// `contract:number`.
    pub key: String,
    /// Its number.
    pub number: i64,
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// Whether it is open.
    pub open: bool,
    /// Bikes available.
    pub bikes: i64,
    /// Free stands.
    pub stands: i64,
    /// Stands in total.
    pub bike_stands: i64,
    /// Whether it takes cards.
    pub banking: bool,
    /// When it last reported (epoch ms).
    pub last_update: i64,
    /// Bikes per minute over the last minutes.
    pub trend: f64,
    /// Its alert, if any.
    pub alert: Option<Alert>,
    /// Mean bikes per 10-minute window over the last hours: (window start, mean).
    pub spark: Vec<(i64, f64)>,
}

impl StationView {
    /// The colour class of its marker: `closed`, `empty`, `low`, `ok`, `full`.
    pub fn level(&self) -> &'static str {
        if !self.open {
            "closed"
        } else if self.bikes == 0 {
            "empty"
        } else if self.stands == 0 {
            "full"
        } else if self.bikes * 5 <= self.bike_stands {
            "low"
        } else {
            "ok"
        }
    }
}

/// A daily batch on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchView {
    /// The day loaded.
    pub day: String,
    /// Station-hours.
    pub facts: usize,
    /// Stations.
    pub stations: usize,
    /// Bikes taken that day.
    pub bikes_taken: i64,
    /// Whether the warehouse was loaded.
    pub loaded: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// The page's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Every station, by name.
    pub stations: Vec<StationView>,
    /// Totals per contract.
    pub cities: Vec<(String, CityTotals)>,
    /// The daily batches run.
    pub batches: Vec<BatchView>,
    /// Whether there is a warehouse.
    pub warehouse: bool,
}

/// The page's routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/api/status", get(api_status))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .with_state(state)
}

async fn status_of(state: &WebState) -> Status {
    // Store reads are synchronous (RocksDB): off the async workers.
    let state = state.clone();
    tokio::task::spawn_blocking(move || state.status())
        .await
        .expect("reading the stores")
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The markers' data, for the script.
#[derive(Serialize)]
struct Marker<'a> {
    key: &'a str,
    name: &'a str,
    lat: f64,
    lng: f64,
    bikes: i64,
    stands: i64,
    level: &'static str,
}

fn markers(status: &Status) -> String {
    let m: Vec<Marker<'_>> = status
        .stations
        .iter()
        .map(|s| Marker {
            key: &s.key,
            name: &s.name,
            lat: s.lat,
            lng: s.lng,
            bikes: s.bikes,
            stands: s.stands,
            level: s.level(),
        })
        .collect();
    serde_json::to_string(&m).unwrap_or_else(|_| "[]".into())
}

async fn page(State(state): State<WebState>) -> Response {
    let status = status_of(&state).await;
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(HEAD);
    html.push_str("<div id=\"map\" aria-label=\"map of the stations\"></div>");
    html.push_str("<div id=\"panels\">");
    html.push_str(&render_panels(&status));
    html.push_str("</div></main>");
    // The markers' data; `<` escaped so that no string ends the script element.
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"markers\">{}</script>",
        markers(&status).replace('<', "\\u003c")
    );
    html.push_str("<script src=\"/assets/dashboard.js\"></script></body></html>");
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn api_status(State(state): State<WebState>) -> Response {
    axum::Json(status_of(&state).await).into_response()
}

async fn events(State(state): State<WebState>) -> Response {
    let stream =
        futures_util::stream::unfold((state, None::<String>), |(state, last)| async move {
            loop {
                let status = status_of(&state).await;
                let data = serde_json::json!({
                    "panels": render_panels(&status),
                    "markers": serde_json::from_str::<serde_json::Value>(&markers(&status))
                        .unwrap_or_default(),
                })
                .to_string();
                if last.as_deref() != Some(data.as_str()) {
                    let event = Event::default().event("update").data(data.clone());
                    return Some((Ok::<_, Infallible>(event), (state, Some(data))));
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
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

/// `n thing` or `n things`.
fn plural(n: i64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// An inline SVG polyline of `points` (mean bikes per window) scaled to `max` bikes.
fn sparkline(points: &[(i64, f64)], max: i64) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let now = now_ms();
    let from = now - SPARK_HOURS * crate::model::HOUR_MS;
    let span = (now - from) as f64;
    let max = max.max(1) as f64;
    let coords: Vec<String> = points
        .iter()
        .map(|(t, v)| {
            let x = ((t - from) as f64 / span * W).clamp(0.0, W);
            let y = H - (v / max * H).clamp(0.0, H);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" data-points=\"{}\" role=\"img\" aria-label=\"bikes over the last {SPARK_HOURS} hours\"><polyline fill=\"none\" points=\"{}\"/></svg>",
        points.len(),
        coords.join(" ")
    )
}

/// The panels: city totals, alerts, stations, batches.
pub fn render_panels(status: &Status) -> String {
    let mut h = String::with_capacity(32 * 1024);
    h.push_str("<section id=\"cities\"><h2>Cities</h2>");
    if status.cities.is_empty() {
        h.push_str("<p class=\"muted\">waiting for the first poll…</p>");
    }
    for (city, t) in &status.cities {
        let _ = write!(
            h,
            "<div class=\"city\" data-city=\"{c}\" data-bikes=\"{b}\" data-stands=\"{s}\" data-stations=\"{n}\">\
             <h3>{c}</h3><div class=\"totals\">\
             <span><b>{b}</b> bikes</span><span><b>{s}</b> free stands</span>\
             <span><b>{o}</b>/{n} open</span><span class=\"empty\"><b>{e}</b> empty</span>\
             <span class=\"full\"><b>{f}</b> full</span></div></div>",
            c = esc(city),
            b = t.bikes,
            s = t.stands,
            n = t.stations,
            o = t.open,
            e = t.empty,
            f = t.full,
        );
    }
    h.push_str("</section>");

    let mut alerts: Vec<&StationView> = status
        .stations
        .iter()
        .filter(|s| s.alert.is_some())
        .collect();
    alerts.sort_by(|a, b| {
        let (x, y) = (a.alert.as_ref().unwrap(), b.alert.as_ref().unwrap());
        x.minutes_left
            .total_cmp(&y.minutes_left)
            .then(a.name.cmp(&b.name))
    });
    let _ = write!(
        h,
        "<section id=\"alerts\"><h2>Alerts <span class=\"count\">{}</span></h2><ul>",
        alerts.len()
    );
    if alerts.is_empty() {
        h.push_str("<li class=\"muted\">none</li>");
    }
    for s in alerts {
        let a = s.alert.as_ref().expect("filtered");
        let detail = match a.kind {
            crate::model::AlertKind::EmptySoon => {
                format!(
                    "{}, ~{:.0} min left",
                    plural(s.bikes, "bike"),
                    a.minutes_left
                )
            }
            crate::model::AlertKind::FullSoon => {
                format!(
                    "{}, ~{:.0} min left",
                    plural(s.stands, "stand"),
                    a.minutes_left
                )
            }
            _ => format!("since {}", &format_time(a.since)[11..]),
        };
        let _ = write!(
            h,
            "<li class=\"alert {kind:?}\" data-alert-station=\"{key}\" data-alert-kind=\"{k}\">\
             <span class=\"badge\">{k}</span> {name} <span class=\"muted\">{detail}</span></li>",
            kind = a.kind,
            key = esc(&s.key),
            k = a.kind.label(),
            name = esc(&s.name),
        );
    }
    h.push_str("</ul></section>");

    let _ = write!(
        h,
        "<section id=\"stations\"><h2>Stations <span class=\"count\">{}</span></h2><table><thead><tr>\
         <th>station</th><th>bikes</th><th>stands</th><th>last {SPARK_HOURS} h</th><th>trend</th></tr></thead><tbody>",
        status.stations.len()
    );
    for s in &status.stations {
        let _ = write!(
            h,
            "<tr class=\"station {level}\" data-station=\"{key}\" data-bikes=\"{b}\" data-stands=\"{st}\" data-open=\"{open}\">\
             <td><span class=\"dot {level}\"></span>{name}{closed}</td><td class=\"num\">{b}</td><td class=\"num\">{st}</td>\
             <td>{spark}</td><td class=\"num\">{trend:+.1}/min</td></tr>",
            level = s.level(),
            key = esc(&s.key),
            b = s.bikes,
            st = s.stands,
            open = s.open,
            name = esc(&s.name),
            closed = if s.open { "" } else { " <em>closed</em>" },
            spark = sparkline(&s.spark, s.bike_stands),
            trend = s.trend,
        );
    }
    h.push_str("</tbody></table></section>");

    h.push_str("<section id=\"batches\"><h2>Daily batch</h2><ul>");
    if status.batches.is_empty() {
        h.push_str("<li class=\"muted\">yesterday's load is running…</li>");
    }
    for b in &status.batches {
        match &b.error {
            Some(e) => {
                let _ = write!(h, "<li class=\"batch failed\">failed: {}</li>", esc(e));
            }
            None => {
                let _ = write!(
                    h,
                    "<li class=\"batch\" data-day=\"{d}\" data-facts=\"{f}\">{d}: {f} station-hours, {s} stations, {t} bikes taken — {w}</li>",
                    d = esc(&b.day),
                    f = b.facts,
                    s = b.stations,
                    t = b.bikes_taken,
                    w = if b.loaded {
                        "loaded into the warehouse"
                    } else {
                        "no warehouse (--postgres-url)"
                    },
                );
            }
        }
    }
    h.push_str("</ul></section>");
    h
}

const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Bike stations</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head><body>\
<header><h1>Bike stations</h1><p>JCDecaux availability, live from streamkit's stores</p></header><main>";
