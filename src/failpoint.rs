//! Named crash points inside the saga, compiled only with the `failpoints` feature (the test
//! build). `TILL_FAILPOINTS=after_attempt_commit=0.05,mid_finalize=0.02` makes the process
//! kill itself (abort: no unwinding, no cleanup, like SIGKILL) at a point with that
//! probability. Without the feature every `hit` is an empty inline function.

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
pub use enabled::hit;

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
