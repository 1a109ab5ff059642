//! Timers.

use crate::guard;
use crate::handle::evl_timer_t;
use crate::handle::{call_c, create, create_in, open, record, timer_place, with_open, Handle, Id, Kind};
use crate::loop_::{evl_loop_t, loop_mut};
use libc::{c_int, c_void};

/// Called when a timer fires.
pub type evl_timer_cb = Option<unsafe extern "C" fn(timer: *mut evl_timer_t, user_data: *mut c_void)>;

/// Creates a stopped timer with `user_data` in `*out`.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_init(
    l: *mut evl_loop_t,
    out: *mut *mut evl_timer_t,
    user_data: *mut c_void,
) -> c_int {
    create(l, out, user_data, |lp| Ok(Id::Timer(evloop::Timer::new(lp))))
}

/// Creates a stopped timer with `user_data` in `memory`, which the caller owns: at least
/// evl_handle_size(EVL_HANDLE_TIMER) bytes aligned to 8, kept in place until the timer's close
/// callback runs (the callback may free it; after it the library never touches the memory, which
/// may then be initialised again). `memory` is then the timer's handle: pass it to every evl_timer_*
/// function and to evl_close(). No allocation is made, so a program that keeps its timers inside
/// timer. -EINVAL for NULL or misaligned memory. Initialising memory that holds a timer whose
/// close callback has not run is undefined (as with libuv's handles): what the memory holds is
/// not read, so that fresh malloc() memory is fine under valgrind.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_init_in(
    l: *mut evl_loop_t,
    memory: *mut evl_timer_t,
    user_data: *mut c_void,
) -> c_int {
    let place = timer_place(memory.cast());
    // SAFETY: `memory` holds evl_handle_size(EVL_HANDLE_TIMER) bytes (the header's contract;
    // `create_in` checks the rest before calling this), kept until the close callback runs,
    // which is after the core's close completes.
    create_in(l, memory, user_data, |lp| {
        Ok(Id::Timer(unsafe { evloop::Timer::new_in(lp, place) }))
    })
}

/// Calls `cb` after `timeout` ms, then every `repeat` ms if `repeat` is not 0. Restarts a running
/// timer. Timers due in the same millisecond fire in the order they were started.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_start(
    t: *mut evl_timer_t,
    cb: evl_timer_cb,
    timeout: u64,
    repeat: u64,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: validated by `open`.
        let (h, lp) = match unsafe { open(t, Kind::Timer) } {
            Ok(x) => x,
            Err(e) => return e,
        };
        let Some(cb) = cb else { return -libc::EINVAL };
        let Id::Timer(timer) = h.id else {
            return -libc::EINVAL;
        };
        // The callback lives in the handle record, which the core hands back to `fired`: a
        // start allocates nothing.
        h.set_timer_cb(Some(cb));
        let in_caller_memory = h.in_caller_memory();
        let record = h as *mut Handle;
        let raw = record as usize;
        crate::code(if in_caller_memory {
            // SAFETY: an open timer in caller memory: its place follows the record.
            unsafe { timer.start_fn_in(lp, timer_place(record), timeout, repeat, fired, raw) }
        } else {
            timer.start_fn(lp, timeout, repeat, fired, raw)
        })
    })
}

fn fired(lp: &mut evloop::Loop, _: evloop::Timer, raw: usize) {
    let h = raw as *mut Handle;
    // SAFETY: core runs a timer's callback only while its handle lives, and the record is
    // freed only after the close callback.
    if let Some(cb) = unsafe { (*h).timer_cb() } {
        // SAFETY: as above.
        unsafe { call_c(h, lp, |data| cb(h.cast(), data)) }
    }
}

/// Stops the timer.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_stop(t: *mut evl_timer_t) -> c_int {
    with_open!(t, Timer, |h, lp, Id::Timer(timer)| crate::code(
        if h.in_caller_memory() {
            // SAFETY: an open timer in caller memory: its place follows the record.
            unsafe { timer.stop_in(lp, timer_place(h)) }
        } else {
            timer.stop(lp)
        }
    ))
}

/// Restarts a repeating timer with its repeat interval; leaves a non-repeating one as it is
/// (as uv_timer_again does); -EINVAL if it was never started.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_again(t: *mut evl_timer_t) -> c_int {
    with_open!(t, Timer, |h, lp, Id::Timer(timer)| crate::code(timer.again(lp)))
}

/// Sets the repeat interval used from the next firing on.
#[no_mangle]
pub unsafe extern "C" fn evl_timer_set_repeat(t: *mut evl_timer_t, repeat: u64) -> c_int {
    with_open!(t, Timer, |h, lp, Id::Timer(timer)| crate::code(
        timer.set_repeat(lp, repeat)
    ))
}

/// The repeat interval in ms (0 for a bad handle).
#[no_mangle]
pub unsafe extern "C" fn evl_timer_get_repeat(t: *mut evl_timer_t) -> u64 {
    guard(0, || {
        match unsafe {
            record(t, Some(Kind::Timer)).and_then(|h| {
                let l = h.l;
                Ok((h, loop_mut(l)?))
            })
        } {
            Ok((h, lp)) => match h.id {
                Id::Timer(timer) => timer.repeat(lp).unwrap_or(0),
                _ => 0,
            },
            Err(_) => 0,
        }
    })
}

/// Milliseconds until the timer fires (0 if stopped or due).
#[no_mangle]
pub unsafe extern "C" fn evl_timer_get_due_in(t: *mut evl_timer_t) -> u64 {
    guard(0, || {
        match unsafe {
            record(t, Some(Kind::Timer)).and_then(|h| {
                let l = h.l;
                Ok((h, loop_mut(l)?))
            })
        } {
            Ok((h, lp)) => match h.id {
                Id::Timer(timer) => timer.due_in(lp).unwrap_or(0),
                _ => 0,
            },
            Err(_) => 0,
        }
    })
}
