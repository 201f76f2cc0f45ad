//! The simulated contract: fifty stations placed where Brussels' bike stations are (central
//! Brussels, Ixelles, Saint-Gilles, Etterbeek, Schaerbeek, Molenbeek), each of a kind that
//! says when people leave it and when they ride to it.

use crate::model::{Position, Station};

/// The simulated contract's name (JCDecaux's Brussels contract is `bruxelles`).
pub const CONTRACT: &str = "bruxelles";

/// What a station is near, which shapes its daily flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Homes: people leave in the morning and come back in the evening.
    Residential,
    /// Offices (the European quarter, the ministries): the opposite.
    Business,
    /// Railway stations: arrivals by train ride on in the morning, ride back in the evening.
    Transit,
    /// Sights, shops and bars: busy in the afternoon, the evening and at weekends.
    Centre,
    /// Campuses: morning arrivals, late-afternoon departures.
    University,
}

/// A station of the simulated contract, before any bike moves.
#[derive(Debug, Clone, PartialEq)]
pub struct StationSpec {
    /// Its number.
    pub number: i64,
    /// Its name, without the number.
    pub name: &'static str,
    /// Postcode and municipality, for the address.
    pub area: &'static str,
    /// Where it is.
    pub position: Position,
    /// Its kind.
    pub kind: Kind,
    /// Stands in total.
    pub bike_stands: i64,
    /// Whether it takes cards.
    pub banking: bool,
    /// Whether it is a bonus station.
    pub bonus: bool,
}

use Kind::*;

const STATIONS: [(&str, &str, f64, f64, Kind); 50] = [
    ("Grand-Place", "1000 BRUXELLES", 50.8467, 4.3525, Centre),
    ("Bourse", "1000 BRUXELLES", 50.8480, 4.3497, Centre),
    (
        "Jardin aux Fleurs",
        "1000 BRUXELLES",
        50.8471,
        4.3440,
        Centre,
    ),
    (
        "Sainte-Catherine",
        "1000 BRUXELLES",
        50.8510,
        4.3475,
        Centre,
    ),
    ("De Brouckère", "1000 BRUXELLES", 50.8507, 4.3520, Centre),
    ("Gare Centrale", "1000 BRUXELLES", 50.8453, 4.3570, Transit),
    (
        "Gare du Midi",
        "1060 SAINT-GILLES",
        50.8357,
        4.3360,
        Transit,
    ),
    ("Gare du Nord", "1210 SAINT-JOSSE", 50.8605, 4.3617, Transit),
    (
        "Gare de Schaerbeek",
        "1030 SCHAERBEEK",
        50.8783,
        4.3786,
        Transit,
    ),
    (
        "Gare du Luxembourg",
        "1050 IXELLES",
        50.8390,
        4.3730,
        Transit,
    ),
    ("Schuman", "1040 ETTERBEEK", 50.8427, 4.3807, Business),
    ("Maelbeek", "1040 ETTERBEEK", 50.8440, 4.3770, Business),
    ("Arts-Loi", "1000 BRUXELLES", 50.8455, 4.3690, Business),
    ("Trône", "1000 BRUXELLES", 50.8407, 4.3662, Business),
    ("Madou", "1210 SAINT-JOSSE", 50.8496, 4.3697, Business),
    ("Parc", "1000 BRUXELLES", 50.8460, 4.3630, Business),
    ("Botanique", "1210 SAINT-JOSSE", 50.8545, 4.3660, Business),
    ("Rogier", "1000 BRUXELLES", 50.8555, 4.3585, Business),
    ("Yser", "1000 BRUXELLES", 50.8565, 4.3510, Business),
    ("Place Royale", "1000 BRUXELLES", 50.8424, 4.3600, Centre),
    ("Sablon", "1000 BRUXELLES", 50.8405, 4.3555, Centre),
    ("Mont des Arts", "1000 BRUXELLES", 50.8440, 4.3560, Centre),
    ("Porte de Namur", "1050 IXELLES", 50.8380, 4.3620, Centre),
    ("Place Louise", "1000 BRUXELLES", 50.8365, 4.3555, Centre),
    ("Flagey", "1050 IXELLES", 50.8275, 4.3720, Centre),
    ("Cinquantenaire", "1040 ETTERBEEK", 50.8400, 4.3930, Centre),
    ("Anneessens", "1000 BRUXELLES", 50.8440, 4.3440, Residential),
    ("Lemonnier", "1000 BRUXELLES", 50.8410, 4.3410, Residential),
    (
        "Porte de Hal",
        "1060 SAINT-GILLES",
        50.8340,
        4.3455,
        Residential,
    ),
    (
        "Parvis de Saint-Gilles",
        "1060 SAINT-GILLES",
        50.8305,
        4.3450,
        Residential,
    ),
    ("Horta", "1060 SAINT-GILLES", 50.8290, 4.3485, Residential),
    (
        "Hôtel des Monnaies",
        "1060 SAINT-GILLES",
        50.8320,
        4.3500,
        Residential,
    ),
    (
        "Place Stéphanie",
        "1050 IXELLES",
        50.8320,
        4.3580,
        Residential,
    ),
    ("Châtelain", "1050 IXELLES", 50.8245, 4.3595, Residential),
    (
        "Place Fernand Cocq",
        "1050 IXELLES",
        50.8330,
        4.3670,
        Residential,
    ),
    (
        "Place Jourdan",
        "1040 ETTERBEEK",
        50.8370,
        4.3835,
        Residential,
    ),
    ("Merode", "1040 ETTERBEEK", 50.8390, 4.3990, Residential),
    (
        "Place Meiser",
        "1030 SCHAERBEEK",
        50.8545,
        4.3970,
        Residential,
    ),
    (
        "Place Dailly",
        "1030 SCHAERBEEK",
        50.8530,
        4.3870,
        Residential,
    ),
    (
        "Place Liedts",
        "1030 SCHAERBEEK",
        50.8680,
        4.3665,
        Residential,
    ),
    (
        "Comte de Flandre",
        "1080 MOLENBEEK",
        50.8555,
        4.3380,
        Residential,
    ),
    (
        "Étangs Noirs",
        "1080 MOLENBEEK",
        50.8560,
        4.3305,
        Residential,
    ),
    ("Ribaucourt", "1080 MOLENBEEK", 50.8605, 4.3430, Residential),
    ("Simonis", "1081 KOEKELBERG", 50.8630, 4.3290, Residential),
    ("Bockstael", "1020 LAEKEN", 50.8720, 4.3480, Residential),
    (
        "Clemenceau",
        "1070 ANDERLECHT",
        50.8370,
        4.3270,
        Residential,
    ),
    (
        "Place Saint-Josse",
        "1210 SAINT-JOSSE",
        50.8510,
        4.3730,
        Residential,
    ),
    ("ULB Solbosch", "1050 IXELLES", 50.8125, 4.3810, University),
    ("VUB Pleinlaan", "1050 IXELLES", 50.8215, 4.3950, University),
    (
        "Cimetière d'Ixelles",
        "1050 IXELLES",
        50.8200,
        4.3830,
        University,
    ),
];

/// The simulated contract's stations, numbered from 1 in a fixed order.
pub fn stations() -> Vec<StationSpec> {
    STATIONS
        .iter()
        .enumerate()
        .map(|(i, &(name, area, lat, lng, kind))| {
            let number = i as i64 + 1;
            // Sizes and services vary, deterministically: 15 to 40 stands.
            let h = (number * 2_654_435_761) % 1000;
            StationSpec {
                number,
                name,
                area,
                position: Position { lat, lng },
                kind,
                bike_stands: match kind {
                    Transit | Business => 25 + h % 16,
                    _ => 15 + h % 16,
                },
                banking: h % 3 != 0,
                bonus: lat < 50.826,
            }
        })
        .collect()
}

impl StationSpec {
    /// The station as the API shows it, with `bikes` and `status` as given.
    pub fn to_station(&self, bikes: i64, open: bool, last_update: i64) -> Station {
        Station {
            number: self.number,
            contract_name: CONTRACT.to_string(),
            name: format!("{:03} - {}", self.number, self.name.to_uppercase()),
            address: format!("{} - {}", self.name.to_uppercase(), self.area),
            position: self.position,
            banking: self.banking,
            bonus: self.bonus,
            bike_stands: self.bike_stands,
            available_bike_stands: if open { self.bike_stands - bikes } else { 0 },
            available_bikes: if open { bikes } else { 0 },
            status: if open { "OPEN" } else { "CLOSED" }.to_string(),
            last_update,
        }
    }
}

/// Distance in kilometres (equirectangular: fine over a city).
pub fn distance_km(a: Position, b: Position) -> f64 {
    let lat = (a.lat + b.lat).to_radians() / 2.0;
    let x = (b.lng - a.lng).to_radians() * lat.cos();
    let y = (b.lat - a.lat).to_radians();
    (x * x + y * y).sqrt() * 6371.0
}
