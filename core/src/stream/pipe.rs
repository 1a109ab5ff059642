//! Pipes, FIFOs and terminals as streams (libuv's `uv_pipe_open`): the stream API over `read`
//! and `write` instead of `recv` and `send`. On io_uring a pipe reads with multishot `read`
//! into the same provided buffers as sockets (one submission for many reads; Linux 6.7), or
//! with a single-shot `read` re-armed after each completion on older kernels.

use super::{flag, Stream};
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys;
use std::os::fd::RawFd;

impl Stream {
    /// Takes ownership of `fd`, a pipe end, a FIFO or a character device such as a terminal,
    /// as a stream (made non-blocking here); a stream socket is taken as [`Stream::adopt`]
    /// takes it. The loop closes the fd when the handle closes. Regular files and directories
    /// are refused with `EINVAL` (they are never "not ready": use the file API).
    ///
    /// What differs from a socket:
    /// - The write end of a pipe receives no data. Reading it reports [`Read::Eof`] when the
    ///   read end has closed, so a writer learns that its reader went away without writing.
    /// - [`Stream::shutdown`] fails with `ENOTSOCK`, as in libuv: a pipe's reader sees the end
    ///   when every write end is closed.
    /// - Writing to a pipe whose reader has gone fails with `EPIPE`. Pipes have no
    ///   `MSG_NOSIGNAL`: opening a writable pipe sets SIGPIPE to be ignored if it still has its
    ///   default action, which would kill the process (a handler, or an explicit ignore, stays).
    ///
    /// [`Read::Eof`]: super::Read::Eof
    pub fn pipe_open(lp: &mut Loop, fd: RawFd) -> Result<Stream> {
        match sys::file_type(fd)? {
            libc::S_IFSOCK => return Stream::adopt(lp, fd),
            libc::S_IFIFO | libc::S_IFCHR => {}
            _ => return Err(Error::EINVAL),
        }
        let mode = sys::access_mode(fd)?;
        sys::set_nonblocking(fd)?;
        let s = lp.pipe_insert(fd, mode);
        if let Some(e) = lp.streams.get_mut(s.idx, s.gen) {
            // Lent by the caller: it may have duplicates the epoll set must not keep watching.
            e.flags |= flag::ADOPTED;
        }
        Ok(s)
    }

    /// A new pipe as two streams of this loop: `(read end, write end)`. What is written to
    /// the second is read from the first; closing the second ends the first with EOF.
    pub fn pipe_pair(lp: &mut Loop) -> Result<(Stream, Stream)> {
        let (read_end, write_end) = sys::pipe()?;
        Ok((
            lp.pipe_insert(read_end, libc::O_RDONLY),
            lp.pipe_insert(write_end, libc::O_WRONLY),
        ))
    }

    /// Whether the stream is a pipe, FIFO or terminal rather than a socket.
    pub fn is_pipe(self, lp: &Loop) -> bool {
        lp.streams
            .get(self.idx, self.gen)
            .is_some_and(|e| e.has(flag::PIPE))
    }
}

impl Loop {
    /// A stream entry for a non-socket fd opened with access `mode` (`O_RDONLY`, `O_WRONLY`,
    /// `O_RDWR`).
    fn pipe_insert(&mut self, fd: RawFd, mode: libc::c_int) -> Stream {
        if mode != libc::O_RDONLY {
            sys::ignore_sigpipe_if_default();
        }
        let s = self.stream_insert(fd, libc::AF_UNSPEC);
        let e = self.streams.get_mut(s.idx, s.gen).expect("just inserted");
        e.flags |= flag::PIPE;
        if mode == libc::O_WRONLY {
            e.flags |= flag::WRITE_ONLY;
        }
        s
    }
}
