//! Bookinfo and the helper workloads as plain HTTP services, and the lab that runs them
//! on the mesh.

pub mod apps;
pub mod lab;
pub mod upstream;
