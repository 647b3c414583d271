//! A commit's log writes joined into one.
//!
//! In WAL mode SQLite appends each page a commit changed to the log as a frame, and writes
//! every frame as two `pwrite`s: its 24-byte header, then the page. A checkout's commits
//! append a few dozen frames, so the kernel's write path ran a few dozen times a checkout,
//! each run finding and locking the page-cache pages it copies into (`perf`: the frames'
//! writes were a seventh of the server's CPU, most of it in that path, not in copying).
//!
//! So every connection this driver opens goes through a VFS of this module's, `till`: the
//! system's own (`unix`) for every file but the log, and for the log the same file with
//! its writes gathered. A write that continues the gathered bytes joins them; the write of
//! a commit's last frame (its header says the database's size after the commit, which only
//! a commit's last frame does) sends them to the file as one write (in pieces of `PIECE`
//! for a larger commit), before SQLite marks the commit done in the shared index, so a
//! failure is that commit's error, as before. Anything else that needs the file as written
//! first — a read, a sync, a truncation, its size, a file control, a write elsewhere in it,
//! closing it — sends what is gathered before it runs, and so does gathering more than
//! `MOST` bytes (a transaction too large to keep).
//!
//! A crash loses what a crash lost before: the frames of a commit not yet written, which
//! without their last frame were never a commit (recovery keeps a log only up to its last
//! whole commit). What reaches the file, and in what order, is unchanged.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The VFS's name, given to `sqlite3_open_v2`.
const NAME: &CStr = c"till";

/// The most a log's handle gathers before writing: past it, a transaction's frames go to
/// the file as they come, a few pieces at a time.
const MOST: usize = 4 * PIECE;

/// The most the system's VFS writes in one call (its `unixWrite` keeps 17 bits of a
/// length): more is sent in pieces of this size.
const PIECE: usize = (1 << 17) - 1;

/// A frame's header: the page's number, then (in a commit's last frame) the database's
/// size in pages after the commit, then salts and checksums.
const FRAME_HEADER: c_int = 24;

/// The log's header, at its start, before the first frame.
const LOG_HEADER: i64 = 32;

/// Writes sent to log files by this process, for tests: a commit of many pages is one.
static LOG_WRITES: AtomicU64 = AtomicU64::new(0);

/// Writes this process has sent to SQLite log files through the `till` VFS.
pub fn log_writes() -> u64 {
    LOG_WRITES.load(Ordering::Relaxed)
}

/// The VFS argument of `sqlite3_open_v2`: this module's, registered on first use, or null
/// (SQLite's default, the log written as SQLite writes it) when SQLite has no default VFS
/// to build on.
pub(crate) fn for_open() -> *const c_char {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // SAFETY: run once; the VFS is leaked, so it outlives every connection that uses it.
    let registered = *REGISTERED.get_or_init(|| unsafe { register() });
    if registered {
        NAME.as_ptr()
    } else {
        ptr::null()
    }
}

/// The system's VFS, which `till` forwards to.
static BASE: OnceLock<Base> = OnceLock::new();

struct Base(*mut ffi::sqlite3_vfs);
// SAFETY: a VFS is shared by every connection of a process by design; SQLite never frees
// the built-in one.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}

fn base() -> *mut ffi::sqlite3_vfs {
    BASE.get().map_or(ptr::null_mut(), |base| base.0)
}

/// Where a log handle's own file starts inside the memory SQLite gives for it.
const fn real_offset() -> usize {
    let size = size_of::<LogFile>();
    let align = align_of::<u64>();
    size.div_ceil(align) * align
}

unsafe fn register() -> bool {
    if ffi::sqlite3_initialize() != ffi::SQLITE_OK {
        return false;
    }
    let system = ffi::sqlite3_vfs_find(ptr::null());
    if system.is_null() {
        return false;
    }
    if BASE.set(Base(system)).is_err() {
        return false;
    }
    // The system's VFS as it is, but for the name, the room for a log handle's state and
    // the opening of files.
    let mut vfs = ptr::read(system);
    vfs.pNext = ptr::null_mut();
    vfs.zName = NAME.as_ptr();
    vfs.szOsFile = (*system).szOsFile + real_offset() as c_int;
    vfs.xOpen = Some(open);
    let vfs = Box::into_raw(Box::new(vfs));
    ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
}

/// A log's handle: SQLite's view (`methods` first, as for any `sqlite3_file`), the bytes
/// gathered, and the system's handle for the file, which follows in the same memory.
#[repr(C)]
struct LogFile {
    methods: *const ffi::sqlite3_io_methods,
    real: *mut ffi::sqlite3_file,
    gathered: Vec<u8>,
    /// Where in the file `gathered` starts.
    at: i64,
    /// The last write was a commit's last frame's header: its page ends the commit.
    commit_ends: bool,
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let system = base();
    let Some(system_open) = (*system).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Every other file is the system's own handle, in the memory SQLite gave.
        return system_open(system, name, file, flags, out_flags);
    }
    let real = file
        .cast::<u8>()
        .add(real_offset())
        .cast::<ffi::sqlite3_file>();
    let rc = system_open(system, name, real, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        (*file).pMethods = ptr::null();
        return rc;
    }
    ptr::write(
        file.cast::<LogFile>(),
        LogFile {
            methods: &LOG_METHODS,
            real,
            gathered: Vec::new(),
            at: 0,
            commit_ends: false,
        },
    );
    ffi::SQLITE_OK
}

/// The log handle behind SQLite's pointer.
///
/// # Safety
/// `file` is a handle `open` made for a log and SQLite has not closed; SQLite calls one
/// handle's methods one at a time (a connection is used by one thread at a time), so the
/// reference is the only one while the method runs.
unsafe fn log<'a>(file: *mut ffi::sqlite3_file) -> &'a mut LogFile {
    &mut *file.cast::<LogFile>()
}

/// The system handle's methods.
unsafe fn real_methods(log: &LogFile) -> &ffi::sqlite3_io_methods {
    &*(*log.real).pMethods
}

impl LogFile {
    /// Writes what is gathered to the file, in one write.
    unsafe fn send(&mut self) -> c_int {
        self.commit_ends = false;
        if self.gathered.is_empty() {
            return ffi::SQLITE_OK;
        }
        let Some(write) = real_methods(self).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut at = self.at;
        for piece in self.gathered.chunks(PIECE) {
            // A piece is at most `PIECE` bytes, which fits a `c_int`.
            rc = write(self.real, piece.as_ptr().cast(), piece.len() as c_int, at);
            LOG_WRITES.fetch_add(1, Ordering::Relaxed);
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += piece.len() as i64;
        }
        // Sent or failed, the bytes are SQLite's again: a failed write fails its commit,
        // which SQLite writes anew from its own pages if it tries again.
        self.gathered.clear();
        rc
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let log = log(file);
    let sent = log.send();
    let closed = match real_methods(log).xClose {
        Some(close) => close(log.real),
        None => ffi::SQLITE_OK,
    };
    ptr::drop_in_place(file.cast::<LogFile>());
    (*file).pMethods = ptr::null();
    if sent != ffi::SQLITE_OK {
        sent
    } else {
        closed
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let log = log(file);
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    if !log.gathered.is_empty() && log.at + log.gathered.len() as i64 != offset {
        let rc = log.send();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if log.gathered.is_empty() {
        log.at = offset;
    }
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
    log.gathered.extend_from_slice(bytes);
    if amount == FRAME_HEADER && offset >= LOG_HEADER && bytes[4..8] != [0; 4] {
        log.commit_ends = true;
        return ffi::SQLITE_OK;
    }
    if log.commit_ends || log.gathered.len() >= MOST {
        return log.send();
    }
    ffi::SQLITE_OK
}

/// Sends what is gathered, then runs `then` on the system's handle.
unsafe fn sent_then(file: *mut ffi::sqlite3_file, then: impl FnOnce(&LogFile) -> c_int) -> c_int {
    let log = log(file);
    let rc = log.send();
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    then(log)
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    sent_then(file, |log| match real_methods(log).xRead {
        Some(read) => read(log.real, data, amount, offset),
        None => ffi::SQLITE_IOERR_READ,
    })
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    sent_then(file, |log| match real_methods(log).xTruncate {
        Some(truncate) => truncate(log.real, size),
        None => ffi::SQLITE_IOERR_TRUNCATE,
    })
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    sent_then(file, |log| match real_methods(log).xSync {
        Some(sync) => sync(log.real, flags),
        None => ffi::SQLITE_IOERR_FSYNC,
    })
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    sent_then(file, |log| match real_methods(log).xFileSize {
        Some(file_size) => file_size(log.real, size),
        None => ffi::SQLITE_IOERR_FSTAT,
    })
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let log = log(file);
    real_methods(log)
        .xLock
        .map_or(ffi::SQLITE_OK, |f| f(log.real, level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let log = log(file);
    real_methods(log)
        .xUnlock
        .map_or(ffi::SQLITE_OK, |f| f(log.real, level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let log = log(file);
    match real_methods(log).xCheckReservedLock {
        Some(check) => check(log.real, out),
        None => {
            *out = 0;
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    sent_then(file, |log| match real_methods(log).xFileControl {
        Some(control) => control(log.real, op, arg),
        None => ffi::SQLITE_NOTFOUND,
    })
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let log = log(file);
    real_methods(log).xSectorSize.map_or(4096, |f| f(log.real))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let log = log(file);
    real_methods(log)
        .xDeviceCharacteristics
        .map_or(0, |f| f(log.real))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let log = log(file);
    match real_methods(log).xShmMap {
        Some(map) => map(log.real, region, size, extend, out),
        None => ffi::SQLITE_IOERR_SHMMAP,
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let log = log(file);
    match real_methods(log).xShmLock {
        Some(lock) => lock(log.real, offset, n, flags),
        None => ffi::SQLITE_IOERR_SHMLOCK,
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let log = log(file);
    if let Some(barrier) = real_methods(log).xShmBarrier {
        barrier(log.real);
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let log = log(file);
    real_methods(log)
        .xShmUnmap
        .map_or(ffi::SQLITE_OK, |f| f(log.real, delete))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    *out = ptr::null_mut();
    sent_then(file, |log| match real_methods(log).xFetch {
        Some(fetch) if real_methods(log).iVersion >= 3 => fetch(log.real, offset, amount, out),
        _ => ffi::SQLITE_OK,
    })
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    let log = log(file);
    match real_methods(log).xUnfetch {
        Some(unfetch) if real_methods(log).iVersion >= 3 => unfetch(log.real, offset, page),
        _ => ffi::SQLITE_OK,
    }
}

static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};
