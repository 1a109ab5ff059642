//! Reading from a stream: starting and stopping reads, and delivering what the backend
//! received (data, the end, an error) to the read callback, including data stashed while
//! reading was stopped.

use super::*;

/// The read callback a stream holds.
pub(super) enum Reader {
    Boxed(ReadCb),
    Plain(ReadFn, usize),
}

impl Reader {
    #[inline(always)]
    pub(super) fn call(&mut self, lp: &mut Loop, s: Stream, read: Read<'_>) {
        match self {
            Reader::Boxed(cb) => cb(lp, s, read),
            Reader::Plain(f, data) => f(lp, s, read, *data),
        }
    }
}

impl Stream {
    /// Starts delivering received data to `cb`. Replaces the callback if already reading.
    pub fn read_start(
        self,
        lp: &mut Loop,
        cb: impl FnMut(&mut Loop, Stream, Read<'_>) + 'static,
    ) -> Result<()> {
        self.read_start_boxed(lp, Box::new(cb))
    }

    /// [`Stream::read_start`] with a callback already boxed.
    pub fn read_start_boxed(self, lp: &mut Loop, cb: ReadCb) -> Result<()> {
        self.start_reading(lp, Reader::Boxed(cb))
    }

    /// [`Stream::read_start`] with a plain function and a word of data passed back to it: no
    /// allocation (a boxed closure costs one per stream, which idle connections feel).
    pub fn read_start_fn(self, lp: &mut Loop, f: ReadFn, data: usize) -> Result<()> {
        self.start_reading(lp, Reader::Plain(f, data))
    }

    fn start_reading(self, lp: &mut Loop, cb: Reader) -> Result<()> {
        let e = self.entry(lp)?;
        if e.has(flag::LISTENING) {
            return Err(Error::EINVAL);
        }
        e.incoming = Incoming::Read(cb);
        e.flags |= flag::READING;
        let stashed =
            e.w.as_ref()
                .is_some_and(|w| !w.stash.is_empty() || w.stash_end.is_some());
        if !e.has(flag::CONNECTING) {
            lp.stream_arm_incoming(self.idx, self.gen);
        }
        if stashed {
            lp.stream_defer(self.idx, self.gen);
        }
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Stops delivering data; data that arrives meanwhile waits in the kernel.
    pub fn read_stop(self, lp: &mut Loop) -> Result<()> {
        let e = self.entry(lp)?;
        e.flags &= !flag::READING;
        if e.has(flag::RECV_ARMED) {
            let (fd, (code, kind)) = (e.fd, e.incoming_kind());
            lp.backend
                .cancel(token(Kind::Stream, code, self.idx, self.gen), fd, kind);
        }
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Whether the stream is delivering reads.
    pub fn is_reading(self, lp: &Loop) -> bool {
        lp.streams
            .get(self.idx, self.gen)
            .is_some_and(|e| e.has(flag::READING) && !e.common.closing)
    }
}

impl Loop {
    /// Delivers data (and an end) that arrived while reading was stopped.
    pub(super) fn stream_deliver_stash(&mut self, idx: u32, gen: u32) {
        let s = Stream { idx, gen };
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if !e.has(flag::READING) || e.common.closing {
            return;
        }
        let Some(w) = e.w.as_mut() else { return };
        if w.stash.is_empty() && w.stash_end.is_none() {
            return;
        }
        let mut data = std::mem::take(&mut w.stash);
        let end = w.stash_end.take();
        e.flags &= !flag::STASHED;
        let Incoming::Read(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            return;
        };
        if !data.is_empty() {
            cb.call(self, s, Read::Data(&data));
        }
        match end {
            Some(0) => cb.call(self, s, Read::Eof),
            Some(res) if res < 0 => cb.call(self, s, Read::Error(Error::from_errno(-res))),
            _ => {}
        }
        data.clear();
        if let Some(e) = self.streams.get_mut(idx, gen) {
            if !e.common.closing {
                e.put_back_incoming(Incoming::Read(cb));
            }
            if let Some(w) = e.w.as_mut() {
                if w.stash.is_empty() {
                    w.stash = data; // keep the capacity
                }
            }
        }
        self.stream_update_active(idx, gen);
    }

    #[inline(always)]
    pub(super) fn stream_received(&mut self, idx: u32, c: &Completion) {
        let Some((gen, e)) = self.streams.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) || e.common.closing {
            return;
        }
        let s = Stream { idx, gen };
        if c.res == -libc::ECANCELED || c.res == -libc::ENOBUFS {
            // A stop followed by a start before the cancellation landed, or a multishot receive
            // that ran out of buffers (its data waits in the socket): arm again.
            self.stream_arm_incoming(idx, gen);
            return;
        }
        if !e.has(flag::READING) || e.has(flag::STASHED) {
            // Data that was already on its way when reading stopped (io_uring), or that must
            // queue behind such data: keep it, in order, for the next read_start.
            if c.res > 0 {
                let w = e.w.get_or_insert_with(WriteState::new);
                // SAFETY: valid until the completion is recycled, after dispatch.
                w.stash.extend_from_slice(unsafe { c.bytes() });
                e.flags |= flag::STASHED;
            } else {
                e.w.get_or_insert_with(WriteState::new).stash_end = Some(c.res);
                e.flags |= flag::EOF;
            }
            if e.has(flag::READING) {
                self.stream_defer(idx, gen);
            }
            return;
        }

        let Incoming::Read(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            return;
        };
        if c.res > 0 {
            // SAFETY: the bytes stay valid until the completion is recycled, after dispatch.
            let data = unsafe { c.bytes() };
            self.lendable = Lendable {
                ptr: c.data,
                len: data.len(),
                buf_id: c.buf_id,
            };
            cb.call(self, s, Read::Data(data));
            self.lendable = Lendable::NONE;
        } else if c.res == 0 {
            e.flags |= flag::EOF;
            cb.call(self, s, Read::Eof);
        } else {
            e.flags |= flag::EOF;
            cb.call(self, s, Read::Error(Error::from_errno(-c.res)));
        }
        // One lookup to put the callback back and, if the multishot receive ended without EOF
        // (e.g. out of buffers), to re-arm it.
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if e.common.closing {
            return;
        }
        e.put_back_incoming(Incoming::Read(cb));
        if !e.has(flag::RECV_ARMED) && e.has(flag::READING) && !e.has(flag::EOF) {
            self.stream_arm_incoming(idx, gen);
        }
        if c.res <= 0 {
            self.stream_update_active(idx, gen);
        }
    }

    /// A pipe's write end polled ready: its reader has gone (the poll asks for nothing else
    /// that end can report), which reading reports as the end. The poll is cancelled, as
    /// nothing more can follow.
    pub(super) fn stream_reader_gone(&mut self, idx: u32, gen: u32, c: &Completion) {
        let mut end = Completion::new(c.token, c.res, false);
        if c.res >= 0 {
            end.res = 0;
            if c.more {
                if let Some(e) = self.streams.get_mut(idx, gen) {
                    let fd = e.fd;
                    self.backend
                        .cancel(token(Kind::Stream, OP_HANGUP, idx, gen), fd, OpKind::Poll);
                }
            }
        }
        self.stream_received(idx, &end);
    }
}
