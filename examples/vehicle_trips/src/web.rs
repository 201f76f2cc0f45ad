//! The web app (the seed's FastAPI endpoints and its planned front end with a WebSocket): a
//! page to create vehicles and trips (places from a list or clicked on the map; the route is
//! the road graph's fastest), and a live map of every vehicle with each trip's progress and
//! ETA, pushed over `GET /ws`.
//!
//! `GET /` is drawn on the server (an SVG map of the road graph, the vehicles, the trips), so
//! it shows everything without a script; `assets/page.js` (plain JavaScript, no library,
//! nothing loaded from elsewhere) opens the WebSocket and redraws the vehicles and the trips
//! table on every message. The JSON API: `GET /api/places`, `GET /api/state`,
//! `POST /api/vehicles` `{"name","place"}`, `POST /api/trips`
//! `{"vehicle_id","origin"?,"destination"}`, `POST /api/promote` `{"day"?}`.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use streamkit::prelude::*;

use crate::PromotionLog;
use crate::lake::Lake;
use crate::model::{TripState, format_clock, format_date, now_ms, parse_date};
use crate::promotion::PromotionReport;
use crate::roads::Graph;
use crate::simulation::Fleet;
use crate::topology::TRIPS;

const SCRIPT: &str = include_str!("../assets/page.js");
const STYLE: &str = include_str!("../assets/page.css");

/// Width of the map's drawing, in SVG units.
pub const MAP_W: f64 = 1000.0;
/// Trips listed on the page, newest first.
pub const TRIPS_SHOWN: usize = 30;

/// What the page is drawn from.
#[derive(Clone)]
pub struct WebState {
    /// The streaming application (the trip-state table).
    pub app: Arc<KafkaStreams>,
    /// The fleet.
    pub fleet: Arc<Mutex<Fleet>>,
    /// The lake (promotion by hand).
    pub lake: Arc<Lake>,
    /// Promotions run.
    pub promotions: PromotionLog,
    /// Real time per simulated second: how often the WebSocket sends.
    pub tick: Duration,
}

/// The map's projection: equirectangular around the graph's middle latitude.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Projection {
    /// Southmost latitude shown.
    pub min_lat: f64,
    /// Northmost.
    pub max_lat: f64,
    /// Westmost longitude shown.
    pub min_lng: f64,
    /// Eastmost.
    pub max_lng: f64,
    /// Height in SVG units.
    pub height: f64,
}

impl Projection {
    /// The graph's bounds with a margin.
    pub fn of(graph: &Graph) -> Self {
        let lats = graph.places.iter().map(|p| p.lat);
        let lngs = graph.places.iter().map(|p| p.lng);
        let (min_lat, max_lat) = lats.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (min_lng, max_lng) = lngs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (pad_lat, pad_lng) = ((max_lat - min_lat) * 0.08, (max_lng - min_lng) * 0.08);
        let (min_lat, max_lat, min_lng, max_lng) = (
            min_lat - pad_lat,
            max_lat + pad_lat,
            min_lng - pad_lng,
            max_lng + pad_lng,
        );
        let k = ((min_lat + max_lat) / 2.0).to_radians().cos();
        let height = MAP_W * (max_lat - min_lat) / ((max_lng - min_lng) * k);
        Projection {
            min_lat,
            max_lat,
            min_lng,
            max_lng,
            height,
        }
    }

    /// SVG coordinates of a point.
    pub fn xy(&self, lat: f64, lng: f64) -> (f64, f64) {
        (
            (lng - self.min_lng) / (self.max_lng - self.min_lng) * MAP_W,
            (self.max_lat - lat) / (self.max_lat - self.min_lat) * self.height,
        )
    }
}

/// A vehicle on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
    /// The place it is at or last left.
    pub place: String,
    /// Its trip, while driving.
    pub trip_id: Option<String>,
    /// Speedometer, km/h.
    pub speed_kmh: f64,
    /// The route being driven, as points.
    pub route: Vec<(f64, f64)>,
}

/// A trip on the page: the trip-state table's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TripView {
    /// The table's value.
    #[serde(flatten)]
    pub state: TripState,
    /// Origin's name.
    pub origin_name: String,
    /// Destination's name.
    pub destination_name: String,
    /// Progress, 0 to 1.
    pub progress: f64,
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Simulated time, epoch ms.
    pub clock: i64,
    /// Every vehicle.
    pub vehicles: Vec<VehicleView>,
    /// Trips from the trip-state table, newest first.
    pub trips: Vec<TripView>,
    /// Promotions run.
    pub promotions: Vec<Result<PromotionReport, String>>,
}

fn trip_number(id: &str) -> u64 {
    id.trim_start_matches('t').parse().unwrap_or(0)
}

impl WebState {
    /// The page's content now (reads the trip-state table: call off the async workers).
    pub fn snapshot(&self) -> Snapshot {
        let (clock, vehicles, graph) = {
            let f = self.fleet.lock().expect("fleet");
            let graph = f.graph().clone();
            let vehicles = f
                .vehicles()
                .iter()
                .map(|v| VehicleView {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    lat: v.lat,
                    lng: v.lng,
                    place: graph.places[v.place].id.to_string(),
                    trip_id: v.trip.as_ref().map(|t| t.id.clone()),
                    speed_kmh: v.trip.as_ref().map_or(0.0, |t| t.speed_kmh),
                    route: v.trip.as_ref().map_or_else(Vec::new, |t| {
                        t.route
                            .places
                            .iter()
                            .map(|&p| (graph.places[p].lat, graph.places[p].lng))
                            .collect()
                    }),
                })
                .collect();
            (f.clock_ms(), vehicles, graph)
        };
        let name = |id: &str| {
            graph
                .place_index(id)
                .map_or_else(|| id.to_string(), |i| graph.places[i].name.to_string())
        };
        let mut trips: Vec<TripView> = self
            .app
            .store::<String, TripState>(TRIPS)
            .and_then(|s| s.all())
            .unwrap_or_default()
            .into_iter()
            .map(|(_, t)| TripView {
                origin_name: name(&t.origin),
                destination_name: name(&t.destination),
                progress: t.progress(),
                state: t,
            })
            .collect();
        trips.sort_by_key(|t| std::cmp::Reverse(trip_number(&t.state.trip_id)));
        trips.truncate(TRIPS_SHOWN);
        Snapshot {
            clock,
            vehicles,
            trips,
            promotions: self.promotions.lock().expect("promotions").clone(),
        }
    }
}

/// The page's routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(ws))
        .route("/api/places", get(places))
        .route("/api/state", get(api_state))
        .route("/api/vehicles", post(create_vehicle))
        .route("/api/trips", post(create_trip))
        .route("/api/promote", post(promote))
        .route("/assets/page.js", get(script))
        .route("/assets/page.css", get(style))
        .with_state(state)
}

async fn snapshot_of(state: &WebState) -> Snapshot {
    let state = state.clone();
    tokio::task::spawn_blocking(move || state.snapshot())
        .await
        .expect("reading the trip-state table")
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

async fn places(State(state): State<WebState>) -> Response {
    let graph = state.fleet.lock().expect("fleet").graph().clone();
    axum::Json(serde_json::json!({
        "places": graph.places,
        "roads": graph.roads,
        "projection": Projection::of(&graph),
    }))
    .into_response()
}

async fn api_state(State(state): State<WebState>) -> Response {
    axum::Json(snapshot_of(&state).await).into_response()
}

/// `POST /api/vehicles`.
#[derive(Debug, Deserialize)]
pub struct NewVehicle {
    /// Its name.
    pub name: String,
    /// Where it is parked (place id).
    pub place: String,
}

/// `POST /api/trips`.
#[derive(Debug, Deserialize)]
pub struct NewTrip {
    /// The vehicle.
    pub vehicle_id: String,
    /// Origin place id (default: where the vehicle is).
    #[serde(default)]
    pub origin: Option<String>,
    /// Destination place id.
    pub destination: String,
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

async fn create_vehicle(
    State(state): State<WebState>,
    axum::Json(v): axum::Json<NewVehicle>,
) -> Response {
    let r = state
        .fleet
        .lock()
        .expect("fleet")
        .add_vehicle(&v.name, &v.place);
    match r {
        Ok(id) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "id": id })),
        )
            .into_response(),
        Err(e) => bad_request(e),
    }
}

async fn create_trip(
    State(state): State<WebState>,
    axum::Json(t): axum::Json<NewTrip>,
) -> Response {
    // Off the async workers: starting a trip writes the trip counter to the lake.
    tokio::task::spawn_blocking(move || start_trip(&state, &t))
        .await
        .unwrap_or_else(|e| bad_request(format!("starting the trip failed: {e}")))
}

fn start_trip(state: &WebState, t: &NewTrip) -> Response {
    let mut f = state.fleet.lock().expect("fleet");
    let origin = t.origin.as_deref().filter(|o| !o.is_empty());
    match f.start_trip(&t.vehicle_id, origin, &t.destination) {
        Ok(id) => {
            let v = f
                .vehicles()
                .iter()
                .find(|v| v.id == t.vehicle_id)
                .and_then(|v| v.trip.clone());
            let graph = f.graph().clone();
            let body = v.map(|trip| {
                serde_json::json!({
                    "trip_id": id,
                    "route": trip.route.places.iter().map(|&p| graph.places[p].id).collect::<Vec<_>>(),
                    "roads": trip.route.roads.iter().map(|&r| graph.roads[r].name).collect::<Vec<_>>(),
                    "length_m": trip.route.length_m,
                    "free_flow_s": trip.route.free_flow_s,
                })
            });
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// `POST /api/promote`.
#[derive(Debug, Default, Deserialize)]
pub struct Promote {
    /// The day, `YYYY-MM-DD` (default: today, UTC).
    #[serde(default)]
    pub day: Option<String>,
}

async fn promote(State(state): State<WebState>, body: Option<axum::Json<Promote>>) -> Response {
    let day = match body.and_then(|b| b.0.day) {
        Some(d) => match parse_date(&d) {
            Some(d) => d,
            None => return bad_request(format!("{d:?} is not YYYY-MM-DD")),
        },
        None => now_ms().div_euclid(crate::model::DAY_MS),
    };
    let (lake, log) = (state.lake.clone(), state.promotions.clone());
    let r = tokio::task::spawn_blocking(move || crate::promotion::promote(&lake, day))
        .await
        .expect("promotion");
    let r = r.map_err(|e| format!("{e:#}"));
    log.lock().expect("promotions").push(r.clone());
    match r {
        Ok(rep) => axum::Json(rep).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": e, "day": format_date(day) })),
        )
            .into_response(),
    }
}

async fn ws(State(state): State<WebState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| push(state, socket))
}

/// Sends the snapshot whenever it changes, at most once per simulated second.
async fn push(state: WebState, mut socket: WebSocket) {
    let mut last = String::new();
    let every = state
        .tick
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let json = serde_json::to_string(&snapshot_of(&state).await).unwrap_or_default();
        if json != last {
            if socket
                .send(Message::Text(json.clone().into()))
                .await
                .is_err()
            {
                return;
            }
            last = json;
        }
        tokio::time::sleep(every).await;
    }
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

/// The SVG map: roads, places, vehicles and their routes.
pub fn render_map(graph: &Graph, snapshot: &Snapshot) -> String {
    let p = Projection::of(graph);
    let mut h = String::new();
    let _ = write!(
        h,
        "<svg id=\"map\" viewBox=\"0 0 {MAP_W} {:.0}\" data-projection=\"{},{},{},{},{:.3}\" role=\"img\" aria-label=\"map of the roads, places and vehicles\">",
        p.height, p.min_lat, p.max_lat, p.min_lng, p.max_lng, p.height
    );
    h.push_str("<g id=\"roads\">");
    for r in &graph.roads {
        let (a, b) = (&graph.places[r.a], &graph.places[r.b]);
        let ((x1, y1), (x2, y2)) = (p.xy(a.lat, a.lng), p.xy(b.lat, b.lng));
        let _ = write!(
            h,
            "<line class=\"road\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"><title>{} ({} km/h)</title></line>",
            esc(r.name),
            r.limit_kmh
        );
    }
    h.push_str("</g><g id=\"routes\">");
    for v in &snapshot.vehicles {
        h.push_str(&route_line(&p, v));
    }
    h.push_str("</g><g id=\"places\">");
    for pl in &graph.places {
        let (x, y) = p.xy(pl.lat, pl.lng);
        let _ = write!(
            h,
            "<g class=\"place\" data-place=\"{}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"9\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            pl.id,
            x + 12.0,
            y + 4.0,
            esc(pl.name)
        );
    }
    h.push_str("</g><g id=\"vehicles\">");
    for v in &snapshot.vehicles {
        h.push_str(&vehicle_mark(&p, v));
    }
    h.push_str("</g></svg>");
    h
}

fn route_line(p: &Projection, v: &VehicleView) -> String {
    if v.route.is_empty() {
        return String::new();
    }
    let points: Vec<String> = v
        .route
        .iter()
        .map(|&(lat, lng)| {
            let (x, y) = p.xy(lat, lng);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        "<polyline class=\"route\" data-route=\"{}\" points=\"{}\"/>",
        esc(v.trip_id.as_deref().unwrap_or_default()),
        points.join(" ")
    )
}

fn vehicle_mark(p: &Projection, v: &VehicleView) -> String {
    let (x, y) = p.xy(v.lat, v.lng);
    format!(
        "<g class=\"vehicle{}\" data-vehicle=\"{}\" transform=\"translate({x:.1},{y:.1})\"><circle r=\"7\"/><text y=\"-11\">{}</text></g>",
        if v.trip_id.is_some() { " driving" } else { "" },
        esc(&v.id),
        esc(&v.name)
    )
}

/// The trips table's rows.
pub fn render_trips(snapshot: &Snapshot) -> String {
    let mut h = String::new();
    if snapshot.trips.is_empty() {
        h.push_str("<tr class=\"empty\"><td colspan=\"8\">no trip yet: create one above</td></tr>");
    }
    for t in &snapshot.trips {
        let s = &t.state;
        let eta = match (s.arrived_at, s.eta) {
            (Some(at), _) => format!("arrived {}", format_clock(at)),
            (None, Some(eta)) => format_clock(eta),
            (None, None) => "—".into(),
        };
        let _ = write!(
            h,
            "<tr data-trip=\"{id}\" data-status=\"{st}\" data-progress=\"{pr:.3}\" data-stops=\"{stops}\">\
             <td>{id}</td><td>{veh}</td><td>{o} → {d}</td><td class=\"status {st}\">{st}</td>\
             <td><progress max=\"1\" value=\"{pr:.3}\"></progress> {pct:.0}%</td>\
             <td>{speed:.0} km/h</td><td>{stops}</td><td>{eta}</td></tr>",
            id = esc(&s.trip_id),
            veh = esc(&s.vehicle_name),
            o = esc(&t.origin_name),
            d = esc(&t.destination_name),
            st = s.status.as_str(),
            pr = t.progress,
            pct = t.progress * 100.0,
            speed = s.speed_kmh,
            stops = s.stops,
        );
    }
    h
}

fn options(graph: &Graph) -> String {
    let mut h = String::new();
    for p in &graph.places {
        let _ = write!(h, "<option value=\"{}\">{}</option>", p.id, esc(p.name));
    }
    h
}

async fn page(State(state): State<WebState>) -> Response {
    let snapshot = snapshot_of(&state).await;
    let graph = state.fleet.lock().expect("fleet").graph().clone();
    let mut vehicle_options = String::new();
    for v in &snapshot.vehicles {
        let _ = write!(
            vehicle_options,
            "<option value=\"{}\">{} ({})</option>",
            esc(&v.id),
            esc(&v.name),
            esc(&v.id)
        );
    }
    let places = options(&graph);
    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Vehicle trips — streamkit</title><link rel=\"stylesheet\" href=\"/assets/page.css\"></head>\
         <body data-ws-messages=\"0\"><header><h1>Vehicle trips</h1>\
         <span id=\"clock\" data-clock=\"{clock}\">{clock_s} UTC (simulated)</span>\
         <span id=\"live\" class=\"off\">live: connecting…</span></header><main>\
         <section id=\"map-panel\">{map}<p class=\"hint\">Click a place to make it the destination; shift-click for the origin.</p></section>\
         <section id=\"side\">\
         <form id=\"new-vehicle\"><h2>New vehicle</h2><input name=\"name\" placeholder=\"name, e.g. Taxi 7\" required maxlength=\"60\">\
         <select name=\"place\">{places}</select><button>Create vehicle</button></form>\
         <form id=\"new-trip\"><h2>New trip</h2><select name=\"vehicle_id\" id=\"trip-vehicle\">{vehicle_options}</select>\
         <label>from <select name=\"origin\" id=\"trip-origin\"><option value=\"\">where it is</option>{places}</select></label>\
         <label>to <select name=\"destination\" id=\"trip-destination\">{places}</select></label>\
         <button>Start trip</button></form><p id=\"message\" role=\"status\"></p>\
         <form id=\"promote\"><h2>Data lake</h2><p class=\"muted\">{lake}</p><button>Promote today: landing → staging → common</button></form>\
         </section></main>\
         <section id=\"trips-panel\"><h2>Trips</h2><table id=\"trips\"><thead><tr><th>trip</th><th>vehicle</th>\
         <th>route</th><th>status</th><th>progress</th><th>speed</th><th>stops</th><th>ETA</th></tr></thead>\
         <tbody>{trips}</tbody></table></section>\
         <script src=\"/assets/page.js\"></script></body></html>",
        clock = snapshot.clock,
        clock_s = format_clock(snapshot.clock),
        map = render_map(&graph, &snapshot),
        lake = esc(state.lake.url()),
        trips = render_trips(&snapshot),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
