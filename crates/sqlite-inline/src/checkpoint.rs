//! The log's checkpoints, run beside the writer on a thread of their own.
//!
//! In WAL mode a commit appends the pages it changed to the log (`-wal`), and a checkpoint
//! later copies them into the database file: it syncs the log, copies the newest copy of
//! every page in it, and syncs the file. SQLite's own (`wal_autocheckpoint`) runs on the
//! connection whose commit takes the log past the limit, inside that commit: on Till's one
//! writer every write waits for it, tens of milliseconds for the thousands of pages a busy
//! log holds on a virtual disk, and half of that in the log's sync.
//!
//! So every file a process opens for writing is also checkpointed by a thread of this
//! module's, every `EVERY`, in SQLite's `PASSIVE` mode: it copies what no reader still
//! needs, and never waits for or holds back a writer or a reader. The writer's own
//! checkpoint still comes when the log passes the limit, and it is still the one that lets
//! the next commit start the log over from its beginning (a checkpoint racing a stream of
//! commits seldom finds nothing new behind it), so the log stays as bounded as before; but it
//! finds almost every page copied and synced already. One thread per file and process, while
//! any connection to the file opened for writing is open.

use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::{self, NonNull};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// How often the log is checkpointed: a busy writer appends a few thousand pages in this
/// time, so the writer's own checkpoint finds at most these left to copy.
const EVERY: Duration = Duration::from_millis(50);

/// A file's checkpointing thread, kept by each connection that writes to it; the last one
/// dropped ends the thread (its channel closes).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    _running: mpsc::Sender<()>,
}

/// The running checkpointers, by file.
fn running() -> &'static Mutex<HashMap<String, Weak<Checkpointer>>> {
    static RUNNING: OnceLock<Mutex<HashMap<String, Weak<Checkpointer>>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// The checkpointer of the file at `path`, started if none runs. `None` when no thread
/// could be started: SQLite's own checkpoints then do all the work, as they would anyway.
pub(crate) fn for_file(path: &str) -> Option<Arc<Checkpointer>> {
    let file = std::fs::canonicalize(path)
        .map(|canonical| canonical.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string());
    let mut running = running().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(checkpointer) = running.get(&file).and_then(Weak::upgrade) {
        return Some(checkpointer);
    }
    running.retain(|_, checkpointer| checkpointer.strong_count() > 0);
    let (keep, kept) = mpsc::channel();
    let path = file.clone();
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpoint_while(&path, &kept));
    if let Err(err) = spawned {
        tracing::warn!(error = %err, file, "no thread to checkpoint SQLite's log in the background");
        return None;
    }
    let checkpointer = Arc::new(Checkpointer { _running: keep });
    running.insert(file, Arc::downgrade(&checkpointer));
    Some(checkpointer)
}

/// The thread: a passive checkpoint every `EVERY` until every connection keeping it is gone.
fn checkpoint_while(path: &str, kept: &mpsc::Receiver<()>) {
    let mut own: Option<Own> = None;
    let mut warned = false;
    while let Err(RecvTimeoutError::Timeout) = kept.recv_timeout(EVERY) {
        if own.is_none() {
            own = Own::open(path);
        }
        let Some(conn) = &own else { continue };
        let (rc, in_log) = conn.checkpoint();
        if rc == ffi::SQLITE_OK && in_log < 0 {
            // Not (yet) in WAL mode when this connection read it — a new file whose first
            // connection sets the mode: opened again next time.
            own = None;
            continue;
        }
        // Busy: another checkpoint is running (the writer's own, or another process's).
        if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_BUSY && !warned {
            warned = true;
            tracing::warn!(
                code = rc,
                file = path,
                "a background checkpoint of SQLite's log failed; the writer's own go on"
            );
        }
    }
}

/// The checkpointer's own connection to the file.
struct Own(NonNull<ffi::sqlite3>);

impl Own {
    /// Opens the file (never creating it) and reads its header once, which opens its log:
    /// SQLite checkpoints only a log its connection has opened.
    fn open(path: &str) -> Option<Own> {
        let path = CString::new(path).ok()?;
        let mut db = ptr::null_mut();
        // SAFETY: a NUL-terminated path and an out pointer SQLite fills.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                crate::vfs::for_open(),
            )
        };
        let own = Own(NonNull::new(db)?);
        if rc != ffi::SQLITE_OK {
            return None;
        }
        let header = c"PRAGMA schema_version";
        // SAFETY: an open handle and a NUL-terminated statement with no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                own.0.as_ptr(),
                header.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        (rc == ffi::SQLITE_OK).then_some(own)
    }

    /// One passive checkpoint of the main database's log (nothing to do, nothing done):
    /// SQLite's answer, and the pages in the log (-1 with `SQLITE_OK` when the connection
    /// found the file not in WAL mode).
    fn checkpoint(&self) -> (i32, i32) {
        let mut in_log = -1;
        let mut copied = -1;
        // SAFETY: an open handle, used by this thread only, and two out counts SQLite fills.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                self.0.as_ptr(),
                ptr::null(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                &mut in_log,
                &mut copied,
            )
        };
        (rc, in_log)
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        // SAFETY: closed once, here; it prepared no statement.
        unsafe {
            ffi::sqlite3_close(self.0.as_ptr());
        }
    }
}
