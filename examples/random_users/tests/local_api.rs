//! The local randomuser.me-compatible API over HTTP: the real API's JSON shape, a seed and a
//! page give the same users every time, seedless requests page forward, and bad `results`
//! are refused.

mod common;

use random_users::api::{self, ApiState};
use random_users::model::{RandomUser, is_uuid};
use serde_json::Value;

fn serve() -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    serve_state(ApiState::new(3).with_clock(|| common::NOW_MS))
}

fn serve_state(state: ApiState) -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = api::router(state);
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    (rt, addr)
}

fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = common::get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn users_have_the_real_apis_shape_and_a_seed_repeats_them() {
    let (_rt, addr) = serve();
    let a = json(addr, "/api/?results=25&seed=abc&page=2");
    let b = json(addr, "/api/?results=25&seed=abc&page=2");
    assert_eq!(a, b, "same seed and page, same users");
    let c = json(addr, "/api/?results=25&seed=abc&page=3");
    assert_ne!(a["results"], c["results"]);
    assert_eq!(a["info"]["seed"], "abc");
    assert_eq!(a["info"]["results"], 25);
    assert_eq!(a["info"]["page"], 2);
    assert_eq!(a["info"]["version"], "1.4");
    let users = a["results"].as_array().unwrap();
    assert_eq!(users.len(), 25);
    for u in users {
        for pointer in [
            "/gender",
            "/name/title",
            "/name/first",
            "/name/last",
            "/location/street/number",
            "/location/street/name",
            "/location/city",
            "/location/state",
            "/location/country",
            "/location/postcode",
            "/location/coordinates/latitude",
            "/location/timezone/offset",
            "/email",
            "/login/uuid",
            "/login/username",
            "/login/sha256",
            "/dob/date",
            "/dob/age",
            "/registered/date",
            "/registered/age",
            "/phone",
            "/cell",
            "/id/name",
            "/picture/large",
            "/picture/medium",
            "/picture/thumbnail",
            "/nat",
        ] {
            assert!(u.pointer(pointer).is_some(), "{pointer} missing in {u}");
        }
        assert!(is_uuid(u["login"]["uuid"].as_str().unwrap()));
        // Parses as the topology's record, and its age agrees with its date of birth.
        let user: RandomUser = serde_json::from_value(u.clone()).unwrap();
        let year: i32 = user.dob.date[..4].parse().unwrap();
        let age = 2026 - year;
        assert!(
            (age - 1..=age).contains(&user.dob.age),
            "{} born {}",
            user.dob.age,
            user.dob.date
        );
        assert!(user.email.ends_with("@example.com"));
    }
    // Genders and nationalities filter as on the real API.
    let women = json(addr, "/api/?results=30&gender=female&nat=fr,de");
    for u in women["results"].as_array().unwrap() {
        assert_eq!(u["gender"], "female");
        assert!(
            ["FR", "DE"].contains(&u["nat"].as_str().unwrap()),
            "{}",
            u["nat"]
        );
    }
}

#[test]
fn seedless_requests_page_forward_and_bad_counts_are_refused() {
    let (_rt, addr) = serve();
    let first = json(addr, "/api/?results=5");
    let second = json(addr, "/api/?results=5");
    assert_eq!(
        first["info"]["page"].as_u64().unwrap() + 1,
        second["info"]["page"].as_u64().unwrap()
    );
    assert_ne!(first["results"], second["results"]);
    assert_eq!(
        json(addr, "/api/")["results"].as_array().unwrap().len(),
        1,
        "one user by default"
    );
    for bad in ["0", "5001", "many"] {
        let (status, _) = common::get(addr, &format!("/api/?results={bad}"));
        assert_eq!(status, 400, "results={bad}");
    }
}

#[test]
fn a_bounded_api_serves_its_users_then_empty_pages() {
    let state = ApiState::new(3)
        .with_clock(|| common::NOW_MS)
        .max_users(Some(7));
    let (_rt, addr) = serve_state(state.clone());
    let sizes: Vec<usize> = (0..3)
        .map(|_| {
            json(addr, "/api/?results=5")["results"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, vec![5, 2, 0]);
    assert_eq!(state.served(), 7);
}
