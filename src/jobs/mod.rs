//! Background work: the worker pool that runs durable jobs, and the scheduler whose sweeps find due work and
//! enqueue it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::db::jobs::ClaimedJob;
pub use crate::services::queue::Outcome;

pub mod backup;
pub mod broadcasts;
pub mod maintenance;
pub mod payments;
pub mod provision;
pub mod scheduler;
pub mod stripe;
pub mod worker;
pub mod zarinpal;

/// Runs one kind of job. Handlers must be safe to run twice: a worker can die after the effect and before
/// recording it.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, job: &ClaimedJob) -> Outcome;

    /// Whether a done job of this kind is kept (for `jobs.keep_done_days`) or deleted at once: routine passes
    /// that run every few seconds (metering) would otherwise fill the table.
    fn keep_done(&self) -> bool {
        true
    }
}

/// The handlers by job kind.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, kind: &str, handler: Arc<dyn JobHandler>) -> &mut Self {
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }

    /// The kinds with a handler.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}
