//! The daemon's HTTP side, in-process against `http::router` over a real daemon and workspace:
//! every route ([`routes`]), the API against its OpenAPI document ([`openapi`]), and no secret in
//! any page, response, metric or log line ([`secrets`]).

#[path = "../common/mod.rs"]
mod common;

mod openapi;
mod routes;
mod secrets;
