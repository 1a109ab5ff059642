//! Name resolution: getaddrinfo / getnameinfo on the thread pool, cancellable like any work.
//!
//! `EAI_*` failures map onto errno values so they travel as [`Error`]: no such name
//! (`EAI_NONAME`, `EAI_NODATA`) → `ENOENT`, a temporary failure (`EAI_AGAIN`) → `EAGAIN`, an
//! unsupported family → `EAFNOSUPPORT`, a bad service or flags → `EINVAL`, `EAI_MEMORY` →
//! `ENOMEM`, `EAI_SYSTEM` → the errno it names, anything else → `EIO`.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::socket::RawAddr;
use crate::threadpool::WorkId;
use std::ffi::{CStr, CString};
use std::net::SocketAddr;

/// Which addresses [`Loop::getaddrinfo`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Options for [`Loop::getaddrinfo`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ResolveOptions {
    /// Address family wanted.
    pub family: Family,
    /// Accept only a numeric host (no lookup at all: AI_NUMERICHOST).
    pub numeric_host: bool,
}

fn eai_error(code: i32) -> Error {
    match code {
        libc::EAI_NONAME | libc::EAI_NODATA => Error::ENOENT,
        libc::EAI_AGAIN => Error::EAGAIN,
        libc::EAI_FAMILY => Error::EAFNOSUPPORT,
        libc::EAI_SERVICE | libc::EAI_BADFLAGS | libc::EAI_SOCKTYPE => Error::EINVAL,
        libc::EAI_MEMORY => Error::ENOMEM,
        libc::EAI_SYSTEM => Error::last_os_error(),
        _ => Error::EIO,
    }
}

fn lookup(host: &CStr, port: u16, opts: ResolveOptions) -> Result<Vec<SocketAddr>> {
    // SAFETY: an all-zero addrinfo is a valid hints value; fields are set below.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match opts.family {
        Family::Any => libc::AF_UNSPEC,
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_flags = if opts.numeric_host {
        libc::AI_NUMERICHOST
    } else {
        0
    };
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C strings and hints; `res` receives a list freed below.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        return Err(eai_error(rc));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getaddrinfo returned; each ai_addr holds ai_addrlen bytes.
        unsafe {
            let ai = &*cur;
            let mut raw = RawAddr::empty();
            let n = (ai.ai_addrlen as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
            std::ptr::copy_nonoverlapping(ai.ai_addr.cast::<u8>(), raw.as_mut_ptr().cast::<u8>(), n);
            raw.len = n as u32;
            if let Some(mut a) = raw.inet() {
                a.set_port(port);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            cur = ai.ai_next;
        }
    }
    // SAFETY: frees the list getaddrinfo allocated.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err(Error::ENOENT);
    }
    Ok(out)
}

fn reverse(addr: SocketAddr) -> Result<(String, String)> {
    let raw = RawAddr::from_inet(&addr);
    let mut host = [0 as libc::c_char; 1025];
    let mut serv = [0 as libc::c_char; 32];
    // SAFETY: valid address and output buffers with their lengths.
    let rc = unsafe {
        libc::getnameinfo(
            raw.as_ptr(),
            raw.len,
            host.as_mut_ptr(),
            host.len() as u32,
            serv.as_mut_ptr(),
            serv.len() as u32,
            0,
        )
    };
    if rc != 0 {
        return Err(eai_error(rc));
    }
    // SAFETY: getnameinfo NUL-terminates both buffers on success.
    let text = |b: &[libc::c_char]| {
        unsafe { CStr::from_ptr(b.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((text(&host), text(&serv)))
}

impl Loop {
    /// Resolves `host` to socket addresses with `port`, on the thread pool; `cb` gets the
    /// de-duplicated list (never empty on success). Cancel with [`Loop::cancel_work`].
    pub fn getaddrinfo(
        &mut self,
        host: &str,
        port: u16,
        opts: ResolveOptions,
        cb: impl FnOnce(&mut Loop, Result<Vec<SocketAddr>>) + 'static,
    ) -> Result<WorkId> {
        let host = CString::new(host).map_err(|_| Error::EINVAL)?;
        self.queue_work(
            move || lookup(&host, port, opts),
            move |lp, r| cb(lp, r.and_then(|x| x)),
        )
    }

    /// Looks up the host and service names of `addr` on the thread pool (numeric forms when no
    /// name is known).
    pub fn getnameinfo(
        &mut self,
        addr: SocketAddr,
        cb: impl FnOnce(&mut Loop, Result<(String, String)>) + 'static,
    ) -> Result<WorkId> {
        self.queue_work(move || reverse(addr), move |lp, r| cb(lp, r.and_then(|x| x)))
    }
}
