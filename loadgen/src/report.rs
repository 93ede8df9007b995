//! Reports of a run: the terminal table, JSON, CSV, HTML and comparisons.

pub mod compare;
pub mod csv;
pub mod html;
pub mod json;
pub mod table;

#[cfg(test)]
mod tests;
