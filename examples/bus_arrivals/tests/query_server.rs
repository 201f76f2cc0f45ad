//! `--query-server`: the application's stores, `/health` and `/metrics` over HTTP, as the
//! Docker deployment runs it (`--query-server 0.0.0.0:8080 --application-server …`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bus_arrivals::{Args, start};

/// `GET path` over HTTP/1.0: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn the_query_server_serves_the_vehicles_health_and_metrics() {
    let args = Args {
        rows: 400,
        vehicles: 10,
        rate: 0.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        application_id: "bus-query-server".into(),
        query_server: Some("127.0.0.1:0".into()),
        application_server: Some("bus-arrivals-1:8080".into()),
        min_train_rows: usize::MAX,
        quiet: true,
        ..Args::defaults()
    };
    let mut running = start(&args).expect("the application starts");
    running.wait_for_replay().expect("the replay ends");
    let addr = running.app.query_server_addr().expect("a query server");

    assert_eq!(get(addr, "/health").0, 200);
    let mut page = String::new();
    let served = (0..300).any(|_| {
        page = get(addr, "/stores/vehicles?limit=5").1;
        let entries = serde_json::from_str::<serde_json::Value>(&page)
            .ok()
            .and_then(|v| v["entries"].as_array().map(Vec::len))
            .unwrap_or(0);
        entries > 0 || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(served, "no vehicles served: {page}");
    let (status, instances) = get(addr, "/instances");
    assert_eq!(status, 200);
    assert!(instances.contains("bus-arrivals-1:8080"), "{instances}");
    assert!(
        get(addr, "/metrics")
            .1
            .contains("streamkit_records_processed_total")
    );
    running.shutdown().unwrap();
}
