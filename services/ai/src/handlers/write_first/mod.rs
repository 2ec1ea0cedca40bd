//! Characters who write first: the user's settings (time zone, on or off) and each match's
//! (on or off, after how long a silence), with what the scheduler did last.

pub mod match_settings;
pub mod user_settings;
