//! The collection types, one module each (Redis's t_hash.c, t_list.c,
//! t_set.c, t_zset.c data structures). Each keeps Redis's compact encoding
//! for small collections and converts to the full structure past the
//! configured thresholds, so OBJECT ENCODING answers as Redis would.

pub mod hash;
pub mod hll;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;

pub use hash::HashValue;
pub use list::ListValue;
pub use set::SetValue;
pub use stream::Stream;
pub use zset::ZSetValue;
