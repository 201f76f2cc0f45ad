//! A local JCDecaux-compatible API over the [`Simulation`]: the paths, parameters, JSON and
//! errors of `https://api.jcdecaux.com/vls/v1/…`, so the polling source reads it exactly as
//! it would read the real one.
//!
//! - `GET /vls/v1/stations?contract=…&apiKey=…` — every station of the contract (of every
//!   contract without `contract`);
//! - `GET /vls/v1/stations/{number}?contract=…&apiKey=…` — one station;
//! - `GET /vls/v1/contracts?apiKey=…` — the contracts.
//!
//! A missing or wrong `apiKey` is `403 {"error": "Unauthorized"}`, an unknown contract `400
//! {"error": "Specified contract does not exist"}`, an unknown station `404`. Each request
//! first brings the simulation up to the wall clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::city::CONTRACT;
use crate::model::now_ms;
use crate::simulation::Simulation;

/// The API's state: the simulation and the key it accepts.
#[derive(Clone)]
pub struct ApiState {
    sim: Arc<Mutex<Simulation>>,
    api_key: String,
    /// Moves the simulation to "now"; the wall clock unless a test sets another.
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl ApiState {
    /// Serves `sim`, advanced to the wall clock on each request, to holders of `api_key`.
    pub fn new(sim: Simulation, api_key: impl Into<String>) -> Self {
        ApiState {
            sim: Arc::new(Mutex::new(sim)),
            api_key: api_key.into(),
            clock: Arc::new(now_ms),
        }
    }

    /// The simulation, shared.
    pub fn simulation(&self) -> Arc<Mutex<Simulation>> {
        self.sim.clone()
    }

    fn stations_now(&self) -> Vec<crate::model::Station> {
        let now = (self.clock)();
        let mut sim = self.sim.lock().expect("simulation lock");
        sim.advance_to(now, |_| {});
        sim.stations()
    }

    /// The refusal of a request without the right key, if it is one.
    fn refuse(&self, q: &HashMap<String, String>) -> Option<Response> {
        match q.get("apiKey") {
            Some(k) if *k == self.api_key => None,
            _ => Some(
                (
                    StatusCode::FORBIDDEN,
                    Json(json!({"error": "Unauthorized"})),
                )
                    .into_response(),
            ),
        }
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/vls/v1/stations", get(stations))
        .route("/vls/v1/stations/{number}", get(station))
        .route("/vls/v1/contracts", get(contracts))
        .with_state(state)
}

/// The refusal of a request for another contract, if it is one.
fn unknown_contract(q: &HashMap<String, String>) -> Option<Response> {
    match q.get("contract") {
        Some(c) if !c.eq_ignore_ascii_case(CONTRACT) => Some(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "Specified contract does not exist"})),
            )
                .into_response(),
        ),
        _ => None,
    }
}

async fn stations(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = state.refuse(&q).or_else(|| unknown_contract(&q)) {
        return r;
    }
    let s = state.clone();
    let list = tokio::task::spawn_blocking(move || s.stations_now())
        .await
        .expect("the simulation");
    Json(list).into_response()
}

async fn station(
    State(state): State<ApiState>,
    Path(number): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = state.refuse(&q) {
        return r;
    }
    if !q.contains_key("contract") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "contract parameter is mandatory"})),
        )
            .into_response();
    }
    if let Some(r) = unknown_contract(&q) {
        return r;
    }
    let s = state.clone();
    let list = tokio::task::spawn_blocking(move || s.stations_now())
        .await
        .expect("the simulation");
    match list.into_iter().find(|s| s.number == number) {
        Some(s) => Json(s).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Station not found"})),
        )
            .into_response(),
    }
}

async fn contracts(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = state.refuse(&q) {
        return r;
    }
    Json(json!([{
        "name": CONTRACT,
        "commercial_name": "villo",
        "country_code": "BE",
        "cities": ["Bruxelles-Capitale", "Brussel-Hoofdstad"],
    }]))
    .into_response()
}
