//! Vehicle trips.

pub mod lake;
pub mod model;
pub mod promotion;
pub mod rng;
pub mod roads;
pub mod simulation;
pub mod topology;
