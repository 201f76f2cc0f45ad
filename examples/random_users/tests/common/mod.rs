//! What the tests share: plain HTTP, a broker with a schema registry, the Cassandra node, and
//! users as the API returns them.
#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use random_users::api::{self, Request};
use serde_json::{Value, json};
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::avro::RegistryClient;
use streamkit::testing::EmbeddedBroker;

/// `GET path` on `addr`: status and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// An embedded broker with a real embedded schema registry on it, for the Avro serdes.
pub fn registry() -> (EmbeddedBroker, EmbeddedRegistry, RegistryClient) {
    let broker = EmbeddedBroker::start().unwrap();
    let registry =
        EmbeddedRegistry::start(RegistryConfig::embedded(&broker).listen("127.0.0.1:0")).unwrap();
    let client = registry.client().unwrap();
    (broker, registry, client)
}

/// The Cassandra node from `STREAMKIT_TEST_CASSANDRA`; the test fails without one.
pub fn cassandra() -> String {
    std::env::var("STREAMKIT_TEST_CASSANDRA").expect(
        "STREAMKIT_TEST_CASSANDRA must name a Cassandra node's CQL port (scripts/test.sh starts \
         one with scripts/cassandra.sh), e.g. 127.0.0.1:9042",
    )
}

/// 2026-12-01T00:00:00Z: the instant the tests' users' ages count to.
pub const NOW_MS: i64 = 1_796_083_200_000;

/// `n` users of the local API for `seed`, page 1.
pub fn users(seed: &str, n: usize) -> Vec<Value> {
    api::generate(
        &Request {
            results: n,
            seed: seed.into(),
            page: 1,
            ..Request::default()
        },
        NOW_MS,
    )
}

/// One user written out by hand, as randomuser.me returns it (postcode a number).
pub fn maria() -> Value {
    json!({
        "gender": "female",
        "name": {"title": "Ms", "first": "  María ", "last": "García  López"},
        "location": {
            "street": {"number": 12, "name": "Calle  Mayor"},
            "city": "Sevilla", "state": "Andalucía", "country": "Spain",
            "postcode": 41001,
            "coordinates": {"latitude": "37.3891", "longitude": "-5.9845"},
            "timezone": {"offset": "+1:00", "description": "Brussels, Copenhagen, Madrid, Paris"}
        },
        "email": "Maria.Garcia@Example.com",
        "login": {
            "uuid": "9F1C2B3A-4D5E-4F60-8A7B-1C2D3E4F5A6B", "username": "happybear12",
            "password": "sunshine", "salt": "abcdefgh", "md5": "0", "sha1": "0", "sha256": "0"
        },
        "dob": {"date": "1990-05-17T10:00:00.000Z", "age": 36},
        "registered": {"date": "2012-03-04T05:06:07.000Z", "age": 14},
        "phone": "955-123-456 ", "cell": "655-123-456",
        "id": {"name": "DNI", "value": null},
        "picture": {
            "large": "https://randomuser.me/api/portraits/women/1.jpg",
            "medium": "https://randomuser.me/api/portraits/med/women/1.jpg",
            "thumbnail": "https://randomuser.me/api/portraits/thumb/women/1.jpg"
        },
        "nat": "ES"
    })
}
