//! The page: users per country and gender, the age distribution, the model's held-out
//! accuracy as it learns, the Cassandra sink's progress, and a form that asks the model.
//!
//! - `GET /` — the page (with `?first_name=…&country=…`, the model's answer in it); its
//!   panels refresh every 2 s from `GET /panels`, with no script or style from elsewhere;
//! - `GET /api/stats` — the same numbers as JSON;
//! - `GET /api/predict?first_name=…&country=…` — the model's answer as JSON (`404` before it
//!   has trained on anyone).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use streamkit::prelude::*;

use crate::SinkStatus;
use crate::api::NATIONALITIES;
use crate::learn::{self, Entry, Evaluation, Prediction};
use crate::model::AGE_BANDS;
use crate::topology::{BY_AGE_BAND, BY_COUNTRY_GENDER, USERS_STORE};

/// What the page needs.
#[derive(Clone)]
pub struct WebState {
    app: Arc<KafkaStreams>,
    sink: Option<SinkStatus>,
}

impl WebState {
    /// The page over `app`'s stores and the sink's progress.
    pub fn new(app: Arc<KafkaStreams>, sink: Option<SinkStatus>) -> Self {
        WebState { app, sink }
    }

    /// The numbers the page shows, read from the stores now.
    pub fn stats(&self) -> Stats {
        let count_store = |name: &str| -> BTreeMap<String, i64> {
            self.app
                .store::<String, i64>(name)
                .and_then(|s| s.all())
                .map(|all| all.into_iter().filter(|(_, n)| *n > 0).collect())
                .unwrap_or_default()
        };
        let mut countries: BTreeMap<String, CountryRow> = BTreeMap::new();
        for (key, n) in count_store(BY_COUNTRY_GENDER) {
            let (country, gender) = key.rsplit_once('|').unwrap_or((key.as_str(), ""));
            let row = countries
                .entry(country.to_string())
                .or_insert_with(|| CountryRow {
                    country: country.to_string(),
                    ..CountryRow::default()
                });
            match gender {
                "female" => row.female += n,
                "male" => row.male += n,
                _ => {}
            }
        }
        let bands = count_store(BY_AGE_BAND);
        let age_bands = AGE_BANDS
            .iter()
            .map(|b| (b.to_string(), bands.get(*b).copied().unwrap_or(0)))
            .collect();
        let users = self
            .app
            .store::<String, crate::model::CreatedUser>(USERS_STORE)
            .map(|s| s.all().map_or(0, |a| a.len() as i64))
            .unwrap_or(0);
        let model = self
            .app
            .store::<String, Entry>(learn::MODEL_STORE)
            .ok()
            .map(|s| learn::evaluation_in(|k| s.get(&k.to_string()).ok().flatten()))
            .unwrap_or_default();
        let trained = self.predict("", "").map_or(0, |p| p.trained_on);
        Stats {
            users,
            countries: countries.into_values().collect(),
            age_bands,
            model,
            trained,
            sink: self.sink.as_ref().map(|s| SinkStats {
                table: s.table.clone(),
                nodes: s.nodes.join(","),
                rows_written: s.progress.rows_written(),
                commits: s.progress.commits(),
                error: s.error.lock().expect("sink error").clone(),
            }),
        }
    }

    /// The model's answer now (`None` before it has trained on anyone).
    pub fn predict(&self, first_name: &str, country: &str) -> Option<Prediction> {
        let store = self.app.store::<String, Entry>(learn::MODEL_STORE).ok()?;
        learn::predict(
            first_name,
            country,
            learn::counts_in(|k| store.get(&k.to_string()).ok().flatten()),
        )
    }
}

/// One country's users.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountryRow {
    /// The country.
    pub country: String,
    /// Women.
    pub female: i64,
    /// Men.
    pub male: i64,
}

/// The sink's progress.
#[derive(Debug, Clone, Serialize)]
pub struct SinkStats {
    /// `keyspace.table`.
    pub table: String,
    /// The nodes.
    pub nodes: String,
    /// Rows acknowledged by Cassandra.
    pub rows_written: u64,
    /// Offset commits after them.
    pub commits: u64,
    /// Why it stopped, if it did.
    pub error: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Distinct users.
    pub users: i64,
    /// Per country, by name.
    pub countries: Vec<CountryRow>,
    /// (band, users), in band order.
    pub age_bands: Vec<(String, i64)>,
    /// The held-out evaluation.
    pub model: Evaluation,
    /// Users the model has trained on.
    pub trained: u64,
    /// The sink (`None`: off).
    pub sink: Option<SinkStats>,
}

/// The routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/panels", get(panels))
        .route("/api/stats", get(api_stats))
        .route("/api/predict", get(api_predict))
        .with_state(state)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The panels (the part of the page that refreshes).
pub fn render_panels(stats: &Stats) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "<section id=\"totals\"><h2>Users</h2><p><b id=\"users\">{}</b> distinct users",
        stats.users
    ));
    match &stats.sink {
        Some(s) => h.push_str(&format!(
            " · Cassandra <code>{}</code> at {}: <b id=\"rows-written\">{}</b> rows written, {} commits{}",
            esc(&s.table),
            esc(&s.nodes),
            s.rows_written,
            s.commits,
            s.error.as_ref().map_or(String::new(), |e| format!(" — <span class=\"error\">stopped: {}</span>", esc(e)))
        )),
        None => h.push_str(" · <span id=\"sink-off\">Cassandra sink off (start with --cassandra HOST:PORT)</span>"),
    }
    h.push_str("</p></section>");

    h.push_str("<section id=\"countries\"><h2>Per country and gender</h2><table><thead><tr><th>Country</th><th>Women</th><th>Men</th><th>Total</th></tr></thead><tbody>");
    for c in &stats.countries {
        h.push_str(&format!(
            "<tr data-country=\"{0}\"><td>{0}</td><td class=\"female\">{1}</td><td class=\"male\">{2}</td><td class=\"total\">{3}</td></tr>",
            esc(&c.country),
            c.female,
            c.male,
            c.female + c.male
        ));
    }
    h.push_str("</tbody></table></section>");

    let max = stats
        .age_bands
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        .max(1);
    h.push_str("<section id=\"ages\"><h2>Age distribution</h2>");
    for (band, n) in &stats.age_bands {
        h.push_str(&format!(
            "<div class=\"band\" data-band=\"{0}\"><span class=\"label\">{0}</span><span class=\"bar\" style=\"width:{1}%\"></span><span class=\"n\">{2}</span></div>",
            esc(band),
            n * 100 / max,
            n
        ));
    }
    h.push_str("</section>");

    let m = &stats.model;
    h.push_str(&format!(
        "<section id=\"model\"><h2>Model: gender from first name and country</h2>\
         <p>Trained on <b id=\"trained\">{}</b> users; held out <b id=\"held-out\">{}</b>: \
         accuracy <b id=\"accuracy\">{:.1}%</b> (last {}: {:.1}%)</p>",
        stats.trained,
        m.seen,
        m.accuracy() * 100.0,
        m.recent.len(),
        m.recent_accuracy() * 100.0
    ));
    if !m.curve.is_empty() {
        // The learning curve: accuracy so far after every ten held-out users.
        let n = m.curve.len().max(2) - 1;
        let points: Vec<String> = m
            .curve
            .iter()
            .enumerate()
            .map(|(i, (_, _, a))| {
                format!("{:.1},{:.1}", i as f64 * 300.0 / n as f64, 60.0 - a * 60.0)
            })
            .collect();
        h.push_str(&format!(
            "<svg id=\"curve\" viewBox=\"0 0 300 60\" width=\"300\" height=\"60\"><polyline fill=\"none\" stroke=\"#2a7\" stroke-width=\"2\" points=\"{}\"/></svg>",
            points.join(" ")
        ));
    }
    h.push_str("</section>");
    h
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:60em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.2em}table{border-collapse:collapse}\
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}\
.band{display:flex;align-items:center;gap:.5em;margin:.15em 0}.band .label{width:4em}\
.band .bar{display:inline-block;height:1em;background:#58a;min-width:1px}.error{color:#b00}\
form{display:flex;gap:.5em;flex-wrap:wrap}#prediction{font-size:1.1em;margin-top:.5em}";

const SCRIPT: &str = "setInterval(async()=>{try{const r=await fetch('/panels');\
if(r.ok){document.getElementById('panels').innerHTML=await r.text();}}catch(e){}},2000);";

async fn page(State(state): State<WebState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let stats = state.stats();
    let first = q
        .get("first_name")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let country = q
        .get("country")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let answer = if first.is_empty() {
        String::new()
    } else {
        match state.predict(&first, &country) {
            Some(p) => format!(
                "<p id=\"prediction\" data-gender=\"{}\">{} from {}: <b>{}</b> ({:.0}% — after {} users)</p>",
                p.gender,
                esc(&first),
                if country.is_empty() {
                    "anywhere".to_string()
                } else {
                    esc(&country)
                },
                p.gender,
                p.probability * 100.0,
                p.trained_on
            ),
            None => "<p id=\"prediction\">The model has not trained on anyone yet.</p>".to_string(),
        }
    };
    let options: String = NATIONALITIES
        .iter()
        .map(|n| format!("<option value=\"{}\">", esc(n.country)))
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Random users · streamkit</title><style>{STYLE}</style></head><body>\
         <h1>Random users</h1>\
         <section id=\"ask\"><h2>Ask the model</h2>\
         <form method=\"get\" action=\"/\"><input name=\"first_name\" placeholder=\"First name\" value=\"{}\" required>\
         <input name=\"country\" list=\"countries\" placeholder=\"Country\" value=\"{}\">\
         <datalist id=\"countries\">{options}</datalist><button type=\"submit\">Predict gender</button></form>{answer}</section>\
         <div id=\"panels\">{}</div><script>{SCRIPT}</script></body></html>",
        esc(&first),
        esc(&country),
        render_panels(&stats),
    );
    Html(html).into_response()
}

async fn panels(State(state): State<WebState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(render_panels(&state.stats())),
    )
        .into_response()
}

async fn api_stats(State(state): State<WebState>) -> Response {
    Json(state.stats()).into_response()
}

async fn api_predict(
    State(state): State<WebState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let first = q.get("first_name").cloned().unwrap_or_default();
    let country = q.get("country").cloned().unwrap_or_default();
    if first.trim().is_empty() {
        return (StatusCode::BAD_REQUEST, "first_name is required").into_response();
    }
    match state.predict(&first, &country) {
        Some(p) => Json(p).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the model has not trained on anyone yet",
        )
            .into_response(),
    }
}
