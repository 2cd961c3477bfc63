//! The wire contract, pure: no broker, no cache (docs/protocol.md sections 3 to
//! 5 and 9). Plain `#[test]`s cover every row of the error table.
//!
//! - [`request`](parse_request): body -> [`Inbound`], checks 1 to 5 in order;
//! - `kinds`: the request kinds and the one dispatch on `subtopic`;
//! - `reply`: success and `WS_Error` rendering;
//! - `route`: where a reply goes, and its correlation id;
//!   `direct_reply_to`: which Direct Reply-to addresses are safe to use;
//! - `error`: [`WsError`], one variant per row of the error table.

mod data;
mod direct_reply_to;
mod error;
mod kinds;
mod reply;
mod request;
mod route;

pub use data::data_text;
pub use direct_reply_to::DIRECT_REPLY_TO;
pub use error::{cut, WsError, MAX_ECHO_BYTES};
pub use kinds::{RequestKind, Select, Selection, KINDS, WS_ERROR_SUBTOPIC};
pub use reply::{render_error, render_outcomes};
pub use request::{parse_request, request_body, Inbound, Query};
pub use route::{ReplyRoute, RequestProperties, Unanswered};
