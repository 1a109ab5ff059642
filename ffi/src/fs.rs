//! File operations: each call starts one request and returns 0, or a negative errno if it could
//! not start (then no callback runs). The callback runs once, on the loop's thread.

use crate::loop_::{evl_loop_t, give_read_buffer, lend, take_read_buffer};
use crate::stream::evl_buf_t;
use evloop::fs::{self, FileType, Metadata};
use evloop::Loop;
use libc::{c_char, c_int, c_uint, c_void, size_t, ssize_t};
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Completion of a file request: the new fd (evl_fs_open), a byte count (read, write), 0, or a
/// negative errno (-ENOENT, -EACCES, -EISDIR, -EBADF...).
pub type evl_fs_cb =
    Option<unsafe extern "C" fn(l: *mut evl_loop_t, result: ssize_t, user_data: *mut c_void)>;

/// A timestamp: seconds and nanoseconds since the Unix epoch.
#[repr(C)]
pub struct evl_timespec_t {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

/// File metadata (the fields of struct stat, plus the birth time where the file system keeps
/// it, else zero).
#[repr(C)]
pub struct evl_stat_t {
    /// Device holding the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits (S_IFMT, 0777...).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device this file is, for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O block size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: evl_timespec_t,
    /// Last change of the contents.
    pub mtime: evl_timespec_t,
    /// Last change of the inode.
    pub ctime: evl_timespec_t,
    /// Creation.
    pub birthtime: evl_timespec_t,
}

/// Receives metadata (lent for the call) with `status` 0, or NULL and a negative errno.
pub type evl_fs_stat_cb = Option<
    unsafe extern "C" fn(l: *mut evl_loop_t, status: c_int, st: *const evl_stat_t, user_data: *mut c_void),
>;

/// evl_dirent_t type: unknown (the file system does not say).
pub const EVL_DIRENT_UNKNOWN: c_int = 0;
/// evl_dirent_t type: regular file.
pub const EVL_DIRENT_FILE: c_int = 1;
/// evl_dirent_t type: directory.
pub const EVL_DIRENT_DIR: c_int = 2;
/// evl_dirent_t type: symbolic link.
pub const EVL_DIRENT_LINK: c_int = 3;
/// evl_dirent_t type: FIFO.
pub const EVL_DIRENT_FIFO: c_int = 4;
/// evl_dirent_t type: Unix socket.
pub const EVL_DIRENT_SOCKET: c_int = 5;
/// evl_dirent_t type: character device.
pub const EVL_DIRENT_CHAR: c_int = 6;
/// evl_dirent_t type: block device.
pub const EVL_DIRENT_BLOCK: c_int = 7;

/// One directory entry.
#[repr(C)]
pub struct evl_dirent_t {
    /// The name within the directory (NUL-terminated; never "." or "..").
    pub name: *const c_char,
    /// EVL_DIRENT_*.
    pub kind: c_int,
}

/// Receives a directory's entries (`count` of them, lent for the call, in the file system's
/// order) with `status` 0, or a negative errno.
pub type evl_fs_scandir_cb = Option<
    unsafe extern "C" fn(
        l: *mut evl_loop_t,
        status: c_int,
        entries: *const evl_dirent_t,
        count: size_t,
        user_data: *mut c_void,
    ),
>;

/// Receives a whole file's contents (lent for the call) with `status` 0, or a negative errno.
pub type evl_fs_read_file_cb = Option<
    unsafe extern "C" fn(
        l: *mut evl_loop_t,
        status: c_int,
        data: *const u8,
        len: size_t,
        user_data: *mut c_void,
    ),
>;

/// Caller memory lent to a request until its callback (libuv's contract).
struct Lent {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the caller promised the memory stays valid until the callback, whichever thread the
// request runs on; one thread touches it at a time.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` bytes at `ptr` (checked non-NULL when constructed with a length).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsMut<[u8]> for Lent {
    fn as_mut(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as above, writable (contract of the read functions).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

fn lent(ptr: *const c_void, len: size_t) -> Result<Lent, c_int> {
    if (ptr.is_null() && len > 0) || len > isize::MAX as usize {
        return Err(-libc::EINVAL);
    }
    Ok(Lent {
        ptr: ptr as *mut u8,
        len,
    })
}

fn path<'a>(p: *const c_char) -> Result<&'a Path, c_int> {
    if p.is_null() {
        return Err(-libc::EINVAL);
    }
    // SAFETY: a NUL-terminated string (contract).
    Ok(Path::new(OsStr::from_bytes(
        unsafe { CStr::from_ptr(p) }.to_bytes(),
    )))
}

fn offset(o: i64) -> Result<Option<u64>, c_int> {
    match o {
        -1 => Ok(None),
        o if o >= 0 => Ok(Some(o as u64)),
        _ => Err(-libc::EINVAL),
    }
}

/// The body of every function here: `begin` starts the core request (whose callback reports
/// through `cb`), or says why it could not.
fn start<C: Copy>(
    l: *mut evl_loop_t,
    cb: Option<C>,
    begin: impl FnOnce(&mut Loop, C) -> Result<evloop::Result<()>, c_int>,
) -> c_int {
    crate::request(l, cb, |lp, cb| begin(lp, cb).map(crate::code))
}

type FsFn = unsafe extern "C" fn(l: *mut evl_loop_t, result: ssize_t, user_data: *mut c_void);

/// Reports `result` through a evl_fs_cb with the loop lent to it.
fn report(l: *mut evl_loop_t, lp: &mut Loop, cb: FsFn, result: ssize_t, data: *mut c_void) {
    // SAFETY: `l` outlives its requests (a loop with requests in flight is alive and cannot be
    // freed); the callback is the caller's.
    unsafe { lend(l, lp, || cb(l, result, data)) }
}

/// Reports a result-less request's outcome (0 or a negative errno) through `cb`.
type UnitDone = Box<dyn FnOnce(&mut Loop, evloop::Result<()>)>;

/// The body of the calls whose callback gets 0 or an error: `begin` starts the core request
/// with the callback that reports through `cb`.
fn unit_request(
    l: *mut evl_loop_t,
    cb: evl_fs_cb,
    user_data: *mut c_void,
    begin: impl FnOnce(&mut Loop, UnitDone) -> Result<evloop::Result<()>, c_int>,
) -> c_int {
    start(l, cb, |lp, cb| {
        begin(lp, Box::new(move |lp, r| report(l, lp, cb, unit(r), user_data)))
    })
}

fn ssize(r: evloop::Result<usize>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => e.code() as ssize_t,
    }
}

fn unit(r: evloop::Result<()>) -> ssize_t {
    crate::code(r) as ssize_t
}

/// Opens `path` with open(2) `flags` (O_CLOEXEC is always added) and `mode` for a created file;
/// the callback's result is the new fd, which the caller owns (close it with evl_fs_close or
/// close(2)).
#[no_mangle]
pub unsafe extern "C" fn evl_fs_open(
    l: *mut evl_loop_t,
    path_: *const c_char,
    flags: c_int,
    mode: c_uint,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| {
        let p = path(path_)?;
        Ok(fs::open(lp, p, flags, mode, move |lp, r| {
            report(l, lp, cb, ssize(r.map(|fd| fd as usize)), user_data)
        }))
    })
}

/// Closes `fd`.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_close(
    l: *mut evl_loop_t,
    fd: c_int,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| Ok(fs::close(lp, fd, done)))
}

/// Reads up to `len` bytes into `buf` at `offset` (-1: at the file position, which advances).
/// The result is the count, 0 at end of file. `buf` must stay valid until the callback.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_read(
    l: *mut evl_loop_t,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    offset_: i64,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    transfer(
        l,
        fd,
        lent(buf, len),
        offset_,
        cb,
        user_data,
        |lp, fd, b, o, done| fs::read(lp, fd, b, o, done),
    )
}

/// Writes `len` bytes of `buf` at `offset` (-1: at the file position). The result is the count
/// written, which may be short. `buf` must stay valid until the callback.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_write(
    l: *mut evl_loop_t,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    offset_: i64,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    transfer(
        l,
        fd,
        lent(buf, len),
        offset_,
        cb,
        user_data,
        |lp, fd, b, o, done| fs::write(lp, fd, b, o, done),
    )
}

/// What a read or write request hands back with its result: the lent memory.
type Done<B> = Box<dyn FnOnce(&mut Loop, evloop::Result<usize>, B)>;
/// A core read or write call (fs::read, write, readv, writev).
type Transfer<B> = fn(&mut Loop, c_int, B, Option<u64>, Done<B>) -> evloop::Result<()>;

/// The body of the read and write calls: validates, then starts `op` on the lent memory and
/// reports the count through `cb`.
fn transfer<B: 'static>(
    l: *mut evl_loop_t,
    fd: c_int,
    mem: Result<B, c_int>,
    offset_: i64,
    cb: evl_fs_cb,
    user_data: *mut c_void,
    op: Transfer<B>,
) -> c_int {
    start(l, cb, |lp, cb| {
        let (b, o) = (mem?, offset(offset_)?);
        Ok(op(
            lp,
            fd,
            b,
            o,
            Box::new(move |lp, r, _| report(l, lp, cb, ssize(r), user_data)),
        ))
    })
}

fn lent_bufs(bufs: *const evl_buf_t, nbufs: c_uint) -> Result<Vec<Lent>, c_int> {
    if bufs.is_null() || nbufs == 0 {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `nbufs` entries at `bufs` (contract).
    let entries = unsafe { std::slice::from_raw_parts(bufs, nbufs as usize) };
    crate::checked_total(entries.iter().map(|b| b.len))?;
    entries.iter().map(|b| lent(b.base.cast(), b.len)).collect()
}

/// Reads into `nbufs` buffers in order (scatter). The array is copied; the memory its entries
/// point to must stay valid until the callback.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_readv(
    l: *mut evl_loop_t,
    fd: c_int,
    bufs: *const evl_buf_t,
    nbufs: c_uint,
    offset_: i64,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    transfer(
        l,
        fd,
        lent_bufs(bufs, nbufs),
        offset_,
        cb,
        user_data,
        |lp, fd, b, o, done| fs::readv(lp, fd, b, o, done),
    )
}

/// Writes `nbufs` buffers in order (gather), as evl_fs_readv.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_writev(
    l: *mut evl_loop_t,
    fd: c_int,
    bufs: *const evl_buf_t,
    nbufs: c_uint,
    offset_: i64,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    transfer(
        l,
        fd,
        lent_bufs(bufs, nbufs),
        offset_,
        cb,
        user_data,
        |lp, fd, b, o, done| fs::writev(lp, fd, b, o, done),
    )
}

/// Flushes `fd`'s data and metadata to storage (`datasync` non-zero: only what reading the data
/// back needs, as fdatasync(2)).
#[no_mangle]
pub unsafe extern "C" fn evl_fs_fsync(
    l: *mut evl_loop_t,
    fd: c_int,
    datasync: c_int,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| {
        Ok(if datasync != 0 {
            fs::fdatasync(lp, fd, done)
        } else {
            fs::fsync(lp, fd, done)
        })
    })
}

fn c_stat(m: &Metadata) -> evl_stat_t {
    let t = |t: &fs::FileTime| evl_timespec_t {
        sec: t.sec,
        nsec: t.nsec,
    };
    evl_stat_t {
        dev: m.dev,
        ino: m.ino,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        nlink: m.nlink,
        rdev: m.rdev,
        size: m.size,
        blksize: m.blksize,
        blocks: m.blocks,
        atime: t(&m.atime),
        mtime: t(&m.mtime),
        ctime: t(&m.ctime),
        birthtime: t(&m.birthtime),
    }
}

type StatFn =
    unsafe extern "C" fn(l: *mut evl_loop_t, status: c_int, st: *const evl_stat_t, user_data: *mut c_void);

fn stat_done(
    l: *mut evl_loop_t,
    cb: StatFn,
    data: *mut c_void,
) -> impl FnOnce(&mut Loop, evloop::Result<Metadata>) {
    move |lp, r| {
        let (status, st) = match r {
            Ok(m) => (0, Some(c_stat(&m))),
            Err(e) => (e.code(), None),
        };
        let p = st.as_ref().map_or(std::ptr::null(), |s| s as *const evl_stat_t);
        // SAFETY: as in `report`; `st` lives for the call.
        unsafe { lend(l, lp, || cb(l, status, p, data)) }
    }
}

/// Metadata of `path`, following symbolic links.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_stat(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_stat_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| {
        Ok(fs::stat(lp, path(path_)?, stat_done(l, cb, user_data)))
    })
}

/// Metadata of `path` itself (a final symbolic link is not followed).
#[no_mangle]
pub unsafe extern "C" fn evl_fs_lstat(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_stat_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| {
        Ok(fs::lstat(lp, path(path_)?, stat_done(l, cb, user_data)))
    })
}

/// Metadata of an open fd.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_fstat(
    l: *mut evl_loop_t,
    fd: c_int,
    cb: evl_fs_stat_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| Ok(fs::fstat(lp, fd, stat_done(l, cb, user_data))))
}

/// Removes a file.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_unlink(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| {
        Ok(fs::unlink(lp, path(path_)?, done))
    })
}

/// Creates a directory with `mode` (less the umask).
#[no_mangle]
pub unsafe extern "C" fn evl_fs_mkdir(
    l: *mut evl_loop_t,
    path_: *const c_char,
    mode: c_uint,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| {
        Ok(fs::mkdir(lp, path(path_)?, mode, done))
    })
}

/// Removes an empty directory.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_rmdir(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| Ok(fs::rmdir(lp, path(path_)?, done)))
}

/// Renames `from` to `to`, replacing `to` if it exists.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_rename(
    l: *mut evl_loop_t,
    from: *const c_char,
    to: *const c_char,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| {
        let (f, t) = (path(from)?, path(to)?);
        Ok(fs::rename(lp, f, t, done))
    })
}

fn dirent_type(t: FileType) -> c_int {
    match t {
        FileType::File => EVL_DIRENT_FILE,
        FileType::Dir => EVL_DIRENT_DIR,
        FileType::Symlink => EVL_DIRENT_LINK,
        FileType::Fifo => EVL_DIRENT_FIFO,
        FileType::Socket => EVL_DIRENT_SOCKET,
        FileType::CharDevice => EVL_DIRENT_CHAR,
        FileType::BlockDevice => EVL_DIRENT_BLOCK,
        FileType::Unknown => EVL_DIRENT_UNKNOWN,
    }
}

/// Lists a directory (on the thread pool with either backend: io_uring has no getdents).
#[no_mangle]
pub unsafe extern "C" fn evl_fs_scandir(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_scandir_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| {
        Ok(fs::scandir(lp, path(path_)?, move |lp, r| {
            let (status, names) = match r {
                Ok(list) => (
                    0,
                    list.into_iter()
                        .filter_map(|e| {
                            Some((CString::new(e.name.as_bytes()).ok()?, dirent_type(e.file_type)))
                        })
                        .collect(),
                ),
                Err(e) => (e.code(), Vec::new()),
            };
            let entries: Vec<evl_dirent_t> = names
                .iter()
                .map(|(n, t)| evl_dirent_t {
                    name: n.as_ptr(),
                    kind: *t,
                })
                .collect();
            let p = if entries.is_empty() {
                std::ptr::null()
            } else {
                entries.as_ptr()
            };
            // SAFETY: as in `report`; the entries and names live for the call.
            unsafe { lend(l, lp, || cb(l, status, p, entries.len(), user_data)) }
        }))
    })
}

/// Reads the whole of `path`; the callback gets the bytes, lent for the call. -EFBIG for a file
/// longer than the loop's limit (evl_loop_set_read_file_limit(), 1 GiB by default), -ENOMEM if
/// memory runs out first: never an abort.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_read_file(
    l: *mut evl_loop_t,
    path_: *const c_char,
    cb: evl_fs_read_file_cb,
    user_data: *mut c_void,
) -> c_int {
    start(l, cb, |lp, cb| {
        let path = path(path_)?;
        // SAFETY: `l` is the live loop this call acts on.
        let buf = unsafe { take_read_buffer(l) };
        Ok(fs::read_file_into(lp, path, buf, move |lp, r| {
            let (status, data) = match r {
                Ok(d) => (0, d),
                Err(e) => (e.code(), Vec::new()),
            };
            // SAFETY: as in `report`; the bytes live for the call, and `l` outlives it.
            unsafe {
                lend(l, lp, || cb(l, status, data.as_ptr(), data.len(), user_data));
                give_read_buffer(l, data);
            }
        }))
    })
}

/// Creates or truncates `path` (mode 0666 less the umask) and writes `len` bytes of `data`,
/// which must stay valid until the callback; the callback runs after the file is closed.
#[no_mangle]
pub unsafe extern "C" fn evl_fs_write_file(
    l: *mut evl_loop_t,
    path_: *const c_char,
    data: *const c_void,
    len: size_t,
    cb: evl_fs_cb,
    user_data: *mut c_void,
) -> c_int {
    unit_request(l, cb, user_data, |lp, done| {
        let d = lent(data, len)?;
        Ok(fs::write_file(lp, path(path_)?, d, done))
    })
}
