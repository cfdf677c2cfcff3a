//! Integration tests of `vane-online`: every check runs against both backends — the embedded
//! redb file and a real `redis-server` started on a free port (skipped with a message when
//! `redis-server` is missing, unless `VANE_REQUIRE_REDIS=1`).

mod contract;
mod stores;
