//! The six kinds: admin configuration (Foundation, Department,
//! PlacementPolicy) and department resources (Instance, Volume, Bucket).

mod department;
mod foundation;
mod policy;
mod workload;

pub use department::*;
pub use foundation::*;
pub use policy::*;
pub use workload::*;
