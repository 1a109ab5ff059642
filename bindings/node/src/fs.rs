//! Promise-based file functions on the core's file operations (io_uring-native on the uring
//! backend, the core's thread pool on epoll): `readFile`, `writeFile`, `stat`, and the batches
//! `readFiles`/`writeFiles`, which keep up to `window` operations in flight.

use std::cell::RefCell;
use std::ptr;
use std::rc::Rc;

use evloop::fs::Metadata;
use evloop::{Error, Loop};
use napi::bindgen_prelude::Buffer;
use napi::{sys, Env, JsObject, NapiValue};
use napi_derive::napi;

use crate::runtime::{napi_call, rt, runtime, Event, Extra, Runtime};

/// A promise and its deferred, made for one call.
fn promise(env: &Env) -> napi::Result<(sys::napi_deferred, JsObject)> {
    let mut deferred = ptr::null_mut();
    let mut value = ptr::null_mut();
    napi_call!(sys::napi_create_promise(env.raw(), &mut deferred, &mut value))
        .map_err(|_| crate::runtime::js_error("evloop: napi_create_promise failed"))?;
    // SAFETY: `value` is the promise napi_create_promise just made in this environment.
    Ok((deferred, unsafe {
        JsObject::from_raw_unchecked(env.raw(), value)
    }))
}

/// Queues the settlement of `deferred` with what `make` builds (run in the dispatching scope).
fn settle(
    deferred: sys::napi_deferred,
    make: impl FnOnce(&Runtime) -> Result<sys::napi_value, sys::napi_value>,
) {
    if let Some(rt) = runtime() {
        let (ok, value) = match make(rt) {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        };
        let mut ev = Event::new(0, 0);
        ev.a = value;
        ev.extra = Extra::Settle(deferred, ok);
        rt.push(ev);
    }
}

/// Rejects at once (an error the call itself met, such as a path with a NUL byte): still
/// through the event queue, so the promise never settles inside the call.
fn settle_soon(rt: &Runtime, deferred: sys::napi_deferred, e: Error, syscall: &'static str, path: String) {
    let _ = rt.with_loop(move |lp| {
        lp.call_soon(move |_| settle(deferred, |rt| Err(rt.fs_error(e, syscall, &path))));
    });
}

/// Reads the whole file at `path` into a `Buffer`.
#[napi(ts_return_type = "Promise<Buffer>")]
pub fn read_file(env: Env, path: String) -> napi::Result<JsObject> {
    let rt = rt()?;
    let (deferred, p) = promise(&env)?;
    let shown = path.clone();
    let started = rt.with_loop(|lp| {
        evloop::fs::read_file(lp, &path, move |_, res| {
            settle(deferred, |rt| match res {
                Ok(data) => Ok(rt.buffer_from_vec(data)),
                Err(e) => Err(rt.fs_error(e, "open", &shown)),
            })
        })
    });
    if let Err(e) = started.and_then(|r| r) {
        settle_soon(rt, deferred, e, "open", path);
    }
    Ok(p)
}

/// Creates or truncates `path` and writes `data` to it.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_file(env: Env, path: String, data: Buffer) -> napi::Result<JsObject> {
    let rt = rt()?;
    let (deferred, p) = promise(&env)?;
    // The operation may outlive the caller's Buffer (and runs on other threads on epoll).
    let bytes: Vec<u8> = data.to_vec();
    let shown = path.clone();
    let started = rt.with_loop(|lp| {
        evloop::fs::write_file(lp, &path, bytes, move |_, res| {
            settle(deferred, |rt| match res {
                Ok(()) => Ok(rt.undefined()),
                Err(e) => Err(rt.fs_error(e, "open", &shown)),
            })
        })
    });
    if let Err(e) = started.and_then(|r| r) {
        settle_soon(rt, deferred, e, "open", path);
    }
    Ok(p)
}

fn stat_object(rt: &Runtime, m: &Metadata) -> sys::napi_value {
    let env = rt.env;
    let mut obj = ptr::null_mut();
    let _ = napi_call!(sys::napi_create_object(env, &mut obj));
    let ms = |t: evloop::fs::FileTime| t.sec as f64 * 1e3 + t.nsec as f64 / 1e6;
    let fields: [(&std::ffi::CStr, f64); 14] = [
        (c"dev", m.dev as f64),
        (c"ino", m.ino as f64),
        (c"mode", m.mode as f64),
        (c"nlink", m.nlink as f64),
        (c"uid", m.uid as f64),
        (c"gid", m.gid as f64),
        (c"rdev", m.rdev as f64),
        (c"size", m.size as f64),
        (c"blksize", m.blksize as f64),
        (c"blocks", m.blocks as f64),
        (c"atimeMs", ms(m.atime)),
        (c"mtimeMs", ms(m.mtime)),
        (c"ctimeMs", ms(m.ctime)),
        (c"birthtimeMs", ms(m.birthtime)),
    ];
    for (name, v) in fields {
        let _ = napi_call!(sys::napi_set_named_property(
            env,
            obj,
            name.as_ptr(),
            rt.number(v)
        ));
    }
    obj
}

/// The metadata of `path` (following symbolic links) as a plain object; `lib/fs.js` makes it
/// a `Stats`-like object.
#[napi(ts_return_type = "Promise<object>")]
pub fn stat(env: Env, path: String) -> napi::Result<JsObject> {
    let rt = rt()?;
    let (deferred, p) = promise(&env)?;
    let shown = path.clone();
    let started = rt.with_loop(|lp| {
        evloop::fs::stat(lp, &path, move |_, res| {
            settle(deferred, |rt| match res {
                Ok(m) => Ok(stat_object(rt, &m)),
                Err(e) => Err(rt.fs_error(e, "stat", &shown)),
            })
        })
    });
    if let Err(e) = started.and_then(|r| r) {
        settle_soon(rt, deferred, e, "stat", path);
    }
    Ok(p)
}

/// A batch in flight: up to `window` operations at once, each finished one starting the next.
struct Batch {
    paths: Vec<String>,
    /// `writeFiles`: each path's data, taken when its write starts. Empty for `readFiles`.
    data: Vec<Vec<u8>>,
    writing: bool,
    results: Vec<Vec<u8>>,
    next: usize,
    finished: usize,
    window: usize,
    failed: bool,
    deferred: sys::napi_deferred,
}

type Shared = Rc<RefCell<Batch>>;

/// Starts operations until `window` are in flight or none is left.
fn fill_window(lp: &mut Loop, batch: &Shared) {
    loop {
        let (i, path, data, writing) = {
            let mut b = batch.borrow_mut();
            if b.failed || b.next >= b.paths.len() || b.next - b.finished >= b.window {
                return;
            }
            let i = b.next;
            b.next += 1;
            let data = if b.writing {
                std::mem::take(&mut b.data[i])
            } else {
                Vec::new()
            };
            (i, b.paths[i].clone(), data, b.writing)
        };
        let b = batch.clone();
        let started = if writing {
            evloop::fs::write_file(lp, path, data, move |lp, res| {
                finish_one(lp, &b, i, res.map(|()| Vec::new()))
            })
        } else {
            evloop::fs::read_file(lp, path, move |lp, res| finish_one(lp, &b, i, res))
        };
        if let Err(e) = started {
            // Refused at submission: reported from the next run, never inside the call.
            let b = batch.clone();
            lp.call_soon(move |lp| finish_one(lp, &b, i, Err(e)));
        }
    }
}

/// Records item `i`'s outcome, settles the promise on the first error or the last success,
/// and keeps the window full.
fn finish_one(lp: &mut Loop, batch: &Shared, i: usize, res: evloop::Result<Vec<u8>>) {
    let all_done = {
        let mut b = batch.borrow_mut();
        b.finished += 1;
        if b.failed {
            return;
        }
        match res {
            Ok(data) => {
                if let Some(slot) = b.results.get_mut(i) {
                    *slot = data;
                }
                b.finished == b.paths.len()
            }
            Err(e) => {
                b.failed = true;
                let path = std::mem::take(&mut b.paths[i]);
                settle(b.deferred, |rt| Err(rt.fs_error(e, "open", &path)));
                return;
            }
        }
    };
    if !all_done {
        fill_window(lp, batch);
        return;
    }
    let mut b = batch.borrow_mut();
    let results = std::mem::take(&mut b.results);
    let writing = b.writing;
    settle(b.deferred, move |rt| {
        Ok(if writing {
            rt.undefined()
        } else {
            rt.array(results.into_iter().map(|r| rt.buffer_from_vec(r)))
        })
    });
}

fn start_batch(
    env: &Env,
    paths: Vec<String>,
    data: Vec<Vec<u8>>,
    window: Option<u32>,
) -> napi::Result<JsObject> {
    let rt = rt()?;
    let (deferred, p) = promise(env)?;
    let n = paths.len();
    let writing = !data.is_empty();
    let batch = Rc::new(RefCell::new(Batch {
        paths,
        data,
        writing,
        results: if writing { Vec::new() } else { vec![Vec::new(); n] },
        next: 0,
        finished: 0,
        window: window.map_or(256, |w| w.max(1) as usize),
        failed: false,
        deferred,
    }));
    let _ = rt.with_loop(|lp| {
        if n == 0 {
            lp.call_soon(move |_| {
                settle(deferred, |rt| {
                    Ok(if writing {
                        rt.undefined()
                    } else {
                        rt.array(std::iter::empty())
                    })
                })
            });
        }
        fill_window(lp, &batch);
    });
    Ok(p)
}

/// Reads every file of `paths`, up to `window` (default 256) at once; resolves to their
/// contents in order, or rejects with the first error.
#[napi(ts_return_type = "Promise<Buffer[]>")]
pub fn read_files(env: Env, paths: Vec<String>, window: Option<u32>) -> napi::Result<JsObject> {
    start_batch(&env, paths, Vec::new(), window)
}

/// Writes `data[i]` to `paths[i]` for every i, up to `window` (default 256) at once.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_files(
    env: Env,
    paths: Vec<String>,
    data: Vec<Buffer>,
    window: Option<u32>,
) -> napi::Result<JsObject> {
    if paths.len() != data.len() {
        return Err(napi::Error::new(
            napi::Status::InvalidArg,
            "writeFiles: paths and data must have the same length".to_string(),
        ));
    }
    if paths.is_empty() {
        return start_batch(&env, paths, Vec::new(), window);
    }
    start_batch(&env, paths, data.iter().map(|b| b.to_vec()).collect(), window)
}
