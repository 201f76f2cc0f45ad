//! A local randomuser.me-compatible API: `GET /api/?results=N[&seed=S][&page=P][&gender=…]
//! [&nat=…]` answers `{"results": [...], "info": {"seed", "results", "page", "version"}}` with
//! users of the same JSON shape as `https://randomuser.me/api/`, so the polling source reads
//! it exactly as it would read the real one.
//!
//! Users are generated from a seeded generator: the same `seed` and `page` give the same
//! users, as on the real API. A request without `seed` gets the server's seed and the next
//! page, so every poll brings new users. First names come from per-nationality, per-gender
//! lists (as randomuser.me's do), which is what lets a model learn gender from first name and
//! country. With [`ApiState::max_users`] it serves that many users in all, then empty pages.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::model::now_ms;
use crate::rng::Rng;

/// The real API.
pub const RANDOMUSER_URL: &str = "https://randomuser.me/api/";
/// The version the local API reports in `info.version`.
pub const VERSION: &str = "1.4";
/// Most users per request (the real API's limit).
pub const MAX_RESULTS: usize = 5000;

/// A nationality: its code, country, names, places and formats.
pub struct Nationality {
    /// `nat`, e.g. `FR`.
    pub code: &'static str,
    /// `location.country`.
    pub country: &'static str,
    /// Male first names.
    pub male: &'static [&'static str],
    /// Female first names.
    pub female: &'static [&'static str],
    /// Last names.
    pub last: &'static [&'static str],
    /// (city, state) pairs.
    pub places: &'static [(&'static str, &'static str)],
    /// Street names.
    pub streets: &'static [&'static str],
    /// Name of the national identifier (empty: none, and `id.value` is `null`).
    pub id_name: &'static str,
    /// Postcodes are numbers (`true`) or text.
    pub numeric_postcode: bool,
}

/// The nationalities the local API draws from (a subset of randomuser.me's).
pub const NATIONALITIES: &[Nationality] = &[
    Nationality {
        code: "US",
        country: "United States",
        male: &[
            "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph",
            "Thomas", "Charles",
        ],
        female: &[
            "Mary",
            "Patricia",
            "Jennifer",
            "Linda",
            "Elizabeth",
            "Barbara",
            "Susan",
            "Jessica",
            "Sarah",
            "Karen",
        ],
        last: &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
        ],
        places: &[
            ("Austin", "Texas"),
            ("Denver", "Colorado"),
            ("Portland", "Oregon"),
            ("Albany", "New York"),
        ],
        streets: &["Main St", "Oak Ridge Ln", "Cedar St", "Lakeview St"],
        id_name: "SSN",
        numeric_postcode: true,
    },
    Nationality {
        code: "GB",
        country: "United Kingdom",
        male: &[
            "Oliver", "George", "Harry", "Jack", "Charlie", "Alfie", "Freddie", "Arthur",
        ],
        female: &[
            "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Florence",
        ],
        last: &[
            "Taylor", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Robinson",
        ],
        places: &[
            ("Leeds", "West Yorkshire"),
            ("Bristol", "Somerset"),
            ("York", "North Yorkshire"),
        ],
        streets: &[
            "High Street",
            "Station Road",
            "Church Lane",
            "Victoria Road",
        ],
        id_name: "NINO",
        numeric_postcode: false,
    },
    Nationality {
        code: "FR",
        country: "France",
        male: &[
            "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Nathan", "Théo",
        ],
        female: &[
            "Emma", "Léa", "Chloé", "Manon", "Camille", "Inès", "Louise", "Jade",
        ],
        last: &[
            "Martin", "Bernard", "Dubois", "Durand", "Lefebvre", "Moreau", "Laurent",
        ],
        places: &[
            ("Lyon", "Rhône"),
            ("Nantes", "Loire-Atlantique"),
            ("Lille", "Nord"),
        ],
        streets: &[
            "Rue de la Paix",
            "Avenue Jean-Jaurès",
            "Rue du Stade",
            "Place de l'Église",
        ],
        id_name: "INSEE",
        numeric_postcode: true,
    },
    Nationality {
        code: "DE",
        country: "Germany",
        male: &[
            "Lukas",
            "Leon",
            "Finn",
            "Jonas",
            "Paul",
            "Felix",
            "Maximilian",
            "Ben",
        ],
        female: &[
            "Hannah", "Lena", "Anna", "Lea", "Marie", "Johanna", "Clara", "Greta",
        ],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Becker",
            "Wagner",
        ],
        places: &[
            ("Hamburg", "Hamburg"),
            ("Leipzig", "Sachsen"),
            ("Bonn", "Nordrhein-Westfalen"),
        ],
        streets: &[
            "Hauptstraße",
            "Schulstraße",
            "Bahnhofstraße",
            "Gartenstraße",
        ],
        id_name: "SVNR",
        numeric_postcode: true,
    },
    Nationality {
        code: "ES",
        country: "Spain",
        male: &[
            "Alejandro",
            "Pablo",
            "Daniel",
            "Álvaro",
            "Adrián",
            "Diego",
            "Javier",
            "Mario",
        ],
        female: &[
            "Lucía", "Sofía", "Martina", "María", "Paula", "Julia", "Carmen", "Alba",
        ],
        last: &[
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Sánchez",
            "Romero",
        ],
        places: &[
            ("Valencia", "Comunidad Valenciana"),
            ("Sevilla", "Andalucía"),
            ("Bilbao", "País Vasco"),
        ],
        streets: &[
            "Calle Mayor",
            "Avenida de América",
            "Calle de Alcalá",
            "Paseo de Extremadura",
        ],
        id_name: "DNI",
        numeric_postcode: true,
    },
    Nationality {
        code: "BR",
        country: "Brazil",
        male: &[
            "Miguel", "Arthur", "Heitor", "Bernardo", "Davi", "Gael", "Samuel", "Ravi",
        ],
        female: &[
            "Helena",
            "Alice",
            "Laura",
            "Maria",
            "Valentina",
            "Heloísa",
            "Cecília",
            "Luiza",
        ],
        last: &[
            "Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Costa",
        ],
        places: &[
            ("Recife", "Pernambuco"),
            ("Curitiba", "Paraná"),
            ("Salvador", "Bahia"),
        ],
        streets: &[
            "Rua São Paulo",
            "Rua Sete de Setembro",
            "Rua Quinze de Novembro",
            "Avenida Brasil",
        ],
        id_name: "CPF",
        numeric_postcode: true,
    },
    Nationality {
        code: "NO",
        country: "Norway",
        male: &[
            "Jakob", "Emil", "Noah", "Oliver", "Filip", "William", "Lucas", "Henrik",
        ],
        female: &[
            "Nora", "Emma", "Ella", "Maja", "Olivia", "Sofie", "Ingrid", "Astrid",
        ],
        last: &[
            "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen",
        ],
        places: &[
            ("Bergen", "Vestland"),
            ("Tromsø", "Troms"),
            ("Stavanger", "Rogaland"),
        ],
        streets: &["Storgata", "Kirkeveien", "Skolegata", "Bjerkeveien"],
        id_name: "FN",
        numeric_postcode: true,
    },
    Nationality {
        code: "AU",
        country: "Australia",
        male: &[
            "Jack", "Noah", "Liam", "Leo", "Henry", "Oscar", "Charlie", "Theo",
        ],
        female: &[
            "Charlotte",
            "Isla",
            "Olivia",
            "Amelia",
            "Mia",
            "Grace",
            "Ruby",
            "Matilda",
        ],
        last: &[
            "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "White",
        ],
        places: &[
            ("Perth", "Western Australia"),
            ("Hobart", "Tasmania"),
            ("Darwin", "Northern Territory"),
        ],
        streets: &["George St", "Victoria Rd", "Queen St", "Parramatta Rd"],
        id_name: "TFN",
        numeric_postcode: true,
    },
    Nationality {
        code: "IE",
        country: "Ireland",
        male: &[
            "Jack", "James", "Noah", "Conor", "Darragh", "Cian", "Oisín", "Fionn",
        ],
        female: &[
            "Grace", "Fiadh", "Emily", "Sophie", "Aoife", "Saoirse", "Ellie", "Caoimhe",
        ],
        last: &[
            "Murphy",
            "Kelly",
            "Byrne",
            "Ryan",
            "O'Brien",
            "Walsh",
            "O'Sullivan",
        ],
        places: &[
            ("Galway", "Connacht"),
            ("Cork", "Munster"),
            ("Kilkenny", "Leinster"),
        ],
        streets: &["Main Street", "Church Road", "Patrick Street", "Mill Road"],
        id_name: "PPS",
        numeric_postcode: false,
    },
];

const ADJECTIVES: &[&str] = &[
    "happy",
    "silver",
    "brave",
    "tiny",
    "lazy",
    "ornery",
    "purple",
    "crazy",
    "heavy",
    "beautiful",
];
const ANIMALS: &[&str] = &[
    "bear", "wolf", "tiger", "goose", "rabbit", "peacock", "koala", "leopard", "frog", "swan",
];
const PASSWORDS: &[&str] = &[
    "sunshine", "qwerty", "dragon", "monkey", "letmein", "shadow", "master", "tigger", "hunter",
    "cookie",
];
const TIMEZONES: &[(&str, &str)] = &[
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("+0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("-3:00", "Brazil, Buenos Aires, Georgetown"),
    ("+9:30", "Adelaide, Darwin"),
    ("+10:00", "Eastern Australia, Guam, Vladivostok"),
];

const DAY_MS: i64 = 86_400_000;
const YEAR_MS: i64 = 31_556_952_000; // 365.2425 days

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch milliseconds.
pub fn iso_instant(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Whole years between two instants.
fn years_between(from_ms: i64, to_ms: i64) -> i32 {
    ((to_ms - from_ms).max(0) / YEAR_MS) as i32
}

fn hex(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.below(16) as u32, 16).expect("hex digit"))
        .collect()
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.below(10) as u32, 10).expect("digit"))
        .collect()
}

/// A version-4 UUID from the generator.
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let a = (a & !0xf000) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// What a request asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// How many users (1 to [`MAX_RESULTS`]).
    pub results: usize,
    /// The seed (the real API's are 16 hex digits; any text works).
    pub seed: String,
    /// The page of that seed, from 1.
    pub page: u64,
    /// Only this gender.
    pub gender: Option<String>,
    /// Only these nationalities (codes).
    pub nat: Vec<String>,
}

/// The users of a request, with `now_ms` the time ages are counted to: the `results` array.
pub fn generate(req: &Request, now_ms: i64) -> Vec<Value> {
    let mut seed_bits = 0xcbf2_9ce4_8422_2325u64; // FNV-1a of the seed text and the page
    for b in req.seed.bytes().chain(req.page.to_le_bytes()) {
        seed_bits = (seed_bits ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng::new(seed_bits);
    let nats: Vec<&Nationality> = NATIONALITIES
        .iter()
        .filter(|n| req.nat.is_empty() || req.nat.iter().any(|c| c.eq_ignore_ascii_case(n.code)))
        .collect();
    let nats = if nats.is_empty() {
        NATIONALITIES.iter().collect()
    } else {
        nats
    };
    (0..req.results)
        .map(|_| user(&mut rng, &nats, req.gender.as_deref(), now_ms))
        .collect()
}

fn user(rng: &mut Rng, nats: &[&Nationality], gender: Option<&str>, now: i64) -> Value {
    let nat = *rng.pick(nats);
    let male = match gender {
        Some(g) => g.eq_ignore_ascii_case("male"),
        None => rng.below(2) == 0,
    };
    let first = *rng.pick(if male { nat.male } else { nat.female });
    let last = *rng.pick(nat.last);
    let title = if male {
        "Mr"
    } else {
        *rng.pick(&["Ms", "Mrs", "Miss"])
    };
    let (city, state) = *rng.pick(nat.places);
    let postcode = if nat.numeric_postcode {
        json!(10_000 + rng.below(89_999) as i64)
    } else {
        json!(format!(
            "{}{} {}{}",
            (b'A' + rng.below(26) as u8) as char,
            rng.below(10),
            rng.below(10),
            (b'A' + rng.below(26) as u8) as char
        ))
    };
    let (offset, description) = *rng.pick(TIMEZONES);
    // Born between 18 and 80 years before `now`; registered between 1 and 20 years ago.
    let dob = now - 18 * YEAR_MS - (rng.unit() * 62.0 * YEAR_MS as f64) as i64;
    let registered = now - YEAR_MS - (rng.unit() * 19.0 * YEAR_MS as f64) as i64;
    let username = format!(
        "{}{}{}",
        rng.pick(ADJECTIVES),
        rng.pick(ANIMALS),
        rng.below(1000)
    );
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                'á' | 'à' | 'â' => 'a',
                'é' | 'è' | 'ê' => 'e',
                'í' | 'î' => 'i',
                'ó' | 'ô' => 'o',
                'ú' | 'ü' => 'u',
                'ç' => 'c',
                'ø' => 'o',
                c => c,
            })
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let portrait = rng.below(100);
    let kind = if male { "men" } else { "women" };
    json!({
        "gender": if male { "male" } else { "female" },
        "name": {"title": title, "first": first, "last": last},
        "location": {
            "street": {"number": 1 + rng.below(9999) as i64, "name": rng.pick(nat.streets)},
            "city": city,
            "state": state,
            "country": nat.country,
            "postcode": postcode,
            "coordinates": {
                "latitude": format!("{:.4}", rng.unit() * 180.0 - 90.0),
                "longitude": format!("{:.4}", rng.unit() * 360.0 - 180.0),
            },
            "timezone": {"offset": offset, "description": description},
        },
        "email": format!("{}.{}@example.com", ascii(first), ascii(last)),
        "login": {
            "uuid": uuid(rng),
            "username": username,
            "password": rng.pick(PASSWORDS),
            "salt": hex(rng, 8),
            "md5": hex(rng, 32),
            "sha1": hex(rng, 40),
            "sha256": hex(rng, 64),
        },
        "dob": {"date": iso_instant(dob), "age": years_between(dob, now)},
        "registered": {"date": iso_instant(registered), "age": years_between(registered, now)},
        "phone": format!("({})-{}-{}", digits(rng, 3), digits(rng, 3), digits(rng, 4)),
        "cell": format!("({})-{}-{}", digits(rng, 3), digits(rng, 3), digits(rng, 4)),
        "id": {
            "name": nat.id_name,
            "value": if nat.id_name.is_empty() { Value::Null } else { json!(digits(rng, 9)) },
        },
        "picture": {
            "large": format!("https://randomuser.me/api/portraits/{kind}/{portrait}.jpg"),
            "medium": format!("https://randomuser.me/api/portraits/med/{kind}/{portrait}.jpg"),
            "thumbnail": format!("https://randomuser.me/api/portraits/thumb/{kind}/{portrait}.jpg"),
        },
        "nat": nat.code,
    })
}

/// The API's state: its default seed and the next page for requests without a seed.
#[derive(Clone)]
pub struct ApiState {
    seed: String,
    next_page: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// Users served so far, and the most it serves (then `results` is empty).
    served: Arc<AtomicU64>,
    max_users: Option<u64>,
    /// The instant ages are counted to; the wall clock unless a test sets another.
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl ApiState {
    /// An API whose seedless requests use `seed`, page after page.
    pub fn new(seed: u64) -> Self {
        ApiState {
            seed: format!("{seed:016x}"),
            next_page: Arc::new(AtomicU64::new(1)),
            requests: Arc::default(),
            served: Arc::default(),
            max_users: None,
            clock: Arc::new(now_ms),
        }
    }

    /// Seedless requests start at this page (default 1): a restarted program polls users it
    /// has not polled before.
    pub fn first_page(self, page: u64) -> Self {
        self.next_page.store(page.max(1), Ordering::Relaxed);
        self
    }

    /// Serves at most `n` users in all, then empty pages: a bounded run. Default = no limit.
    pub fn max_users(mut self, n: Option<u64>) -> Self {
        self.max_users = n;
        self
    }

    /// Users served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// The same with a fixed clock (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// The API's routes: `/api/` and `/api`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/", get(users))
        .route("/api", get(users))
        .with_state(state)
}

async fn users(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let results = match q.get("results").map(|r| r.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=MAX_RESULTS).contains(&n) => n,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("results must be between 1 and {MAX_RESULTS}")})),
            )
                .into_response();
        }
    };
    let (seed, page) = match q.get("seed") {
        Some(seed) => (
            seed.clone(),
            q.get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
        ),
        None => (
            state.seed.clone(),
            state.next_page.fetch_add(1, Ordering::Relaxed),
        ),
    };
    let gender = q
        .get("gender")
        .filter(|g| g.eq_ignore_ascii_case("male") || g.eq_ignore_ascii_case("female"))
        .cloned();
    let nat = q
        .get("nat")
        .map(|n| {
            n.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let req = Request {
        results,
        seed: seed.clone(),
        page,
        gender,
        nat,
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    let mut users = generate(&req, (state.clock)());
    if let Some(max) = state.max_users {
        let before = state
            .served
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((s + users.len() as u64).min(max))
            })
            .expect("always updated");
        users.truncate(max.saturating_sub(before) as usize);
    } else {
        state
            .served
            .fetch_add(users.len() as u64, Ordering::Relaxed);
    }
    Json(json!({
        "results": users,
        "info": {"seed": seed, "results": results, "page": page, "version": VERSION},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_instant_formats_known_instants() {
        assert_eq!(iso_instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_instant(743_157_858_674), "1993-07-20T08:44:18.674Z");
        assert_eq!(iso_instant(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn uuids_are_version_4() {
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let u = uuid(&mut rng);
            assert!(crate::model::is_uuid(&u), "{u}");
            assert_eq!(&u[14..15], "4");
            assert!("89ab".contains(&u[19..20]), "{u}");
        }
    }
}
