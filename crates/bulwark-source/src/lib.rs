//! What Bulwark backs up and restores: file system metadata and content, byte streams from
//! stdin or a command, and databases (PostgreSQL, SQLite); and how it starts the programs it
//! needs ([`child`]).

pub mod child;
pub mod db;
pub mod files;
pub mod patterns;
pub mod read_ahead;
pub mod stream;

pub use patterns::Patterns;
