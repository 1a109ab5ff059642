//! Versions and error names.

use libc::{c_char, c_int, c_uint};

/// Major version: changes break the ABI (and the SONAME, libevloop.so.MAJOR).
pub const EVL_VERSION_MAJOR: c_uint = 0;
/// Minor version: additions that keep the ABI.
pub const EVL_VERSION_MINOR: c_uint = 1;
/// Patch version.
pub const EVL_VERSION_PATCH: c_uint = 0;

// The header needs the three numbers as literals (cbindgen copies them into #defines); the
// workspace's version in Cargo.toml is the one source: a build whose literals differ from it
// fails here. scripts/set_version.sh changes all of them together.
const fn parse_version_part(s: &str) -> c_uint {
    let bytes = s.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as c_uint;
        i += 1;
    }
    value
}
const _: () = assert!(
    EVL_VERSION_MAJOR == parse_version_part(env!("CARGO_PKG_VERSION_MAJOR"))
        && EVL_VERSION_MINOR == parse_version_part(env!("CARGO_PKG_VERSION_MINOR"))
        && EVL_VERSION_PATCH == parse_version_part(env!("CARGO_PKG_VERSION_PATCH")),
    "EVL_VERSION_* differ from Cargo.toml's version: run scripts/set_version.sh"
);

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

fn message_of(errno: c_int) -> &'static str {
    // Messages are copied once into a leaked table of NUL-terminated strings, so callers get
    // pointers that stay valid.
    use std::sync::OnceLock;
    static MESSAGES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let table = MESSAGES.get_or_init(|| {
        (0..134)
            .map(|e| &*Box::leak(format!("{}\0", evloop::Error::from_errno(e).message()).into_boxed_str()))
            .collect()
    });
    table.get(errno as usize).copied().unwrap_or("Unknown error\0")
}

fn known(err: c_int) -> Option<evloop::Error> {
    let e = evloop::Error::from_errno(err.checked_neg()?);
    (err < 0 && e.name() != "UNKNOWN").then_some(e)
}

/// The symbolic name of an error code, e.g. "ECONNREFUSED" for -ECONNREFUSED, "EOF" for
/// EVL_EOF; "UNKNOWN" for anything else. The string is static.
#[no_mangle]
pub extern "C" fn evl_err_name(err: c_int) -> *const c_char {
    crate::guard(c"UNKNOWN".as_ptr(), || match known(err) {
        _ if err == EVL_EOF => c"EOF".as_ptr(),
        Some(e) => e.name_c().as_ptr(),
        None => c"UNKNOWN".as_ptr(),
    })
}

/// The message for an error code, e.g. "Connection refused". The string is static.
#[no_mangle]
pub extern "C" fn evl_strerror(err: c_int) -> *const c_char {
    crate::guard(c"Unknown error".as_ptr(), || match known(err) {
        _ if err == EVL_EOF => c"end of file".as_ptr(),
        Some(e) => message_of(e.errno()).as_ptr().cast(),
        None => c"Unknown error".as_ptr(),
    })
}
