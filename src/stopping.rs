//! Shutting one instance down in two steps (`Running::shutdown`): `draining`, then
//! `stopped`; the HTTP edge, the workers and the relay each look at it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A rolling restart's two signals to one instance: `draining` (from SIGTERM: `/readyz`
/// answers 503 so a load balancer sends no more) and then `stopped` (the listener closes,
/// connections end after the request they are serving, worker loops end after their pass).
#[derive(Clone)]
pub struct Stopping {
    draining: Arc<AtomicBool>,
    stopped: Arc<watch::Sender<bool>>,
}

impl Default for Stopping {
    fn default() -> Stopping {
        Stopping {
            draining: Default::default(),
            stopped: Arc::new(watch::channel(false).0),
        }
    }
}

impl Stopping {
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.drain();
        self.stopped.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        let mut seen = self.stopped.subscribe();
        let _ = seen.wait_for(|stopped| *stopped).await;
    }

    /// A worker loop's wait between passes: `pause`, cut short by `stop`; false once stopped
    /// (the loop ends).
    pub async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(pause) => !self.is_stopped(),
            _ = self.stopped() => false,
        }
    }
}
