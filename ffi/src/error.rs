//! Versions and error names.

use libc::{c_char, c_int, c_uint};

/// Major version: changes break the ABI (and the SONAME, libevloop.so.MAJOR).
pub const EVL_VERSION_MAJOR: c_uint = 0;
/// Minor version: additions that keep the ABI.
pub const EVL_VERSION_MINOR: c_uint = 1;
/// Patch version.
pub const EVL_VERSION_PATCH: c_uint = 0;

/// Passed to read callbacks (as `nread`) when the peer has finished sending.
pub const EVL_EOF: c_int = -4095;

/// The library's version as `(MAJOR << 16) | (MINOR << 8) | PATCH`.
#[no_mangle]
pub extern "C" fn evl_version() -> c_uint {
    (EVL_VERSION_MAJOR << 16) | (EVL_VERSION_MINOR << 8) | EVL_VERSION_PATCH
}

/// The library's version as a static string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn evl_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

macro_rules! errno_table {
    ($($name:ident),* $(,)?) => {
        fn name_and_message(err: c_int) -> Option<(&'static str, &'static str)> {
            if err == EVL_EOF {
                return Some(("EOF\0", "end of file\0"));
            }
            match -err {
                $(libc::$name => Some((concat!(stringify!($name), "\0"), message_of(libc::$name))),)*
                _ => None,
            }
        }
    };
}

fn message_of(errno: c_int) -> &'static str {
    // strerror's table is static in glibc; copy each message once into a leaked, NUL-terminated
    // string kept per errno, so callers get a pointer that stays valid.
    use std::sync::OnceLock;
    static MESSAGES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let table = MESSAGES.get_or_init(|| {
        (0..200)
            .map(|e| {
                let msg = std::io::Error::from_raw_os_error(e).to_string();
                let msg = msg
                    .rsplit_once(" (os error")
                    .map_or(msg.as_str(), |(m, _)| m)
                    .to_string();
                &*Box::leak(format!("{msg}\0").into_boxed_str())
            })
            .collect()
    });
    table.get(errno as usize).copied().unwrap_or("Unknown error\0")
}

errno_table!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENOTSOCK,
    EDESTADDRREQ,
    EMSGSIZE,
    EPROTOTYPE,
    ENOPROTOOPT,
    EPROTONOSUPPORT,
    EOPNOTSUPP,
    EAFNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETDOWN,
    ENETUNREACH,
    ECONNABORTED,
    ECONNRESET,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ESHUTDOWN,
    ETIMEDOUT,
    ECONNREFUSED,
    EHOSTDOWN,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
    ECANCELED,
    EOVERFLOW,
);

/// The symbolic name of an error code, e.g. "ECONNREFUSED" for -ECONNREFUSED, "EOF" for
/// EVL_EOF; "UNKNOWN" for anything else. The string is static.
#[no_mangle]
pub extern "C" fn evl_err_name(err: c_int) -> *const c_char {
    crate::guard(c"UNKNOWN".as_ptr(), || {
        name_and_message(err).map_or(c"UNKNOWN".as_ptr(), |(n, _)| n.as_ptr().cast())
    })
}

/// The message for an error code, e.g. "Connection refused". The string is static.
#[no_mangle]
pub extern "C" fn evl_strerror(err: c_int) -> *const c_char {
    crate::guard(c"Unknown error".as_ptr(), || {
        name_and_message(err).map_or(c"Unknown error".as_ptr(), |(_, m)| m.as_ptr().cast())
    })
}
