//! The web page (axum): live vehicles with their predicted delays, per-line delay over
//! time, model quality and pipeline throughput, read from the application's stores.
//!
//! The page is plain HTML with an inline SVG chart and reloads itself every few seconds
//! (`<meta http-equiv="refresh">`): no script, nothing fetched from elsewhere.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use streamkit::prelude::*;

use crate::clean::{ProcessedRow, format_datetime};
use crate::model::SharedModel;
use crate::topology::{
    CLEAN_STATE, CleanState, DelayStats, LINE_STATS, VEHICLES, WINDOW_ADVANCE, WINDOW_SIZE,
};

/// A vehicle counts as live when its last report is at most this old, in feed time,
/// compared with the newest report of any vehicle.
pub const LIVE_WITHIN_SECS: i64 = 15 * 60;
/// The chart shows this much feed time.
const CHART_SPAN_MS: i64 = 90 * 60 * 1_000;
/// Seconds between page reloads.
const REFRESH_SECS: u32 = 5;

/// What the page is built from.
#[derive(Clone)]
pub struct WebState {
    app: Arc<KafkaStreams>,
    model: SharedModel,
    throughput: Arc<Mutex<VecDeque<(Instant, u64, u64)>>>,
    replayed: Arc<std::sync::atomic::AtomicU64>,
}

impl WebState {
    /// The page of `app`, with the model the trainer keeps up to date; `replayed` counts
    /// rows the producer has sent.
    pub fn new(
        app: Arc<KafkaStreams>,
        model: SharedModel,
        replayed: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        WebState {
            app,
            model,
            throughput: Arc::new(Mutex::new(VecDeque::new())),
            replayed,
        }
    }

    /// Records a throughput sample (records processed, rows cleaned) now.
    fn sample(&self) {
        let processed = self.app.metrics().records_processed();
        let rows = self.clean_counts().rows;
        let mut t = self.throughput.lock().expect("throughput lock");
        t.push_back((Instant::now(), processed, rows));
        while t.len() > 11 {
            t.pop_front();
        }
    }

    /// Rates (records/s, rows/s) over the samples kept (about 10 s).
    fn rates(&self) -> (f64, f64) {
        let t = self.throughput.lock().expect("throughput lock");
        match (t.front(), t.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let secs = (b.0 - a.0).as_secs_f64();
                (
                    (b.1 - a.1) as f64 / secs,
                    b.2.saturating_sub(a.2) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        }
    }

    fn clean_counts(&self) -> CleanState {
        let mut total = CleanState::default();
        if let Ok(store) = self.app.store::<String, CleanState>(CLEAN_STATE)
            && let Ok(all) = store.all()
        {
            for (_, s) in all {
                total.add_counts(&s);
            }
        }
        total
    }
}

/// One live vehicle as the page and `/api/vehicles` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleView {
    /// `VehicleRef`.
    pub vehicle: String,
    /// Line.
    pub line: String,
    /// Where it is heading.
    pub destination: String,
    /// Its next stop.
    pub next_stop: String,
    /// Proximity text.
    pub proximity: String,
    /// Metres to the next stop.
    pub distance_from_stop: f64,
    /// Time of its last report (feed time).
    pub reported_at: String,
    /// Delay the feed reported (expected − scheduled), minutes.
    pub reported_delay: f64,
    /// The model's predicted delay at the next stop, minutes; `None` before a model exists.
    pub predicted_delay: Option<f64>,
}

/// The live vehicles with predictions, by line and vehicle.
pub fn live_vehicles(app: &KafkaStreams, model: &SharedModel) -> Vec<VehicleView> {
    let rows: Vec<ProcessedRow> = app
        .store::<String, ProcessedRow>(VEHICLES)
        .and_then(|s| s.all())
        .map(|all| all.into_iter().map(|(_, r)| r).collect())
        .unwrap_or_default();
    let newest = rows.iter().map(|r| r.recorded_at).max().unwrap_or(0);
    let mut live: Vec<ProcessedRow> = rows
        .into_iter()
        .filter(|r| r.recorded_at >= newest - LIVE_WITHIN_SECS)
        .collect();
    live.sort_by(|a, b| (&a.line, &a.vehicle).cmp(&(&b.line, &b.vehicle)));
    let predicted: Vec<Option<f64>> = match model.get() {
        Some(m) => m.predict(&live).into_iter().map(Some).collect(),
        None => vec![None; live.len()],
    };
    live.into_iter()
        .zip(predicted)
        .map(|(r, p)| VehicleView {
            vehicle: r.vehicle,
            line: r.line,
            destination: r.destination,
            next_stop: r.next_stop,
            proximity: r.proximity,
            distance_from_stop: r.distance_from_stop,
            reported_at: r.recorded_at_time,
            reported_delay: r.delay_minutes,
            predicted_delay: p,
        })
        .collect()
}

/// The router: `/` (the page), `/api/vehicles` (JSON), `/metrics` (Prometheus text).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/vehicles", get(vehicles_json))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Samples throughput every second until the returned task is aborted.
pub fn spawn_sampler(state: WebState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = state.clone();
            // Store reads take locks shared with the stream threads: off the async workers.
            let _ = tokio::task::spawn_blocking(move || s.sample()).await;
        }
    })
}

async fn vehicles_json(State(state): State<WebState>) -> Response {
    let result = tokio::task::spawn_blocking(move || live_vehicles(&state.app, &state.model)).await;
    match result {
        Ok(v) => match serde_json::to_string(&v) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics(State(state): State<WebState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.app.metrics().encode_text(),
    )
        .into_response()
}

async fn page(State(state): State<WebState>) -> Response {
    match tokio::task::spawn_blocking(move || render(&state)).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Escapes text for HTML.
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

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// An SVG line chart of the mean delay per line, one point per window end.
pub fn delay_chart(series: &BTreeMap<String, Vec<(i64, f64)>>) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 280.0, 48.0, 120.0, 12.0, 28.0);
    let points = series.values().flatten();
    let (mut t0, mut t1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::MAX, f64::MIN);
    for (t, y) in points {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    let mut svg = format!(
        r#"<svg id="delay-chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="mean delay per line over time">"#
    );
    if t0 > t1 {
        svg.push_str(r#"<text x="20" y="40">no closed windows yet</text></svg>"#);
        return svg;
    }
    y0 = y0.min(0.0).floor();
    y1 = y1.max(y0 + 1.0).ceil();
    let span_t = (t1 - t0).max(1) as f64;
    let x = |t: i64| left + (t - t0) as f64 / span_t * (w - left - right);
    let y = |v: f64| top + (y1 - v) / (y1 - y0) * (h - top - bottom);
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        w - left - right,
        h - top - bottom
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{v:.1}</text>"##,
            w - right,
            y(v),
            y(v),
            left - 4.0,
            y(v) + 4.0
        );
    }
    if y0 < 0.0 {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"/>"##,
            w - right,
            y(0.0),
            y(0.0)
        );
    }
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            x(t),
            h - 8.0,
            &format_datetime(t / 1_000)[11..16]
        );
    }
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" font-size="11" transform="rotate(-90 12 {:.1})" text-anchor="middle">min late</text>"#,
        (h - bottom + top) / 2.0,
        (h - bottom + top) / 2.0
    );
    for (i, (line, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" data-line="{}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            esc(line),
            path.join(" ")
        );
        let ly = top + 14.0 + i as f64 * 16.0;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{}" y="{:.1}" font-size="12">{}</text>"#,
            w - right + 10.0,
            ly - 4.0,
            w - right + 26.0,
            ly,
            esc(line)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Mean delay per line per window end, over the last [`CHART_SPAN_MS`] of windows that
/// have ended (by the newest window start, which is the newest report's minute).
fn chart_series(app: &KafkaStreams) -> BTreeMap<String, Vec<(i64, f64)>> {
    let all = app
        .window_store::<String, DelayStats>(LINE_STATS)
        .and_then(|s| s.all())
        .unwrap_or_default();
    let size = WINDOW_SIZE.as_millis() as i64;
    let advance = WINDOW_ADVANCE.as_millis() as i64;
    let newest = all.iter().map(|(_, start, _)| *start).max().unwrap_or(0);
    let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (line, start, stats) in all {
        let ended = start + size <= newest + advance;
        if ended && start + size >= newest - CHART_SPAN_MS && stats.count > 0 {
            series
                .entry(line)
                .or_default()
                .push((start + size, stats.mean()));
        }
    }
    for pts in series.values_mut() {
        pts.sort_by_key(|(t, _)| *t);
    }
    series
}

fn render(state: &WebState) -> String {
    let app = &state.app;
    let counts = state.clean_counts();
    let (records_per_sec, rows_per_sec) = state.rates();
    let vehicles = live_vehicles(app, &state.model);
    let series = chart_series(app);
    let model = state.model.get();

    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECS}"><title>Bus arrivals · streamkit</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:16px;margin:22px 0 8px}}
.cards{{display:flex;gap:12px;flex-wrap:wrap}} .card{{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}}
.card b{{display:block;font-size:20px}} .muted{{color:#777;font-size:13px}}
table{{border-collapse:collapse;font-size:13px}} th,td{{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}}
td.num{{text-align:right;font-variant-numeric:tabular-nums}} .late{{color:#b00020}} .early{{color:#006d2c}}
</style></head><body><h1>Bus arrivals</h1><div class="muted">streamkit example · refreshes every {REFRESH_SECS} s · state {:?}</div>"#,
        app.state()
    );

    html.push_str(r#"<h2>Pipeline</h2><div class="cards" id="pipeline">"#);
    let replayed = state.replayed.load(std::sync::atomic::Ordering::Relaxed);
    for (label, value) in [
        ("rows replayed", replayed.to_string()),
        ("rows cleaned", counts.rows.to_string()),
        // Malformed rows (the cleaning step) and undecodable records (the source).
        (
            "dead-lettered",
            (counts.malformed + app.metrics().dead_letter_records()).to_string(),
        ),
        (
            "dropped (no arrival time)",
            counts.missing_arrival.to_string(),
        ),
        ("rows/s cleaned", format!("{rows_per_sec:.0}")),
        ("records/s (all steps)", format!("{records_per_sec:.0}")),
    ] {
        let _ = write!(
            html,
            r#"<div class="card"><b>{}</b><span class="muted">{}</span></div>"#,
            esc(&value),
            esc(label)
        );
    }
    html.push_str("</div>");

    html.push_str(r#"<h2>Model</h2><div class="cards" id="model">"#);
    match &model {
        Some(m) => {
            let r = &m.report;
            let gain = if r.baseline_mae > 0.0 {
                (1.0 - r.model_mae / r.baseline_mae) * 100.0
            } else {
                0.0
            };
            let _ = write!(
                html,
                r#"<div class="card"><b id="model-mae">{:.2} min</b><span class="muted">random forest, holdout MAE</span></div><div class="card"><b id="baseline-mae">{:.2} min</b><span class="muted">baseline (line mean), holdout MAE</span></div><div class="card"><b>{:.0}% {}</b><span class="muted">error than the baseline</span></div><div class="card"><b>#{} · {} rows</b><span class="muted">model version · rows trained on ({} held out; {:.1} s)</span></div>"#,
                r.model_mae,
                r.baseline_mae,
                gain.abs(),
                if gain >= 0.0 { "lower" } else { "higher" },
                r.version,
                r.trained_on,
                r.holdout,
                r.training_secs
            );
        }
        None => {
            let why = state
                .model
                .last_error()
                .unwrap_or_else(|| "waiting for rows".into());
            let _ = write!(
                html,
                r#"<div class="card"><b>not trained yet</b><span class="muted">{}</span></div>"#,
                esc(&why)
            );
        }
    }
    html.push_str("</div>");

    let _ = write!(
        html,
        r#"<h2>Mean delay per line (10-min windows, every minute)</h2>{}"#,
        delay_chart(&series)
    );

    let _ = write!(
        html,
        r#"<h2>Live vehicles ({})</h2><table id="vehicles"><thead><tr><th>vehicle</th><th>line</th><th>to</th><th>next stop</th><th>proximity</th><th>reported</th><th>delay now</th><th>predicted delay at next stop</th></tr></thead><tbody>"#,
        vehicles.len()
    );
    let minutes = |v: f64| {
        let class = if v > 1.0 {
            "late"
        } else if v < -1.0 {
            "early"
        } else {
            ""
        };
        format!(r#"<td class="num {class}">{v:+.1} min</td>"#)
    };
    for v in &vehicles {
        let predicted = match v.predicted_delay {
            Some(p) => minutes(p).replacen("<td ", r#"<td data-predicted="yes" "#, 1),
            None => r#"<td class="num muted">no model yet</td>"#.to_string(),
        };
        let _ = write!(
            html,
            r#"<tr class="vehicle" data-vehicle="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>"#,
            esc(&v.vehicle),
            esc(&v.vehicle),
            esc(&v.line),
            esc(&v.destination),
            esc(&v.next_stop),
            esc(&v.proximity),
            esc(&v.reported_at[11.min(v.reported_at.len())..]),
            minutes(v.reported_delay),
            predicted
        );
    }
    html.push_str("</tbody></table></body></html>");
    html
}
