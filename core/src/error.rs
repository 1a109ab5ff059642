//! One error type for every fallible operation: an errno value, with its name and message.

use std::fmt;

/// An operating-system error number (`errno`), as returned by a failed operation.
///
/// `Error::code()` gives the negative value the C ABI returns; `name()` gives the symbolic
/// name (`"ECONNREFUSED"`), and `Display` adds the system's message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error(i32);

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! errno_names {
    ($($name:ident),* $(,)?) => {
        impl Error {
            $(
                #[allow(missing_docs)]
                pub const $name: Error = Error(libc::$name);
            )*

            /// The symbolic name of the errno value, e.g. `"ECONNRESET"`; `"UNKNOWN"` for others.
            pub fn name(self) -> &'static str {
                let n = self.name_c().to_bytes();
                // SAFETY: every name is ASCII.
                unsafe { std::str::from_utf8_unchecked(n) }
            }

            /// [`Error::name`] as a C string, for the C ABI.
            pub fn name_c(self) -> &'static std::ffi::CStr {
                let n: &'static str = match self.0 {
                    $(libc::$name => concat!(stringify!($name), "\0"),)*
                    _ => "UNKNOWN\0",
                };
                std::ffi::CStr::from_bytes_with_nul(n.as_bytes()).expect("names end with one NUL")
            }
        }
    };
}

errno_names!(
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

impl Error {
    /// Operation not supported (the same value as `EOPNOTSUPP` on Linux).
    pub const ENOTSUP: Error = Error(libc::ENOTSUP);

    /// Wraps a positive errno value (a negative one is accepted too and made positive).
    pub const fn from_errno(errno: i32) -> Error {
        Error(if errno < 0 { -errno } else { errno })
    }

    /// The current thread's `errno`.
    pub fn last_os_error() -> Error {
        Error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// The positive errno value.
    pub const fn errno(self) -> i32 {
        self.0
    }

    /// The negative errno value, as the C ABI returns it.
    pub const fn code(self) -> i32 {
        -self.0
    }

    /// The system's message for this errno, e.g. "Connection refused".
    pub fn message(self) -> String {
        // std formats "<message> (os error N)"; keep only the message.
        let full = std::io::Error::from_raw_os_error(self.0).to_string();
        match full.rfind(" (os error") {
            Some(cut) => full[..cut].to_string(),
            None => full,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({}: {})", self.name(), self.message())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        let e = Error::from_errno(libc::ECONNREFUSED);
        assert_eq!(e.name(), "ECONNREFUSED");
        assert_eq!(e.code(), -libc::ECONNREFUSED);
        assert_eq!(Error::from_errno(-libc::EPIPE), Error::EPIPE);
        assert_eq!(e.message(), "Connection refused");
        assert_eq!(Error::from_errno(4000).name(), "UNKNOWN");
        assert!(e.to_string().starts_with("ECONNREFUSED: "));
    }
}
