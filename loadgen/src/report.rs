//! Reports of a run: the terminal table and the JSON document.

pub mod json;
pub mod table;

#[cfg(test)]
mod tests;
