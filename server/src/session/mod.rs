//! Sessions: how one starts (`start`, the end of every sign-in method), is refreshed with the
//! rotation rules (`refresh`), and ends (`end`); `issue` makes the token responses.

pub mod end;
pub mod issue;
pub mod refresh;
pub mod start;
