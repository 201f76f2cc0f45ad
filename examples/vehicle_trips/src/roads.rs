//! The bundled road graph (central Madrid: named places joined by streets with speed limits)
//! and shortest routes over it by travel time (Dijkstra).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::Serialize;

/// A place vehicles drive from and to: a node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Place {
    /// Short identifier (`sol`, `atocha`, …).
    pub id: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
}

/// A street between two places, driven both ways.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Road {
    /// One end (index into [`Graph::places`]).
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// The street's name.
    pub name: &'static str,
    /// Speed limit, km/h.
    pub limit_kmh: f64,
    /// Length in metres (the straight line between the ends: vehicles drive it straight).
    pub length_m: f64,
}

const PLACES: &[(&str, &str, f64, f64)] = &[
    ("sol", "Puerta del Sol", 40.4169, -3.7035),
    ("mayor", "Plaza Mayor", 40.4155, -3.7074),
    ("opera", "Ópera", 40.4181, -3.7096),
    ("palacio", "Palacio Real", 40.4180, -3.7143),
    ("espana", "Plaza de España", 40.4234, -3.7122),
    ("callao", "Callao", 40.4200, -3.7058),
    ("cibeles", "Plaza de Cibeles", 40.4193, -3.6931),
    ("alcala", "Puerta de Alcalá", 40.4200, -3.6887),
    ("prado", "Museo del Prado", 40.4138, -3.6921),
    ("atocha", "Atocha", 40.4066, -3.6892),
    ("lavapies", "Lavapiés", 40.4087, -3.7010),
    ("latina", "La Latina", 40.4113, -3.7092),
    ("toledo", "Puerta de Toledo", 40.4068, -3.7116),
    ("bilbao", "Glorieta de Bilbao", 40.4289, -3.7020),
    ("tribunal", "Tribunal", 40.4262, -3.7010),
    ("alonso", "Alonso Martínez", 40.4279, -3.6955),
    ("colon", "Plaza de Colón", 40.4250, -3.6903),
    ("retiro", "Retiro", 40.4153, -3.6845),
];

const ROADS: &[(&str, &str, &str, f64)] = &[
    ("sol", "mayor", "Calle Mayor", 30.0),
    ("mayor", "opera", "Calle Mayor", 30.0),
    ("opera", "palacio", "Calle de Bailén", 40.0),
    ("opera", "callao", "Calle de Arenal", 30.0),
    ("palacio", "espana", "Calle de Bailén", 40.0),
    ("espana", "callao", "Gran Vía", 50.0),
    ("callao", "sol", "Calle del Carmen", 20.0),
    ("callao", "cibeles", "Gran Vía", 50.0),
    ("sol", "cibeles", "Calle de Alcalá", 40.0),
    ("cibeles", "alcala", "Calle de Alcalá", 50.0),
    ("cibeles", "prado", "Paseo del Prado", 50.0),
    ("prado", "atocha", "Paseo del Prado", 50.0),
    ("cibeles", "colon", "Paseo de Recoletos", 50.0),
    ("colon", "alonso", "Calle de Génova", 40.0),
    ("alonso", "bilbao", "Calle de Sagasta", 40.0),
    ("bilbao", "tribunal", "Calle de Fuencarral", 30.0),
    ("tribunal", "callao", "Calle de Fuencarral", 30.0),
    ("tribunal", "alonso", "Calle de Fernando VI", 30.0),
    ("espana", "bilbao", "Calle de Alberto Aguilera", 40.0),
    ("alcala", "retiro", "Paseo de Fernán Núñez", 30.0),
    ("retiro", "atocha", "Avenida de Menéndez Pelayo", 50.0),
    ("atocha", "lavapies", "Calle de Argumosa", 30.0),
    ("lavapies", "sol", "Calle de Atocha", 30.0),
    ("lavapies", "latina", "Calle del Duque de Alba", 30.0),
    ("latina", "mayor", "Calle de Toledo", 30.0),
    ("latina", "toledo", "Calle de Toledo", 40.0),
    ("toledo", "atocha", "Ronda de Valencia", 50.0),
    ("latina", "palacio", "Calle de Bailén", 40.0),
];

/// Distance in metres between two points on the Earth (haversine).
pub fn haversine_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    const R: f64 = 6_371_000.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// The road graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Its places.
    pub places: Vec<Place>,
    /// Its roads.
    pub roads: Vec<Road>,
    adjacency: Vec<Vec<usize>>,
}

/// A route: the places driven through and the roads between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Place indices, origin first.
    pub places: Vec<usize>,
    /// Road indices, one fewer than places.
    pub roads: Vec<usize>,
    /// Distance from the origin to each place along the route, metres.
    pub cumulative_m: Vec<f64>,
    /// Total length, metres.
    pub length_m: f64,
    /// Travel time at the speed limits, seconds.
    pub free_flow_s: f64,
}

impl Default for Graph {
    fn default() -> Self {
        Self::bundled()
    }
}

impl Graph {
    /// The bundled graph of central Madrid.
    pub fn bundled() -> Self {
        let places: Vec<Place> = PLACES
            .iter()
            .map(|&(id, name, lat, lng)| Place { id, name, lat, lng })
            .collect();
        let index = |id: &str| {
            places
                .iter()
                .position(|p| p.id == id)
                .unwrap_or_else(|| panic!("unknown place {id}"))
        };
        let roads: Vec<Road> = ROADS
            .iter()
            .map(|&(a, b, name, limit_kmh)| {
                let (a, b) = (index(a), index(b));
                let (pa, pb) = (&places[a], &places[b]);
                Road {
                    a,
                    b,
                    name,
                    limit_kmh,
                    length_m: haversine_m(pa.lat, pa.lng, pb.lat, pb.lng),
                }
            })
            .collect();
        let mut adjacency = vec![Vec::new(); places.len()];
        for (i, r) in roads.iter().enumerate() {
            adjacency[r.a].push(i);
            adjacency[r.b].push(i);
        }
        Graph {
            places,
            roads,
            adjacency,
        }
    }

    /// The index of the place with id `id`.
    pub fn place_index(&self, id: &str) -> Option<usize> {
        self.places.iter().position(|p| p.id == id)
    }

    /// The fastest route from `from` to `to` at the speed limits (`None` when either is not a
    /// place or they are the same).
    pub fn route(&self, from: usize, to: usize) -> Option<Route> {
        if from == to || from >= self.places.len() || to >= self.places.len() {
            return None;
        }
        #[derive(PartialEq)]
        struct Entry(f64, usize);
        impl Eq for Entry {}
        impl Ord for Entry {
            fn cmp(&self, other: &Self) -> Ordering {
                // A min-heap on time; ties by place for determinism.
                other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
            }
        }
        impl PartialOrd for Entry {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        let n = self.places.len();
        let mut best = vec![f64::INFINITY; n];
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut heap = BinaryHeap::new();
        best[from] = 0.0;
        heap.push(Entry(0.0, from));
        while let Some(Entry(t, p)) = heap.pop() {
            if p == to {
                break;
            }
            if t > best[p] {
                continue;
            }
            for &r in &self.adjacency[p] {
                let road = &self.roads[r];
                let q = if road.a == p { road.b } else { road.a };
                let tq = t + road.length_m / (road.limit_kmh / 3.6);
                if tq < best[q] {
                    best[q] = tq;
                    via[q] = Some(r);
                    heap.push(Entry(tq, q));
                }
            }
        }
        if !best[to].is_finite() {
            return None;
        }
        let (mut places, mut roads) = (vec![to], Vec::new());
        let mut p = to;
        while let Some(r) = via[p] {
            let road = &self.roads[r];
            p = if road.a == p { road.b } else { road.a };
            roads.push(r);
            places.push(p);
        }
        places.reverse();
        roads.reverse();
        let mut cumulative_m = vec![0.0];
        for &r in &roads {
            cumulative_m.push(cumulative_m.last().copied().unwrap_or(0.0) + self.roads[r].length_m);
        }
        Some(Route {
            length_m: *cumulative_m.last().unwrap_or(&0.0),
            free_flow_s: best[to],
            places,
            roads,
            cumulative_m,
        })
    }

    /// The point `distance_m` along `route` and the road it is on (clamped to the route).
    pub fn position(&self, route: &Route, distance_m: f64) -> (f64, f64, usize) {
        let d = distance_m.clamp(0.0, route.length_m);
        let leg = route
            .cumulative_m
            .windows(2)
            .position(|w| d <= w[1])
            .unwrap_or(route.roads.len().saturating_sub(1));
        let (a, b) = (
            &self.places[route.places[leg]],
            &self.places[route.places[leg + 1]],
        );
        let span = route.cumulative_m[leg + 1] - route.cumulative_m[leg];
        let f = if span > 0.0 {
            (d - route.cumulative_m[leg]) / span
        } else {
            1.0
        };
        (
            a.lat + (b.lat - a.lat) * f,
            a.lng + (b.lng - a.lng) * f,
            route.roads[leg],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_reaches_every_other_and_routes_are_shortest() {
        let g = Graph::bundled();
        for a in 0..g.places.len() {
            for b in 0..g.places.len() {
                if a == b {
                    assert!(g.route(a, b).is_none());
                    continue;
                }
                let r = g.route(a, b).expect("connected");
                assert_eq!(r.places.first(), Some(&a));
                assert_eq!(r.places.last(), Some(&b));
                assert_eq!(r.roads.len() + 1, r.places.len());
                // Driven backwards it takes the same time.
                let back = g.route(b, a).unwrap();
                assert!((back.free_flow_s - r.free_flow_s).abs() < 1e-6);
            }
        }
        // Sol to Atocha: round by Cibeles and the Prado at 40–50 km/h beats the shorter
        // 30 km/h Calle de Atocha through Lavapiés.
        let (sol, atocha) = (
            g.place_index("sol").unwrap(),
            g.place_index("atocha").unwrap(),
        );
        let r = g.route(sol, atocha).unwrap();
        let ids: Vec<&str> = r.places.iter().map(|&p| g.places[p].id).collect();
        assert_eq!(ids, ["sol", "cibeles", "prado", "atocha"]);
        // No detour is faster: through Lavapiés takes longer.
        let lavapies = g.place_index("lavapies").unwrap();
        let via_lavapies = g.route(sol, lavapies).unwrap().free_flow_s
            + g.route(lavapies, atocha).unwrap().free_flow_s;
        assert!(r.free_flow_s < via_lavapies);
        let (lat, lng, _) = g.position(&r, r.length_m);
        assert_eq!((lat, lng), (g.places[atocha].lat, g.places[atocha].lng));
    }
}
