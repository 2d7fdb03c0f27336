//! Several instances on one database and one Redis: what they do at once happens once.

mod retried;
mod review_copies;
