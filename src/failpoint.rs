//! Named crash points inside the saga, compiled only with the `failpoints` feature (the test
//! build). `TILL_FAILPOINTS=after_attempt_commit=0.05,mid_finalize=0.02` makes the process
//! kill itself (abort: no unwinding, no cleanup, like SIGKILL) at a point with that
//! probability. Without the feature every `hit` is an empty inline function.
//!
//! In-process tests arm a point for one tag instead (`arm`; e.g. one idempotency key): the
//! code asks `armed(point, tag)` where it would die, and acts as a process dying there would
//! leave things. An armed point fires once.

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use rand::Rng;

    fn points() -> &'static HashMap<String, f64> {
        static POINTS: OnceLock<HashMap<String, f64>> = OnceLock::new();
        POINTS.get_or_init(|| {
            std::env::var("TILL_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
                .filter_map(|part| {
                    let (name, p) = part.trim().split_once('=')?;
                    Some((name.to_string(), p.parse().ok()?))
                })
                .collect()
        })
    }

    pub fn hit(name: &str) {
        if let Some(p) = points().get(name) {
            if rand::thread_rng().gen_bool(p.clamp(0.0, 1.0)) {
                eprintln!("failpoint {name}: aborting");
                std::process::abort();
            }
        }
    }
}

#[cfg(feature = "failpoints")]
mod tagged {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};

    fn armed_points() -> &'static Mutex<HashSet<(String, String)>> {
        static ARMED: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
        ARMED.get_or_init(Default::default)
    }

    /// Arms `point` for `tag` (tests only).
    pub fn arm(point: &str, tag: &str) {
        let mut armed = armed_points().lock().unwrap_or_else(|e| e.into_inner());
        armed.insert((point.to_string(), tag.to_string()));
    }

    /// Whether `point` is armed for `tag`; disarms it.
    pub fn armed(point: &str, tag: &str) -> bool {
        let mut armed = armed_points().lock().unwrap_or_else(|e| e.into_inner());
        armed.remove(&(point.to_string(), tag.to_string()))
    }
}

#[cfg(feature = "failpoints")]
pub use enabled::hit;
#[cfg(feature = "failpoints")]
pub use tagged::{arm, armed};

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn armed(_point: &str, _tag: &str) -> bool {
    false
}

/// The process dies after a request's effect committed and before its idempotent answer
/// is stored: the key stays claimed (`running`) with no answer. Tagged by the key.
pub const ANSWER_LOST: &str = "answer_lost";

/// The process dies after an authorization confirmed its order and before the capture is
/// sent: the order is paid, the payment `authorized`, the money held uncaptured at the
/// gateway. Tagged by the order id.
pub const CAPTURE_NOT_SENT: &str = "capture_not_sent";

/// A flash-sale batch fails after all its writes (its orders among them), before it commits,
/// when one of its orders is this buyer's: the batch is tried again in halves. Tagged by the buyer's
/// customer email; fires only in a batch of more than one order.
pub const BATCH_WRITE_FAILS: &str = "batch_write_fails";
