//! What Bulwark backs up and restores: file system metadata and content, and byte streams from
//! stdin or a command.

pub mod db;
pub mod files;
pub mod patterns;
pub mod stream;

pub use patterns::Patterns;
