//! The local API answers as JCDecaux's does: the station list of a contract with the same
//! fields, one station, the contracts, and the same errors for a missing key, an unknown
//! contract or station; and the simulation behind it moves on with the clock.

mod common;

use bike_stations::api::{self, ApiState};
use bike_stations::model::now_ms;
use bike_stations::simulation::Simulation;

#[test]
fn the_local_api_speaks_jcdecaux() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Two hours ago, in the city's afternoon: the first request moves the simulation to now.
    let start = now_ms() - 2 * 3_600_000;
    let sim = Simulation::new(7, start).with_utc_offset_hours(common::afternoon_utc_offset_hours());
    let state = ApiState::new(sim, "k3y");
    let sim = state.simulation();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, api::router(state)).await });

    let (status, body) = common::get(addr, "/vls/v1/stations?contract=bruxelles&apiKey=k3y");
    assert_eq!(status, 200, "{body}");
    let json = body.trim_start_matches(|c: char| c != '[');
    let json = &json[..=json.rfind(']').unwrap()];
    let list: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    assert_eq!(list.len(), 50);
    let fields: Vec<&str> = list[2]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "number",
        "contract_name",
        "name",
        "address",
        "position",
        "banking",
        "bonus",
        "bike_stands",
        "available_bike_stands",
        "available_bikes",
        "status",
        "last_update",
    ];
    want.sort();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, want);
    assert_eq!(list[2]["name"], "003 - JARDIN AUX FLEURS");
    assert!(list[2]["position"]["lat"].as_f64().unwrap() > 50.8);
    for s in &list {
        let (bikes, stands, total) = (
            s["available_bikes"].as_i64().unwrap(),
            s["available_bike_stands"].as_i64().unwrap(),
            s["bike_stands"].as_i64().unwrap(),
        );
        match s["status"].as_str().unwrap() {
            "OPEN" => assert_eq!(bikes + stands, total, "{s}"),
            "CLOSED" => assert_eq!((bikes, stands), (0, 0), "{s}"),
            other => panic!("status {other}"),
        }
    }
    let moved = sim.lock().unwrap().now();
    assert!(
        moved > start + 3_600_000,
        "the simulation caught up with the clock"
    );
    assert!(sim.lock().unwrap().trips() > 0);

    let (status, body) = common::get(addr, "/vls/v1/stations/3?contract=bruxelles&apiKey=k3y");
    assert_eq!(status, 200);
    assert!(body.contains("\"number\":3"), "{body}");
    let (status, body) = common::get(addr, "/vls/v1/contracts?apiKey=k3y");
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"bruxelles\""), "{body}");

    let (status, body) = common::get(addr, "/vls/v1/stations?contract=bruxelles");
    assert_eq!(status, 403);
    assert!(body.contains("Unauthorized"), "{body}");
    let (status, body) = common::get(addr, "/vls/v1/stations?contract=paris&apiKey=k3y");
    assert_eq!(status, 400);
    assert!(body.contains("Specified contract does not exist"), "{body}");
    let (status, _) = common::get(addr, "/vls/v1/stations/999?contract=bruxelles&apiKey=k3y");
    assert_eq!(status, 404);
}
